"""OpenID for Verifiable Credential Issuance 1.0, pre-authorized code flow:
how a wallet (the Learner Credential Wallet, or any OID4VCI wallet) collects a
credential this service already issued.

The flow, as the spec numbers it:
  1. the registrar (or the holder, on the holder's page) makes an *offer*: a
     QR code of `openid-credential-offer://?credential_offer_uri=…`, which the
     wallet fetches to get the offer object with a pre-authorized code;
  2. the wallet reads `/.well-known/openid-credential-issuer` (and the OAuth
     metadata) of the offer's `credential_issuer`;
  3. it trades the code (and the PIN, when the offer asks for one) at the token
     endpoint for an access token and a `c_nonce`;
  4. it signs a proof JWT over the nonce with its own key and posts it with the
     access token to the credential endpoint, which answers the stored
     credential as `ldp_vc`.

What is stored is never a usable secret: the offer's URI token, its
pre-authorized code, the PIN and the access token are kept as hashes (the code
is an HMAC of the URI token under the app's secret key, so the by-reference
offer can be answered without storing the code). Nonces are stateless: a time
stamp and a random part, MACed with the same key, so any web worker can check
one. A code is single use (an UPDATE that only one request can win) and short
lived.

The credential was signed and anchored when it was issued, so the wallet's key
cannot be written into it without re-issuing (a new fingerprint, a new
anchor). The proof is still required, as the metadata says: it shows the
request is fresh (the nonce) and which key collected the credential, which is
recorded with the offer and in the audit log.

No Flask here: the web layer (`credentials.web.holder`) and the tests call
these functions alike.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import parse_qs, quote, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Column, DateTime, ForeignKey, Integer, String, Text, select, update
from sqlalchemy.orm import Session

from credentials.document import OB_CONTEXT, VC_CONTEXT
from credentials.multibase import MultibaseError, b58decode
from kernel.database import Base, create_tables, migration, utcnow

CONFIGURATION_ID = "OpenBadgeCredential_ldp_vc"
FORMAT = "ldp_vc"
CREDENTIAL_TYPES = ["VerifiableCredential", "OpenBadgeCredential"]
PRE_AUTHORIZED_GRANT = "urn:ietf:params:oauth:grant-type:pre-authorized_code"
OFFER_SCHEME = "openid-credential-offer://"
PROOF_TYP = "openid4vci-proof+jwt"
# Asymmetric algorithms only (never `none` or an HMAC): each with the one key
# type it may be used with, so a key cannot be read under another algorithm.
PROOF_ALGORITHMS = {"ES256": ("EC", "P-256"), "ES384": ("EC", "P-384"), "ES256K": ("EC", "secp256k1"),
                    "EdDSA": ("OKP", "Ed25519"), "RS256": ("RSA", None), "PS256": ("RSA", None)}
BINDING_METHODS = ["jwk", "did:key", "did:jwk"]

OFFER_TTL = timedelta(minutes=30)  # long enough to install a wallet; the code is single use anyway
ACCESS_TOKEN_TTL = timedelta(minutes=10)
NONCE_TTL_SECONDS = 300
PROOF_MAX_AGE_SECONDS = 300  # a proof's iat may be at most this old ...
CLOCK_SKEW_SECONDS = 60  # ... or this far in the future (a phone's clock)
TX_CODE_LENGTH = 6
TX_CODE_ATTEMPTS = 5  # wrong PINs before the offer is spent (the spec's guessing advice)
_PRIVATE_JWK_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "k", "oth")


class WalletOffer(Base):
    """One credential offer: made by someone, redeemed once by one wallet."""

    __tablename__ = "wallet_offers"
    id = Column(String(32), primary_key=True)  # random; names the offer in the audit log
    credential_id = Column(String(64), ForeignKey("credentials.id"), nullable=False, index=True)
    created_at = Column(DateTime, nullable=False, default=utcnow)
    created_by = Column(String(255), nullable=False)  # a registrar's email, or "holder"
    expires_at = Column(DateTime, nullable=False)
    uri_token_hash = Column(String(64), nullable=False, unique=True)
    code_hash = Column(String(64), nullable=False, unique=True)
    # sha256(code ":" PIN): without the code (only its hash is here) the stored
    # value cannot be used to guess the six digits offline.
    tx_code_hash = Column(String(64), nullable=True)
    tx_code_failures = Column(Integer, nullable=False, default=0)
    redeemed_at = Column(DateTime, nullable=True)
    access_token_hash = Column(String(64), nullable=True, unique=True)
    access_expires_at = Column(DateTime, nullable=True)
    collected_at = Column(DateTime, nullable=True)
    holder_key = Column(Text, nullable=True)  # the collecting key: its DID, or jwk:<RFC 7638 thumbprint>

    def state(self, now: datetime | None = None) -> str:
        """`collected`, `redeemed` (token given, credential not fetched yet),
        `spent` (too many wrong PINs), `expired` or `open`."""
        now = now or utcnow()
        if self.collected_at:
            return "collected"
        if self.redeemed_at:
            return "redeemed"
        if self.tx_code_failures >= TX_CODE_ATTEMPTS:
            return "spent"
        return "expired" if self.expires_at <= now else "open"


@migration("1202_wallet_offers")
def _create_offers(conn) -> None:
    create_tables(conn, WalletOffer)


class OAuthError(Exception):
    """An error answered as OAuth / OID4VCI JSON: `error`, `error_description`."""

    def __init__(self, error: str, description: str, status: int = 400):
        super().__init__(description)
        self.error, self.description, self.status = error, description, status

    def body(self) -> dict:
        return {"error": self.error, "error_description": self.description}


# ----- secrets and hashes ----------------------------------------------------------------

def _b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64u_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _mac(secret: bytes, purpose: str, message: str) -> str:
    return _b64u(hmac.new(secret, f"{purpose}:{message}".encode(), hashlib.sha256).digest())


def code_for(secret: bytes, uri_token: str) -> str:
    """The offer's pre-authorized code, derived from its URI token."""
    return _mac(secret, "pre-authorized_code", uri_token)


def _tx_code_hash(code: str, tx_code: str) -> str:
    return _sha256(f"{code}:{tx_code}")


def make_nonce(secret: bytes, now: float | None = None) -> str:
    """A fresh `c_nonce`: `<unix time>.<random>.<mac>`."""
    body = f"{int(now if now is not None else time.time())}.{secrets.token_urlsafe(12)}"
    return f"{body}.{_mac(secret, 'c_nonce', body)}"


def nonce_is_valid(secret: bytes, nonce: object, now: float | None = None) -> bool:
    """Made by `make_nonce` with this key, and at most NONCE_TTL_SECONDS old."""
    if not isinstance(nonce, str) or nonce.count(".") != 2 or len(nonce) > 200:
        return False
    stamp, rand, mac = nonce.split(".")
    if not hmac.compare_digest(mac, _mac(secret, "c_nonce", f"{stamp}.{rand}")):
        return False
    age = (now if now is not None else time.time()) - int(stamp)
    return -CLOCK_SKEW_SECONDS <= age <= NONCE_TTL_SECONDS


# ----- offers -----------------------------------------------------------------------------

@dataclass(frozen=True)
class NewOffer:
    """An offer just made, with the secrets only its maker sees (once)."""

    offer: WalletOffer
    uri_token: str
    code: str
    tx_code: str | None


def new_offer(session: Session, credential_id: str, actor: str, secret: bytes, *, with_tx_code: bool = False,
              now: datetime | None = None) -> NewOffer:
    """Store an offer of the credential (the caller commits)."""
    now = now or utcnow()
    uri_token = secrets.token_urlsafe(32)
    code = code_for(secret, uri_token)
    tx_code = "".join(secrets.choice("0123456789") for _ in range(TX_CODE_LENGTH)) if with_tx_code else None
    offer = WalletOffer(id=secrets.token_hex(8), credential_id=credential_id, created_at=now, created_by=actor,
                        expires_at=now + OFFER_TTL, uri_token_hash=_sha256(uri_token), code_hash=_sha256(code),
                        tx_code_hash=_tx_code_hash(code, tx_code) if tx_code else None, tx_code_failures=0)
    session.add(offer)
    session.flush()
    return NewOffer(offer, uri_token, code, tx_code)


def offer_object(credential_issuer: str, code: str, tx_code_required: bool) -> dict:
    """The Credential Offer object (OID4VCI 1.0 section 4.1.1)."""
    grant: dict = {"pre-authorized_code": code}
    if tx_code_required:
        grant["tx_code"] = {"input_mode": "numeric", "length": TX_CODE_LENGTH,
                            "description": "The PIN the registrar gave you with this QR code."}
    return {"credential_issuer": credential_issuer, "credential_configuration_ids": [CONFIGURATION_ID],
            "grants": {PRE_AUTHORIZED_GRANT: grant}}


def offer_by_value(offer: dict) -> str:
    """`openid-credential-offer://?credential_offer=<the JSON, URL-encoded>`."""
    text = json.dumps(offer, separators=(",", ":"))
    return f"{OFFER_SCHEME}?credential_offer={quote(text, safe='')}"


def offer_by_reference(offer_uri: str) -> str:
    """`openid-credential-offer://?credential_offer_uri=<the offer's https URL>` (what the QR holds)."""
    return f"{OFFER_SCHEME}?credential_offer_uri={quote(offer_uri, safe='')}"


def parse_offer(link: str) -> dict | str:
    """What a wallet reads from an offer link: the offer object (by value) or
    the URL to fetch it from (by reference). ValueError for anything else."""
    parts = urlsplit(link)
    query = parse_qs(parts.query)
    by_value, by_reference = query.get("credential_offer"), query.get("credential_offer_uri")
    if bool(by_value) == bool(by_reference):
        raise ValueError("an offer carries exactly one of credential_offer and credential_offer_uri")
    if by_reference:
        return by_reference[0]
    offer = json.loads(by_value[0])
    if not isinstance(offer, dict) or "credential_issuer" not in offer:
        raise ValueError("the credential_offer is not an offer object")
    return offer


def offer_for_uri_token(session: Session, uri_token: str, secret: bytes,
                        now: datetime | None = None) -> tuple[WalletOffer, str] | None:
    """The open offer this URI token names and its code, or None (unknown,
    expired, spent or already redeemed: a wallet cannot use it any more)."""
    if not uri_token or len(uri_token) > 100:
        return None
    offer = session.scalar(select(WalletOffer).where(WalletOffer.uri_token_hash == _sha256(uri_token)))
    if offer is None or offer.state(now) != "open":
        return None
    return offer, code_for(secret, uri_token)


# ----- token endpoint -------------------------------------------------------------------------

@dataclass(frozen=True)
class TokenGrant:
    offer: WalletOffer
    access_token: str
    expires_in: int


def redeem_code(session: Session, code: str | None, tx_code: str | None,
                now: datetime | None = None) -> TokenGrant:
    """Trade a pre-authorized code (and PIN) for an access token, once.
    OAuthError with the spec's error codes otherwise (the caller commits
    either way: a wrong PIN is counted)."""
    now = now or utcnow()
    if not code:
        raise OAuthError("invalid_request", "pre-authorized_code is missing")
    offer = session.scalar(select(WalletOffer).where(WalletOffer.code_hash == _sha256(code)))
    if offer is None:
        raise OAuthError("invalid_grant", "this pre-authorized code is not one this issuer made")
    state = offer.state(now)
    if state != "open":
        raise OAuthError("invalid_grant", {
            "collected": "this pre-authorized code was used already (codes are single use)",
            "redeemed": "this pre-authorized code was used already (codes are single use)",
            "spent": "too many wrong PINs: this offer can no longer be used; ask for a new one",
            "expired": "this pre-authorized code has expired; ask for a new offer"}[state])
    if offer.tx_code_hash is None and tx_code:
        raise OAuthError("invalid_request", "this offer needs no tx_code, but one was sent")
    if offer.tx_code_hash is not None:
        if not tx_code:
            raise OAuthError("invalid_request", "this offer needs the PIN (tx_code) given with it")
        if not hmac.compare_digest(offer.tx_code_hash, _tx_code_hash(code, tx_code)):
            offer.tx_code_failures += 1
            left = TX_CODE_ATTEMPTS - offer.tx_code_failures
            raise OAuthError("invalid_grant", f"wrong PIN (tx_code); {left} attempt{'s' if left != 1 else ''} left"
                             if left > 0 else "wrong PIN (tx_code); this offer can no longer be used")
    access_token = secrets.token_urlsafe(32)
    # Only one request can move the offer from unredeemed to redeemed, however
    # many workers race for it: the row is the lock.
    won = session.execute(
        update(WalletOffer).where(WalletOffer.id == offer.id, WalletOffer.redeemed_at.is_(None))
        .values(redeemed_at=now, access_token_hash=_sha256(access_token), access_expires_at=now + ACCESS_TOKEN_TTL)
        .execution_options(synchronize_session="fetch")).rowcount
    if won != 1:
        raise OAuthError("invalid_grant", "this pre-authorized code was used already (codes are single use)")
    return TokenGrant(offer, access_token, int(ACCESS_TOKEN_TTL.total_seconds()))


def offer_for_access_token(session: Session, access_token: str | None, now: datetime | None = None) -> WalletOffer:
    """The offer an access token was granted for; OAuthError `invalid_token` (401) otherwise."""
    now = now or utcnow()
    if not access_token:
        raise OAuthError("invalid_token", "an access token is needed (Authorization: Bearer …)", 401)
    offer = session.scalar(select(WalletOffer).where(WalletOffer.access_token_hash == _sha256(access_token)))
    if offer is None:
        raise OAuthError("invalid_token", "this access token is not one this issuer gave", 401)
    if offer.access_expires_at is None or offer.access_expires_at <= now:
        raise OAuthError("invalid_token", "this access token has expired; redeem a new offer", 401)
    return offer


# ----- proof of possession -------------------------------------------------------------------

@dataclass(frozen=True)
class HolderKey:
    """The key that signed a valid proof JWT."""

    jwk: dict
    thumbprint: str  # RFC 7638, base64url
    did: str | None = None  # when named by a `kid` DID URL

    @property
    def label(self) -> str:
        return self.did or f"jwk:{self.thumbprint}"


class ProofError(OAuthError):
    pass


def jwk_thumbprint(jwk: dict) -> str:
    """RFC 7638: sha256 of the required members, sorted, without white space."""
    required = {"EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x"), "RSA": ("e", "kty", "n")}
    members = required.get(jwk.get("kty"))
    if members is None or any(not isinstance(jwk.get(m), str) for m in members):
        raise ProofError("invalid_proof", f"the jwk is not a public EC, OKP or RSA key (kty {jwk.get('kty')!r})")
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return _b64u(hashlib.sha256(canonical.encode()).digest())


_DID_KEY_CODECS = {b"\xed\x01": "Ed25519", b"\x80\x24": "P-256", b"\xe7\x01": "secp256k1"}


def _ec_jwk(curve: ec.EllipticCurve, name: str, point: bytes) -> dict:
    numbers = ec.EllipticCurvePublicKey.from_encoded_point(curve, point).public_numbers()
    size = (curve.key_size + 7) // 8
    return {"kty": "EC", "crv": name, "x": _b64u(numbers.x.to_bytes(size, "big")),
            "y": _b64u(numbers.y.to_bytes(size, "big"))}


def resolve_kid(kid: str) -> tuple[dict, str]:
    """The public JWK a `kid` DID URL names, and the DID: did:key (Ed25519,
    P-256, secp256k1) and did:jwk, both resolved from the identifier itself (no
    network). Other DID methods: ProofError."""
    did, _, fragment = kid.partition("#")
    if did.startswith("did:jwk:"):
        try:
            jwk = json.loads(_b64u_decode(did.removeprefix("did:jwk:")))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ProofError("invalid_proof", "the did:jwk in kid does not hold a JSON Web Key") from exc
        if not isinstance(jwk, dict) or (fragment and fragment != "0"):
            raise ProofError("invalid_proof", "a did:jwk kid names its key as #0")
        return jwk, did
    if did.startswith("did:key:z"):
        ident = did.removeprefix("did:key:")
        if fragment and fragment != ident:
            raise ProofError("invalid_proof", "a did:key kid's fragment must repeat the key (did:key:z…#z…)")
        try:
            raw = b58decode(ident[1:])
        except MultibaseError as exc:
            raise ProofError("invalid_proof", f"the did:key in kid is not base58btc: {exc}") from exc
        codec = _DID_KEY_CODECS.get(raw[:2])
        key = raw[2:]
        try:
            if codec == "Ed25519" and len(key) == 32:
                return {"kty": "OKP", "crv": "Ed25519", "x": _b64u(key)}, did
            if codec == "P-256" and len(key) == 33:
                return _ec_jwk(ec.SECP256R1(), "P-256", key), did
            if codec == "secp256k1" and len(key) == 33:
                return _ec_jwk(ec.SECP256K1(), "secp256k1", key), did
        except ValueError as exc:
            raise ProofError("invalid_proof", f"the did:key in kid is not a valid {codec} key") from exc
        raise ProofError("invalid_proof", "the did:key in kid is not an Ed25519, P-256 or secp256k1 key")
    raise ProofError("invalid_proof", f"kid must be a did:key or did:jwk DID URL (found {kid[:60]!r}); "
                                      "other keys can be sent as a jwk header")


def _header_key(header: dict) -> tuple[dict, str | None]:
    named = [name for name in ("jwk", "kid", "x5c") if name in header]
    if len(named) != 1:
        raise ProofError("invalid_proof", "the proof header must name its key by exactly one of jwk and kid "
                                          f"(found {', '.join(named) or 'none'})")
    if named[0] == "x5c":
        raise ProofError("invalid_proof", "x5c certificate keys are not accepted; send the key as jwk or a "
                                          "did:key / did:jwk kid")
    if named[0] == "kid":
        if not isinstance(header["kid"], str):
            raise ProofError("invalid_proof", "kid must be a string")
        return resolve_kid(header["kid"])
    jwk = header["jwk"]
    if not isinstance(jwk, dict):
        raise ProofError("invalid_proof", "the jwk header must be a JSON Web Key object")
    return jwk, None


def check_proof_jwt(token: object, *, audience: str, secret: bytes, now: float | None = None) -> HolderKey:
    """Check a `jwt` key proof as OID4VCI 1.0 section F.1 (and the credential
    endpoint's errors) say: typed `openid4vci-proof+jwt`, an asymmetric `alg`
    we accept, signed by the key its header names (`jwk`, or a did:key /
    did:jwk `kid`), `aud` this Credential Issuer, `iat` recent, and `nonce` a
    c_nonce this issuer made and not expired. ProofError (`invalid_proof`, or
    `invalid_nonce` for a stale or foreign nonce) with a sentence otherwise."""
    now = time.time() if now is None else now
    if not isinstance(token, str) or token.count(".") != 2:
        raise ProofError("invalid_proof", "the proof is not a compact JWT")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise ProofError("invalid_proof", f"the proof's header cannot be read: {exc}") from exc
    if header.get("typ") != PROOF_TYP:
        raise ProofError("invalid_proof", f"the proof's typ must be {PROOF_TYP}, found {header.get('typ')!r}")
    alg = header.get("alg")
    if alg not in PROOF_ALGORITHMS:
        raise ProofError("invalid_proof", f"the proof's alg {alg!r} is not accepted; use one of "
                                          f"{', '.join(PROOF_ALGORITHMS)}")
    jwk, did = _header_key(header)
    if any(member in jwk for member in _PRIVATE_JWK_MEMBERS):
        raise ProofError("invalid_proof", "the jwk holds private key material: send the public key only")
    kty, crv = PROOF_ALGORITHMS[alg]
    if jwk.get("kty") != kty or (crv is not None and jwk.get("crv") != crv):
        raise ProofError("invalid_proof", f"alg {alg} needs a {kty} {crv or ''} key, the header's key is "
                                          f"{jwk.get('kty')} {jwk.get('crv') or ''}".replace("  ", " "))
    thumbprint = jwk_thumbprint(jwk)
    try:
        key = jwt.PyJWK(jwk, algorithm=alg)
        claims = jwt.decode(token, key=key.key, algorithms=[alg],
                            options={"verify_signature": True, "verify_exp": False, "verify_nbf": False,
                                     "verify_iat": False, "verify_aud": False, "verify_iss": False})
    except jwt.InvalidSignatureError as exc:
        raise ProofError("invalid_proof", "the proof's signature does not verify with the key in its header") \
            from exc
    except jwt.PyJWTError as exc:
        raise ProofError("invalid_proof", f"the proof cannot be checked: {exc}") from exc
    aud = claims.get("aud")
    if not (aud == audience or (isinstance(aud, list) and audience in aud)):
        raise ProofError("invalid_proof", f"the proof's aud must be this Credential Issuer, {audience}, "
                                          f"found {aud!r}")
    iat = claims.get("iat")
    if not isinstance(iat, int | float) or isinstance(iat, bool):
        raise ProofError("invalid_proof", "the proof has no iat (the time it was made)")
    if iat > now + CLOCK_SKEW_SECONDS:
        raise ProofError("invalid_proof", f"the proof was made {int(iat - now)} s in the future; check the "
                                          "device's clock")
    if now - iat > PROOF_MAX_AGE_SECONDS:
        raise ProofError("invalid_proof", f"the proof has expired: made {int(now - iat)} s ago, accepted for "
                                          f"{PROOF_MAX_AGE_SECONDS} s")
    exp = claims.get("exp")
    if isinstance(exp, int | float) and exp < now - CLOCK_SKEW_SECONDS:
        raise ProofError("invalid_proof", "the proof has expired (its exp has passed)")
    if "nonce" not in claims:
        raise ProofError("invalid_proof", "the proof has no nonce: get a c_nonce from the nonce endpoint")
    if not nonce_is_valid(secret, claims["nonce"], now):
        raise ProofError("invalid_nonce", "the proof's nonce is not a current c_nonce of this issuer: "
                                          "get a fresh one from the nonce endpoint")
    return HolderKey(jwk={k: v for k, v in jwk.items() if k not in ("use", "key_ops")}, thumbprint=thumbprint,
                     did=did)


def proofs_of(request: dict) -> list:
    """The jwt proofs of a Credential Request: 1.0's `proofs: {"jwt": [...]}`,
    or the earlier drafts' `proof: {"proof_type": "jwt", "jwt": ...}` that
    wallets in the field still send."""
    if "proofs" in request and "proof" in request:
        raise OAuthError("invalid_credential_request", "send proofs or proof, not both")
    if "proofs" in request:
        proofs = request["proofs"]
        if not isinstance(proofs, dict) or set(proofs) != {"jwt"} or not isinstance(proofs["jwt"], list):
            raise ProofError("invalid_proof", 'proofs must be {"jwt": [<one proof JWT>]}: only the jwt proof '
                                              "type is accepted")
        return proofs["jwt"]
    proof = request.get("proof")
    if isinstance(proof, dict):
        if proof.get("proof_type") != "jwt":
            raise ProofError("invalid_proof", "only the jwt proof type is accepted")
        return [proof.get("jwt")]
    raise ProofError("invalid_proof", "the Credential Request has no proofs")


def check_credential_request(request: object) -> None:
    """The request asks for what an offer of ours grants: our one credential
    configuration (by id, as in 1.0, or by format and type, as earlier drafts
    ask). OAuthError otherwise."""
    if not isinstance(request, dict):
        raise OAuthError("invalid_credential_request", "the Credential Request must be a JSON object")
    if "credential_identifier" in request:
        raise OAuthError("unknown_credential_identifier", "this issuer gives no credential_identifiers; "
                                                          f"ask for credential_configuration_id {CONFIGURATION_ID}")
    wanted = request.get("credential_configuration_id")
    if wanted is not None and wanted != CONFIGURATION_ID:
        raise OAuthError("unknown_credential_configuration", f"unknown credential configuration {wanted!r}; "
                                                             f"this issuer offers {CONFIGURATION_ID}")
    if wanted is None and "format" in request:
        types = (request.get("credential_definition") or {}).get("type") or CREDENTIAL_TYPES
        if request["format"] != FORMAT or not set(types) <= set(CREDENTIAL_TYPES):
            raise OAuthError("unknown_credential_configuration", f"this issuer offers {FORMAT} "
                                                                 f"{'/'.join(CREDENTIAL_TYPES)} only")


def record_collection(offer: WalletOffer, holder: HolderKey, now: datetime | None = None) -> None:
    """The wallet fetched the credential with this key (the first time counts)."""
    if offer.collected_at is None:
        offer.collected_at = now or utcnow()
        offer.holder_key = holder.label


# ----- metadata ------------------------------------------------------------------------

def issuer_metadata(credential_issuer: str, institution_name: str, logo_url: str | None = None) -> dict:
    """The Credential Issuer Metadata (OID4VCI 1.0 section 12.2) for `ldp_vc`
    Open Badges credentials. `display` is given both where 1.0 puts it
    (`credential_metadata`) and where earlier drafts did (the configuration
    itself): wallets ignore members they do not know."""
    display = {"name": "Academic credential", "locale": "en",
               "description": f"A degree, diploma or certificate issued by {institution_name}"}
    issuer_display: dict = {"name": institution_name, "locale": "en"}
    if logo_url:
        issuer_display["logo"] = {"uri": logo_url, "alt_text": f"Logo of {institution_name}"}
    return {
        "credential_issuer": credential_issuer,
        "credential_endpoint": f"{credential_issuer}/oid4vci/credential",
        "nonce_endpoint": f"{credential_issuer}/oid4vci/nonce",
        "display": [issuer_display],
        "credential_configurations_supported": {
            CONFIGURATION_ID: {
                "format": FORMAT,
                "scope": "OpenBadgeCredential",
                "credential_definition": {"@context": [VC_CONTEXT, OB_CONTEXT], "type": CREDENTIAL_TYPES},
                "cryptographic_binding_methods_supported": BINDING_METHODS,
                "proof_types_supported": {"jwt": {"proof_signing_alg_values_supported": list(PROOF_ALGORITHMS)}},
                "credential_metadata": {"display": [display]},
                "display": [display],
            },
        },
    }


def authorization_server_metadata(credential_issuer: str) -> dict:
    """RFC 8414 metadata of the issuer's own authorization server: the token
    endpoint, the pre-authorized grant, anonymous token requests."""
    return {
        "issuer": credential_issuer,
        "token_endpoint": f"{credential_issuer}/oid4vci/token",
        "grant_types_supported": [PRE_AUTHORIZED_GRANT],
        "token_endpoint_auth_methods_supported": ["none"],
        "pre-authorized_grant_anonymous_access_supported": True,
    }
