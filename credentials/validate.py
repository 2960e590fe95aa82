"""The W3C Verifiable Credentials Data Model 2.0 checked on the document alone,
plus the Open Badges 3.0 profile for credentials typed as Open Badges.

`validate_document(doc, profile)` returns `Problem`s (empty when the document
conforms): every MUST of VC 2.0 that a document can show broken, and the
Open Badges 3.0 fields when the credential is typed `OpenBadgeCredential` /
`AchievementCredential` or the caller asks for `profile="ob3"`; a plain VC 2.0
credential from anyone is judged by VC 2.0 alone. Each problem names the JSON
path, what was expected and what was found,
so a person can fix the document without reading the specification. No chain, no proof:
this is what `credentials validate FILE` and the `format` check run.

`load_document(raw)` turns untrusted bytes into a JSON object, refusing what is
not a credential at all (too large, not UTF-8, not JSON, too deeply nested,
duplicate keys) with `NotACredential` and a sentence, never a traceback.

Why not a JSON Schema library: the VC 2.0 MUSTs are mostly cross-field rules
(order of contexts, validFrom before validUntil, "any id is a URL") and the
readable "expected/found" sentences are the product; a schema validator's
messages are not.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from itertools import accumulate
from typing import Any

import orjson

from credentials.document import ACHIEVEMENT_TYPES, VC_CONTEXT

# A credential is a few kilobytes; a megabyte is generous and keeps junk cheap.
MAX_DOCUMENT_BYTES = 1024 * 1024
MAX_DEPTH = 32
OB_CONTEXT_PATTERN = re.compile(r"^https://purl\.imsglobal\.org/spec/ob/v3p0/context(-3\.0\.\d+)?\.json$")
OB_CREDENTIAL_TYPES = ("OpenBadgeCredential", "AchievementCredential")
# RFC 3339 date-time with a time zone (XML Schema dateTimeStamp, as VC 2.0 asks).
_DATETIME = re.compile(r"^-?\d{4,}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
# An absolute URL (any scheme: https:, urn:, did:, ...), no white space.
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:[^\s]+$")
# BCP 47 in outline (what JSON-LD calls well-formed): alphanumeric subtags of 1-8 characters.
_LANGUAGE_TAG = re.compile(r"^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*$")
# Subresource Integrity (W3C SRI §3.5): <hash algorithm>-<base64 digest>.
_SRI = re.compile(r"^(sha256|sha384|sha512)-[A-Za-z0-9+/]+={0,2}$")
# Multibase: one prefix character then the encoded bytes (base64url u, base58btc z, base16 f/F, ...).
_MULTIBASE = re.compile(r"^[uzmMfFbB][A-Za-z0-9+/=_\-]+$")
_TYPED_MEMBERS = ("credentialStatus", "credentialSchema", "evidence", "termsOfUse", "refreshService")


class NotACredential(ValueError):
    """The input is not a JSON object at all; the message says what it is instead."""


@dataclass(frozen=True)
class Problem:
    path: str
    expected: str
    found: str

    def __str__(self) -> str:
        return f"{self.path}: expected {self.expected}, found {self.found}"


def describe(value: Any, missing: bool = False) -> str:
    """A short, readable rendering of what was found."""
    if missing:
        return "nothing"
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


# ----- untrusted input -------------------------------------------------------

def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            # Two parsers may keep different copies: what was signed would be ambiguous.
            raise NotACredential(f"the JSON object has the key {key!r} twice")
        seen[key] = value
    return seen


def _reject_constant(name: str) -> None:
    raise NotACredential(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    """A JSON number with a fraction or exponent, refused when it is beyond a
    double (1e400): Python would read it as infinity, which JSON cannot say
    and JCS refuses, and which other JSON writers turn into null."""
    value = float(text)
    if math.isinf(value):
        raise NotACredential(f"the number {text[:40]} is beyond what JSON numbers can carry (a double)")
    return value


# A JSON string, written as an unrolled loop: a run of plain bytes, then
# escape-and-run pairs (four times faster than one alternation per byte).
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(rb"[^\[\]{}]+")


# A \\u escape of a UTF-16 surrogate: the one way JSON text can spell a
# string that UTF-8 cannot carry (a pair is joined into one character).
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _holds_lone_surrogate(value: Any) -> bool:
    """Does any string or key of the parsed document hold a lone surrogate?
    Only asked when the text has a surrogate escape at all."""
    kind = type(value)
    if kind is str:
        return _SURROGATE.search(value) is not None
    if kind is dict:
        return any(_SURROGATE.search(k) is not None or _holds_lone_surrogate(v) for k, v in value.items())
    if kind is list:
        return any(_holds_lone_surrogate(item) for item in value)
    return False


def _round_trip(raw: bytes) -> Any:
    """The parsed text when orjson writes exactly `raw` back, else None (the
    caller then parses it with the standard library and this module's rules).

    Equal bytes prove what those rules check: a JSON object that orjson writes
    has each key once (it comes from a dict), and whatever would have been
    refused (NaN, a number beyond a double or 64 bits, a lone surrogate) makes
    orjson raise or write other bytes (infinity as null). Both parsers read
    the same text to the same values, so the result is the one the standard
    library would give. Attest writes its credentials with orjson, compact,
    so they take this path: reading and writing one back takes under half
    the time of the standard library's parse with the duplicate-key hook
    (about 10 us against 22 for an issued credential). A text written
    otherwise (spaces, escapes) is parsed the slow way, with the same outcome,
    after this try."""
    if raw.startswith(codecs.BOM_UTF8):  # orjson refuses a byte order mark; the slow way strips it
        return None
    try:
        value = orjson.loads(raw)
        return value if orjson.dumps(value) == raw else None
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        return None


def _too_deep(raw: bytes) -> bool:
    """Is the JSON text nested deeper than MAX_DEPTH? Checked before parsing:
    the C parser recurses on the machine stack, and a deep enough input
    crashes the process (a thread's stack is small) instead of raising."""
    if raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH:
        return False  # even if every bracket opened a level
    brackets = _NOT_BRACKET.sub(b"", _JSON_STRING.sub(b"", raw))
    if len(brackets) <= MAX_DEPTH:
        return False
    steps = (1 if b in b"[{" else -1 for b in brackets)
    return max(accumulate(steps)) > MAX_DEPTH


def json_kind(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "number",
            float: "number", type(None): "null"}.get(type(value), type(value).__name__)


def load_document(raw: bytes | str, wrapped_ok: bool = False) -> dict:
    """A JSON object from untrusted input, or NotACredential saying why not.
    With `wrapped_ok`, `{"credential": {...}}` (the API's envelope) is unwrapped."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise NotACredential(f"the input is {len(raw):,} bytes; a credential is at most "
                             f"{MAX_DOCUMENT_BYTES:,} bytes (a few kilobytes is usual)")
    if not raw.strip():
        raise NotACredential("the input is empty; expected a credential's JSON")
    if b"\0" in raw:
        raise NotACredential("the input is binary data, not a credential's JSON text")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise NotACredential(f"the input is not UTF-8 text (byte {exc.start}); expected JSON") from exc
    if _too_deep(raw):
        raise NotACredential(f"the JSON is nested too deeply; a credential nests at most {MAX_DEPTH} levels")
    doc = _round_trip(raw)
    try:
        if doc is None:
            doc = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant,
                             parse_float=_finite_float)
    except RecursionError as exc:
        raise NotACredential(f"the JSON is nested too deeply; a credential nests at most {MAX_DEPTH} levels") from exc
    except json.JSONDecodeError as exc:
        raise NotACredential(f"the input is not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from exc
    except ValueError as exc:  # e.g. an integer with thousands of digits
        if isinstance(exc, NotACredential):
            raise
        raise NotACredential(f"the input is not usable JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise NotACredential(f"expected a JSON object (a credential), found a JSON {json_kind(doc)}")
    if _SURROGATE_ESCAPE.search(raw) and _holds_lone_surrogate(doc):
        raise NotACredential("the JSON spells a lone surrogate (a \\ud800 to \\udfff escape without its pair), "
                             "a character no UTF-8 text can carry, so no credential holds it")
    if wrapped_ok and set(doc) == {"credential"}:
        doc = doc["credential"]
        if not isinstance(doc, dict):
            raise NotACredential(f"expected \"credential\" to hold a JSON object, found a JSON {json_kind(doc)}")
    # No second walk over the parsed document: _too_deep measured the nesting
    # of the text, and the document (an envelope's content) nests no deeper.
    if not any(key in doc for key in ("@context", "type", "credentialSubject", "proof", "issuer")):
        raise NotACredential("the JSON object has none of @context, type, issuer, credentialSubject or "
                             "proof: it is not a verifiable credential")
    return doc


def text_digest(raw: bytes | str) -> bytes:
    """SHA-256 of a credential's text as `load_document` reads it: the
    `digest` that lets `verify_credential` recognise the same bytes again."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    return hashlib.sha256(raw).digest()


# ----- small rules -------------------------------------------------------------

def is_url(value: Any) -> bool:
    return isinstance(value, str) and bool(_URL.match(value))


def parse_datetime(value: Any) -> datetime | None:
    """An aware datetime for an RFC 3339 dateTimeStamp, else None."""
    if not isinstance(value, str) or not _DATETIME.match(value):
        return None
    try:
        return datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        return None


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def _types(value: Any) -> list[str] | None:
    """The `type` value as a list of strings, None when it is malformed."""
    items = _as_list(value)
    if items and all(isinstance(t, str) and t for t in items):
        return items
    return None


def _check_type(obj: dict, path: str, required: bool = True, includes: tuple[str, ...] = ()) -> Iterator[Problem]:
    if "type" not in obj:
        if required:
            yield Problem(f"{path}.type", "a type", "nothing")
        return
    types = _types(obj["type"])
    if types is None:
        yield Problem(f"{path}.type", "a string or a non-empty array of strings", describe(obj["type"]))
    elif includes and not any(t in types for t in includes):
        yield Problem(f"{path}.type", f"a list including {' or '.join(includes)}", describe(obj["type"]))


def _check_language_string(value: Any, path: str) -> Iterator[Problem]:
    """VC 2.0 §11.1: name/description are strings or language value objects."""
    for i, item in enumerate(_as_list(value)):
        where = f"{path}[{i}]" if isinstance(value, list) else path
        if isinstance(item, str):
            continue
        if isinstance(item, dict) and isinstance(item.get("@value"), str) and \
                set(item) <= {"@value", "@language", "@direction"} and \
                all(isinstance(item.get(k, ""), str) for k in ("@language", "@direction")):
            if item.get("@direction", "ltr") not in ("ltr", "rtl"):
                yield Problem(f"{where}['@direction']", "ltr or rtl", describe(item["@direction"]))
            if "@language" in item and not _LANGUAGE_TAG.match(item["@language"]):
                yield Problem(f"{where}['@language']", "a BCP 47 language tag such as en or fr-CA",
                              describe(item["@language"]))
            continue
        yield Problem(where, "a string or a language value object {\"@value\", \"@language\"}", describe(item))


def _ids_are_urls(value: Any) -> bool:
    """`_walk_ids` finds nothing (no paths are built, so it is cheap): every `id` is a URL."""
    if isinstance(value, dict):
        for key, child in value.items():
            if key == "@context":
                continue
            if key == "id" and not is_url(child):
                return False
            if isinstance(child, (dict, list)) and not _ids_are_urls(child):
                return False
        return True
    if isinstance(value, list):
        return all(_ids_are_urls(child) for child in value if isinstance(child, (dict, list)))
    return True


def _walk_ids(value: Any, path: str) -> Iterator[Problem]:
    """VC 2.0: every `id` is a URL (the @context is JSON-LD's, not ours)."""
    if isinstance(value, dict):
        for key, child in value.items():
            if key == "@context":
                continue
            if key == "id" and not is_url(child):
                yield Problem(f"{path}.id", "a URL (for example urn:uuid:… or https://…)", describe(child))
            yield from _walk_ids(child, f"{path}.{key}")
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from _walk_ids(child, f"{path}[{i}]")


# ----- VC 2.0 -------------------------------------------------------------------

def _check_context(doc: dict) -> Iterator[Problem]:
    ctx = doc.get("@context")
    if ctx is None:
        yield Problem("$['@context']", f"an array starting with {VC_CONTEXT}", "nothing")
        return
    if not isinstance(ctx, list) or not ctx:
        yield Problem("$['@context']", f"an array starting with {VC_CONTEXT}", describe(ctx))
        return
    if ctx[0] != VC_CONTEXT:
        yield Problem("$['@context'][0]", f"{VC_CONTEXT} as the first context", describe(ctx[0]))
    seen = set()
    for i, item in enumerate(ctx[1:], start=1):
        if isinstance(item, str):
            if not is_url(item):
                yield Problem(f"$['@context'][{i}]", "a URL or an object", describe(item))
            elif item in seen or item == VC_CONTEXT:
                yield Problem(f"$['@context'][{i}]", "each context once (an ordered set)", describe(item))
            seen.add(item)
        elif not isinstance(item, dict):
            yield Problem(f"$['@context'][{i}]", "a URL or an object", describe(item))


@lru_cache(maxsize=1024)
def _context_list_problems(contexts: tuple[str, ...]) -> tuple[Problem, ...]:
    return tuple(_check_context({"@context": list(contexts)}))


def _validated_context(doc: dict) -> list[Problem]:
    """_check_context, remembered for @context lists of URLs: a verifier sees the
    same few lists over and over, and their verdict depends on nothing else."""
    ctx = doc.get("@context")
    if isinstance(ctx, list) and ctx and all(type(item) is str for item in ctx):
        return list(_context_list_problems(tuple(ctx)))
    return list(_check_context(doc))


def _check_dates(doc: dict) -> Iterator[Problem]:
    parsed = {}
    for key in ("validFrom", "validUntil"):
        if key in doc:
            moment = parse_datetime(doc[key])
            if moment is None:
                yield Problem(f"$.{key}", "an RFC 3339 date-time with a time zone, like 2026-06-30T00:00:00Z",
                              describe(doc[key]))
            parsed[key] = moment
    if parsed.get("validFrom") and parsed.get("validUntil") and parsed["validFrom"] > parsed["validUntil"]:
        yield Problem("$.validUntil", f"a moment at or after validFrom ({doc['validFrom']})",
                      describe(doc["validUntil"]))


def _check_issuer(doc: dict) -> Iterator[Problem]:
    if "issuer" not in doc:
        yield Problem("$.issuer", "a URL or an object with a URL id", "nothing")
        return
    issuer = doc["issuer"]
    if isinstance(issuer, str):
        if not is_url(issuer):
            yield Problem("$.issuer", "a URL or an object with a URL id", describe(issuer))
    elif isinstance(issuer, dict):
        if "id" not in issuer:
            yield Problem("$.issuer.id", "a URL naming the issuer", "nothing")
        for key in ("name", "description"):
            if key in issuer:
                yield from _check_language_string(issuer[key], f"$.issuer.{key}")
    else:
        yield Problem("$.issuer", "a URL or an object with a URL id", describe(issuer))


def _check_subject(doc: dict) -> Iterator[Problem]:
    if "credentialSubject" not in doc:
        yield Problem("$.credentialSubject", "an object with claims about the subject", "nothing")
        return
    subject = doc["credentialSubject"]
    subjects = subject if isinstance(subject, list) else [subject]
    if isinstance(subject, list) and not subject:
        yield Problem("$.credentialSubject", "at least one subject", "an empty array")
    for i, item in enumerate(subjects):
        where = f"$.credentialSubject[{i}]" if isinstance(subject, list) else "$.credentialSubject"
        if not isinstance(item, dict):
            yield Problem(where, "an object with claims about the subject", describe(item))
        elif not item:
            yield Problem(where, "at least one claim about the subject", "an empty object")


def _check_typed_members(doc: dict) -> Iterator[Problem]:
    for key in _TYPED_MEMBERS:
        if key not in doc:
            continue
        value = doc[key]
        for i, entry in enumerate(_as_list(value)):
            where = f"$.{key}[{i}]" if isinstance(value, list) else f"$.{key}"
            if not isinstance(entry, dict):
                yield Problem(where, "an object with a type", describe(entry))
                continue
            yield from _check_type(entry, where)
            if key == "credentialSchema" and "id" not in entry:
                yield Problem(f"{where}.id", "the URL of the schema", "nothing")
    related = doc.get("relatedResource", [])
    seen_ids: set[str] = set()
    for i, entry in enumerate(_as_list(related)):
        where = f"$.relatedResource[{i}]" if isinstance(related, list) else "$.relatedResource"
        if not isinstance(entry, dict) or "id" not in entry:
            yield Problem(where, "an object with an id", describe(entry))
            continue
        if isinstance(entry["id"], str):
            # §5.3: "MUST NOT contain more than one object with the same id".
            if entry["id"] in seen_ids:
                yield Problem(f"{where}.id", "an id no other related resource has", describe(entry["id"]))
            seen_ids.add(entry["id"])
        if not ({"digestSRI", "digestMultibase"} & set(entry)):
            yield Problem(where, "a digestSRI or digestMultibase", "neither")
        if "digestSRI" in entry and not (isinstance(entry["digestSRI"], str) and _SRI.match(entry["digestSRI"])):
            yield Problem(f"{where}.digestSRI", "a Subresource Integrity value such as sha384-<base64>",
                          describe(entry["digestSRI"]))
        if "digestMultibase" in entry and not (isinstance(entry["digestMultibase"], str)
                                               and _MULTIBASE.match(entry["digestMultibase"])):
            yield Problem(f"{where}.digestMultibase", "a multibase-encoded digest such as u<base64url> or z<base58>",
                          describe(entry["digestMultibase"]))
    if "proof" in doc:
        for i, entry in enumerate(_as_list(doc["proof"])):
            if not isinstance(entry, dict):
                yield Problem(f"$.proof[{i}]", "an object with a type", describe(entry))
            else:
                yield from _check_type(entry, "$.proof" if isinstance(doc["proof"], dict) else f"$.proof[{i}]")


def vc_problems(doc: dict) -> list[Problem]:
    """Every VC Data Model 2.0 MUST that the document alone can show broken."""
    problems = _validated_context(doc)
    problems += _check_type(doc, "$", includes=("VerifiableCredential",))
    problems += _check_issuer(doc)
    problems += _check_subject(doc)
    problems += _check_dates(doc)
    problems += _check_typed_members(doc)
    for key in ("name", "description"):
        if key in doc:
            problems += _check_language_string(doc[key], f"$.{key}")
    if not _ids_are_urls(doc):
        problems += _walk_ids(doc, "$")
    return problems


# ----- Open Badges 3.0, as this service issues it --------------------------------

def _check_achievement(achievement: Any, path: str) -> Iterator[Problem]:
    if not isinstance(achievement, dict):
        yield Problem(path, "an Achievement object", describe(achievement, achievement is None))
        return
    if "id" not in achievement:
        yield Problem(f"{path}.id", "a URL identifying the achievement", "nothing")
    yield from _check_type(achievement, path, includes=("Achievement",))
    for key in ("name", "description"):
        if not isinstance(achievement.get(key), str) or not achievement[key].strip():
            yield Problem(f"{path}.{key}", "a non-empty string", describe(achievement.get(key), key not in achievement))
    criteria = achievement.get("criteria")
    if not isinstance(criteria, dict) or not (is_url(criteria.get("id")) or isinstance(criteria.get("narrative"), str)):
        yield Problem(f"{path}.criteria", "an object with an id or a narrative", describe(criteria, criteria is None))
    kind = achievement.get("achievementType")
    if kind is not None and not (kind in ACHIEVEMENT_TYPES or (isinstance(kind, str) and kind.startswith("ext:"))):
        yield Problem(f"{path}.achievementType", "an Open Badges achievement type (e.g. BachelorDegree) "
                      "or an ext: extension", describe(kind))


def ob_problems(doc: dict) -> list[Problem]:
    """The Open Badges 3.0 fields this service issues and verifiers rely on."""
    problems: list[Problem] = []
    ctx = doc.get("@context")
    if isinstance(ctx, list) and not any(isinstance(c, str) and OB_CONTEXT_PATTERN.match(c) for c in ctx[1:]):
        problems.append(Problem("$['@context']", "the Open Badges 3.0 context after the VC context",
                                describe(ctx)))
    problems += _check_type(doc, "$", includes=OB_CREDENTIAL_TYPES)
    if "validFrom" not in doc:
        problems.append(Problem("$.validFrom", "the date the credential became valid (Open Badges 3.0 requires it)",
                                "nothing"))
    if "awardedDate" in doc and parse_datetime(doc["awardedDate"]) is None:
        problems.append(Problem("$.awardedDate", "an RFC 3339 date-time with a time zone", describe(doc["awardedDate"])))
    issuer = doc.get("issuer")
    if isinstance(issuer, dict):
        problems += _check_type(issuer, "$.issuer", includes=("Profile",))
        if "name" not in issuer:
            problems.append(Problem("$.issuer.name", "the issuing institution's name", "nothing"))
    elif issuer is not None:
        problems.append(Problem("$.issuer", "a Profile object (Open Badges 3.0)", describe(issuer)))
    subject = doc.get("credentialSubject")
    if isinstance(subject, dict) and subject:
        problems += _check_type(subject, "$.credentialSubject", includes=("AchievementSubject",))
        if "id" not in subject and not subject.get("identifier"):
            problems.append(Problem("$.credentialSubject", "an id or at least one identifier naming the holder",
                                    "neither"))
        for i, ident in enumerate(_as_list(subject.get("identifier", []))):
            where = f"$.credentialSubject.identifier[{i}]"
            if not isinstance(ident, dict) or not isinstance(ident.get("identityHash"), str) \
                    or not isinstance(ident.get("identityType"), str) or not isinstance(ident.get("hashed"), bool):
                problems.append(Problem(where, "an IdentityObject with identityHash, identityType and hashed",
                                        describe(ident)))
        problems += _check_achievement(subject.get("achievement"), "$.credentialSubject.achievement")
    elif isinstance(subject, list):
        problems.append(Problem("$.credentialSubject", "one AchievementSubject object (Open Badges 3.0)",
                                "an array"))
    return problems


OB3 = "ob3"
PROFILES = (OB3,)


def is_open_badge(doc: dict) -> bool:
    """Is the credential typed as an Open Badges 3.0 credential?"""
    types = _types(doc.get("type")) or []
    return any(t in OB_CREDENTIAL_TYPES for t in types)


def validate_document(doc: dict, profile: str | None = None) -> list[Problem]:
    """VC 2.0 MUSTs first, then the Open Badges 3.0 profile for credentials
    typed as Open Badges (or with profile="ob3"); empty when conforming."""
    if profile not in (None, *PROFILES):
        raise ValueError(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")
    problems = vc_problems(doc)
    if profile != OB3 and not is_open_badge(doc):
        return problems
    seen = {str(p) for p in problems}
    return problems + [p for p in ob_problems(doc) if str(p) not in seen]
