"""JSON-LD without the network: a document loader over the contexts shipped in
`credentials/contexts/`, expansion in the spirit of jsonld.js safe mode, and
RDFC-1.0 canonical N-Quads (pyld, which still calls it URDNA2015).

Which contexts: `contexts/manifest.json` pins each file by sha256. The
official ones (VC 2.0, Open Badges 3.0.3 and its extensions, DID 1.0,
Multikey, Data Integrity 2) answer to their one canonical URL. Attest's own
context is served by every installation at `<public URL>/contexts/attest/v1`,
so the loader answers that path under any http(s) origin with the shipped
file: the verifier never asks the issuer's server what the terms mean, and a
credential that names a hostile origin still gets Attest's definitions. Every
other URL is refused with `ContextRefused`, which names the URL.

Why safe mode: JSON-LD silently drops what it cannot map to an IRI (an
undefined term, a relative type or id). A signature over the RDF would then
not cover that member, and an attacker could change it freely. jsonld.js
refuses such documents with `safe: true`; `expand_safe` does the same here and
names what would be dropped. Digital Bazaar's eddsa-rdfc-2022 canonicalizes in
safe mode too, so a document that passes here is one it can sign and verify.

Why `NotPortable`: pyld 3.3 writes N-Quads literals escaping only backslash,
quote, tab, newline and carriage return; RDFC-1.0 (and rdf-canonize, which
jsonld.js uses) also escapes backspace, form feed and the other C0 controls
and DEL, and escapes some characters inside IRIs. A text holding one of those
would canonicalize differently in Python and in JavaScript, so a signature
made here would fail there. `canonize` refuses such datasets instead of
signing something only Attest could verify.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from pyld import jsonld as _pyld
from pyld.canon import URDNA2015

CONTEXTS_DIR = Path(__file__).with_name("contexts")
MANIFEST = CONTEXTS_DIR / "manifest.json"

VC_V2 = "https://www.w3.org/ns/credentials/v2"
OB_V3 = "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"
OB_EXTENSIONS = "https://purl.imsglobal.org/spec/ob/v3p0/extensions.json"
DID_V1 = "https://www.w3.org/ns/did/v1"
MULTIKEY_V1 = "https://w3id.org/security/multikey/v1"
DATA_INTEGRITY_V2 = "https://w3id.org/security/data-integrity/v2"
ATTEST_CONTEXT_PATH = "/contexts/attest/v1"
# What an installation serves at <public URL>/contexts/attest/v1 (as application/ld+json).
ATTEST_CONTEXT_FILE = CONTEXTS_DIR / "attest-v1.jsonld"
# The vocabulary Attest's context maps its terms to (see attest-v1.jsonld).
# One namespace for every installation, unlike the context's URL, so a term
# means the same whoever issued the credential. `.example` is reserved (RFC
# 2606, RFC 6761): no one can ever register it and serve other definitions
# under it. It does not dereference; a w3id.org permanent identifier would,
# and moving there is a new context version (attest/v2), which leaves every
# Data Integrity proof intact: the credential's body uses no Attest term.
ATTEST_VOCAB = "https://attest.example/ns#"


class ContextRefused(ValueError):
    """A document named a context that Attest does not ship."""

    def __init__(self, url: str):
        super().__init__(f"JSON-LD context {url!r} is not one Attest ships; contexts are never fetched. "
                         f"Accepted: {', '.join(sorted(_pinned().official))} and "
                         f"<any http(s) origin>{ATTEST_CONTEXT_PATH}")
        self.url = url


class ContextIntegrityError(RuntimeError):
    """A shipped context file differs from the hash the manifest pins."""


class UnsafeJsonLd(ValueError):
    """Expansion would drop or mis-map something; `problems` names each."""

    def __init__(self, problems: list[str]):
        super().__init__("not safe JSON-LD: " + "; ".join(problems))
        self.problems = tuple(problems)


class NotPortable(ValueError):
    """The RDF holds a character pyld and RDFC-1.0 serialize differently."""


@dataclass(frozen=True)
class _Pinned:
    official: dict[str, dict]
    installation: dict[str, dict]


@lru_cache(maxsize=1)
def _pinned() -> _Pinned:
    """The manifest's contexts, each file checked against its sha256 once."""
    manifest = json.loads(MANIFEST.read_text())

    def load(entry: dict, name: str) -> dict:
        raw = (CONTEXTS_DIR / entry["file"]).read_bytes()
        digest = hashlib.sha256(raw).hexdigest()
        if digest != entry["sha256"]:
            raise ContextIntegrityError(f"{entry['file']} (for {name}) has sha256 {digest}, "
                                        f"the manifest pins {entry['sha256']}")
        return json.loads(raw)

    return _Pinned(
        official={url: load(entry, url) for url, entry in manifest["official"].items()},
        installation={path: load(entry, path) for path, entry in manifest["installation"].items()},
    )


def attest_context_url(public_url: str) -> str:
    """Where an installation at `public_url` serves Attest's context."""
    return public_url.rstrip("/") + ATTEST_CONTEXT_PATH


def credential_contexts(public_url: str) -> list[str]:
    """The `@context` of an Attest credential: VC 2.0, OB 3.0.3, OB's
    extensions (for `1EdTechJsonSchemaValidator2019`), then Attest's."""
    return [VC_V2, OB_V3, OB_EXTENSIONS, attest_context_url(public_url)]


def is_attest_context_url(url: str) -> bool:
    """`http(s)://<origin>[/prefix]/contexts/attest/v1`, nothing after it."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return (parts.scheme in ("http", "https") and bool(parts.hostname) and "@" not in parts.netloc
            and parts.path.endswith(ATTEST_CONTEXT_PATH) and not parts.query and not parts.fragment
            and "#" not in url and "?" not in url)


def context_document(url: str) -> dict:
    """The shipped context for `url` (a fresh copy); ContextRefused otherwise."""
    pinned = _pinned()
    document = pinned.official.get(url)
    if document is None and is_attest_context_url(url):
        document = pinned.installation[ATTEST_CONTEXT_PATH]
    if document is None:
        raise ContextRefused(url)
    return copy.deepcopy(document)


def document_loader(url: str, options: dict | None = None) -> dict:
    """A pyld document loader that serves only the shipped contexts.

    Tagged 'static' so pyld keeps the processed context between calls: the
    files are pinned, so what a URL means never changes within a process."""
    return {"contextUrl": None, "documentUrl": url, "document": context_document(url), "tag": "static"}


def _options(**extra) -> dict:
    return {"documentLoader": document_loader, "base": None, **extra}


def _refusal(exc: BaseException) -> ContextRefused | None:
    """The ContextRefused behind pyld's wrapped errors, if that is the cause."""
    seen = exc
    while seen is not None:
        if isinstance(seen, ContextRefused):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


# pyld keeps its resolved contexts in process-wide cachetools LRU caches,
# which are not thread-safe; a threaded web worker verifying credentials
# would otherwise race on them. (The GIL serializes the work anyway.)
_PYLD_LOCK = threading.RLock()


def _expand(document: dict, on_dropped) -> list:
    try:
        with _PYLD_LOCK:
            return _pyld.expand(document, _options(), on_property_dropped=on_dropped)
    except _pyld.JsonLdError as exc:
        refused = _refusal(exc)
        if refused is not None:
            raise refused from None
        raise


_ABSOLUTE_IRI = re.compile(r"^[A-Za-z][A-Za-z0-9+\-.]*:[^\s]*$")


def _iri_problems(expanded: list) -> Iterator[str]:
    """What jsonld.js safe mode would flag in an expanded document and pyld
    lets pass or drops quietly: relative ids and types, a document that
    expands to nothing."""
    if not expanded:
        yield "the document expands to nothing"
    def walk(node, where: str):
        if isinstance(node, list):
            for item in node:
                yield from walk(item, where)
            return
        if not isinstance(node, dict):
            return
        if "@value" in node:
            return
        if "@list" in node:
            yield from walk(node["@list"], where)
            return
        node_id = node.get("@id")
        if isinstance(node_id, str) and not (node_id.startswith("_:") or _ABSOLUTE_IRI.match(node_id)):
            yield f"{where}: the id {node_id!r} is not an absolute IRI"
        for kind in node.get("@type", ()):
            if not (kind.startswith("_:") or _ABSOLUTE_IRI.match(kind)):
                yield f"{where}: the type {kind!r} is defined in no context"
        for key, value in node.items():
            if key == "@graph":
                yield from walk(value, where)
            elif not key.startswith("@"):
                yield from walk(value, key)

    yield from walk(expanded, "the document")


def expand_safe(document: dict) -> list:
    """Expand `document` with the shipped contexts; UnsafeJsonLd naming every
    term that would be dropped and every id or type that maps to no IRI."""
    dropped: list[str] = []
    expanded = _expand(document, lambda term: dropped.append(term))
    problems = [f"the term {term!r} is defined in no context" for term in dict.fromkeys(dropped)]
    problems += list(dict.fromkeys(_iri_problems(expanded)))
    if problems:
        raise UnsafeJsonLd(problems)
    return expanded


def to_dataset(document: dict) -> dict:
    """The RDF dataset (pyld's form) of `document`, after the safe check."""
    expand_safe(document)
    try:
        with _PYLD_LOCK:
            return _pyld.to_rdf(document, _options(produceGeneralizedRdf=False))
    except _pyld.JsonLdError as exc:
        refused = _refusal(exc)
        if refused is not None:
            raise refused from None
        raise


# What pyld leaves raw and RDFC-1.0 escapes: C0 controls but tab, LF, CR; DEL.
# And lone surrogates, which no UTF-8 text (so no hash) can hold.
_UNPORTABLE_LITERAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
# Inside IRIs RDFC-1.0 also escapes space and <>"{}|^`\ (pyld already drops
# IRIs with white space).
_UNPORTABLE_IRI = re.compile('[\x00-\x20<>"{}|^`\\\\\x7f\ud800-\udfff]')


def unportable_character(text: str, *, iri: bool = False) -> str | None:
    """The first character of `text` that pyld and RDFC-1.0 would write
    differently in N-Quads, as `U+XXXX`, or None."""
    found = (_UNPORTABLE_IRI if iri else _UNPORTABLE_LITERAL).search(text)
    return f"U+{ord(found.group()):04X}" if found else None


def check_portable(dataset: dict) -> None:
    """NotPortable naming the property and character, if any term of the
    dataset would canonicalize differently in pyld and in RDFC-1.0."""
    for triples in dataset.values():
        for triple in triples:
            for position in ("subject", "predicate", "object"):
                term = triple[position]
                kind = term["type"]
                if kind == "blank node":
                    continue
                bad = unportable_character(term["value"], iri=kind == "IRI")
                if bad is None and kind == "literal":
                    bad = unportable_character(term.get("datatype", ""), iri=True)
                if bad is not None:
                    raise NotPortable(
                        f"the value of {triple['predicate']['value']} holds {bad}, which pyld and RDFC-1.0 "
                        "write differently in N-Quads; remove it before signing")


def canonize_dataset(dataset: dict) -> str:
    """RDFC-1.0 canonical N-Quads of a pyld dataset (consumed: pyld's
    canonicalizer relabels its blank nodes in place)."""
    check_portable(dataset)
    return URDNA2015().main(dataset, {"algorithm": "URDNA2015", "format": "application/n-quads"})


def canonize(document: dict) -> str:
    """RDFC-1.0 canonical N-Quads of a JSON-LD document, with the shipped
    contexts only and after the safe check. This is the plain path the
    Data Integrity fast path is proven against."""
    return canonize_dataset(to_dataset(document))
