"""The fast issuing path is the slow one, byte for byte.

Workers return each credential's JSON in two pieces and the issuing process
fills in the Merkle root and path (credentials.issuing_pool); the tree is
built as leaves stream in (merkle.MerkleBuilder). Both are checked here
against the plain construction (build_credential, make_proof, the Data
Integrity proof, json.dumps of the whole document; MerkleTree over all
leaves) on generated inputs.
"""

from __future__ import annotations

import json
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from credentials import dataintegrity, ed25519, statuslist
from credentials.canonical import fingerprint, from_hex, to_hex
from credentials.document import CredentialRequest, IssuerProfile, build_credential, make_proof
from credentials.issuing_pool import BatchTerms, IssuingPool, assemble, issue_one
from credentials.merkle import MerkleBuilder, MerkleTree
from credentials.signing import Eip712Domain, Signer, recover_signer

ETH_KEY = bytes.fromhex("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
REGISTRY = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
PROFILE = IssuerProfile("University of Testing", Signer(ETH_KEY).address, 31337, "https://uni.example.edu",
                        did_web="did:web:uni.example.edu")
CREATED = "2026-01-15T09:30:00Z"


@pytest.fixture(scope="module")
def ring(tmp_path_factory):
    return ed25519.load_or_create_keyring(tmp_path_factory.mktemp("keys"))


def terms(ring=None, batch_id: str = "batch-1") -> BatchTerms:
    return BatchTerms(profile=PROFILE, chain_id=31337, registry=REGISTRY, created=CREATED, batch_id=batch_id,
                      verification_method=ring.verification_method(PROFILE.did) if ring else None)


text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40).filter(str.strip)
requests = st.builds(
    CredentialRequest, recipient_name=text, recipient_email=st.emails(), achievement_name=text,
    achievement_type=st.sampled_from(["BachelorDegree", "MasterDegree", "Diploma", "Certificate"]),
    description=text, awarded_on=st.dates(date(1990, 1, 1), date(2030, 12, 31)),
    valid_until=st.none() | st.dates(date(2031, 1, 1), date(2060, 1, 1)),
    grade=st.none() | st.sampled_from(["First", "2:1", "Merit", 'A "quoted" grade', "ø"]))
paths = st.lists(st.binary(min_size=32, max_size=32), max_size=16)


def slow_document(request, status, item_id, ring, root: str, path: list[str]) -> str:
    """The document made the plain way, then serialised whole."""
    doc = build_credential(request, PROFILE, credential_id=item_id, status=statuslist.status_entry(*status))
    leaf = fingerprint(doc)
    anchor = make_proof(fingerprint=to_hex(leaf), signature=to_hex(Signer(ETH_KEY).sign(leaf, Eip712Domain(
        31337, REGISTRY))), signer=PROFILE.address, chain_id=31337, registry=REGISTRY, merkle_root=root,
        merkle_path=path, created=CREATED, batch="batch-1")
    if ring is not None:
        di = dataintegrity.sign_eddsa_rdfc_2022(doc, ring.signing_key, ring.verification_method(PROFILE.did), CREATED)
        doc["proof"] = [di, anchor]
    else:
        doc["proof"] = anchor
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))  # the standard library, not orjson


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(request=requests, index=st.integers(0, 131071), root=st.binary(min_size=32, max_size=32), path=paths,
       with_di=st.booleans())
def test_assembled_text_is_the_whole_document_serialised(ring, request, index, root, path, with_di):
    key = ring if with_di else None
    status = ("https://uni.example.edu/status/1", index)
    item = issue_one(request, status, terms(key), Signer(ETH_KEY), ring.signing_key if with_di else None)
    root_hex, path_hex = to_hex(root), [to_hex(p) for p in path]
    fast = assemble(item, root_hex, json.dumps(path_hex, separators=(",", ":"))[1:-1])
    assert fast == slow_document(request, status, item.id, key, root_hex, path_hex)
    doc = json.loads(fast)
    assert fingerprint(doc) == item.leaf  # the leaf is the JCS fingerprint of the document without proof


@settings(max_examples=200, deadline=None, database=None)
@given(st.integers(1, 700))
def test_the_streamed_tree_is_the_tree(n):
    leaves = [i.to_bytes(32, "big") for i in range(n)]
    builder = MerkleBuilder()
    for leaf in leaves:
        builder.add(leaf)
    assert builder.tree().levels == MerkleTree(leaves).levels


def test_the_streamed_tree_needs_leaves_of_32_bytes():
    with pytest.raises(ValueError, match="32 bytes"):
        MerkleBuilder().add(b"short")
    with pytest.raises(ValueError, match="at least one leaf"):
        MerkleBuilder().tree()


def test_the_pool_issues_what_this_process_issues(ring):
    reqs = [CredentialRequest(f"Student {i} Zoë", f"s{i}@example.edu", "BSc Chemistry", "BachelorDegree",
                              "Three years.", date(2025, 6, 30), None, "First" if i % 2 else None)
            for i in range(9)]
    statuses = [("https://uni.example.edu/status/1", 100 + i) for i in range(9)]
    with IssuingPool(ETH_KEY, ring.signing_key, processes=2) as pool:
        assert pool.address == PROFILE.address and pool.ed_public == ring.current.public_key_multibase
        issued = [item for chunk in pool.issue(reqs, statuses, terms(ring), chunk=4) for item in chunk]
    assert len(issued) == 9 and len({i.id for i in issued}) == 9
    tree = MerkleTree([i.leaf for i in issued])
    domain = Eip712Domain(31337, REGISTRY)
    paths = tree.path_texts()
    for n, (item, request) in enumerate(zip(issued, reqs, strict=True)):
        text = assemble(item, to_hex(tree.root), paths[n])
        assert text == slow_document(request, statuses[n], item.id, ring, to_hex(tree.root), tree.path_hex(n))
        doc = json.loads(text)
        di, anchor = doc["proof"]
        assert dataintegrity.verify_eddsa_rdfc_2022(doc, di, ring.current.public_key_multibase)
        assert recover_signer(item.leaf, from_hex(anchor["signature"]), domain) == PROFILE.address
