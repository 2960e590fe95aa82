"""The credential core: document shape, canonical hash, EIP-712 signature and
Merkle paths (checked in Python and by the registry contract's own view)."""

from __future__ import annotations

import copy
import json
import re
from datetime import date

import pytest
import rfc8785
from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_typed_data
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from credentials.canonical import canonical_json, fingerprint, keccak256, plain_fingerprint, to_hex
from credentials.document import (
    OB_CONTEXT,
    VC_CONTEXT,
    CredentialRequest,
    IssuerProfile,
    build_credential,
    document_json,
)
from credentials.merkle import MerkleTree, verify_path
from credentials.signing import Eip712Domain, Signer, recover_signer, signing_digest, typed_data

KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
ADDRESS = Account.from_key(KEY).address
REGISTRY = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
DOMAIN = Eip712Domain(31337, REGISTRY)
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")



@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_keccak256_is_ethereums_keccak(data):
    """The C keccak (safe-pysha3) against pycryptodome's, and the empty-input vector."""
    from Crypto.Hash import keccak

    assert keccak256(data) == keccak.new(digest_bits=256, data=data).digest()
    assert keccak256(b"").hex() == "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"


def request(**overrides) -> CredentialRequest:
    fields = dict(recipient_name="Ada Lovelace", recipient_email="ada@example.edu",
                  achievement_name="BSc Mathematics", achievement_type="BachelorDegree",
                  description="Three-year honours programme.", awarded_on=date(2025, 6, 30),
                  valid_until=date(2030, 6, 30), grade="First Class")
    fields.update(overrides)
    return CredentialRequest(**fields)


PROFILE = IssuerProfile(name="Example University", address=ADDRESS, chain_id=31337)


def test_document_shape():
    doc = build_credential(request(), PROFILE)
    assert doc["@context"][:2] == [VC_CONTEXT, OB_CONTEXT]
    assert list(doc)[0] == "@context"
    assert doc["type"] == ["VerifiableCredential", "OpenBadgeCredential"]
    assert re.fullmatch(r"urn:uuid:[0-9a-f-]{36}", doc["id"])
    assert doc["issuer"]["id"] == f"did:pkh:eip155:31337:{ADDRESS}"
    assert doc["issuer"]["name"] == "Example University"
    assert RFC3339.match(doc["validFrom"]) and RFC3339.match(doc["validUntil"])
    assert doc["validFrom"] == "2025-06-30T00:00:00Z"
    subject = doc["credentialSubject"]
    assert subject["type"] == ["AchievementSubject"]
    achievement = subject["achievement"]
    assert achievement["type"] == ["Achievement"]
    assert {"name", "description", "criteria", "achievementType"} <= set(achievement)
    assert achievement["achievementType"] == "BachelorDegree"
    assert subject["result"][0]["value"] == "First Class"
    identities = {i["identityType"]: i["identityHash"] for i in subject["identifier"]}
    assert identities == {"name": "Ada Lovelace", "emailAddress": "ada@example.edu"}
    assert "proof" not in doc


def test_optional_fields_are_left_out():
    doc = build_credential(request(valid_until=None, grade=None), PROFILE)
    assert "validUntil" not in doc
    assert "result" not in doc["credentialSubject"]


def test_canonical_hash_is_stable_across_key_order_and_whitespace():
    doc = build_credential(request(), PROFILE)
    reordered = json.loads(json.dumps(dict(reversed(list(doc.items())))))
    spaced = json.loads(json.dumps(doc, indent=4, sort_keys=True))
    assert fingerprint(doc) == fingerprint(reordered) == fingerprint(spaced)
    with_proof = dict(doc, proof={"type": "whatever"})
    assert fingerprint(with_proof) == fingerprint(doc), "the proof is not part of the fingerprint"
    changed = copy.deepcopy(doc)
    changed["credentialSubject"]["achievement"]["name"] = "BSc Mathematic"
    assert fingerprint(changed) != fingerprint(doc)


def test_canonical_json_matches_rfc8785_on_an_issued_document():
    doc = build_credential(request(recipient_name="Zoë Ñúñez 李雷 \U0001f393", description='a "quoted"\n\\ line\t\x01'),
                           PROFILE)
    assert canonical_json(doc) == rfc8785.dumps(doc)


# Keys include non-ASCII and astral characters (JCS sorts by UTF-16 units, which
# differs from code point order), values include floats and huge integers: the
# fast path must hand those to rfc8785 and agree with it everywhere else.
_keys = st.one_of(st.text(max_size=8), st.sampled_from(["a", "b", "\ue000", "\U0001f600", "€", "A", "_", "@context"]))
_scalars = st.one_of(
    st.none(), st.booleans(), st.text(), st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1),
    st.integers(), st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x7f)),
)
_documents = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=5), st.dictionaries(_keys, inner, max_size=6)), max_leaves=30)


@settings(max_examples=1000, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(_documents)
def test_canonical_json_is_byte_identical_to_rfc8785(document):
    try:
        expected = rfc8785.dumps(document)
    except rfc8785.CanonicalizationError as exc:
        with pytest.raises(type(exc)):
            canonical_json(document)
        return
    assert canonical_json(document) == expected


@settings(max_examples=300, deadline=None, database=None)
@given(st.builds(
    CredentialRequest, recipient_name=st.text(min_size=1), recipient_email=st.emails(),
    achievement_name=st.text(min_size=1), achievement_type=st.sampled_from(["Diploma", "Course"]),
    description=st.text(min_size=1), awarded_on=st.dates(), valid_until=st.none() | st.dates(),
    grade=st.none() | st.text(max_size=10)))
def test_canonical_json_matches_rfc8785_on_generated_credentials(req):
    doc = build_credential(req, PROFILE)
    try:
        expected = rfc8785.dumps(doc)
    except rfc8785.CanonicalizationError:
        return  # a lone surrogate: both refuse
    assert canonical_json(doc) == expected


# What document_json is given: issued documents hold strings (any code point,
# lone surrogates included: st.characters leaves them out unless asked, and
# rarely draws them even then), booleans, null and integers, never floats.
_any_char = st.one_of(st.characters(exclude_categories=()), st.sampled_from(["\ud800", "\udbff", "\udc00", "\udfff"]))
_doc_scalars = st.one_of(st.none(), st.booleans(), st.text(_any_char), st.integers(),
                         st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x7f)))
_stored_documents = st.recursive(_doc_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=8), inner, max_size=6)), max_leaves=30)


@settings(max_examples=1000, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.text(max_size=8), _stored_documents, max_size=6))
def test_document_json_is_the_standard_librarys_compact_json(document):
    assert document_json(document) == json.dumps(document, ensure_ascii=False, separators=(",", ":"))


@settings(max_examples=300, deadline=None, database=None)
@given(st.builds(
    CredentialRequest, recipient_name=st.text(_any_char, min_size=1),
    recipient_email=st.emails(), achievement_name=st.text(min_size=1),
    achievement_type=st.sampled_from(["Diploma", "Course"]), description=st.text(min_size=1), awarded_on=st.dates(),
    valid_until=st.none() | st.dates(), grade=st.none() | st.text(max_size=10)))
def test_the_plain_fingerprint_is_the_checked_one(req):
    """plain_fingerprint skips the shape walk for documents build_credential
    made; it must give the same leaf (or refuse a lone surrogate the same way)."""
    doc = build_credential(req, PROFILE)
    try:
        expected = fingerprint(doc)
    except rfc8785.CanonicalizationError as exc:
        with pytest.raises(type(exc)):
            plain_fingerprint(doc)
        return
    assert plain_fingerprint(doc) == expected


def test_eip712_digest_and_signature_match_eth_account():
    fp = fingerprint(build_credential(request(), PROFILE))
    message = encode_typed_data(full_message=typed_data(fp, DOMAIN))
    assert _hash_eip191_message(message) == signing_digest(fp, DOMAIN)
    theirs = Account.sign_message(message, KEY)
    ours = Signer(KEY).sign(fp, DOMAIN)
    assert ours == theirs.signature
    assert Account.recover_message(message, signature=ours) == ADDRESS
    assert recover_signer(fp, ours, DOMAIN) == ADDRESS == Signer(KEY).address


def test_a_tampered_field_fails_recovery():
    doc = build_credential(request(), PROFILE)
    signature = Signer(KEY).sign(fingerprint(doc), DOMAIN)
    tampered = copy.deepcopy(doc)
    tampered["credentialSubject"]["result"][0]["value"] = "Third Class"
    assert recover_signer(fingerprint(tampered), signature, DOMAIN) != ADDRESS
    other_domain = Eip712Domain(1, REGISTRY)
    assert recover_signer(fingerprint(doc), signature, other_domain) != ADDRESS


def _leaves(n: int) -> list[bytes]:
    return [keccak256(i.to_bytes(4, "big")) for i in range(n)]


@pytest.mark.parametrize("n", [1, 2, 3, 1000])
def test_merkle_paths_in_python(n):
    leaves = _leaves(n)
    tree = MerkleTree(leaves)
    for i, leaf in enumerate(leaves):
        assert verify_path(leaf, tree.path(i), tree.root)
    if n == 1:
        assert tree.root == leaves[0] and tree.path(0) == []
    assert not verify_path(keccak256(b"stranger"), tree.path(0), tree.root)


def test_every_path_text_at_once_is_each_path_joined():
    """path_texts builds all the paths' JSON from the root down; on every
    tree shape up to 70 leaves (odd nodes carried up at various levels) it is
    exactly each leaf's own path, as the stored credentials carry it."""
    for n in range(1, 71):
        tree = MerkleTree(_leaves(n))
        texts = tree.path_texts()
        assert len(texts) == n
        for i, text in enumerate(texts):
            assert json.loads(f"[{text}]") == tree.path_hex(i) == ["0x" + p.hex() for p in tree.path(i)]


@pytest.mark.parametrize("n", [1, 2, 3, 1000])
def test_merkle_paths_checked_by_the_contract(registry, n):
    leaves = _leaves(n)
    tree = MerkleTree(leaves)
    # Every path, asked of the contract in one JSON-RPC batch (1,000 eth_calls).
    calls = [registry.contract.functions.verify(leaves[i], tree.path(i), tree.root) for i in range(n)]
    with registry.w3.batch_requests() as batch:
        for call in calls:
            batch.add(call)
        answers = batch.execute()
    assert answers == [True] * n
    assert registry.verify_proof(leaves[-1], tree.path(n - 1), tree.root)
    wrong = tree.path(0)
    if wrong:
        assert not registry.verify_proof(leaves[0], [keccak256(b"x")] + wrong[1:], tree.root)
    assert not registry.verify_proof(keccak256(b"stranger"), tree.path(0), tree.root)


def test_to_hex_round_trip():
    fp = fingerprint(build_credential(request(), PROFILE))
    assert to_hex(fp).startswith("0x") and len(to_hex(fp)) == 66
