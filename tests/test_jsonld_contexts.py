"""The pinned contexts and the offline loader: every shipped file matches its
hash and the npm package it came from, the loader answers only the URLs
Attest emits or accepts, and an Attest credential with both proofs expands
in safe mode, in pyld (expand_safe) as in jsonld.js."""

from __future__ import annotations

import copy
import hashlib
import json

import pytest

from credentials import jsonld
from credentials.document import make_proof
from tests.helpers_dataintegrity import anchor_proof, node, unsigned_credential

MANIFEST = json.loads(jsonld.MANIFEST.read_text())


def _entries():
    for url, entry in MANIFEST["official"].items():
        yield url, entry
    for path, entry in MANIFEST["installation"].items():
        yield path, entry


@pytest.mark.parametrize("name,entry", list(_entries()), ids=lambda v: v if isinstance(v, str) else "")
def test_every_shipped_context_matches_its_pinned_hash(name, entry):
    raw = (jsonld.CONTEXTS_DIR / entry["file"]).read_bytes()
    assert hashlib.sha256(raw).hexdigest() == entry["sha256"], f"{entry['file']} changed; update the manifest"
    assert "@context" in json.loads(raw)


def test_the_manifest_names_every_file_in_the_directory():
    listed = {e["file"] for _, e in _entries()} | {"manifest.json"}
    assert {p.name for p in jsonld.CONTEXTS_DIR.iterdir()} == listed


def test_official_contexts_are_the_npm_packages_copies():
    results = node("compare_contexts.mjs", {})["results"]
    assert {r["url"] for r in results} == set(MANIFEST["official"])
    assert [r for r in results if not r["match"]] == []


def test_a_changed_file_is_refused_at_load(tmp_path, monkeypatch):
    for name in ("manifest.json", "attest-v1.jsonld", *{e["file"] for e in MANIFEST["official"].values()}):
        (tmp_path / name).write_bytes((jsonld.CONTEXTS_DIR / name).read_bytes())
    (tmp_path / "attest-v1.jsonld").write_text((tmp_path / "attest-v1.jsonld").read_text().replace(
        "merkleRoot", "merkleRooted"))
    monkeypatch.setattr(jsonld, "CONTEXTS_DIR", tmp_path)
    monkeypatch.setattr(jsonld, "MANIFEST", tmp_path / "manifest.json")
    jsonld._pinned.cache_clear()
    try:
        with pytest.raises(jsonld.ContextIntegrityError, match="attest-v1.jsonld"):
            jsonld.context_document(jsonld.VC_V2)
    finally:
        jsonld._pinned.cache_clear()


@pytest.mark.parametrize("url", [
    "https://uni.example.edu/contexts/attest/v1",
    "http://127.0.0.1:5000/contexts/attest/v1",
    "https://example.org/attest/contexts/attest/v1",
    "http://localhost/contexts/attest/v1",
])
def test_the_attest_context_is_served_under_any_origin(url):
    assert jsonld.is_attest_context_url(url)
    assert jsonld.context_document(url) == json.loads((jsonld.CONTEXTS_DIR / "attest-v1.jsonld").read_text())


@pytest.mark.parametrize("url", [
    "https://uni.example.edu/contexts/attest/v2",
    "https://uni.example.edu/contexts/attest/v1/",
    "https://uni.example.edu/contexts/attest/v1?x=1",
    "https://uni.example.edu/contexts/attest/v1#frag",
    "https://user@uni.example.edu/contexts/attest/v1",
    "ftp://uni.example.edu/contexts/attest/v1",
    "file:///contexts/attest/v1",
    "/contexts/attest/v1",
    "https://www.w3.org/2018/credentials/v1",
    "https://www.w3.org/ns/credentials/examples/v2",
    "https://purl.imsglobal.org/spec/ob/v3p0/context.json",
    "https://evil.example/ns/credentials/v2",
    "https://www.w3.org/ns/credentials/v2/",
])
def test_every_other_url_is_refused_naming_it(url):
    with pytest.raises(jsonld.ContextRefused) as refused:
        jsonld.context_document(url)
    assert url in str(refused.value) and refused.value.url == url


def test_a_credential_naming_an_unknown_context_is_refused_in_its_own_words():
    doc = unsigned_credential()
    doc["@context"] = [*doc["@context"], "https://evil.example/context.jsonld"]
    with pytest.raises(jsonld.ContextRefused, match="evil.example"):
        jsonld.expand_safe(doc)
    with pytest.raises(jsonld.ContextRefused, match="evil.example"):
        jsonld.canonize(doc)


def _whole_credential() -> dict:
    doc = unsigned_credential()
    doc["proof"] = [{"type": "DataIntegrityProof", "cryptosuite": "eddsa-rdfc-2022", "created": "2026-01-01T00:00:00Z",
                     "verificationMethod": "did:web:uni.example.edu#z6MkTest", "proofPurpose": "assertionMethod",
                     "proofValue": "z3ZfJ"}, anchor_proof()]
    return doc


def test_the_whole_credential_with_both_proofs_expands_safely_in_pyld_and_jsonld_js():
    doc = _whole_credential()
    expanded = jsonld.expand_safe(doc)
    assert node("expand_safe.mjs", {"document": doc}) == {"ok": True, "error": None, "events": []}
    text = json.dumps(expanded)
    for term in ("AttestEip712MerkleProof2026", "fingerprint", "eip712Signature", "eip712Domain", "anchor",
                 "chainId", "registry", "merkleRoot", "merklePath", "transactionHash", "batch",
                 "verifyingContract", "eip712DomainName", "eip712DomainVersion"):
        assert f"{jsonld.ATTEST_VOCAB}{term}" in text, term


def test_an_anchor_proof_without_transaction_or_batch_still_expands_safely():
    doc = _whole_credential()
    doc["proof"][1] = make_proof(fingerprint="0x" + "ab" * 32, signature="0x" + "cd" * 65,
                                 signer="0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266", chain_id=1,
                                 registry="0x5FbDB2315678afecb367f032d93F642f64180aa3", merkle_root="0x" + "ef" * 32,
                                 merkle_path=[], created="2026-01-01T00:00:00Z")
    jsonld.expand_safe(doc)
    assert node("expand_safe.mjs", {"document": doc})["ok"]


def test_without_attest_context_both_name_the_undefined_proof_terms():
    doc = _whole_credential()
    doc["@context"] = doc["@context"][:3]
    with pytest.raises(jsonld.UnsafeJsonLd) as unsafe:
        jsonld.expand_safe(doc)
    message = str(unsafe.value)
    assert "AttestEip712MerkleProof2026" in message
    for term in ("fingerprint", "signature", "eip712Domain", "anchor"):
        assert repr(term) in message, term
    answer = node("expand_safe.mjs", {"document": doc})
    assert not answer["ok"] and "Safe mode validation error" in answer["error"]


def test_without_ob_extensions_the_schema_validator_type_is_named():
    """The issue's first finding: 1EdTechJsonSchemaValidator2019 needs OB's
    extensions.json."""
    doc = unsigned_credential()
    doc["@context"] = [c for c in doc["@context"] if c != jsonld.OB_EXTENSIONS]
    with pytest.raises(jsonld.UnsafeJsonLd, match="1EdTechJsonSchemaValidator2019"):
        jsonld.expand_safe(doc)
    answer = node("expand_safe.mjs", {"document": doc})
    assert not answer["ok"] and "relative @type reference" in answer["error"]


@pytest.mark.parametrize("change,expected", [
    (lambda d: d.__setitem__("nickname", "x"), "'nickname'"),
    (lambda d: d["credentialSubject"].__setitem__("id", "student-42"), "student-42"),
    (lambda d: d["credentialSubject"]["identifier"].append({"type": "Nobody"}), "'Nobody'"),
])
def test_expand_safe_names_what_would_be_dropped(change, expected):
    doc = unsigned_credential()
    change(doc)
    with pytest.raises(jsonld.UnsafeJsonLd) as unsafe:
        jsonld.expand_safe(doc)
    assert expected in str(unsafe.value)
    assert not node("expand_safe.mjs", {"document": doc})["ok"], "jsonld.js safe mode agrees"


def test_merkle_path_order_is_signed_into_the_rdf():
    """merklePath is an @list: the order of siblings is part of the proof's
    meaning, so swapping two must change the canonical form."""
    doc = _whole_credential()
    swapped = copy.deepcopy(doc)
    swapped["proof"][1]["anchor"]["merklePath"].reverse()
    assert jsonld.canonize(doc) != jsonld.canonize(swapped)


def test_chain_ids_are_typed_integers():
    nquads = jsonld.canonize(_whole_credential())
    assert f'<{jsonld.ATTEST_VOCAB}chainId> "31337"^^<http://www.w3.org/2001/XMLSchema#integer>' in nquads


def test_a_did_document_with_multikeys_and_a_registry_service_expands_safely():
    did = {"@context": [jsonld.DID_V1, jsonld.MULTIKEY_V1, jsonld.attest_context_url("https://uni.example.edu")],
           "id": "did:web:uni.example.edu",
           "verificationMethod": [{"id": "did:web:uni.example.edu#z6MkX", "type": "Multikey",
                                   "controller": "did:web:uni.example.edu", "publicKeyMultibase": "z6MkX"}],
           "assertionMethod": ["did:web:uni.example.edu#z6MkX"],
           "service": [{"id": "did:web:uni.example.edu#registry-31337", "type": "AttestCredentialRegistry",
                        "serviceEndpoint": "eip155:31337:0x5fbdb2315678afecb367f032d93f642f64180aa3"}]}
    jsonld.expand_safe(did)
    assert node("expand_safe.mjs", {"document": did})["ok"]
