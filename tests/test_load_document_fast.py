"""`validate.load_document`'s fast path: a text that orjson writes back byte
for byte is taken as orjson read it; every other text goes to the standard
library with the duplicate-key, constant and number rules. Both ways must
give the same outcome for every input: the same document (the same types,
in the same order) or the same refusal."""

from __future__ import annotations

import json
from datetime import date

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from credentials import ed25519, validate
from credentials.canonical import to_hex
from credentials.document import CredentialRequest, IssuerProfile
from credentials.issuing_pool import BatchTerms, assemble, issue_one
from credentials.signing import Signer
from credentials.validate import NotACredential, load_document

ETH_KEY = bytes.fromhex("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
PROFILE = IssuerProfile("University of Testing", Signer(ETH_KEY).address, 31337, "https://uni.example.edu",
                        did_web="did:web:uni.example.edu")


def outcome(raw: bytes, fast: bool, monkeypatch) -> tuple[str, str]:
    """('doc', repr) or ('refused', message): repr tells 1 from 1.0 and keeps the order."""
    with monkeypatch.context() as patch:
        if not fast:
            patch.setattr(validate, "_round_trip", lambda raw: None)
        try:
            return "doc", repr(load_document(raw, wrapped_ok=True))
        except NotACredential as exc:
            return "refused", str(exc)


_chars = st.one_of(st.characters(exclude_categories=()), st.sampled_from(["\ud800", "\udfff", "é", "\u2028", "/"]))
_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(-2**70, 2**70),
                     st.floats(allow_nan=False, allow_infinity=False), st.text(_chars, max_size=6))
_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(_chars, max_size=4), inner, max_size=4)), max_leaves=20)


def _written(value, style: str) -> bytes:
    """The value as text, in one of the ways a sender might write it."""
    if style == "orjson":
        return orjson.dumps(value)
    if style == "compact":
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")
    if style == "ascii":
        return json.dumps(value, separators=(",", ":")).encode()
    return json.dumps(value, ensure_ascii=False, indent=1).encode("utf-8", "surrogatepass")


# What a hostile or careless sender adds to a compact text, spliced in after the opening brace.
_SPLICES = ['"type":1,', '"type":2,"type":3,', '"n":NaN,', '"n":1e400,', '"n":-0,', '"n":1E2,', '"n":1.50,',
            '"s":"\\ud800",', '"s":"\\u00e9",', '"s":"\\/",', '"n":123456789012345678901234567890,', '"n":2e-400,',
            '"n":Infinity,']


@settings(max_examples=600, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.dictionaries(st.text(_chars, max_size=4), _values, max_size=5),
       style=st.sampled_from(["orjson", "compact", "ascii", "indented"]),
       splice=st.none() | st.sampled_from(_SPLICES), wrapped=st.booleans())
def test_both_ways_give_the_same_outcome(monkeypatch, body, style, splice, wrapped):
    body = {"type": ["VerifiableCredential"], **body}
    try:
        raw = _written({"credential": body} if wrapped else body, style)
    except (orjson.JSONEncodeError, UnicodeEncodeError):
        return  # orjson will not write a lone surrogate: nothing to send
    if splice is not None:
        raw = b"{" + splice.encode() + raw[1:]
    assert outcome(raw, True, monkeypatch) == outcome(raw, False, monkeypatch)


@pytest.fixture(scope="module")
def issued_text(tmp_path_factory) -> bytes:
    """A credential as Attest stores and hands it out: both proofs, the text orjson wrote."""
    ring = ed25519.load_or_create_keyring(tmp_path_factory.mktemp("keys"))
    terms = BatchTerms(profile=PROFILE, chain_id=31337, registry="0x5FbDB2315678afecb367f032d93F642f64180aa3",
                       created="2026-01-15T09:30:00Z", batch_id="batch-1",
                       verification_method=ring.verification_method(PROFILE.did))
    request = CredentialRequest("Zoë Ñúñez", "zoe@example.edu", "BSc Chemistry", "BachelorDegree",
                                "Three years, «with honours».", date(2025, 6, 30), None, "First")
    item = issue_one(request, ("https://uni.example.edu/status/1", 7), terms, Signer(ETH_KEY), ring.signing_key)
    root, path = to_hex(bytes([1]) * 32), to_hex(bytes([2]) * 32)
    return assemble(item, root, f'"{path}"').encode()


def test_attest_s_own_credentials_take_the_fast_path(monkeypatch, issued_text):
    calls = []
    real = json.loads
    monkeypatch.setattr(validate.json, "loads", lambda *a, **k: calls.append(1) or real(*a, **k))
    doc = load_document(issued_text)
    assert calls == [], "an issued credential went to the standard library"
    assert [p["type"] for p in doc["proof"]] == ["DataIntegrityProof", "AttestEip712MerkleProof2026"]
    assert doc == real(issued_text)
    load_document(issued_text.replace(b'","', b'", "', 1))  # one space: the slow way
    assert calls == [1]


def test_a_repeated_key_in_a_compact_text_is_refused(issued_text):
    """orjson keeps the last of two equal keys: had the fast path trusted its
    reading, a second `issuer` would have slipped through unseen."""
    sneaky = issued_text.replace(b'"issuer":', b'"issuer":{"id":"did:web:evil.example"},"issuer":', 1)
    assert sneaky != issued_text
    with pytest.raises(NotACredential, match="the key 'issuer' twice"):
        load_document(sneaky)


@pytest.mark.parametrize(("splice", "refusal"), [
    (b'"n":1e400,', "beyond what JSON numbers can carry"),
    (b'"n":NaN,', "NaN is not valid JSON"),
    (b'"s":"\\ud800",', "lone surrogate"),
])
def test_what_the_rules_refuse_is_refused_in_a_compact_text(issued_text, splice, refusal):
    with pytest.raises(NotACredential, match=refusal):
        load_document(b"{" + splice + issued_text[1:])


def test_a_byte_order_mark_is_read_the_slow_way_as_before(issued_text):
    assert load_document(b"\xef\xbb\xbf" + issued_text) == load_document(issued_text)
