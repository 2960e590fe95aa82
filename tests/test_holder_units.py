"""The pure parts of the holder's side: the LinkedIn link, offer encoding,
nonces, proof-JWT checks (signed by a jwcrypto holder, checked with PyJWT),
and the single-use, PIN-guarded pre-authorized code on a real database."""

from __future__ import annotations

import json
import time
from datetime import date, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from jwcrypto import jwk, jwt

from credentials import oid4vci, sharing
from credentials.oid4vci import OAuthError, ProofError
from kernel.database import utcnow
from tests.wallet_client import did_key, new_key, sign_proof

ISSUER = "https://uni.example.edu"
SECRET = b"a test secret key"


# ----- LinkedIn -------------------------------------------------------------------------

def _cert(**kwargs) -> sharing.LinkedInCertification:
    values = {"name": "BSc Computer Science & Maths", "organization_name": "Université d'Exemple",
              "issued": date(2026, 6, 30), "cert_url": "https://uni.example.edu/s/abc_DEF-123",
              "cert_id": "urn:uuid:1234"}
    values.update(kwargs)
    return sharing.LinkedInCertification(**values)


def test_linkedin_url_carries_every_certification_field():
    url = sharing.linkedin_add_url(_cert(expires=date(2031, 1, 15)))
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://www.linkedin.com/profile/add"
    params = parse_qs(parts.query)
    assert params == {"startTask": ["CERTIFICATION_NAME"], "name": ["BSc Computer Science & Maths"],
                      "organizationName": ["Université d'Exemple"], "issueYear": ["2026"], "issueMonth": ["6"],
                      "expirationYear": ["2031"], "expirationMonth": ["1"],
                      "certUrl": ["https://uni.example.edu/s/abc_DEF-123"], "certId": ["urn:uuid:1234"]}
    # The ampersand in the name is encoded, so it cannot start a parameter of its own.
    assert "name=BSc%20Computer%20Science%20%26%20Maths&organizationName=" in url


def test_linkedin_url_without_expiry_and_with_an_organization_id():
    params = parse_qs(urlsplit(sharing.linkedin_add_url(_cert(organization_id="1337"))).query)
    assert "expirationYear" not in params and "expirationMonth" not in params
    assert params["organizationId"] == ["1337"] and "organizationName" not in params


# ----- offers -----------------------------------------------------------------------------

def test_offer_by_value_round_trips_and_asks_for_a_pin_only_when_set():
    plain = oid4vci.offer_object(ISSUER, "code-1", tx_code_required=False)
    link = oid4vci.offer_by_value(plain)
    assert link.startswith("openid-credential-offer://?credential_offer=%7B")
    assert oid4vci.parse_offer(link) == plain
    assert plain["credential_configuration_ids"] == [oid4vci.CONFIGURATION_ID]
    grant = plain["grants"][oid4vci.PRE_AUTHORIZED_GRANT]
    assert grant == {"pre-authorized_code": "code-1"}
    with_pin = oid4vci.offer_object(ISSUER, "code-2", tx_code_required=True)
    assert with_pin["grants"][oid4vci.PRE_AUTHORIZED_GRANT]["tx_code"] == {
        "input_mode": "numeric", "length": 6, "description": "The PIN the registrar gave you with this QR code."}


def test_offer_by_reference_and_malformed_links():
    uri = "https://uni.example.edu/oid4vci/offers/tok?x=1&y=2"
    link = oid4vci.offer_by_reference(uri)
    assert "?" not in link.split("credential_offer_uri=", 1)[1]  # fully encoded, one parameter
    assert oid4vci.parse_offer(link) == uri
    both = link + "&credential_offer=%7B%7D"
    with pytest.raises(ValueError, match="exactly one"):
        oid4vci.parse_offer(both)
    with pytest.raises(ValueError, match="exactly one"):
        oid4vci.parse_offer("openid-credential-offer://?")


def test_nonces_are_checked_for_key_age_and_tampering():
    now = 1_800_000_000.0
    nonce = oid4vci.make_nonce(SECRET, now)
    assert oid4vci.nonce_is_valid(SECRET, nonce, now + 10)
    assert not oid4vci.nonce_is_valid(SECRET, nonce, now + oid4vci.NONCE_TTL_SECONDS + 1)
    assert not oid4vci.nonce_is_valid(b"another key", nonce, now)
    stamp, rand, mac = nonce.split(".")
    assert not oid4vci.nonce_is_valid(SECRET, f"{int(stamp) + 100}.{rand}.{mac}", now + 100)
    assert not oid4vci.nonce_is_valid(SECRET, "not-a-nonce", now)
    assert not oid4vci.nonce_is_valid(SECRET, 12345, now)


def test_jwk_thumbprint_matches_rfc7638_example():
    key = {"kty": "RSA", "e": "AQAB", "alg": "RS256", "kid": "2011-04-29", "n":
           "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4"
           "n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0"
           "zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-c"
           "sFCur-kEgU8awapJzKnqDKgw"}
    assert oid4vci.jwk_thumbprint(key) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


# ----- proof JWTs ---------------------------------------------------------------------------

@pytest.fixture
def holder():
    return new_key("EC")


def _check(token: str, now: float | None = None) -> oid4vci.HolderKey:
    return oid4vci.check_proof_jwt(token, audience=ISSUER, secret=SECRET, now=now)


def test_a_good_proof_with_a_jwk_header(holder):
    token = sign_proof(holder, audience=ISSUER, nonce=oid4vci.make_nonce(SECRET))
    key = _check(token)
    assert key.thumbprint == holder.thumbprint()  # jwcrypto's own RFC 7638 thumbprint agrees
    assert key.label == f"jwk:{holder.thumbprint()}" and key.did is None


def test_a_good_proof_naming_a_did_key_and_a_did_jwk():
    ed = new_key("Ed25519")
    did = did_key(ed)
    key = _check(sign_proof(ed, audience=ISSUER, nonce=oid4vci.make_nonce(SECRET),
                            kid=f"{did}#{did.removeprefix('did:key:')}"))
    assert key.did == did and key.jwk["crv"] == "Ed25519" and key.thumbprint == ed.thumbprint()
    ec = new_key("EC")
    import base64

    did_jwk = "did:jwk:" + base64.urlsafe_b64encode(ec.export_public().encode()).rstrip(b"=").decode()
    assert _check(sign_proof(ec, audience=ISSUER, nonce=oid4vci.make_nonce(SECRET), kid=f"{did_jwk}#0")).did == did_jwk


def test_wrong_nonce_is_invalid_nonce(holder):
    for nonce in (oid4vci.make_nonce(b"someone else's key"), "made-up", oid4vci.make_nonce(SECRET, time.time() - 900)):
        with pytest.raises(ProofError) as caught:
            _check(sign_proof(holder, audience=ISSUER, nonce=nonce))
        assert caught.value.error == "invalid_nonce"
    with pytest.raises(ProofError, match="no nonce") as caught:
        _check(sign_proof(holder, audience=ISSUER, nonce=None))
    assert caught.value.error == "invalid_proof"


def test_wrong_audience(holder):
    with pytest.raises(ProofError, match="aud must be this Credential Issuer") as caught:
        _check(sign_proof(holder, audience="https://evil.example", nonce=oid4vci.make_nonce(SECRET)))
    assert caught.value.error == "invalid_proof"


def test_expired_and_future_proofs(holder):
    now = time.time()
    nonce = oid4vci.make_nonce(SECRET, now)
    with pytest.raises(ProofError, match="expired"):
        _check(sign_proof(holder, audience=ISSUER, nonce=nonce, iat=now - 301), now=now)
    with pytest.raises(ProofError, match="in the future"):
        _check(sign_proof(holder, audience=ISSUER, nonce=nonce, iat=now + 600), now=now)
    # Within the allowed clock skew: fine.
    _check(sign_proof(holder, audience=ISSUER, nonce=nonce, iat=now + 30), now=now)


def test_wrong_type_and_key_headers(holder):
    nonce = oid4vci.make_nonce(SECRET)
    with pytest.raises(ProofError, match="typ must be openid4vci-proof"):
        _check(sign_proof(holder, audience=ISSUER, nonce=nonce, typ="JWT"))
    with pytest.raises(ProofError, match="exactly one of jwk and kid"):
        _check(sign_proof(holder, audience=ISSUER, nonce=nonce, extra_header={"kid": did_key(new_key("Ed25519"))}))
    with pytest.raises(ProofError, match="kid must be a did:key or did:jwk"):
        _check(sign_proof(holder, audience=ISSUER, nonce=nonce, kid="did:web:wallet.example#key-1"))
    with pytest.raises(ProofError, match="private key material"):
        _check(sign_proof(holder, audience=ISSUER, nonce=nonce,
                          extra_header={"jwk": json.loads(holder.export_private())}))


def test_a_proof_signed_by_another_key_than_its_header_names(holder):
    other = new_key("EC")
    token = sign_proof(other, audience=ISSUER, nonce=oid4vci.make_nonce(SECRET),
                       extra_header={"jwk": json.loads(holder.export_public())})
    with pytest.raises(ProofError, match="signature does not verify"):
        _check(token)


def test_algorithms_none_hmac_and_mismatched_keys_are_refused(holder):
    nonce = oid4vci.make_nonce(SECRET)
    claims = {"aud": ISSUER, "iat": int(time.time()), "nonce": nonce}
    secret_key = jwk.JWK.generate(kty="oct", size=256)
    hs = jwt.JWT(header={"typ": oid4vci.PROOF_TYP, "alg": "HS256", "jwk": json.loads(secret_key.export())},
                 claims=claims)
    hs.make_signed_token(secret_key)
    with pytest.raises(ProofError, match="alg 'HS256' is not accepted"):
        _check(hs.serialize())
    header = json.dumps({"typ": oid4vci.PROOF_TYP, "alg": "none", "jwk": json.loads(holder.export_public())})
    import base64

    def b64(text: str) -> str:
        return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()

    with pytest.raises(ProofError, match="alg 'none' is not accepted"):
        _check(f"{b64(header)}.{b64(json.dumps(claims))}.")
    # An EC key under EdDSA: the key type must be the algorithm's own.
    with pytest.raises(ProofError, match="alg EdDSA needs a OKP Ed25519 key"):
        _check(sign_proof(new_key("Ed25519"), audience=ISSUER, nonce=nonce,
                          extra_header={"jwk": json.loads(holder.export_public())}))
    with pytest.raises(ProofError, match="not a compact JWT"):
        _check("abc")


def test_credential_request_shapes():
    good = {"credential_configuration_id": oid4vci.CONFIGURATION_ID, "proofs": {"jwt": ["a.b.c"]}}
    oid4vci.check_credential_request(good)
    assert oid4vci.proofs_of(good) == ["a.b.c"]
    draft = {"format": "ldp_vc", "credential_definition": {"type": ["VerifiableCredential", "OpenBadgeCredential"]},
             "proof": {"proof_type": "jwt", "jwt": "d.e.f"}}
    oid4vci.check_credential_request(draft)
    assert oid4vci.proofs_of(draft) == ["d.e.f"]
    with pytest.raises(OAuthError) as caught:
        oid4vci.check_credential_request({"credential_configuration_id": "mDL"})
    assert caught.value.error == "unknown_credential_configuration"
    with pytest.raises(ProofError) as caught:
        oid4vci.proofs_of({"proofs": {"di_vp": [{}]}})
    assert caught.value.error == "invalid_proof"
    with pytest.raises(ProofError, match="has no proofs"):
        oid4vci.proofs_of({"credential_configuration_id": oid4vci.CONFIGURATION_ID})


def test_metadata_names_the_issuer_format_context_and_proof_algorithms():
    meta = oid4vci.issuer_metadata(ISSUER, "University of Testing")
    assert meta["credential_issuer"] == ISSUER
    assert meta["credential_endpoint"] == f"{ISSUER}/oid4vci/credential"
    assert meta["nonce_endpoint"] == f"{ISSUER}/oid4vci/nonce"
    config = meta["credential_configurations_supported"][oid4vci.CONFIGURATION_ID]
    assert config["format"] == "ldp_vc"
    assert config["credential_definition"]["type"] == ["VerifiableCredential", "OpenBadgeCredential"]
    assert config["credential_definition"]["@context"][0] == "https://www.w3.org/ns/credentials/v2"
    algs = config["proof_types_supported"]["jwt"]["proof_signing_alg_values_supported"]
    assert "ES256" in algs and "EdDSA" in algs and "none" not in algs and not any(a.startswith("HS") for a in algs)
    server = oid4vci.authorization_server_metadata(ISSUER)
    assert server["token_endpoint"] == f"{ISSUER}/oid4vci/token"
    assert server["grant_types_supported"] == [oid4vci.PRE_AUTHORIZED_GRANT]


# ----- the pre-authorized code, on a real database ---------------------------------------------

@pytest.fixture
def credential_id(session):
    """A stored credential row for offers to point at (no chain needed here)."""
    from credentials.storage import Batch, CredentialRecord

    session.add(Batch(id="b1", created_by="test", state="anchored", count=1))
    session.add(CredentialRecord(id="urn:uuid:c1", batch_id="b1", recipient_name="Ada", recipient_email="a@x",
                                 achievement_name="BSc", achievement_type="BachelorDegree",
                                 awarded_on=date(2026, 6, 30), fingerprint="0x" + "1" * 64, signed_document="{}",
                                 stored_status="pending"))
    session.commit()
    return "urn:uuid:c1"


def test_a_code_is_single_use_and_stored_only_hashed(session, credential_id):
    made = oid4vci.new_offer(session, credential_id, "registrar@x", SECRET)
    session.commit()
    row = session.get(oid4vci.WalletOffer, made.offer.id)
    stored = json.dumps({c.name: str(getattr(row, c.key)) for c in oid4vci.WalletOffer.__table__.columns})
    assert made.code not in stored and made.uri_token not in stored
    assert oid4vci.offer_for_uri_token(session, made.uri_token, SECRET)[1] == made.code
    grant = oid4vci.redeem_code(session, made.code, None)
    session.commit()
    assert grant.access_token not in json.dumps({c.name: str(getattr(row, c.key))
                                                 for c in oid4vci.WalletOffer.__table__.columns})
    assert oid4vci.offer_for_access_token(session, grant.access_token).id == made.offer.id
    with pytest.raises(OAuthError, match="used already") as caught:
        oid4vci.redeem_code(session, made.code, None)
    assert caught.value.error == "invalid_grant"
    # The by-reference offer is gone once redeemed: the QR cannot be replayed.
    assert oid4vci.offer_for_uri_token(session, made.uri_token, SECRET) is None


def test_expired_codes_and_tokens(session, credential_id):
    made = oid4vci.new_offer(session, credential_id, "registrar@x", SECRET,
                             now=utcnow() - oid4vci.OFFER_TTL - timedelta(seconds=1))
    session.commit()
    with pytest.raises(OAuthError, match="expired") as caught:
        oid4vci.redeem_code(session, made.code, None)
    assert caught.value.error == "invalid_grant"
    with pytest.raises(OAuthError, match="not one this issuer made"):
        oid4vci.redeem_code(session, "guessed", None)
    fresh = oid4vci.new_offer(session, credential_id, "registrar@x", SECRET)
    grant = oid4vci.redeem_code(session, fresh.code, None)
    session.commit()
    with pytest.raises(OAuthError, match="expired") as caught:
        oid4vci.offer_for_access_token(session, grant.access_token, now=utcnow() + oid4vci.ACCESS_TOKEN_TTL)
    assert caught.value.status == 401 and caught.value.error == "invalid_token"


def test_the_pin_is_required_checked_and_limited(session, credential_id):
    made = oid4vci.new_offer(session, credential_id, "registrar@x", SECRET, with_tx_code=True)
    session.commit()
    assert made.tx_code and len(made.tx_code) == 6 and made.tx_code.isdigit()
    with pytest.raises(OAuthError, match="needs the PIN") as caught:
        oid4vci.redeem_code(session, made.code, None)
    assert caught.value.error == "invalid_request"
    wrong = "000000" if made.tx_code != "000000" else "111111"
    for _attempt in range(oid4vci.TX_CODE_ATTEMPTS):
        with pytest.raises(OAuthError, match="wrong PIN") as caught:
            oid4vci.redeem_code(session, made.code, wrong)
        session.commit()
        assert caught.value.error == "invalid_grant"
    # Five wrong PINs spend the offer: even the right one no longer works.
    with pytest.raises(OAuthError, match="too many wrong PINs"):
        oid4vci.redeem_code(session, made.code, made.tx_code)
    other = oid4vci.new_offer(session, credential_id, "registrar@x", SECRET, with_tx_code=True)
    assert oid4vci.redeem_code(session, other.code, other.tx_code).access_token
    plain = oid4vci.new_offer(session, credential_id, "registrar@x", SECRET)
    with pytest.raises(OAuthError, match="needs no tx_code") as caught:
        oid4vci.redeem_code(session, plain.code, "123456")
    assert caught.value.error == "invalid_request"


def test_holder_tokens_are_hashed_and_replaced(session, credential_id):
    share, token = sharing.make_holder_link(session, credential_id, "registrar@x")
    session.commit()
    assert share.holder_token_hash != token and token not in share.holder_token_hash
    assert sharing.share_for_token(session, token).credential_id == credential_id
    assert sharing.share_for_token(session, token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    slug = share.slug
    _same, newer = sharing.make_holder_link(session, credential_id, "registrar@x")
    session.commit()
    assert sharing.share_for_token(session, token) is None  # the old link stops working
    assert sharing.share_for_token(session, newer).slug == slug  # the share page keeps its address
    assert slug not in credential_id and len(slug) >= 20
