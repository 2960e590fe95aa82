"""The OID4VCI endpoints a wallet talks to (`oid4vci_bp`): the issuer and
authorization-server metadata under /.well-known, the offer by reference, and
the token, nonce and credential endpoints under /oid4vci.

Thin: read the request, call `credentials.oid4vci`, answer JSON with the
spec's error codes. No cookies authorise anything here (the pre-authorized
code and the access token do), so CSRF does not apply and any origin may call
(a web wallet runs in a browser on its own origin). Rate-limited per client
address like the verify API. The Credential Issuer Identifier is the
institution's public address (ATTEST_PUBLIC_URL or the stored profile), never
the request's Host header.
"""

from __future__ import annotations

import json
import re

from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import HTTPException

from credentials import oid4vci, storage
from credentials.oid4vci import OAuthError
from credentials.web.api import rate_limit, read_body
from credentials.web.identity import institution
from kernel import audit
from kernel.web.auth import db_session
from kernel.web.extensions import csrf, limiter

oid4vci_bp = Blueprint("oid4vci", __name__)
csrf.exempt(oid4vci_bp)

WALLET = "wallet"  # the audit log's actor for what a wallet does
_HEADER_UNSAFE = re.compile(r'[^\x20\x21\x23-\x5b\x5d-\x7e]')


def _issuer() -> str:
    return institution().public_url.rstrip("/")


def _secret() -> bytes:
    return current_app.config["SECRET_KEY"].encode()


def _json(body: dict, status: int = 200, headers: dict | None = None, store: bool = False) -> Response:
    response = current_app.response_class(json.dumps(body, ensure_ascii=False), status=status,
                                          mimetype="application/json", headers=headers)
    if not store:
        # Codes, tokens and nonces must never sit in a cache (the spec's no-store).
        response.headers["Cache-Control"] = "no-store"
    return response


def _error(exc: OAuthError, **extra) -> Response:
    headers = {}
    if exc.status == 401:
        # RFC 6750 3: the header's error_description is printable ASCII without
        # quote or backslash (a non-Latin-1 character would even break the
        # response); the JSON body keeps the sentence as written.
        description = _HEADER_UNSAFE.sub("", exc.description.replace("\u2026", "..."))
        headers["WWW-Authenticate"] = f'Bearer error="{exc.error}", error_description="{description}"'
    return _json({**exc.body(), **extra}, exc.status, headers)


@oid4vci_bp.after_request
def _cors(response: Response) -> Response:
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
    response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
    return response


# ----- metadata -----------------------------------------------------------------------

@oid4vci_bp.get("/.well-known/openid-credential-issuer")
@oid4vci_bp.get("/.well-known/openid-credential-issuer/<path:_tail>")
@limiter.limit(rate_limit)
def issuer_metadata(_tail: str = ""):
    """The Credential Issuer Metadata (also at the path-suffixed well-known
    location the spec uses when the public address has a path)."""
    inst = institution()
    return _json(oid4vci.issuer_metadata(_issuer(), inst.name, inst.logo_url), store=True)


@oid4vci_bp.get("/.well-known/oauth-authorization-server")
@oid4vci_bp.get("/.well-known/oauth-authorization-server/<path:_tail>")
@limiter.limit(rate_limit)
def authorization_server_metadata(_tail: str = ""):
    return _json(oid4vci.authorization_server_metadata(_issuer()), store=True)


# ----- the offer, by reference -----------------------------------------------------------

@oid4vci_bp.get("/oid4vci/offers/<uri_token>")
@limiter.limit(rate_limit)
def offer(uri_token: str):
    """The Credential Offer object a QR code's credential_offer_uri names."""
    found = oid4vci.offer_for_uri_token(db_session(), uri_token, _secret())
    if found is None:
        return _json({"error": "invalid_request", "error_description":
                      "this credential offer is unknown, expired or used already; ask for a new QR code"}, 404)
    record, code = found
    return _json(oid4vci.offer_object(_issuer(), code, record.tx_code_hash is not None))


# ----- token and nonce ---------------------------------------------------------------------

@oid4vci_bp.post("/oid4vci/token")
@limiter.limit(rate_limit)
def token():
    """Pre-authorized code (and PIN) -> access token, once."""
    grant_type = request.form.get("grant_type")
    if grant_type != oid4vci.PRE_AUTHORIZED_GRANT:
        return _error(OAuthError("unsupported_grant_type", f"grant_type must be {oid4vci.PRE_AUTHORIZED_GRANT}"))
    session = db_session()
    try:
        grant = oid4vci.redeem_code(session, request.form.get("pre-authorized_code"), request.form.get("tx_code"))
    except OAuthError as exc:
        session.commit()  # a wrong PIN is counted
        return _error(exc)
    audit.record(session, WALLET, "wallet_offer_redeemed", grant.offer.credential_id, offer=grant.offer.id)
    session.commit()
    return _json({"access_token": grant.access_token, "token_type": "Bearer", "expires_in": grant.expires_in,
                  # 1.0 hands nonces out at the nonce endpoint; wallets written to
                  # the earlier drafts (draft 13) still read them here.
                  "c_nonce": oid4vci.make_nonce(_secret()), "c_nonce_expires_in": oid4vci.NONCE_TTL_SECONDS})


@oid4vci_bp.post("/oid4vci/nonce")
@limiter.limit(rate_limit)
def nonce():
    return _json({"c_nonce": oid4vci.make_nonce(_secret())})


# ----- the credential ---------------------------------------------------------------------

def _bearer() -> str | None:
    scheme, _, value = (request.headers.get("Authorization") or "").partition(" ")
    if scheme.lower() == "dpop":
        raise OAuthError("invalid_token", "DPoP-bound tokens are not used here; send the token as Bearer", 401)
    return value.strip() if scheme.lower() == "bearer" else None


@oid4vci_bp.post("/oid4vci/credential")
@limiter.limit(rate_limit)
def credential():
    """Access token + proof JWT -> the stored credential, as issued (ldp_vc)."""
    session = db_session()
    try:
        offer = oid4vci.offer_for_access_token(session, _bearer())
        raw = read_body()
        if raw is None:
            raise OAuthError("invalid_credential_request", "the Credential Request is far too large")
        try:
            body = json.loads(raw or b"null")
        except ValueError as exc:
            raise OAuthError("invalid_credential_request", "the Credential Request is not JSON") from exc
        oid4vci.check_credential_request(body)
        proofs = oid4vci.proofs_of(body)
        if len(proofs) != 1:
            raise OAuthError("invalid_credential_request", "send exactly one proof: this issuer gives one "
                                                           "credential per offer (no batch issuance)")
        holder = oid4vci.check_proof_jwt(proofs[0], audience=_issuer(), secret=_secret())
        record = storage.get_credential(session, offer.credential_id)
        if record is None or record.status != storage.ACTIVE:
            raise OAuthError("credential_request_denied", "this credential is no longer active (revoked, or "
                                                          "not anchored)")
    except OAuthError as exc:
        extra = {"c_nonce": oid4vci.make_nonce(_secret())} if exc.error == "invalid_nonce" else {}
        return _error(exc, **extra)
    first = offer.collected_at is None
    oid4vci.record_collection(offer, holder)
    if first:
        audit.record(session, WALLET, "credential_collected", record.id, offer=offer.id, holder_key=holder.label)
    session.commit()
    document = record.document_dict
    # `credentials` is 1.0's answer; `credential` is what draft-13 wallets read.
    return _json({"credentials": [{"credential": document}], "credential": document})


@oid4vci_bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    """429 from the rate limit and anything else, as OAuth-style JSON."""
    headers = {"Retry-After": "60"} if exc.code == 429 else {}
    return _json({"error": "invalid_request" if exc.code != 429 else "slow_down",
                  "error_description": exc.description or exc.name}, exc.code or 500, headers)
