"""The per-shape canonicalization fast path is byte-identical to plain pyld.

Like canonical.py's JCS fast path, it is proven by generation: hypothesis
builds credentials of every shape Attest issues (names in any script, with
quotes, backslashes, new lines and control characters; optional grade,
expiry and salted email; any date; ids that the fast path takes and ids it
must hand to pyld), and the N-Quads must be the same bytes as pyld's, or
both must refuse the document.
"""

from __future__ import annotations

import builtins
import copy
import dataclasses
import uuid
from datetime import date, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyld import jsonld as pyld

from credentials import dataintegrity, jsonld, rdfc, statuslist
from credentials.document import ACHIEVEMENT_TYPES, CredentialRequest, IssuerProfile, build_credential
from tests.helpers_dataintegrity import anchor_proof, unsigned_credential

# Any character but lone surrogates (no JSON text carries them) and C0/C1
# controls, which come from `_tricky` (the portable ones) and `_control` (the
# ones pyld and RDFC-1.0 write differently, so both paths must refuse them).
_text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=40)
_tricky = st.sampled_from(['"', "\\", "\n", "\r", "\t", "\\n", '\\"', "é", "李", "\U0001f393", " ", "<>", "\u2028",
                           "\x85", "@id", "urn:x", "_:b0", "\u0301", "\ufeff"])
_control = st.sampled_from([""] * 12 + ["\x08", "\x7f", "\x00", "\x1b"])
_names = st.lists(st.one_of(_text, _tricky), min_size=1, max_size=4).map("".join)
_plain_ids = st.uuids().map(lambda u: f"urn:uuid:{u}")
_other_ids = st.sampled_from(["urn:uuid:Zoë", "https://uni.example.edu/a b", "_:b1", "did:web:uni.example.edu",
                              "https://uni.example.edu/credentials/1?x=<y>", "name", "schema:Thing"])
_origins = st.sampled_from(["https://uni.example.edu", "http://localhost:5000", "https://example.org/attest"])


@st.composite
def attest_credentials(draw) -> dict:
    """A credential of one of Attest's shapes, with generated values."""
    request = CredentialRequest(
        recipient_name=draw(_names) + draw(_control), recipient_email=draw(st.emails()),
        achievement_name=draw(_names), achievement_type=draw(st.sampled_from(ACHIEVEMENT_TYPES)),
        description=draw(_names), awarded_on=draw(st.dates()),
        valid_until=draw(st.none() | st.dates()), grade=draw(st.none() | _names))
    origin = draw(_origins)
    issuer = IssuerProfile(draw(_names), "0x5FbDB2315678afecb367f032d93F642f64180aa3", 31337,
                           draw(st.none() | st.just(origin)))
    salt = draw(st.none() | st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7e), min_size=1, max_size=8))
    doc = build_credential(request, issuer, credential_id=draw(st.one_of(*[_plain_ids] * 4, _other_ids)),
                           hash_email_salt=salt)
    doc["@context"] = jsonld.credential_contexts(origin)
    if draw(st.booleans()):
        doc["issuer"]["id"] = "did:web:" + origin.split("://", 1)[1].replace(":", "%3A").replace("/", ":")
    if draw(st.booleans()):
        doc["credentialStatus"] = statuslist.status_entry(f"{origin}/status/{draw(st.integers(0, 9))}",
                                                          draw(st.integers(0, 2**20)))
    return doc


def _outcome(fn, document):
    try:
        return fn(document)
    except (jsonld.NotPortable, jsonld.UnsafeJsonLd) as exc:
        return type(exc)


_NORMALIZE = {"algorithm": "URDNA2015", "format": "application/n-quads", "documentLoader": jsonld.document_loader,
              "base": None}

# One canonicalizer across examples, as in a worker: templates made from
# earlier examples serve later ones.
_SHARED = rdfc.ShapeCanonicalizer(check_first=False)


@settings(max_examples=250, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(attest_credentials())
def test_fast_path_is_byte_identical_to_pyld_on_generated_credentials(document):
    plain = _outcome(jsonld.canonize, document)
    fast = _SHARED.try_fast(document)
    if fast is None:
        # Handed to pyld: the canonicalizer's answer is pyld's, refusals included.
        assert _outcome(_SHARED.canonize, document) == plain
    else:
        assert fast == plain == pyld.normalize(document, _NORMALIZE)


def test_the_generated_credentials_mostly_take_the_fast_path():
    """The property above would hold vacuously if nothing went fast."""
    canon = rdfc.ShapeCanonicalizer(check_first=False)
    for i in range(40):
        doc = unsigned_credential(name=f"Student {i} \"ü\"\n\\", grade=None if i % 3 else "2:1", index=i)
        doc["id"] = f"urn:uuid:{uuid.uuid4()}"
        assert canon.try_fast(doc) == jsonld.canonize(doc)
    assert canon.stats["fast"] == 40 and canon.stats["shapes"] == 2


@settings(max_examples=60, deadline=None, database=None)
@given(st.sampled_from(["did:web:uni.example.edu#z6Mk1", "did:key:z6MkX#z6MkX", "https://uni.example.edu/keys/1"]),
       st.datetimes(min_value=datetime(1000, 1, 1)).map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ")), _origins)
def test_fast_path_on_proof_options_and_status_lists(method, created, origin):
    options = dataintegrity.proof_options(method, created)
    options["@context"] = jsonld.credential_contexts(origin)
    listed = statuslist.status_list_credential(f"{origin}/status/1", "did:web:x", statuslist.StatusList(), created)
    for document in (options, listed):
        assert _SHARED.try_fast(document) == jsonld.canonize(document)


def test_merged_nodes_and_collapsed_values_go_to_pyld():
    """pyld merges nodes with one id and keeps equal values of a property
    once: a template would not, so such documents must leave the fast path."""
    canon = rdfc.ShapeCanonicalizer(check_first=False)
    base = unsigned_credential()
    assert canon.try_fast(base) is not None
    merged = copy.deepcopy(base)
    merged["credentialSubject"]["achievement"]["id"] = merged["issuer"]["id"]
    assert canon.try_fast(merged) is None
    assert canon.canonize(merged) == jsonld.canonize(merged)

    tagged = copy.deepcopy(base)
    tagged["credentialSubject"]["achievement"]["tag"] = ["maths", "physics"]
    assert canon.try_fast(tagged) is not None
    tagged["credentialSubject"]["achievement"]["tag"] = ["maths", "maths"]
    assert canon.try_fast(tagged) is None
    assert canon.canonize(tagged) == jsonld.canonize(tagged)
    assert jsonld.canonize(tagged).count("keywords") == 1


def test_documents_outside_the_shapes_go_to_pyld():
    canon = rdfc.ShapeCanonicalizer()
    doc = unsigned_credential()
    inline = copy.deepcopy(doc)
    inline["credentialSubject"]["@context"] = {"nickname": "https://example.org/nickname"}
    inline["credentialSubject"]["nickname"] = "Zo"
    assert canon.try_fast(inline) is None
    assert canon.canonize(inline) == jsonld.canonize(inline)
    floaty = copy.deepcopy(doc)
    floaty["credentialSubject"]["creditsEarned"] = 12.5
    assert canon.try_fast(floaty) is None
    assert canon.canonize(floaty) == jsonld.canonize(floaty)


def test_the_first_document_of_a_shape_is_checked_against_pyld(monkeypatch):
    """A template that disagreed with pyld on its first document is never used."""
    canon = rdfc.ShapeCanonicalizer()
    real = rdfc.make_template

    def skewed(document, count):
        template = real(document, count)
        return dataclasses.replace(template, lines=template.lines[1:])  # one quad lost

    monkeypatch.setattr(rdfc, "make_template", skewed)
    doc = unsigned_credential()
    assert canon.canonize(doc) == jsonld.canonize(doc)
    again = unsigned_credential(name="Another Student")
    assert canon.canonize(again) == jsonld.canonize(again)
    assert canon.stats["fast"] == 0


def test_unsafe_documents_are_refused_not_cached():
    canon = rdfc.ShapeCanonicalizer()
    doc = unsigned_credential()
    doc["nickname"] = "undefined term"
    with pytest.raises(jsonld.UnsafeJsonLd, match="nickname"):
        canon.canonize(doc)
    with pytest.raises(jsonld.UnsafeJsonLd, match="nickname"):
        canon.canonize(doc)


def test_the_anchor_proof_shape_canonicalizes_identically():
    """Not signed by the Data Integrity proof, but the same machinery must
    hold for it (a verifier may canonicalize a whole credential)."""
    canon = rdfc.ShapeCanonicalizer(check_first=False)
    for path in (["0x" + "01" * 32, "0x" + "02" * 32], ["0x" + "02" * 32, "0x" + "01" * 32]):
        doc = dict(unsigned_credential(), proof=dict(anchor_proof(), anchor=dict(anchor_proof()["anchor"],
                                                                                 merklePath=path)))
        canon.try_fast(doc)
        assert canon.try_fast(doc) == jsonld.canonize(doc)


def test_awarded_on_dates_far_from_now():
    canon = rdfc.ShapeCanonicalizer(check_first=False)
    for day in (date(1, 1, 1), date(9999, 12, 31)):
        request = CredentialRequest("A", "a@example.edu", "B", "Diploma", "C", day)
        doc = build_credential(request, IssuerProfile("U", "0x5FbDB2315678afecb367f032d93F642f64180aa3", 1))
        doc["@context"] = jsonld.credential_contexts("https://u.example")
        canon.try_fast(doc)
        assert canon.try_fast(doc) == jsonld.canonize(doc)


def test_blank_nodes_that_hash_alike_go_through_pyld_canonicalization():
    """Two identical results: their first-degree hashes tie, so the labels
    need RDFC-1.0's n-degree step, which the fast path leaves to pyld."""
    canon = rdfc.ShapeCanonicalizer(check_first=False)
    doc = unsigned_credential()
    doc["credentialSubject"]["result"] = [{"type": ["Result"], "value": "A"}, {"type": ["Result"], "value": "B"}]
    canon.try_fast(doc)
    assert canon.try_fast(doc) == jsonld.canonize(doc)
    doc["credentialSubject"]["result"][1]["value"] = "A"
    key, values = rdfc.shape_of(doc)
    template = canon._templates[key]
    assert template.canonical_nquads(values) == rdfc._canonize_fresh(template.dataset(values))
    assert canon.try_fast(doc) == jsonld.canonize(doc)


@settings(max_examples=120, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(attest_credentials())
def test_the_generated_renderer_is_the_walked_template(document):
    """Each template's lines run as generated Python (`Template.renderer`);
    it must give what walking the template gives, or tie where it ties."""
    _SHARED.try_fast(document)
    try:
        key, values = rdfc.shape_of(document)
    except rdfc._Unshaped:
        return
    template = _SHARED._templates.get(key)
    if not isinstance(template, rdfc.Template) or not template.accepts(values):
        return
    assert template.renderer is not None
    assert template.renderer(values) == template.interpreted_nquads(values)


def test_strings_in_a_template_stay_strings_in_its_source():
    """The template's constants come from the first document of a shape,
    which may be anyone's: quotes and code in a constant (here a type,
    which expansion reads, so it is no slot) must
    come out as text, exactly as pyld writes it. (Double quotes, backslashes
    and braces in an IRI are refused before any template is made.)"""
    canon = rdfc.ShapeCanonicalizer(check_first=False)
    doc = unsigned_credential()
    hostile = "urn:x:'''),__import__('builtins').setattr(__import__('builtins'),'attest_ran',1)#'"
    doc["credentialSubject"]["type"] = ["AchievementSubject", hostile]
    canon.try_fast(doc)
    key, values = rdfc.shape_of(doc)
    template = canon._templates[key]
    assert isinstance(template, rdfc.Template) and template.renderer is not None
    assert canon.try_fast(doc) == jsonld.canonize(doc)
    assert "__import__" in jsonld.canonize(doc)
    assert not hasattr(builtins, "attest_ran")  # had the text run as code, it would have set this


def test_equal_shapes_share_a_key_and_different_ones_do_not():
    """The flat shape key: True, 1 and None, a slot and an interpreted
    string, and a value moved between nesting levels all tell shapes apart."""
    base = unsigned_credential()
    variants = []
    for change in (lambda d: d.__setitem__("x", True), lambda d: d.__setitem__("x", 1),
                   lambda d: d.__setitem__("x", None), lambda d: d.__setitem__("x", [True]),
                   lambda d: d.__setitem__("x", {"y": 1}), lambda d: d["credentialSubject"].__setitem__("x", 1),
                   lambda d: d.__setitem__("type", [*d["type"], "Extra"])):
        doc = copy.deepcopy(base)
        change(doc)
        variants.append(rdfc.shape_of(doc)[0])
    assert len(set(variants)) == len(variants)
    renamed = copy.deepcopy(base)
    renamed["name"] = "Another name altogether"
    assert rdfc.shape_of(renamed)[0] == rdfc.shape_of(base)[0]
    assert rdfc.shape_of(renamed)[1] != rdfc.shape_of(base)[1]


def test_a_line_source_keeps_any_constant_as_text():
    """Below the IRI rules: a constant piece holding every quote, backslashes,
    a new line and braces evaluates back to itself."""
    constant = 'a"\\\n\'\'\'{}"""\x00'
    source = rdfc._line_expression((constant, (" x ", 0, "y")), ("_:b0",), lambda label: (False, "_:q"))
    assert eval(source, {"t": ["V"]}) == constant + "_:q x Vy"  # noqa: S307 - the code under test
