"""Other people's verifiers on Attest's credentials, offline: Digital
Bazaar's @digitalbazaar/vc with the eddsa-rdfc-2022 cryptosuite (Node, from
npm), jsonld.js safe mode, and PyPI's openbadgeslib. Both verifiers accept
an issued credential and refuse it with a changed grade; a credential Digital
Bazaar signed verifies in Attest's verifier."""

from __future__ import annotations

import copy

import pytest

from credentials import dataintegrity, ed25519, jsonld
from tests.helpers_dataintegrity import (
    CREATED,
    DID,
    PUBLIC_URL,
    STATUS_URL,
    anchor_proof,
    did_document,
    node,
    openbadgeslib_verify,
    signed_credential,
    status_list_credential,
    unsigned_credential,
)


@pytest.fixture(scope="module")
def ring(tmp_path_factory):
    return ed25519.load_or_create_keyring(tmp_path_factory.mktemp("keys"))


def _digital_bazaar(credential, ring, revoked=()):
    return node("verify_credential.mjs", {
        "credential": credential, "didDocuments": [did_document(ring)],
        "documents": {STATUS_URL: status_list_credential(ring, revoked=list(revoked))}})


def _changed_grade(credential):
    changed = copy.deepcopy(credential)
    changed["credentialSubject"]["result"][0]["value"] = "Third Class"
    return changed


def test_digital_bazaar_verifies_an_attest_credential_with_both_proofs(ring):
    cred = signed_credential(ring)
    assert [p["type"] for p in cred["proof"]] == ["DataIntegrityProof", "AttestEip712MerkleProof2026"]
    answer = _digital_bazaar(cred, ring)
    assert answer == {"verified": True, "errors": [], "proofsVerified": 1, "revoked": False}


def test_openbadgeslib_verifies_the_same_credential(ring):
    assert openbadgeslib_verify(signed_credential(ring), ring.signing_key.public_key()) is None


def test_jsonld_js_safe_mode_expands_the_signed_credential(ring):
    assert node("expand_safe.mjs", {"document": signed_credential(ring)}) == {"ok": True, "error": None, "events": []}


def test_both_refuse_the_credential_with_a_changed_grade(ring):
    changed = _changed_grade(signed_credential(ring))
    answer = _digital_bazaar(changed, ring)
    assert answer["verified"] is False and any("Invalid signature" in e for e in answer["errors"])
    assert "signature mismatch" in openbadgeslib_verify(changed, ring.signing_key.public_key())
    ours = dataintegrity.verify_eddsa_rdfc_2022(changed, changed["proof"][0], ring.signing_key.public_key())
    assert not ours


def test_digital_bazaar_sees_a_revoked_credential(ring):
    answer = _digital_bazaar(signed_credential(ring, index=7), ring, revoked=[7])
    assert answer["verified"] is True and answer["revoked"] is True


def test_a_credential_signed_before_a_rotation_still_verifies(tmp_path):
    """Retired keys stay in the DID document's assertionMethod."""
    ring = ed25519.load_or_create_keyring(tmp_path)
    old = signed_credential(ring)
    rotated = ed25519.rotate(tmp_path)
    new = signed_credential(rotated)
    assert old["proof"][0]["verificationMethod"] != new["proof"][0]["verificationMethod"]
    for cred in (old, new):
        answer = node("verify_credential.mjs", {
            "credential": cred, "didDocuments": [did_document(rotated)],
            "documents": {STATUS_URL: status_list_credential(rotated)}})
        assert answer["verified"] is True, answer
    unlisted = {**did_document(rotated), "assertionMethod": [rotated.verification_method(DID)]}
    answer = node("verify_credential.mjs", {"credential": old, "didDocuments": [unlisted],
                                            "documents": {STATUS_URL: status_list_credential(rotated)}})
    assert answer["verified"] is False and any("not authorized" in e for e in answer["errors"])


def test_attest_verifies_a_credential_that_another_library_signed():
    signed = node("sign_credential.mjs", {"credential": unsigned_credential(), "did": DID})
    cred, key = signed["credential"], signed["publicKeyMultibase"]
    assert cred["proof"]["verificationMethod"] == f"{DID}#{key}"
    assert dataintegrity.verify_eddsa_rdfc_2022(cred, cred["proof"], key)
    assert openbadgeslib_verify(cred, key) is None
    assert not dataintegrity.verify_eddsa_rdfc_2022(_changed_grade(cred), cred["proof"], key)


def test_canonical_n_quads_agree_with_jsonld_js_on_awkward_text():
    awkward = [unsigned_credential(name=n) for n in (
        'Zoë "Q" O\'Brien \\ 李雷 \U0001f393', "line\nbreak\r\ncarriage\ttab", "\u2028\u2029\x85\ufeff", "")]
    theirs = node("canonize.mjs", {"documents": awkward})
    assert theirs["errors"] == [None] * len(awkward)
    assert theirs["nquads"] == [jsonld.canonize(doc) for doc in awkward]


def test_pyld_and_rdfc_1_0_differ_on_control_characters_which_is_why_they_are_refused():
    """If this starts failing, pyld escapes like RDFC-1.0 now and
    jsonld.NotPortable can be relaxed."""
    doc = unsigned_credential(name="back\x08space")
    theirs = node("canonize.mjs", {"documents": [doc]})["nquads"][0]
    assert "back\\bspace" in theirs
    with pytest.raises(jsonld.NotPortable):
        jsonld.canonize(doc)


def test_openbadgeslib_full_verifier_and_where_the_attest_context_sits(ring):
    """openbadgeslib's full OB3LdpVerifier bundles the official contexts and
    takes no others: with Attest's context in the credential's @context (the
    issue's layout) it refuses, naming it; with Attest's context inside the
    anchor proof instead, it accepts the credential with every OB 3.0 check."""
    top = signed_credential(ring)
    refusal = openbadgeslib_verify(top, ring.signing_key.public_key(), full=True)
    assert refusal and jsonld.attest_context_url(PUBLIC_URL) in refusal

    doc = unsigned_credential()
    doc["@context"] = doc["@context"][:3]
    proof = dataintegrity.sign_eddsa_rdfc_2022(doc, ring.signing_key, ring.verification_method(DID), CREATED)
    scoped = dataintegrity.add_proof(dataintegrity.add_proof(doc, proof),
                                     {"@context": jsonld.attest_context_url(PUBLIC_URL), **anchor_proof()})
    assert openbadgeslib_verify(scoped, ring.signing_key.public_key(), full=True) is None
    jsonld.expand_safe(scoped)
    assert node("expand_safe.mjs", {"document": scoped})["ok"]
    assert _digital_bazaar(scoped, ring)["verified"] is True
