"""The holder's side end to end, on a real Anvil chain: the registrar makes
the holder's link and a wallet offer; a wallet-style client (jwcrypto key,
real HTTP to a live server) redeems the offer and the credential it receives
verifies; the holder turns the share page off and on."""

from __future__ import annotations

import base64
import html as htmllib
import json
import re
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from sqlalchemy import select

from credentials import certificate, oid4vci, storage
from credentials.issuance import revoke_credential
from credentials.runtime import current_institution, get_chain_reader, get_registry, get_trust_policy
from credentials.verification import verify_credential
from kernel.audit import AuditEntry
from kernel.web.extensions import limiter
from tests.fixtures_browser import LiveServer
from tests.helpers_credentials import issue_stored, revocation_view_caught_up
from tests.test_registrar_web import EMAIL, PASSWORD, post_form, token_of
from tests.wallet_client import WalletClient, new_key, sign_proof


def _value(html: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}" value="([^"]+)"', html)
    assert match, f"no #{element_id} in the page"
    return htmllib.unescape(match.group(1))


def _audit(app, action: str) -> list[AuditEntry]:
    with app.extensions["attest.db"].session() as session:
        return list(session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


@pytest.fixture
def registrar(app, runner):
    """A registrar logged in, CSRF on (as in production)."""
    app.config["WTF_CSRF_ENABLED"] = True
    result = runner.invoke(args=["users", "create", "--email", EMAIL, "--password", PASSWORD, "--role", "registrar"])
    assert result.exit_code == 0, result.output
    client = app.test_client()
    assert post_form(client, "/login", {"email": EMAIL, "password": PASSWORD}).status_code == 302
    return client


@pytest.fixture
def live(app):
    limiter.reset()
    server = LiveServer(app)
    yield server
    server.stop()


@pytest.fixture
def issued(app, live):
    """One credential, issued after the live server set the public address (so
    its did:web is that server's, as in production)."""
    return issue_stored(app, 1)[0]


def make_offer(client, credential: dict, tx_code: bool = False) -> tuple[str, str | None]:
    """The registrar's "Wallet QR code" button: the offer link and the PIN."""
    uuid = credential["id"].removeprefix("urn:uuid:")
    page = client.get(f"/registrar/credentials/{uuid}")
    html = page.get_data(as_text=True)
    assert 'id="make-wallet-offer"' in html
    data = {"csrf_token": token_of(html)}
    if tx_code:
        data["tx_code"] = "y"
    response = client.post(f"/registrar/credentials/{uuid}/wallet-offer", data=data)
    assert response.status_code == 200, response.status_code
    assert response.headers["Cache-Control"] == "no-store"
    offer_html = response.get_data(as_text=True)
    link = _value(offer_html, "offer-uri")
    # The QR image encodes exactly that link (the same generator, the same bytes).
    qr = re.search(r'id="offer-qr" src="data:image/png;base64,([^"]+)"', offer_html).group(1)
    assert base64.b64decode(qr) == certificate.qr_png(link, box_size=6)
    pin = re.search(r'id="offer-pin">(\d+)<', offer_html)
    return link, pin.group(1) if pin else None


# ----- the "done when": a wallet redeems an offer and the credential verifies ----------------------

def test_a_wallet_redeems_the_offer_and_the_credential_verifies(app, live, issued, registrar):
    link, pin = make_offer(registrar, issued)
    assert pin is None
    assert link.startswith("openid-credential-offer://?credential_offer_uri=" + requests.utils.quote(live.url, safe=""))
    wallet = WalletClient()
    received = wallet.collect(link)
    assert received == issued  # exactly as issued: nothing re-encoded
    result = verify_credential(received, get_chain_reader(app), get_trust_policy(app))
    assert result.verdict == "genuine", result.as_dict()
    assert result.issuer["domain"] == "127.0.0.1"
    # What the wallet saw, in order: offer, issuer metadata, AS metadata, token, credential.
    assert [line.split(" ")[1].removeprefix(live.url).split("?")[0] for line in wallet.log] == [
        urlsplit(parse_qs(urlsplit(link).query)["credential_offer_uri"][0]).path,
        "/.well-known/openid-credential-issuer", "/.well-known/oauth-authorization-server",
        "/oid4vci/token", "/oid4vci/nonce", "/oid4vci/credential"]
    [collected] = _audit(app, "credential_collected")
    assert collected.subject == issued["id"] and collected.actor == "wallet"
    assert collected.detail_dict["holder_key"] == f"jwk:{wallet.key.thumbprint()}"
    assert len(_audit(app, "wallet_offer_made")) == 1 and len(_audit(app, "wallet_offer_redeemed")) == 1

    # The QR cannot be replayed: the offer is gone, and its code is spent.
    offer_uri = parse_qs(urlsplit(link).query)["credential_offer_uri"][0]
    again = requests.get(offer_uri, timeout=30)
    assert again.status_code == 404 and again.json()["error"] == "invalid_request"
    with app.extensions["attest.db"].session() as session:
        offer = session.scalars(select(oid4vci.WalletOffer)).one()
        assert offer.state() == "collected"
        code = oid4vci.code_for(app.config["SECRET_KEY"].encode(), _uri_token(link))
    replay = requests.post(f"{live.url}/oid4vci/token", timeout=30,
                           data={"grant_type": oid4vci.PRE_AUTHORIZED_GRANT, "pre-authorized_code": code})
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert "used already" in replay.json()["error_description"]


def _uri_token(link: str) -> str:
    return parse_qs(urlsplit(link).query)["credential_offer_uri"][0].rsplit("/", 1)[1]


def test_an_offer_with_a_pin_and_a_did_key_wallet(app, live, issued, registrar):
    link, pin = make_offer(registrar, issued, tx_code=True)
    assert pin and len(pin) == 6
    offer = requests.get(parse_qs(urlsplit(link).query)["credential_offer_uri"][0], timeout=30).json()
    assert offer["grants"][oid4vci.PRE_AUTHORIZED_GRANT]["tx_code"]["length"] == 6
    code = offer["grants"][oid4vci.PRE_AUTHORIZED_GRANT]["pre-authorized_code"]
    wrong = requests.post(f"{live.url}/oid4vci/token", timeout=30, data={
        "grant_type": oid4vci.PRE_AUTHORIZED_GRANT, "pre-authorized_code": code,
        "tx_code": "000000" if pin != "000000" else "111111"})
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    assert "4 attempts left" in wrong.json()["error_description"]
    wallet = WalletClient(key=new_key("Ed25519"), use_kid=True)
    received = wallet.collect(link, tx_code=pin)
    assert verify_credential(received, get_chain_reader(app), get_trust_policy(app)).verdict == "genuine"
    [collected] = _audit(app, "credential_collected")
    assert collected.detail_dict["holder_key"].startswith("did:key:z6Mk")


def _redeemed(app, live, issued, registrar) -> tuple[str, dict]:
    """An access token for the issued credential, and the issuer metadata."""
    link, _pin = make_offer(registrar, issued)
    wallet = WalletClient()
    offer = wallet.read_offer(link)
    token = wallet.redeem(f"{live.url}/oid4vci/token", {
        "grant_type": oid4vci.PRE_AUTHORIZED_GRANT,
        "pre-authorized_code": offer["grants"][oid4vci.PRE_AUTHORIZED_GRANT]["pre-authorized_code"]})
    assert token["c_nonce"] and token["expires_in"] == 600  # draft-13 wallets read the nonce here
    return token["access_token"], requests.get(f"{live.url}/.well-known/openid-credential-issuer", timeout=30).json()


def test_the_credential_endpoint_refuses_bad_requests(app, live, issued, registrar):
    access_token, metadata = _redeemed(app, live, issued, registrar)
    endpoint = metadata["credential_endpoint"]
    key = new_key()
    nonce = requests.post(metadata["nonce_endpoint"], timeout=30).json()["c_nonce"]
    body = {"credential_configuration_id": oid4vci.CONFIGURATION_ID,
            "proofs": {"jwt": [sign_proof(key, audience=live.url, nonce=nonce)]}}

    no_token = requests.post(endpoint, json=body, timeout=30)
    assert no_token.status_code == 401 and no_token.json()["error"] == "invalid_token"
    assert no_token.headers["WWW-Authenticate"] == (
        'Bearer error="invalid_token", error_description="an access token is needed (Authorization: Bearer ...)"')
    forged = requests.post(endpoint, json=body, headers={"Authorization": "Bearer forged"}, timeout=30)
    assert forged.status_code == 401

    def ask(payload: dict) -> requests.Response:
        return requests.post(endpoint, json=payload, headers={"Authorization": f"Bearer {access_token}"},
                             timeout=30)

    stale = ask({**body, "proofs": {"jwt": [sign_proof(key, audience=live.url, nonce="made-up")]}})
    assert stale.status_code == 400 and stale.json()["error"] == "invalid_nonce"
    assert oid4vci.nonce_is_valid(app.config["SECRET_KEY"].encode(), stale.json()["c_nonce"])
    wrong_aud = ask({**body, "proofs": {"jwt": [sign_proof(key, audience="https://other.example", nonce=nonce)]}})
    assert wrong_aud.status_code == 400 and wrong_aud.json()["error"] == "invalid_proof"
    old = ask({**body, "proofs": {"jwt": [sign_proof(key, audience=live.url, nonce=nonce, iat=time.time() - 900)]}})
    assert old.json()["error"] == "invalid_proof" and "expired" in old.json()["error_description"]
    assert ask({**body, "credential_configuration_id": "mDL"}).json()["error"] == "unknown_credential_configuration"
    assert ask({"credential_configuration_id": oid4vci.CONFIGURATION_ID}).json()["error"] == "invalid_proof"
    two = ask({**body, "proofs": {"jwt": body["proofs"]["jwt"] * 2}})
    assert two.json()["error"] == "invalid_credential_request"
    # Nothing was collected by any of these.
    assert _audit(app, "credential_collected") == []
    # The earlier drafts' request shape works too.
    draft = ask({"format": "ldp_vc", "proof": {"proof_type": "jwt", "jwt": body["proofs"]["jwt"][0]}})
    assert draft.status_code == 200 and draft.json()["credential"] == issued
    assert draft.json()["credentials"] == [{"credential": issued}]


def test_a_revoked_credential_is_not_handed_out(app, live, issued, registrar):
    access_token, metadata = _redeemed(app, live, issued, registrar)
    with app.extensions["attest.db"].session() as session:
        revoke_credential(session, get_registry(app), issued["id"], "issued in error", EMAIL)
    nonce = requests.post(metadata["nonce_endpoint"], timeout=30).json()["c_nonce"]
    response = requests.post(metadata["credential_endpoint"], timeout=30,
                             headers={"Authorization": f"Bearer {access_token}"},
                             json={"credential_configuration_id": oid4vci.CONFIGURATION_ID,
                                   "proofs": {"jwt": [sign_proof(new_key(), audience=live.url, nonce=nonce)]}})
    assert response.status_code == 400 and response.json()["error"] == "credential_request_denied"
    # And no new offer can be made for it.
    uuid = issued["id"].removeprefix("urn:uuid:")
    html = registrar.get(f"/registrar/credentials/{uuid}").get_data(as_text=True)
    assert 'id="make-wallet-offer"' not in html
    refused = registrar.post(f"/registrar/credentials/{uuid}/wallet-offer", data={"csrf_token": token_of(html)})
    assert refused.status_code == 409


def test_metadata_is_served_under_the_public_address(app, live, issued):
    meta = requests.get(f"{live.url}/.well-known/openid-credential-issuer", timeout=30)
    assert meta.status_code == 200 and meta.headers["Access-Control-Allow-Origin"] == "*"
    body = meta.json()
    assert body["credential_issuer"] == live.url
    config = body["credential_configurations_supported"][oid4vci.CONFIGURATION_ID]
    # The credential the wallet will get has exactly the advertised contexts and types.
    assert config["credential_definition"]["type"] == issued["type"]
    assert config["credential_definition"]["@context"] == issued["@context"][:2]
    assert body["display"][0]["name"] == current_institution(app).name
    server = requests.get(f"{live.url}/.well-known/oauth-authorization-server", timeout=30).json()
    assert server["pre-authorized_grant_anonymous_access_supported"] is True
    bad = requests.post(f"{live.url}/oid4vci/token", data={"grant_type": "password"}, timeout=30)
    assert bad.status_code == 400 and bad.json()["error"] == "unsupported_grant_type"


# ----- the holder's link and the share page -----------------------------------------------------

def make_holder_link(client, credential: dict) -> tuple[str, str]:
    """The registrar's button; returns the holder's path and the share path."""
    uuid = credential["id"].removeprefix("urn:uuid:")
    html = client.get(f"/registrar/credentials/{uuid}").get_data(as_text=True)
    response = client.post(f"/registrar/credentials/{uuid}/holder-link", data={"csrf_token": token_of(html)})
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    return urlsplit(_value(page, "holder-url")).path, urlsplit(_value(page, "share-url")).path


@pytest.fixture
def stored(app):
    limiter.reset()
    return issue_stored(app, 1)[0]


def test_sharing_off_and_on_and_the_share_page(app, stored, registrar):
    holder_path, share_path = make_holder_link(registrar, stored)
    assert holder_path.startswith("/h/") and share_path.startswith("/s/")
    assert stored["id"].removeprefix("urn:uuid:") not in share_path  # the slug is not the credential id
    with app.extensions["attest.db"].session() as session:
        [row] = session.execute(select(storage.CredentialRecord.id)).all()
        from credentials.sharing import CredentialShare, token_hash

        share = session.get(CredentialShare, row.id)
        assert share.holder_token_hash == token_hash(holder_path.removeprefix("/h/"))

    visitor = app.test_client()  # anyone: no login
    page = visitor.get(share_path)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'data-verdict="genuine"' in html and "✓ Genuine" in html and "Ada Lovelace" in html
    assert page.headers["X-Robots-Tag"] == "noindex"
    assert json.loads(visitor.get(f"{share_path}/credential.json").get_data()) == stored
    assert visitor.get(f"{share_path}/qr.png").get_data() == certificate.qr_png(f"http://127.0.0.1:5000{share_path}")

    holder = app.test_client()
    own = holder.get(holder_path)
    assert own.status_code == 200
    assert own.headers["Cache-Control"] == "no-store" and own.headers["Referrer-Policy"] == "no-referrer"
    own_html = own.get_data(as_text=True)
    assert 'id="sharing-state">on<' in own_html
    linkedin = htmllib.unescape(re.search(r'id="linkedin-link" href="([^"]+)"', own_html).group(1))
    params = parse_qs(urlsplit(linkedin).query)
    assert params["certUrl"] == [f"http://127.0.0.1:5000{share_path}"] and params["certId"] == [stored["id"]]
    assert params["name"] == ["BSc Computer Science"] and params["startTask"] == ["CERTIFICATION_NAME"]

    # Without the page's CSRF token the toggle is refused.
    assert holder.post(f"{holder_path}/sharing", data={"sharing": "off"}).status_code == 400
    off = holder.post(f"{holder_path}/sharing", data={"sharing": "off", "csrf_token": token_of(own_html)})
    assert off.status_code == 303 and off.headers["Location"].endswith(holder_path)
    gone = visitor.get(share_path)
    assert gone.status_code == 404
    assert "turned its share page off" in gone.get_data(as_text=True)
    assert visitor.get(f"{share_path}/credential.json").status_code == 404
    assert 'id="sharing-state">off<' in holder.get(holder_path).get_data(as_text=True)
    # The holder still has their own copy.
    assert json.loads(holder.get(f"{holder_path}/credential.json").get_data()) == stored
    uuid = stored["id"].removeprefix("urn:uuid:")
    assert "off (turned off by the holder)" in registrar.get(f"/registrar/credentials/{uuid}").get_data(as_text=True)

    on = holder.post(f"{holder_path}/sharing", data={"sharing": "on",
                                                     "csrf_token": token_of(holder.get(holder_path).get_data(as_text=True))})
    assert on.status_code == 303
    assert visitor.get(share_path).status_code == 200
    assert [e.action for e in _audit(app, "sharing_off") + _audit(app, "sharing_on")] == ["sharing_off", "sharing_on"]
    assert _audit(app, "sharing_off")[0].actor == "holder"
    assert _audit(app, "holder_link_made")[0].actor == EMAIL


def test_wrong_and_replaced_holder_links_are_404(app, stored, registrar):
    holder_path, share_path = make_holder_link(registrar, stored)
    anyone = app.test_client()
    wrong = anyone.get("/h/" + "A" * 43)
    assert wrong.status_code == 404 and "wrong or has been replaced" in wrong.get_data(as_text=True)
    csrf = token_of(anyone.get("/verify").get_data(as_text=True))
    assert anyone.post("/h/" + "A" * 43 + "/sharing", data={"sharing": "off", "csrf_token": csrf}).status_code == 404
    assert anyone.get("/s/not-a-share-page").status_code == 404
    newer_path, newer_share = make_holder_link(registrar, stored)
    assert newer_share == share_path  # the share page keeps its address
    assert anyone.get(holder_path).status_code == 404
    assert anyone.get(newer_path).status_code == 200


def test_the_holder_makes_a_wallet_offer(app, stored, registrar):
    holder_path, _share = make_holder_link(registrar, stored)
    holder = app.test_client()
    page = holder.get(holder_path).get_data(as_text=True)
    response = holder.post(f"{holder_path}/wallet-offer", data={"csrf_token": token_of(page)})
    assert response.status_code == 200 and response.headers["Referrer-Policy"] == "no-referrer"
    html = response.get_data(as_text=True)
    link = _value(html, "offer-uri")
    by_value = htmllib.unescape(re.search(r'id="offer-link" href="([^"]+)"', html).group(1))
    offer = oid4vci.parse_offer(by_value)
    assert offer["credential_issuer"] == "http://127.0.0.1:5000" and "tx_code" not in str(offer)
    # The by-value offer carries the same code the by-reference one answers.
    fetched = app.test_client().get(urlsplit(oid4vci.parse_offer(link)).path)
    assert fetched.status_code == 200 and fetched.get_json() == offer
    [made] = _audit(app, "wallet_offer_made")
    assert made.actor == "holder" and made.subject == stored["id"]


# ----- the cases the brief names, over real HTTP -------------------------------------------------

def _code_of(link: str) -> str:
    return requests.get(parse_qs(urlsplit(link).query)["credential_offer_uri"][0], timeout=30).json()[
        "grants"][oid4vci.PRE_AUTHORIZED_GRANT]["pre-authorized_code"]


def test_an_expired_code_is_invalid_grant(app, live, issued, registrar):
    link, _pin = make_offer(registrar, issued)
    code = _code_of(link)
    # Half an hour passes: the offer's expiry is in the past (the clock itself is not mocked).
    with app.extensions["attest.db"].session() as session:
        offer = session.scalars(select(oid4vci.WalletOffer)).one()
        offer.expires_at = offer.created_at - (offer.expires_at - offer.created_at)
        session.commit()
    late = requests.post(f"{live.url}/oid4vci/token", timeout=30,
                         data={"grant_type": oid4vci.PRE_AUTHORIZED_GRANT, "pre-authorized_code": code})
    assert late.status_code == 400 and late.json()["error"] == "invalid_grant"
    assert "expired" in late.json()["error_description"] and late.headers["Cache-Control"] == "no-store"
    # The QR's by-reference offer says so too, and nothing was redeemed.
    assert requests.get(parse_qs(urlsplit(link).query)["credential_offer_uri"][0], timeout=30).status_code == 404
    assert _audit(app, "wallet_offer_redeemed") == []


def test_a_replayed_code_and_a_second_wallet_get_nothing(app, live, issued, registrar):
    link, _pin = make_offer(registrar, issued)
    code = _code_of(link)
    form = {"grant_type": oid4vci.PRE_AUTHORIZED_GRANT, "pre-authorized_code": code}
    first = requests.post(f"{live.url}/oid4vci/token", data=form, timeout=30)
    assert first.status_code == 200
    replay = requests.post(f"{live.url}/oid4vci/token", data=form, timeout=30)
    assert replay.status_code == 400 and replay.json() == {
        "error": "invalid_grant", "error_description": "this pre-authorized code was used already (codes are single use)"}
    assert "access_token" not in replay.json()
    assert len(_audit(app, "wallet_offer_redeemed")) == 1


def test_a_proof_signed_by_another_key_is_invalid_proof(app, live, issued, registrar):
    access_token, metadata = _redeemed(app, live, issued, registrar)
    holder, thief = new_key(), new_key()
    nonce = requests.post(metadata["nonce_endpoint"], timeout=30).json()["c_nonce"]
    # Signed by `thief`, but the header names `holder`'s public key.
    proof = sign_proof(thief, audience=live.url, nonce=nonce, extra_header={"jwk": json.loads(holder.export_public())})
    response = requests.post(metadata["credential_endpoint"], timeout=30,
                             headers={"Authorization": f"Bearer {access_token}"},
                             json={"credential_configuration_id": oid4vci.CONFIGURATION_ID, "proofs": {"jwt": [proof]}})
    assert response.status_code == 400 and response.json()["error"] == "invalid_proof"
    assert "signature does not verify" in response.json()["error_description"]
    assert "credential" not in response.json() and _audit(app, "credential_collected") == []
    # A nonce another installation made (another secret key) is invalid_nonce, with a fresh one to retry.
    foreign = oid4vci.make_nonce(b"another installation's key")
    retry = requests.post(metadata["credential_endpoint"], timeout=30,
                          headers={"Authorization": f"Bearer {access_token}"},
                          json={"credential_configuration_id": oid4vci.CONFIGURATION_ID,
                                "proofs": {"jwt": [sign_proof(holder, audience=live.url, nonce=foreign)]}})
    assert retry.status_code == 400 and retry.json()["error"] == "invalid_nonce"
    fresh = retry.json()["c_nonce"]
    ok = requests.post(metadata["credential_endpoint"], timeout=30,
                       headers={"Authorization": f"Bearer {access_token}"},
                       json={"credential_configuration_id": oid4vci.CONFIGURATION_ID,
                             "proofs": {"jwt": [sign_proof(holder, audience=live.url, nonce=fresh)]}})
    assert ok.status_code == 200 and ok.json()["credentials"] == [{"credential": issued}]


def test_turned_off_the_share_page_is_gone_but_verification_still_works(app, stored, registrar):
    holder_path, share_path = make_holder_link(registrar, stored)
    holder = app.test_client()
    page = holder.get(holder_path).get_data(as_text=True)
    assert holder.post(f"{holder_path}/sharing", data={"sharing": "off", "csrf_token": token_of(page)}).status_code == 303
    anyone = app.test_client()
    gone = anyone.get(share_path)
    assert gone.status_code == 404 and gone.headers["Content-Type"].startswith("text/html")
    text = gone.get_data(as_text=True)
    assert "Sharing is turned off" in text and stored["id"] not in text
    assert "Ada Lovelace" not in text  # nothing of the credential leaks from a page that is off
    assert anyone.get(f"{share_path}/qr.png").status_code == 404
    # The credential itself still verifies, through the API and the certificate's QR link.
    api = anyone.post("/api/v1/credentials/verify", json=stored)
    assert api.status_code == 200 and api.get_json()["valid"] is True and api.get_json()["verdict"] == "genuine"
    qr_link = anyone.get(f"/v/{stored['id'].removeprefix('urn:uuid:')}")
    assert qr_link.status_code == 200 and 'data-verdict="genuine"' in qr_link.get_data(as_text=True)


def test_the_share_page_shows_a_revocation_live(app, stored, registrar):
    _holder_path, share_path = make_holder_link(registrar, stored)
    anyone = app.test_client()
    assert 'data-verdict="genuine"' in anyone.get(share_path).get_data(as_text=True)
    with app.extensions["attest.db"].session() as session:
        revoke_credential(session, get_registry(app), stored["id"], "issued in error", EMAIL)
    revocation_view_caught_up(app)
    html = anyone.get(share_path).get_data(as_text=True)
    assert 'data-verdict="invalid"' in html and "issued in error" in html


def test_the_share_page_says_could_not_check_when_the_chain_is_down(tmp_path):
    """Its own Anvil, stopped after issuing: the page says "could not check", never "invalid"."""
    from app import create_app
    from tests.fixtures_chain import start_anvil

    node = start_anvil(tmp_path)
    own = create_app({"TESTING": True, "data_dir": tmp_path / "appdata", "rpc_url": node.url, "SECRET_KEY": "x"})
    try:
        limiter.reset()
        doc = issue_stored(own, 1)[0]
        with own.extensions["attest.db"].session() as session:
            from credentials import sharing

            share = sharing.ensure_share(session, doc["id"])
            slug = share.slug
            session.commit()
        client = own.test_client()
        assert 'data-verdict="genuine"' in client.get(f"/s/{slug}").get_data(as_text=True)
        # Revocation comes from the event-fed view once it has caught up. When the node dies the
        # view learns it as its WebSocket closes, a few milliseconds later (its answer until then
        # is "as of block N", still the newest block the node announced); CI once asked within
        # that window and got that answer. So: the view current, the node stopped, the view down.
        feed = get_chain_reader(own).revocation_feed(get_registry(own).address)
        assert feed.wait_current()
        node.stop()
        deadline = time.monotonic() + 10
        while feed.live and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not feed.live, "the revocation view noticed its node was gone"
        down = client.get(f"/s/{slug}")
        assert down.status_code == 200
        html = down.get_data(as_text=True)
        verdict = re.search(r'data-verdict="([^"]*)"', html)
        assert verdict and verdict.group(1) == "unavailable", f"the page's verdict: {verdict and verdict.group(1)}"
        assert "Could not check right now" in html
    finally:
        node.stop()
        registry = own.extensions.pop("attest.registry", None)
        if registry is not None:
            registry.close()
