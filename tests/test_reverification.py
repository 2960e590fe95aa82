"""Verifying the same bytes again (credentials.verification.PROVEN): what a
document showed of itself is remembered once all its own checks passed, and
everything that can change (the chain, the trust list, the time) is asked
again. Each test verifies real credentials on the session's Anvil node."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

import pytest

from credentials import dataintegrity, verification
from credentials.ed25519 import load_or_create_keyring, public_key_multibase
from credentials.identity import Ed25519Key
from credentials.reader import ChainReader
from credentials.statusclient import StatusListClient
from credentials.trust import StaticSource, TrustEntry, TrustPolicy
from credentials.validate import load_document, text_digest
from credentials.verification import PROVEN, ProvenDocuments, verify_credential
from tests.helpers_credentials import (
    fresh_credential,
    open_world,
    other_key_registry,
    revocation_view_caught_up,
    trust_in,
)
from tests.helpers_dataintegrity import CREATED, DID, unsigned_credential

OWN = ("read_proof", "validate_document", "compute_fingerprint", "root_from_path", "recover_signer")


@pytest.fixture(scope="module")
def world(tmp_path_factory, anvil_url):
    yield from open_world(tmp_path_factory, anvil_url)


@pytest.fixture(scope="module")
def reader(world):
    return ChainReader(world.rpc_url)


@pytest.fixture
def own_work(monkeypatch) -> list[str]:
    """The names of the document's own checks' workers, each time one runs."""
    calls: list[str] = []
    for name in OWN:
        original = getattr(verification, name)
        monkeypatch.setattr(verification, name,
                            lambda *a, _original=original, _name=name, **k: calls.append(_name) or _original(*a, **k))
    return calls


def verify_text(raw: bytes, reader, trust, **kwargs):
    """verify_credential as the API calls it: the text read by load_document, and its digest."""
    return verify_credential(load_document(raw, wrapped_ok=True), reader, trust, digest=text_digest(raw), **kwargs)


def statuses(result) -> dict[str, str]:
    return {c.id: c.status for c in result.checks}


def test_the_same_bytes_again_give_the_same_answer_without_the_documents_own_work(world, reader, own_work):
    raw = json.dumps(world.good).encode()
    first = verify_text(raw, reader, world.trust)
    assert first.verdict == "genuine"
    assert set(own_work) == set(OWN)  # the first time, all of it
    own_work.clear()
    again = verify_text(raw, reader, world.trust)
    assert again.as_dict() == first.as_dict()
    assert own_work == []
    # Without a digest (a caller that has no text) nothing is remembered or replayed.
    verify_credential(json.loads(raw), reader, world.trust)
    assert set(own_work) == set(OWN)


def test_a_revocation_after_the_first_verification_is_seen(world, reader):
    # The world's own key ends de-authorised (its last case): a fresh authorised key issues this one.
    issuer = other_key_registry(world.registry)
    trust = trust_in(world.registry, issuer)
    doc = fresh_credential(issuer)
    raw = json.dumps(doc).encode()
    assert verify_text(raw, reader, trust).verdict == "genuine"
    assert len(PROVEN) == 1
    issuer.revoke(doc["proof"]["fingerprint"], "replayed after revocation")
    again = verify_text(raw, reader, trust)
    assert again.verdict == "invalid"
    assert again.check("revocation").status == "failed"
    assert "replayed after revocation" in again.check("revocation").message


def test_one_changed_byte_is_checked_from_the_start(world, reader, own_work):
    raw = json.dumps(world.good).encode()
    assert verify_text(raw, reader, world.trust).valid
    changed = raw.replace(b"Ada Lovelace", b"Ada Lovelacf")
    assert changed != raw
    own_work.clear()
    result = verify_text(changed, reader, world.trust)
    assert result.verdict == "invalid" and result.check("integrity").status == "failed"
    assert "compute_fingerprint" in own_work


@pytest.mark.parametrize("case", ["tampered_subject", "tampered_path", "pkh_signer_not_issuer"])
def test_a_document_whose_own_checks_fail_is_not_remembered(world, reader, own_work, case):
    raw = json.dumps(world.cases[case][0]).encode()
    first = verify_text(raw, reader, world.trust)
    assert first.check(world.cases[case][1]).status == "failed"
    assert len(PROVEN) == 0
    own_work.clear()
    assert verify_text(raw, reader, world.trust).as_dict() == first.as_dict()
    assert set(own_work) >= {"read_proof", "validate_document", "compute_fingerprint"}


@pytest.mark.parametrize("case", ["revoked", "expired", "issuer_deauthorized", "signer_not_issuer"])
def test_what_the_chain_the_trust_list_or_the_time_refuse_is_refused_again(world, reader, case):
    """These credentials are intact and signed (so they are remembered), and
    still refused the second time, by the check that refused them the first."""
    doc, check_id = world.cases[case]
    raw = json.dumps(doc).encode()
    first = verify_text(raw, reader, world.trust)
    assert first.check(check_id).status == "failed"
    assert len(PROVEN) == 1
    again = verify_text(raw, reader, world.trust)
    assert again.as_dict() == first.as_dict()
    assert again.check(check_id).status == "failed"


def test_time_and_trust_are_asked_again(world, reader):
    raw = json.dumps(world.good_with_expiry).encode()
    assert verify_text(raw, reader, world.trust).verdict == "genuine"
    later = datetime.now(timezone.utc) + timedelta(days=400)
    assert statuses(verify_text(raw, reader, world.trust, now=later))["valid_until"] == "failed"
    nobody = TrustPolicy([StaticSource("an empty trust list", [])])
    stranger = verify_text(raw, reader, nobody)
    assert stranger.verdict == "not_confirmed" and stranger.check("issuer_identity").status == "failed"
    assert verify_text(raw, reader, world.trust).verdict == "genuine"


def test_the_memory_is_bounded(world, reader, monkeypatch):
    small = ProvenDocuments(max_entries=2)
    monkeypatch.setattr(verification, "PROVEN", small)
    texts = [json.dumps(doc).encode() for doc in (world.good, world.good_with_expiry, world.cases["revoked"][0])]
    for raw in texts:
        verify_text(raw, reader, world.trust)
        assert 1 <= len(small) <= 2
    # The oldest went; the two newest stay.
    assert [small.get(text_digest(raw)) is not None for raw in texts] == [False, True, True]


def test_an_envelope_and_the_bare_credential_are_two_texts_with_one_answer(world, reader, own_work):
    bare = json.dumps(world.good).encode()
    wrapped = json.dumps({"credential": world.good}).encode()
    first = verify_text(bare, reader, world.trust)
    own_work.clear()
    assert verify_text(wrapped, reader, world.trust).as_dict() == first.as_dict()
    assert "recover_signer" in own_work  # another text: checked in full, then remembered too
    assert len(PROVEN) == 2


def test_a_data_integrity_proof_is_replayed_only_for_the_same_key(tmp_path):
    """Another issuer's credential, secured by Data Integrity alone, whose
    verification method does not carry its key: the trust list gives it. A
    second trust list giving another key for the same method must see the
    proof fail, though the bytes are the same."""
    ring = load_or_create_keyring(tmp_path / "issuer")
    other = load_or_create_keyring(tmp_path / "other")
    method = f"{DID}#key-1"
    doc = unsigned_credential()
    doc = dataintegrity.add_proof(doc, dataintegrity.sign_eddsa_rdfc_2022(doc, ring.signing_key, method, CREATED))
    raw = json.dumps(doc).encode()

    def trusting(key) -> TrustPolicy:
        entry = TrustEntry(did=DID, name="University of Testing", domain="uni.example.edu",
                           ed25519_keys=(Ed25519Key(method, public_key_multibase(key.signing_key)),),
                           source="the test's trust list")
        return TrustPolicy([StaticSource("the test's trust list", [entry])])

    offline = StatusListClient(fetch=_offline)  # its status list is not what this test is about
    first = verify_text(raw, None, trusting(ring), status_lists=offline)
    assert first.check("data_integrity").status == "passed", first.as_dict()
    assert len(PROVEN) == 1
    wrong = verify_text(raw, None, trusting(other), status_lists=offline)
    assert wrong.check("data_integrity").status == "failed"
    assert "signature does not match" in wrong.check("data_integrity").message
    assert verify_text(raw, None, trusting(ring), status_lists=offline).check("data_integrity").status == "passed"
    nobody = TrustPolicy([StaticSource("an empty trust list", [])])
    unknown = verify_text(raw, None, nobody, status_lists=offline).check("data_integrity")
    assert unknown.status == "skipped" and "no key is known" in unknown.message


def _offline(url: str) -> bytes:
    raise OSError(f"{url} is not fetched in this test")


def test_the_api_answers_the_same_bytes_again_and_sees_a_revocation(app, client, monkeypatch):
    """Through POST /api/v1/credentials/verify, a credential the app issued
    with both proofs: the second answer is the first (the revocation check
    names where it read from), without checking the Data Integrity proof
    again, also after a new block; after a revocation both the chain and the
    status list say so."""
    from credentials.issuance import revoke_credential
    from credentials.runtime import get_registry
    from kernel.web.extensions import limiter
    from tests.helpers_credentials import issue_stored

    limiter.reset()
    stored = issue_stored(app, 2)[0]
    raw = json.dumps(stored).encode()

    def post() -> tuple[dict, dict[str, str], str]:
        response = client.post("/api/v1/credentials/verify", data=raw, content_type="application/json")
        assert response.status_code == 200
        body = response.get_json()
        found = {c["id"]: c["status"] for c in body["checks"]}
        for check in body["checks"]:
            if check["id"] == "revocation":
                # Asked again each time, and worded by where it was read: the event-fed view
                # ("as of block N", the latest) or, while the view is behind, the contract itself.
                check["message"] = re.sub(r" \(asked just now\)\.$|, as of block \d+, the latest block .*$", " (source)",
                                          check["message"])
        return body, found, body["verdict"]

    first, found, verdict = post()
    assert verdict == "genuine" and found["data_integrity"] == "passed"
    proofs_checked = []
    original = dataintegrity.verify_eddsa_rdfc_2022
    monkeypatch.setattr(dataintegrity, "verify_eddsa_rdfc_2022",
                        lambda *a, **k: proofs_checked.append(1) or original(*a, **k))
    assert post()[0] == first
    assert proofs_checked == []
    get_registry(app).anchor(b"\x01" * 32, 1)  # a block between two verifications changes nothing else
    assert post()[0] == first
    with app.extensions["attest.db"].session() as session:
        revoke_credential(session, get_registry(app), stored["id"], "issued in error", "registrar@test")
    revocation_view_caught_up(app)
    _, found, verdict = post()
    assert verdict == "invalid"
    assert found["revocation"] == found["status_list"] == "failed"
    assert found["data_integrity"] == found["integrity"] == "passed"


def test_a_qr_link_opened_again_repeats_only_what_can_change(app, client, monkeypatch):
    """The page `/v/<id>`: the second visitor sees the same checks, and the
    stored credential's own proofs are not checked again."""
    import re

    from kernel.web.extensions import limiter
    from tests.helpers_credentials import issue_stored

    limiter.reset()
    link = "/v/" + issue_stored(app, 1)[0]["id"].removeprefix("urn:uuid:")
    rows = re.compile(r'data-check="(\w+)" data-status="(\w+)"')
    first = rows.findall(client.get(link).get_data(as_text=True))
    assert dict(first)["data_integrity"] == dict(first)["revocation"] == "passed"
    own = []
    original = dataintegrity.verify_eddsa_rdfc_2022
    monkeypatch.setattr(dataintegrity, "verify_eddsa_rdfc_2022", lambda *a, **k: own.append(1) or original(*a, **k))
    assert rows.findall(client.get(link).get_data(as_text=True)) == first
    assert own == []


def test_pasted_json_verified_again_on_the_page_is_replayed(app, client, monkeypatch):
    """The verify page's paste box: the digest is that of the pasted text, as
    load_document reads it, so pasting the same text again is recognised."""
    import re

    from kernel.web.extensions import limiter
    from tests.helpers_credentials import issue_stored

    limiter.reset()
    pasted = json.dumps(issue_stored(app, 1)[0], indent=2, ensure_ascii=False)
    rows = re.compile(r'data-check="(\w+)" data-status="(\w+)"')

    def paste() -> list[tuple[str, str]]:
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/verify").get_data(as_text=True)).group(1)
        response = client.post("/verify", data={"credential_json": pasted, "csrf_token": token})
        assert response.status_code == 200
        return rows.findall(response.get_data(as_text=True))

    first = paste()
    assert dict(first)["data_integrity"] == "passed"
    assert PROVEN.get(text_digest(pasted)) is not None
    own = []
    original = dataintegrity.verify_eddsa_rdfc_2022
    monkeypatch.setattr(dataintegrity, "verify_eddsa_rdfc_2022", lambda *a, **k: own.append(1) or original(*a, **k))
    assert paste() == first
    assert own == []
