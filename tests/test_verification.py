"""The verification pipeline, called directly: every check passes for a fresh
credential and fails for its own case; skipped checks say why."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone

import pytest

from credentials.reader import ChainReader
from credentials.verification import CHECK_IDS, verify_credential
from tests.helpers_credentials import CASES, mint, open_world, other_key_registry, trust_in


@pytest.fixture(scope="module")
def world(tmp_path_factory, anvil_url):
    yield from open_world(tmp_path_factory, anvil_url)

@pytest.fixture(scope="module")
def reader(world):
    return ChainReader(world.rpc_url)


def statuses(result) -> dict[str, str]:
    return {c.id: c.status for c in result.checks}


def test_fresh_credential_passes_every_check(world, reader):
    result = verify_credential(world.good_with_expiry, reader, world.trust)
    assert result.valid, result.as_dict()
    assert result.verdict == "genuine"
    assert result.issuer == {"did": "did:web:uni.example.edu", "name": "University of Testing",
                             "domain": "uni.example.edu", "source": "the test's trust list"}
    assert [c.id for c in result.checks] == list(CHECK_IDS)
    # An anchor-only credential (as Attest issued before Data Integrity proofs
    # and status lists): those two checks do not apply, every other one passes.
    found = statuses(result)
    assert {found.pop("data_integrity"), found.pop("status_list")} == {"skipped"}
    assert result.check("data_integrity").not_applicable and result.check("status_list").not_applicable
    assert set(found.values()) == {"passed"}
    assert "anchored in registry" in result.check("anchor").message
    assert result.credential["holder"] == "Ada Lovelace"
    assert result.credential["achievement"] == "BSc Computer Science"
    assert result.credential["issuer"] == "University of Testing"


def test_no_valid_until_is_skipped_not_failed(world, reader):
    result = verify_credential(world.good, reader, world.trust)
    assert result.valid
    assert result.check("valid_until").status == "skipped"
    assert "does not expire" in result.check("valid_until").message


@pytest.mark.parametrize("case", CASES)
def test_each_case_fails_its_own_check(world, reader, case):
    doc, check_id = world.cases[case]
    result = verify_credential(doc, reader, world.trust)
    assert not result.valid
    check = result.check(check_id)
    assert check.status == "failed", result.as_dict()
    # A failed check says what was expected and what was found; identity names the
    # claimed issuer and what does not match it.
    if check_id == "issuer_identity":
        assert "calls itself University of Testing (did:web:uni.example.edu)" in check.message
        assert "do not rely on this credential" in check.message
    else:
        assert check.message.startswith("Expected"), check.message
        assert result.verdict == "invalid"
    assert result.as_dict()["valid"] is False


def test_tampered_subject_skips_what_depends_on_integrity(world, reader):
    result = verify_credential(world.cases["tampered_subject"][0], reader, world.trust)
    s = statuses(result)
    assert s["integrity"] == "failed"
    assert s["merkle_proof"] == s["signature"] == s["revocation"] == s["issuer_authorized"] == "skipped"
    assert "see integrity" in result.check("merkle_proof").message
    assert s["anchor"] == "passed"  # the root itself is real


def test_revoked_names_reason_and_date(world, reader):
    message = verify_credential(world.cases["revoked"][0], reader, world.trust).check("revocation").message
    assert "awarded in error" in message and "UTC" in message


def test_wrong_chain_names_both_chain_ids(world, reader):
    message = verify_credential(world.cases["wrong_chain_id"][0], reader, world.trust).check("anchor").message
    assert "4242" in message and "31337" in message


def test_deauthorised_signer_passes_signature_fails_authorisation(world, reader):
    result = verify_credential(world.cases["issuer_deauthorized"][0], reader, world.trust)
    s = statuses(result)
    assert s["signature"] == "passed" and s["anchor"] == "passed"
    assert s["issuer_authorized"] == "failed"


def test_time_is_a_parameter(world, reader):
    doc = world.good_with_expiry
    later = datetime.now(timezone.utc) + timedelta(days=400)
    assert statuses(verify_credential(doc, reader, world.trust, now=later))["valid_until"] == "failed"
    earlier = datetime.now(timezone.utc) - timedelta(days=400)
    assert statuses(verify_credential(doc, reader, world.trust, now=earlier))["valid_from"] == "failed"


def test_missing_proof_fails_format_and_skips_chain_checks(world, reader):
    doc = copy.deepcopy(world.good)
    del doc["proof"]
    result = verify_credential(doc, reader, world.trust)
    s = statuses(result)
    assert s["format"] == "failed" and "$.proof" in result.check("format").message
    assert all(s[c] == "skipped" for c in ("integrity", "merkle_proof", "anchor", "signature", "revocation"))


def test_unreachable_chain_is_could_not_check_never_not_valid(world):
    result = verify_credential(world.good, ChainReader("http://127.0.0.1:9", timeout=1), world.trust)
    assert not result.valid
    assert result.verdict == "unavailable"
    anchor = result.check("anchor")
    assert anchor.status == "unavailable"
    assert "Could not check this right now" in anchor.message
    assert "cannot reach the chain at http://127.0.0.1:9" in anchor.message
    # What needs no chain still reads true; what needs the anchor waits.
    assert result.check("integrity").status == "passed"
    assert result.check("issuer_identity").status == "passed"
    assert result.check("revocation").status == "skipped"
    assert "could not be done right now" in result.check("revocation").message
    assert all(c.status != "failed" for c in result.checks)


def test_no_contract_at_the_stated_registry(world, reader):
    doc = copy.deepcopy(world.good)
    nobody = "0x" + "11" * 20
    doc["proof"]["anchor"]["registry"] = doc["proof"]["eip712Domain"]["verifyingContract"] = nobody
    message = verify_credential(doc, reader, world.trust).check("anchor").message
    assert "no contract" in message


def test_cache_keeps_anchor_but_never_revocation(world):
    reader = ChainReader(world.rpc_url)
    doc = world.good
    verify_credential(doc, reader, world.trust)
    calls = []
    original = reader.call
    reader.call = lambda to, data: calls.append(data[:4]) or original(to, data)
    verify_credential(doc, reader, world.trust)
    assert len(calls) == 1  # revocationOf only: anchor and authorisation come from the cache


def test_records_not_yet_final_are_read_not_cached(world):
    reader = ChainReader(world.rpc_url, finality_depth=1_000_000)
    verify_credential(world.good, reader, world.trust)
    calls = []
    original = reader.call
    reader.call = lambda to, data: calls.append(data[:4]) or original(to, data)
    assert verify_credential(world.good, reader, world.trust).valid
    assert len(calls) == 3  # anchorOf, wasAuthorizedAt and revocationOf: nothing was final enough to keep


def test_same_checks_on_anvil_and_ganache(any_registry):
    doc = mint(any_registry)[0]
    reader = ChainReader(any_registry.rpc_url)
    trust = trust_in(any_registry)
    result = verify_credential(doc, reader, trust)
    assert result.valid, result.as_dict()
    any_registry.revoke(doc["proof"]["fingerprint"], "issued in error")
    revoked = verify_credential(doc, reader, trust)
    assert revoked.check("revocation").status == "failed" and "issued in error" in revoked.check("revocation").message


def test_messages_never_show_an_rpc_key():
    reader = ChainReader("http://user:secret@127.0.0.1:9/v3/KEY123?apikey=KEY456", timeout=1)
    assert reader.public_url == "http://127.0.0.1:9/…"
    with pytest.raises(Exception) as caught:
        reader.chain_id()
    assert "KEY" not in str(caught.value) and "secret" not in str(caught.value)


def test_a_contract_that_is_not_a_registry_fails_anchor(world, reader):
    impostor = "0x" + "22" * 20
    # Code that answers every call with 32 zero bytes: an impostor "registry" that anchors nothing.
    reader.rpc("anvil_setCode", [impostor, "0x60206000f3"])
    doc = copy.deepcopy(world.good)
    doc["proof"]["anchor"]["registry"] = doc["proof"]["eip712Domain"]["verifyingContract"] = impostor
    message = verify_credential(doc, reader, world.trust).check("anchor").message
    assert "is not a CredentialRegistry" in message


def test_issuer_did_naming_another_chain_fails_signature(world, reader):
    """A signature valid for chain A does not vouch for an issuer id that
    names chain B: the did:pkh chain must be the anchoring chain."""
    (doc,) = mint(world.registry, did_chain_id=1, anchor_registry=other_key_registry(world.registry),
                  issuer_did=None)
    result = verify_credential(doc, reader, world.trust)
    assert statuses(result)["signature"] == "failed"
    assert "names chain 1" in result.check("signature").message
    assert not result.valid
