"""eddsa-rdfc-2022 proofs made and checked by Attest's own code: the
algorithm as vc-di-eddsa states it, the proof set, reasons a person can
read, characters that would not verify elsewhere, and batches on every core."""

from __future__ import annotations

import copy
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from credentials import dataintegrity, ed25519, jsonld
from credentials.multibase import decode_base58btc
from tests.helpers_dataintegrity import (
    CREATED,
    DID,
    anchor_proof,
    did_document,
    signed_credential,
    unsigned_credential,
)


@pytest.fixture(scope="module")
def ring(tmp_path_factory):
    return ed25519.load_or_create_keyring(tmp_path_factory.mktemp("keys"))


def test_the_proof_is_the_spec_algorithm_computed_by_hand(ring):
    """hashData = sha256(canon(proof options + document @context)) ||
    sha256(canon(document without proof)), signed with Ed25519, base58btc."""
    doc = unsigned_credential()
    proof = dataintegrity.sign_eddsa_rdfc_2022(doc, ring.signing_key, ring.verification_method(DID), CREATED)
    assert {k: v for k, v in proof.items() if k != "proofValue"} == {
        "type": "DataIntegrityProof", "cryptosuite": "eddsa-rdfc-2022", "created": CREATED,
        "verificationMethod": f"{DID}#{ring.current.public_key_multibase}", "proofPurpose": "assertionMethod"}
    config = {k: v for k, v in proof.items() if k != "proofValue"} | {"@context": doc["@context"]}
    data = (hashlib.sha256(jsonld.canonize(config).encode()).digest()
            + hashlib.sha256(jsonld.canonize(doc).encode()).digest())
    signature = decode_base58btc(proof["proofValue"])
    assert len(signature) == 64 and proof["proofValue"].startswith("z")
    ring.signing_key.public_key().verify(signature, data)  # raises if not


def test_a_signed_credential_verifies_and_names_its_key(ring):
    cred = signed_credential(ring)
    di, anchor = cred["proof"]
    assert anchor["type"] == "AttestEip712MerkleProof2026"
    result = dataintegrity.verify_eddsa_rdfc_2022(cred, di, ring.current.public_key_multibase)
    assert result and result.verified
    assert ring.verification_method(DID) in result.reason
    assert dataintegrity.find_proofs(cred) == [di]


def test_the_proof_set_is_independent_of_its_other_proofs(ring):
    """Adding, removing or changing the anchor proof leaves the Data
    Integrity proof valid: a proof set signs the document without proofs."""
    cred = signed_credential(ring)
    di = cred["proof"][0]
    for variant in (dict(cred, proof=di), dict(cred, proof=[anchor_proof(), di]),
                    dict(cred, proof=[di, dict(anchor_proof(), batch="another")])):
        assert dataintegrity.verify_eddsa_rdfc_2022(variant, di, ring.signing_key.public_key())


@pytest.mark.parametrize("tamper", [
    lambda c: c["credentialSubject"]["result"][0].__setitem__("value", "Third Class"),
    lambda c: c["credentialSubject"]["identifier"][0].__setitem__("identityHash", "Mallory"),
    lambda c: c.__setitem__("validUntil", "2099-01-01T00:00:00Z"),
    lambda c: c["credentialStatus"].__setitem__("statusListIndex", "8"),
    lambda c: c["proof"][0].__setitem__("created", "2026-01-15T09:30:01Z"),
    lambda c: c["proof"][0].__setitem__("proofPurpose", "authentication"),
    lambda c: c["credentialSubject"].pop("result"),
    lambda c: c["proof"][0].__setitem__("expires", "2099-01-01T00:00:00Z"),
    # JSON's 1e400 reads as infinity: a writer that turned it into null would let
    # JSON-LD drop the member, and the proof would verify with it unsigned.
    lambda c: c["proof"][0].__setitem__("expires", float("inf")),
], ids=["grade", "name", "expiry", "status index", "created", "purpose", "dropped result", "added proof member",
        "infinite proof member"])
def test_any_change_breaks_the_signature(ring, tamper):
    cred = signed_credential(ring)
    tamper(cred)
    result = dataintegrity.verify_eddsa_rdfc_2022(cred, cred["proof"][0], ring.signing_key.public_key())
    assert not result and "signature does not match" in result.reason


def test_key_order_and_white_space_do_not_matter(ring):
    cred = signed_credential(ring)
    reordered = dict(reversed(list(copy.deepcopy(cred).items())))
    assert dataintegrity.verify_eddsa_rdfc_2022(reordered, cred["proof"][0], ring.signing_key.public_key())


def test_another_key_does_not_verify(ring):
    cred = signed_credential(ring)
    other = Ed25519PrivateKey.generate().public_key()
    assert not dataintegrity.verify_eddsa_rdfc_2022(cred, cred["proof"][0], other)


@pytest.mark.parametrize("change,reason", [
    (lambda p: p.__setitem__("type", "Ed25519Signature2020"), "must be DataIntegrityProof"),
    (lambda p: p.__setitem__("cryptosuite", "eddsa-jcs-2022"), "cryptosuite must be eddsa-rdfc-2022"),
    (lambda p: p.__setitem__("proofValue", "u" + "A" * 86), "multibase base58btc"),
    (lambda p: p.__setitem__("proofValue", "z3J"), "64-byte Ed25519 signature"),
    (lambda p: p.__setitem__("created", "yesterday"), "dateTimeStamp"),
    (lambda p: p.pop("verificationMethod"), "no verificationMethod"),
    (lambda p: p.__setitem__("@context", ["https://www.w3.org/2018/credentials/v1"]), "@context does not match"),
])
def test_malformed_proofs_say_what_is_wrong(ring, change, reason):
    cred = signed_credential(ring)
    proof = copy.deepcopy(cred["proof"][0])
    change(proof)
    result = dataintegrity.verify_eddsa_rdfc_2022(cred, proof, ring.signing_key.public_key())
    assert not result and reason in result.reason


def test_a_proof_with_its_own_context_prefix_verifies(ring):
    """vc-di-eddsa 3.3.2: proof options may carry the document's leading @context."""
    doc = unsigned_credential()
    options = dataintegrity.proof_options(ring.verification_method(DID), CREATED) | {"@context": doc["@context"]}
    data = dataintegrity.hash_data(doc, options)
    proof = options | {"proofValue": dataintegrity.encode_base58btc(ring.signing_key.sign(data))}
    assert dataintegrity.verify_eddsa_rdfc_2022(dataintegrity.add_proof(doc, proof), proof, ring.current.public_key_multibase)


def test_unusable_documents_are_refused_with_the_reason(ring):
    cred = signed_credential(ring)
    unknown = dict(cred, **{"@context": [*cred["@context"], "https://evil.example/c"]})
    result = dataintegrity.verify_eddsa_rdfc_2022(unknown, cred["proof"][0], ring.signing_key.public_key())
    assert not result and "evil.example" in result.reason
    undefined = dict(cred, nickname="Zo")
    result = dataintegrity.verify_eddsa_rdfc_2022(undefined, cred["proof"][0], ring.signing_key.public_key())
    assert not result and "'nickname'" in result.reason
    with pytest.raises(jsonld.UnsafeJsonLd, match="nickname"):
        dataintegrity.sign_eddsa_rdfc_2022(dict(unsigned_credential(), nickname="Zo"), ring.signing_key,
                                           ring.verification_method(DID), CREATED)


def test_text_that_would_not_verify_elsewhere_is_refused_before_signing(ring):
    """pyld leaves a backspace raw in N-Quads where RDFC-1.0 writes \\b: a
    signature over it would fail in every JavaScript verifier."""
    with pytest.raises(jsonld.NotPortable, match=r"identityHash holds U\+0008"):
        dataintegrity.sign_eddsa_rdfc_2022(unsigned_credential(name="Zoë\x08"), ring.signing_key,
                                           ring.verification_method(DID), CREATED)


def test_created_must_be_a_date_time_stamp(ring):
    with pytest.raises(ValueError, match="dateTimeStamp"):
        dataintegrity.sign_eddsa_rdfc_2022(unsigned_credential(), ring.signing_key, ring.verification_method(DID),
                                           "2026-01-15 09:30")


def test_sign_many_on_worker_processes_matches_one_by_one(ring):
    docs = [unsigned_credential(name=f"Student {i} \"ü\"", grade=None if i % 4 == 0 else "Pass", index=i)
            for i in range(60)]
    method = ring.verification_method(DID)
    proofs = dataintegrity.sign_many(docs, ring.signing_key, method, CREATED, processes=2)
    assert len(proofs) == len(docs)
    for doc, proof in zip(docs, proofs, strict=True):
        assert proof == dataintegrity.sign_eddsa_rdfc_2022(doc, ring.signing_key, method, CREATED)
        assert dataintegrity.verify_eddsa_rdfc_2022(doc, proof, ring.signing_key.public_key())
    with dataintegrity.SigningPool(ring.signing_key, processes=2) as pool:
        assert pool.sign(docs[:5], method, CREATED, chunk=2) == proofs[:5]
        assert pool.sign(docs[5:9], method, CREATED) == proofs[5:9]


def test_sign_many_refuses_a_pool_holding_another_key(ring):
    with dataintegrity.SigningPool(Ed25519PrivateKey.generate(), processes=1) as pool, \
            pytest.raises(ValueError, match="another key"):
        dataintegrity.sign_many([unsigned_credential()], ring.signing_key, ring.verification_method(DID),
                                CREATED, pool=pool)


def test_verify_credential_proof_binds_key_issuer_and_did_document(ring):
    cred = signed_credential(ring)
    document = did_document(ring)
    assert dataintegrity.verify_credential_proof(cred, document)
    other = {**cred, "issuer": {**cred["issuer"], "id": "did:web:other.example"}}
    assert "does not belong to the issuer" in dataintegrity.verify_credential_proof(other, document).reason
    unlisted = {**document, "assertionMethod": []}
    assert "does not list" in dataintegrity.verify_credential_proof(cred, unlisted).reason
    bare = {k: v for k, v in cred.items() if k != "proof"}
    assert "found 0" in dataintegrity.verify_credential_proof(bare, document).reason
    twice = {**cred, "proof": [cred["proof"][0], cred["proof"][0]]}
    assert "found 2" in dataintegrity.verify_credential_proof(twice, document).reason
    changed = copy.deepcopy(cred)
    changed["name"] = "MSc Computer Science"
    assert "signature does not match" in dataintegrity.verify_credential_proof(changed, document).reason
