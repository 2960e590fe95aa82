"""`credentials validate` on plain VC 2.0 credentials from anyone, case by
case from the text of the W3C Verifiable Credentials Data Model 2.0
Recommendation (the MUST it quotes is beside each case). The W3C's own test
suite is deliberately not used here: it is kept for an independent check.

A plain VC 2.0 credential is judged by VC 2.0 alone; the Open Badges 3.0
profile is added only for credentials typed as Open Badges or with
`--profile ob3`. Every reason names the JSON path of what is wrong.
"""

from __future__ import annotations

import copy
import json

import pytest

from credentials.validate import validate_document
from tests.helpers_credentials import edited

VC = "https://www.w3.org/ns/credentials/v2"


def plain() -> dict:
    """A minimal conforming credential in the spirit of the spec's Example 2
    (a plain VC 2.0 with an example context, nothing Open Badges about it)."""
    return {
        "@context": [VC, "https://www.w3.org/ns/credentials/examples/v2"],
        "id": "http://university.example/credentials/3732",
        "type": ["VerifiableCredential", "ExampleDegreeCredential"],
        "issuer": "https://university.example/issuers/565049",
        "validFrom": "2010-01-01T00:00:00Z",
        "credentialSubject": {"id": "did:example:ebfeb1f712ebc6f1c276e12ec21",
                              "degree": {"type": "ExampleBachelorDegree", "name": "Bachelor of Science and Arts"}},
    }


def changed(path: list, value=..., delete: bool = False) -> dict:
    return edited(plain(), path, value, delete)


def reasons(doc: dict, profile: str | None = None) -> list[str]:
    return [str(p) for p in validate_document(doc, profile)]


# (what the spec says, the change, the JSON path the reason must name, words it must hold)
CASES = [
    ("§4.2 the first item of @context MUST be https://www.w3.org/ns/credentials/v2",
     changed(["@context"], ["https://www.w3.org/2018/credentials/v1"]), "$['@context'][0]", VC),
    ("§4.2 the value of @context MUST be an ordered set",
     changed(["@context"], VC), "$['@context']", "an array"),
    ("§4.2 subsequent items MUST be URLs or objects",
     changed(["@context"], [VC, 42]), "$['@context'][1]", "a URL or an object"),
    ("§4.2 an ordered set holds each context once",
     changed(["@context"], [VC, VC]), "$['@context'][1]", "each context once"),
    ("§4.4 if present, the value of id MUST be a single URL",
     changed(["id"], "credential 3732"), "$.id", "a URL"),
    ("§4.4 ... for any object, the subject's id too",
     changed(["credentialSubject", "id"], "not a url"), "$.credentialSubject.id", "a URL"),
    ("§4.5 verifiable credentials MUST have a type",
     changed(["type"], delete=True), "$.type", "a type"),
    ("§4.5 the type MUST include VerifiableCredential",
     changed(["type"], ["ExampleDegreeCredential"]), "$.type", "VerifiableCredential"),
    ("§4.5 type values MUST be terms or URLs (strings)",
     changed(["type"], ["VerifiableCredential", 7]), "$.type", "strings"),
    ("§4.7 a credential MUST have an issuer",
     changed(["issuer"], delete=True), "$.issuer", "a URL or an object"),
    ("§4.7 the issuer MUST be a URL or an object with an id",
     changed(["issuer"], {"name": "Example University"}), "$.issuer.id", "a URL naming the issuer"),
    ("§4.7 ... whose value is a URL",
     changed(["issuer"], {"id": "Example University"}), "$.issuer.id", "a URL"),
    ("§4.8 credentialSubject MUST be present",
     changed(["credentialSubject"], delete=True), "$.credentialSubject", "claims about the subject"),
    ("§4.8 each subject is an object of claims",
     changed(["credentialSubject"], ["did:example:123"]), "$.credentialSubject[0]", "an object"),
    ("§4.6 name MUST be a string or a language value object",
     changed(["name"], 12), "$.name", "a string or a language value object"),
    ("§11.1 @direction of a language value is ltr or rtl",
     changed(["description"], {"@value": "Diplom", "@language": "de", "@direction": "up"}),
     "$.description['@direction']", "ltr or rtl"),
    ("§11.1 @language MUST be a well-formed BCP 47 tag",
     changed(["name"], {"@value": "Diplom", "@language": "not a tag!"}), "$.name['@language']", "BCP 47"),
    ("§4.9 validFrom MUST be an XML Schema dateTimeStamp",
     changed(["validFrom"], "2010-01-01"), "$.validFrom", "date-time with a time zone"),
    ("§4.9 validUntil MUST be an XML Schema dateTimeStamp",
     changed(["validUntil"], "next year"), "$.validUntil", "date-time with a time zone"),
    ("§4.9 validUntil before validFrom is never valid",
     changed(["validUntil"], "2009-12-31T00:00:00Z"), "$.validUntil", "at or after validFrom"),
    ("§4.10 each credentialStatus object MUST have a type",
     changed(["credentialStatus"], {"id": "https://university.example/status/1#7"}), "$.credentialStatus.type",
     "a type"),
    ("§4.10 ... and its id, if present, MUST be a URL",
     changed(["credentialStatus"], {"id": "seven", "type": "BitstringStatusListEntry"}), "$.credentialStatus.id",
     "a URL"),
    ("§4.11 each credentialSchema MUST have an id",
     changed(["credentialSchema"], [{"type": "JsonSchema"}]), "$.credentialSchema[0].id", "the URL of the schema"),
    ("§4.11 ... and a type",
     changed(["credentialSchema"], [{"id": "https://example.org/schema.json"}]), "$.credentialSchema[0].type",
     "a type"),
    ("§5.3 each relatedResource MUST have an id",
     changed(["relatedResource"], [{"digestSRI": "sha384-abc"}]), "$.relatedResource[0]", "an object with an id"),
    ("§5.3 ... and a digestSRI or digestMultibase",
     changed(["relatedResource"], [{"id": "https://example.org/a.png"}]), "$.relatedResource[0]",
     "digestSRI or digestMultibase"),
    ("§5.3 digestSRI MUST be a Subresource Integrity value",
     changed(["relatedResource"], [{"id": "https://example.org/a.png", "digestSRI": "md5:abc"}]),
     "$.relatedResource[0].digestSRI", "Subresource Integrity"),
    ("§5.3 the list MUST NOT hold two objects with the same id",
     changed(["relatedResource"], [{"id": "https://example.org/a.png", "digestSRI": "sha384-YWJj"},
                                   {"id": "https://example.org/a.png", "digestMultibase": "uYWJj"}]),
     "$.relatedResource[1].id", "no other related resource"),
    ("§5.5 evidence objects MUST have a type",
     changed(["evidence"], [{"id": "https://example.org/evidence/1"}]), "$.evidence[0].type", "a type"),
    ("§5.6 termsOfUse MUST have a type",
     changed(["termsOfUse"], {"id": "https://example.org/tou"}), "$.termsOfUse.type", "a type"),
    ("§5.4 refreshService MUST have a type",
     changed(["refreshService"], {"id": "https://example.org/refresh"}), "$.refreshService.type", "a type"),
    ("§4.12 each proof MUST have a type",
     changed(["proof"], {"cryptosuite": "eddsa-rdfc-2022"}), "$.proof.type", "a type"),
]


def test_the_plain_credential_conforms_to_vc2_alone():
    assert reasons(plain()) == []


@pytest.mark.parametrize("rule, doc, path, words", CASES, ids=[c[0][:60] for c in CASES])
def test_each_must_of_the_data_model_names_its_json_path(rule, doc, path, words):
    found = reasons(doc)
    assert any(r.startswith(path + ":") and words in r for r in found), (rule, found)


def test_conforming_optional_members_from_the_spec_pass():
    doc = plain()
    doc["name"] = [{"@value": "Diplôme", "@language": "fr-CA"}, {"@value": "Degree", "@language": "en"}]
    doc["credentialStatus"] = {"id": "https://university.example/status/3#94567", "type": "BitstringStatusListEntry",
                               "statusPurpose": "revocation", "statusListIndex": "94567",
                               "statusListCredential": "https://university.example/status/3"}
    doc["credentialSchema"] = [{"id": "https://example.org/examples/degree.json", "type": "JsonSchema"}]
    doc["relatedResource"] = [{"id": "https://www.w3.org/ns/credentials/v2",
                               "digestSRI": "sha384-Ml/HrjlBCNWyAX91hr6LFV2Y3heB5Tcr6IeE4/Tje8YyzYBM8IhqjHWiWpr8+ZbYU"}]
    doc["validUntil"] = "2030-01-01T00:00:00Z"
    assert reasons(doc) == []


def test_the_open_badges_profile_only_when_asked_or_typed():
    assert reasons(plain()) == []
    asked = reasons(plain(), "ob3")
    assert any(r.startswith("$.type:") and "OpenBadgeCredential" in r for r in asked), asked
    typed = plain()
    typed["type"] = ["VerifiableCredential", "OpenBadgeCredential"]
    assert any("Open Badges 3.0 context" in r for r in reasons(typed)), reasons(typed)


def test_the_cli_judges_plain_vc2_alone_and_ob3_on_request(runner, tmp_path):
    path = tmp_path / "plain.json"
    path.write_text(json.dumps(plain()))
    done = runner.invoke(args=["credentials", "validate", str(path), "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout) == {"conforming": True, "profiles": ["vc2"], "problems": []}
    done = runner.invoke(args=["credentials", "validate", str(path), "--profile", "ob3"])
    assert done.exit_code == 1 and "$.type: expected a list including OpenBadgeCredential" in done.stdout
    broken = copy.deepcopy(plain())
    broken["issuer"] = {"name": "x"}
    path.write_text(json.dumps(broken))
    done = runner.invoke(args=["credentials", "validate", str(path)])
    assert done.exit_code == 1 and "$.issuer.id: expected a URL naming the issuer" in done.stdout
    done = runner.invoke(args=["credentials", "validate", str(path), "--profile", "ob2"])
    assert done.exit_code == 2 and "ob2" in done.output
