"""The `format` check alone: each VC Data Model 2.0 MUST and Open Badges 3.0
field, broken one at a time, gives a reason naming the path, what was
expected and what was found. No chain needed."""

from __future__ import annotations

import functools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from credentials.document import IssuerProfile, build_credential
from credentials.validate import validate_document
from tests.helpers_credentials import edited, request

ISSUER = IssuerProfile("University of Testing", "0x" + "ab" * 20, 31337)


@pytest.fixture
def doc() -> dict:
    return build_credential(request(valid_until=None), ISSUER)


def reasons(doc: dict) -> list[str]:
    return [str(p) for p in validate_document(doc)]


def test_issued_document_conforms(doc):
    assert reasons(doc) == []


def test_language_value_objects_and_subject_arrays_of_objects_are_allowed(doc):
    doc["name"] = [{"@value": "Licence", "@language": "fr"}, {"@value": "Degree", "@language": "en"}]
    doc["description"] = {"@value": "Un diplôme", "@language": "fr", "@direction": "ltr"}
    assert reasons(doc) == []


BROKEN = [
    # (what, path, value or "DELETE", expected words in a reason)
    ("no @context", ["@context"], "DELETE", "$['@context']: expected an array starting with https://www.w3.org/ns/credentials/v2, found nothing"),
    ("@context not first", ["@context"], ["https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json",
                                          "https://www.w3.org/ns/credentials/v2"], "$['@context'][0]"),
    ("@context a string", ["@context"], "https://www.w3.org/ns/credentials/v2", "an array starting with"),
    ("@context repeated", ["@context"], ["https://www.w3.org/ns/credentials/v2",
                                         "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json",
                                         "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"], "each context once"),
    ("@context item not URL", ["@context"], ["https://www.w3.org/ns/credentials/v2", 7], "a URL or an object"),
    ("no type", ["type"], "DELETE", "$.type: expected a type, found nothing"),
    ("type without VC", ["type"], ["OpenBadgeCredential"], "a list including VerifiableCredential"),
    ("type not strings", ["type"], ["VerifiableCredential", 3], "a string or a non-empty array of strings"),
    ("id not a URL", ["id"], "not a url", "$.id: expected a URL"),
    ("no issuer", ["issuer"], "DELETE", "$.issuer: expected a URL or an object with a URL id, found nothing"),
    ("issuer number", ["issuer"], 12, "$.issuer: expected a URL or an object with a URL id, found 12"),
    ("issuer without id", ["issuer", "id"], "DELETE", "$.issuer.id: expected a URL naming the issuer"),
    ("issuer id not URL", ["issuer", "id"], "University", "$.issuer.id: expected a URL"),
    ("no subject", ["credentialSubject"], "DELETE", "$.credentialSubject: expected an object with claims"),
    ("empty subject", ["credentialSubject"], {}, "at least one claim"),
    ("subject array of strings", ["credentialSubject"], ["Ada"], "$.credentialSubject[0]: expected an object"),
    ("subject empty array", ["credentialSubject"], [], "at least one subject"),
    ("subject id not URL", ["credentialSubject", "id"], "ada", "$.credentialSubject.id: expected a URL"),
    ("validFrom no zone", ["validFrom"], "2026-01-01T00:00:00", "$.validFrom: expected an RFC 3339 date-time"),
    ("validFrom date only", ["validFrom"], "2026-01-01", "$.validFrom"),
    ("validFrom impossible", ["validFrom"], "2026-02-30T00:00:00Z", "$.validFrom"),
    ("validUntil before validFrom", ["validUntil"], "2000-01-01T00:00:00Z", "a moment at or after validFrom"),
    ("no validFrom (OB)", ["validFrom"], "DELETE", "Open Badges 3.0 requires it"),
    ("status without type", ["credentialStatus"], {"id": "https://status.example/1"}, "$.credentialStatus.type"),
    ("schema without id", ["credentialSchema"], [{"type": "JsonSchema"}], "$.credentialSchema[0].id"),
    ("schema without type", ["credentialSchema"], [{"id": "https://s.example/x.json"}], "$.credentialSchema[0].type"),
    ("evidence without type", ["evidence"], [{"id": "https://e.example/1"}], "$.evidence[0].type"),
    ("termsOfUse not object", ["termsOfUse"], "be nice", "$.termsOfUse: expected an object with a type"),
    ("refreshService without type", ["refreshService"], {"url": "https://r.example"}, "$.refreshService.type"),
    ("relatedResource without digest", ["relatedResource"], [{"id": "https://x.example/a.png"}], "digestSRI"),
    ("name a number", ["name"], 5, "$.name: expected a string or a language value object"),
    ("description bad language object", ["description"], {"@value": "x", "@language": 5}, "$.description"),
    ("issuer name an object", ["issuer", "name"], {"first": "Uni"}, "$.issuer.name"),
    ("no OB context", ["@context"], ["https://www.w3.org/ns/credentials/v2"], "the Open Badges 3.0 context"),
    ("issuer not a Profile", ["issuer", "type"], ["Organization"], "$.issuer.type: expected a list including Profile"),
    ("no achievement", ["credentialSubject", "achievement"], "DELETE", "$.credentialSubject.achievement: expected an Achievement object, found nothing"),
    ("achievement without name", ["credentialSubject", "achievement", "name"], "DELETE", "achievement.name: expected a non-empty string"),
    ("achievement without criteria", ["credentialSubject", "achievement", "criteria"], "DELETE", "achievement.criteria"),
    ("unknown achievement type", ["credentialSubject", "achievement", "achievementType"], "Trophy", "achievementType"),
    ("identity object broken", ["credentialSubject", "identifier"], [{"identityHash": 3}], "IdentityObject"),
    ("no holder", ["credentialSubject", "identifier"], "DELETE", "an id or at least one identifier"),
    ("awardedDate not a date", ["awardedDate"], "June", "$.awardedDate"),
    ("proof without type", ["proof"], {"signature": "0x00"}, "$.proof.type: expected a type, found nothing"),
]


@pytest.mark.parametrize("what, path, value, words", BROKEN, ids=[b[0] for b in BROKEN])
def test_each_rule_names_path_expected_and_found(doc, what, path, value, words):
    broken = edited(doc, path, delete=True) if value == "DELETE" else edited(doc, path, value)
    found = reasons(broken)
    assert any(words in r for r in found), found
    assert all(r.startswith("$") and ": expected " in r and ", found " in r for r in found)


def test_ext_achievement_types_are_allowed(doc):
    assert reasons(edited(doc, ["credentialSubject", "achievement", "achievementType"], "ext:Micro")) == []


def test_the_ob_profile_applies_to_open_badges_or_when_asked():
    """A plain VC 2.0 credential is judged by VC 2.0 alone; asked for the OB
    profile (`--profile ob3`), the same document is not an Open Badge."""
    plain = edited(build_credential(request(valid_until=None), ISSUER), ["type"], ["VerifiableCredential"])
    assert reasons(plain) == []
    ob = [str(p) for p in validate_document(plain, "ob3")]
    assert any("OpenBadgeCredential or AchievementCredential" in r and r.startswith("$.type:") for r in ob), ob
    with pytest.raises(ValueError, match="unknown profile"):
        validate_document(plain, "ob2")


def _depth(value) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


_awkward_text = st.text(alphabet='ab[]{}"\\\n\u00e9', max_size=8)
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | _awkward_text | st.just("urn:uuid:1"),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.just("id") | _awkward_text, inner, max_size=3),
    max_leaves=60)


@settings(max_examples=400, deadline=None)
@given(_json_values, st.integers(min_value=25, max_value=40))
def test_depth_guard_agrees_with_the_parsed_depth(value, wrap):
    """The byte-level depth guard (run before parsing) against the depth of the
    parsed value, with brackets, quotes and backslashes inside strings."""
    from credentials.validate import MAX_DEPTH, _too_deep

    for document in (value, functools.reduce(lambda v, _: [v], range(wrap), value)):
        raw = json.dumps(document).encode()
        assert _too_deep(raw) == (_depth(document) > MAX_DEPTH), raw[:200]


@settings(max_examples=300, deadline=None)
@given(_json_values)
def test_the_quick_id_check_agrees_with_the_walk(value):
    """validate_document skips the path-building walk when the quick check finds every id a URL."""
    from credentials.validate import _ids_are_urls, _walk_ids

    for document in (value, {"id": "urn:x", "a": value}, {"id": value, "b": [value]}):
        assert _ids_are_urls(document) == (not list(_walk_ids(document, "$")))
