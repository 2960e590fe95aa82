"""RDFC-1.0 canonical N-Quads for many documents of one shape, with the
JSON-LD expansion and RDF conversion done once per shape instead of once per
document.

Why: a plain eddsa-rdfc-2022 proof costs about 5 ms here, nearly all of it
pyld's JSON-LD expansion (context processing, term look-ups) and RDF
conversion. Every credential of a batch has the same shape, and expansion
does not look inside most strings: a string under a literal-valued term
becomes `{"@value": s}` whatever it says. So a shape's RDF dataset is made
once from a copy whose strings are placeholders, and each document's own
strings are put back into that dataset's N-Quads lines.

What a shape is: the document's keys, nesting, list lengths, every
non-string value, and the strings expansion does look at: `@context` URLs,
`type` values and anything under a keyword or under a term whose definition
in any shipped context is `@type: @vocab` or a keyword alias. The other
strings are slots.

What the values can still change, and how each is kept exact (`accepts`,
otherwise the document goes through plain pyld, `jsonld.canonize`):
- a slot that becomes an IRI (an `id`, a term with `@type: @id`) must be an
  absolute IRI of plain ASCII IRI characters whose scheme is no term of any
  shipped context: such a value expands to itself;
- pyld's node map merges nodes with one id and keeps equal values of one
  property of one node once: documents where that would happen are refused;
- a literal holding a character pyld and RDFC-1.0 write differently is
  refused (see jsonld.NotPortable), as plain canonicalization refuses it;
- RDFC-1.0 labels blank nodes by the hashes of their quads. When every blank
  node's first-degree hash is unique (Attest's credentials: each blank node
  has properties of its own) labels follow hash order and that is the whole
  algorithm, computed here on pre-split lines; otherwise pyld's RDFC-1.0 runs
  on the document's dataset.
An embedded `@context`, a float or other value JSON has no slot for, and a
shape whose placeholders land anywhere but a literal's value or a node's IRI
go through plain pyld.

How we know it is right: tests/test_rdfc.py generates credentials of Attest's
shapes (any script, quotes, backslashes, new lines, control characters,
optional grade, expiry and salted email, any date, ids the fast path takes
and ids it must refuse) with hypothesis and checks the output is
byte-identical to plain pyld, or that both refuse. At run time the first
document of every new shape is canonicalized both ways too; a disagreement
drops the shape to plain pyld for good.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import threading
from dataclasses import dataclass

from pyld import jsonld as _pyld
from pyld.canon import URDNA2015
from pyld.identifier_issuer import IdentifierIssuer
from pyld.nquads import escape as _escape

from credentials import jsonld

log = logging.getLogger(__name__)

_PLACEHOLDER_PREFIX = "urn:attest-slot:"
# An absolute IRI of unreserved and reserved ASCII characters only (RFC 3987's
# ucschar and iprivate are left to the plain path, as is percent-less junk).
_PLAIN_IRI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+\Z")
_XSD_STRING = "http://www.w3.org/2001/XMLSchema#string"
_RDF_LANGSTRING = "http://www.w3.org/1999/02/22-rdf-syntax-ns#langString"
_RDF_OPTIONS = {"produceGeneralizedRdf": False, "processingMode": "json-ld-1.1", "rdfDirection": None}


class _Unshaped(Exception):
    """The document is outside what shapes cover: use plain pyld."""


def _context_facts() -> tuple[frozenset[str], frozenset[str]]:
    """(every term any shipped context defines, the terms whose string values
    expansion interprets: keyword aliases other than @id, @vocab/@json types).
    By name, whatever the scope: a wider net only means more shapes."""
    terms: set[str] = set()
    interpreted: set[str] = set()

    def scan(context) -> None:
        for local in context if isinstance(context, list) else [context]:
            if not isinstance(local, dict):
                continue
            for term, definition in local.items():
                if term.startswith("@"):
                    continue
                terms.add(term)
                target = definition if isinstance(definition, str) else None
                if isinstance(definition, dict):
                    target = definition.get("@id")
                    if definition.get("@type") in ("@vocab", "@json") or definition.get("@reverse"):
                        interpreted.add(term)
                    if "@context" in definition:
                        scan(definition["@context"])
                if isinstance(target, str) and target.startswith("@") and target != "@id":
                    interpreted.add(term)

    pinned = jsonld._pinned()
    for document in [*pinned.official.values(), *pinned.installation.values()]:
        scan(document["@context"])
    return frozenset(terms), frozenset(interpreted)


_TERMS, _INTERPRETED = _context_facts()


def _interpreted(key: str) -> bool:
    return (key.startswith("@") and key != "@id") or key in _INTERPRETED


# The shape key's structure tokens: objects of their own, so no string of a
# document can be mistaken for one (and True, 1 and 1.0 stay apart).
_OPEN, _CLOSE, _LIST, _END, _STRING_SLOT, _BOOL, _INT, _NULL, _BODY = (object() for _ in range(9))


def shape_of(document: dict) -> tuple[tuple, list[str]]:
    """(the shape key, the slot strings in walk order); _Unshaped if the
    document is outside what shapes cover. The key is one flat tuple of
    tokens (a dict is _OPEN, its keys each followed by its value, _CLOSE; a
    list _LIST ... _END; a slot _STRING_SLOT; an interpreted string itself):
    it parses back one way only, so two documents share a key exactly when
    they share a shape. Flat, it is built, hashed and compared in a third
    of the time of nested tuples."""
    values: list[str] = []
    tokens: list = []
    add = tokens.append
    slot = values.append
    interpreted = _INTERPRETED

    def walk(value, key: str) -> None:
        kind = type(value)
        if kind is str:
            if (key[:1] == "@" and key != "@id") or key in interpreted:
                add(value)
            else:
                add(_STRING_SLOT)
                slot(value)
        elif kind is dict:
            if "@context" in value:
                raise _Unshaped("an embedded @context")
            add(_OPEN)
            for k, v in value.items():
                add(k)
                walk(v, k)
            add(_CLOSE)
        elif kind is list:
            add(_LIST)
            for item in value:
                walk(item, key)
            add(_END)
        elif kind is bool:
            add(_BOOL)
            add(value)
        elif kind is int:
            add(_INT)
            add(value)
        elif value is None:
            add(_NULL)
        else:
            raise _Unshaped(f"a {kind.__name__} value")

    context = document.get("@context")
    if isinstance(context, str):
        context = [context]
    if not (isinstance(context, list) and all(isinstance(c, str) for c in context)):
        raise _Unshaped("@context is not a list of URLs")
    tokens.extend(context)
    add(_BODY)
    add(_OPEN)
    for k, v in document.items():
        if k != "@context":
            add(k)
            walk(v, k)
    add(_CLOSE)
    return tuple(tokens), values


def _with_values(document: dict, values) -> dict:
    """`document` with its slot strings replaced, in walk order, by `values`."""
    supply = iter(values)

    def walk(value, key: str):
        kind = type(value)
        if kind is str:
            return value if _interpreted(key) else next(supply)
        if kind is dict:
            return {k: walk(v, k) for k, v in value.items()}
        if kind is list:
            return [walk(item, key) for item in value]
        return value

    out = {k: walk(v, k) for k, v in document.items() if k != "@context"}
    return {"@context": document["@context"], **out}


def dataset_from_expanded(expanded: list) -> dict:
    """pyld's `to_rdf` after its expansion step, line for line: node map, then
    each graph's triples. (JsonLdProcessor's private methods, pinned with
    pyld==3.3.0; the property test would catch a change in them.)"""
    processor = _pyld.JsonLdProcessor()
    issuer = IdentifierIssuer("_:b")
    node_map: dict = {"@default": {}}
    processor._create_node_map(expanded, node_map, "@default", issuer)
    dataset = {}
    for graph_name, graph in sorted(node_map.items()):
        if graph_name == "@default" or _pyld._is_absolute_iri(graph_name):
            dataset[graph_name] = processor._graph_to_rdf(graph, issuer, _RDF_OPTIONS)
    return dataset


# Terms of a template quad: a constant term (shared: RDFC-1.0 rewrites only
# blank node terms), a blank node label (a fresh term per document), or a slot.
_CONST, _BNODE, _IRI, _LITERAL = range(4)


@dataclass(frozen=True)
class Template:
    """One shape's RDF dataset with slots where the document's strings go.

    Two things pyld's node map does depend on the values, and `accepts`
    refuses documents where they would apply: nodes whose ids come out equal
    are merged, and equal values of one property of one node are kept once."""

    graphs: tuple[tuple[str, tuple], ...]  # (graph name, quad recipes)
    lines: tuple[tuple, ...]  # each quad's N-Quads line cut at its blank nodes (see _split)
    blank_quads: tuple[tuple[str, tuple[int, ...]], ...]  # each blank node and the lines naming it
    iri_slots: tuple[int, ...]
    literal_slots: tuple[int, ...]
    subject_slots: tuple[int, ...]
    constant_subjects: frozenset[str]
    groups: tuple[tuple[tuple, ...], ...]  # objects of one (subject, property) that must stay distinct

    def accepts(self, values: list[str]) -> bool:
        """Does this document's dataset come out of the template as it would
        out of pyld? Every IRI slot's value must expand to itself, no two
        nodes may merge, no two values of one property may coincide, and no
        literal may hold a character pyld and RDFC-1.0 write differently."""
        for index in self.iri_slots:
            value = values[index]
            if not _PLAIN_IRI.match(value) or value in _TERMS or value.split(":", 1)[0] in _TERMS:
                return False
        for index in self.literal_slots:
            if jsonld.unportable_character(values[index]) is not None:
                return False
        subjects = {values[i] for i in self.subject_slots}
        if len(subjects) != len(self.subject_slots) or not subjects.isdisjoint(self.constant_subjects):
            return False
        for group in self.groups:
            rendered = {_rendered(obj, values) for obj in group}
            if len(rendered) != len(group):
                return False
        return True

    def dataset(self, values: list[str]) -> dict:
        """The document's RDF dataset, fresh (RDFC-1.0 relabels in place)."""
        def term(kind, ref, extra):
            if kind == _CONST:
                return ref
            if kind == _BNODE:
                return {"type": "blank node", "value": ref}
            if kind == _IRI:
                return {"type": "IRI", "value": values[ref]}
            datatype, language = extra
            out = {"type": "literal", "value": values[ref], "datatype": datatype}
            if language is not None:
                out["language"] = language
            return out

        return {name: [{"subject": term(*s), "predicate": p, "object": term(*o)} for s, p, o in recipes]
                for name, recipes in self.graphs}

    def canonical_nquads(self, values: list[str]) -> str:
        """RDFC-1.0 of this document's dataset. When every blank node's
        first-degree hash is unique (Attest's credentials: each blank node
        has properties of its own), canonical labels follow the hash order
        and this is the whole algorithm, computed by the template's
        generated renderer (`_compile_renderer`). Otherwise pyld's
        implementation runs on the dataset."""
        render = self.renderer
        out = render(values) if render is not None else self.interpreted_nquads(values)
        return out if out is not None else _canonize_fresh(self.dataset(values))

    @functools.cached_property
    def renderer(self):
        """This template's lines as one generated function (None for a
        template of more than _MAX_COMPILED_LINES lines): 5 times faster than
        `interpreted_nquads`, which it equals (tests/test_rdfc.py)."""
        return _compile_renderer(self)

    def interpreted_nquads(self, values: list[str]) -> str | None:
        """What the generated renderer computes, by walking the template's
        pre-split lines; None when two blank nodes hash alike."""
        texts = list(values)
        for index in self.literal_slots:
            texts[index] = _escape(texts[index])
        lines = [([seg if type(seg) is str else "".join([p if type(p) is str else texts[p] for p in seg])
                   for seg in segments], labels) for segments, labels in self.lines]
        hashes = {}
        for label, indexes in self.blank_quads:
            named = {label: "_:a"}
            hashed = sorted([_join(*lines[i], named, "_:z") for i in indexes])
            hashes[label] = hashlib.sha256("".join(hashed).encode()).hexdigest()
        if len(set(hashes.values())) != len(hashes):
            return None
        order = sorted(hashes, key=hashes.__getitem__)
        names = {label: f"_:c14n{i}" for i, label in enumerate(order)}
        return "".join(sorted([_join(segments, labels, names, None) for segments, labels in lines]))


# Templates with more lines than this are walked, not compiled: Attest's credentials have about 40,
# and compiling costs about 0.2 ms a line, paid once per shape (a stranger can send new shapes).
_MAX_COMPILED_LINES = 500
# pyld's N-Quads escape changes only these characters: most literals have none.
_NEEDS_ESCAPE = re.compile(r'[\\\t\n\r"]').search


def _line_expression(segments: tuple, labels: tuple[str, ...], name_of) -> str:
    """Python source for one line: its constant text as repr() literals, its
    slots as `t[i]`, and each blank node as `name_of(label)` (source too).
    Nothing from the document reaches the source except through repr(),
    so any string it holds stays a string."""
    pieces: list[tuple[bool, str]] = []  # (is source, text)

    def add_segment(segment) -> None:
        for part in (segment,) if type(segment) is str else segment:
            if type(part) is str:
                pieces.append((False, part))
            else:
                pieces.append((True, f"t[{int(part)}]"))

    add_segment(segments[0])
    for label, segment in zip(labels, segments[1:], strict=True):
        pieces.append(name_of(label))
        add_segment(segment)
    merged: list[tuple[bool, str]] = []
    for is_source, text in pieces:
        if not is_source and merged and not merged[-1][0]:
            merged[-1] = (False, merged[-1][1] + text)
        elif is_source or text:
            merged.append((is_source, text))
    sources = [text if is_source else repr(text) for is_source, text in merged]
    if not sources:
        return "''"
    if len(sources) == 1:
        return sources[0]
    return f"''.join(({', '.join(sources)},))"


def _compile_renderer(template: Template):
    """The template's `interpreted_nquads` as straight-line Python: slot
    escaping, each blank node's first-degree hash, the labels in hash order
    and the sorted lines, with every constant piece joined in advance.
    Blank nodes are numbered here (`n0`, `n1`, ...), so their labels never
    reach the source either."""
    if len(template.lines) > _MAX_COMPILED_LINES:
        return None
    number = {label: i for i, (label, _) in enumerate(template.blank_quads)}
    code = ["def render(values):", "    t = list(values)"]
    for index in template.literal_slots:
        code.append(f"    if _needs(t[{int(index)}]): t[{int(index)}] = _escape(t[{int(index)}])")
    for label, indexes in template.blank_quads:
        def hashing_name(other, label=label):
            return (False, "_:a") if other == label else (False, "_:z")
        lines = [_line_expression(*template.lines[i], hashing_name) for i in indexes]
        code.append(f"    h{number[label]} = _sha(''.join(sorted([{', '.join(lines)}])).encode()).hexdigest()")
    count = len(number)
    if count:
        hashes = ", ".join(f"h{i}" for i in range(count))
        code += [f"    hashes = ({hashes},)",
                 f"    if len(set(hashes)) != {count}: return None",
                 "    names = [''] * len(hashes)",
                 "    for rank, node in enumerate(sorted(range(len(hashes)), key=hashes.__getitem__)):",
                 "        names[node] = '_:c14n' + str(rank)",
                 f"    {', '.join(f'n{i}' for i in range(count))}, = names"]
    final = [_line_expression(segments, labels, lambda label: (True, f"n{number[label]}"))
             for segments, labels in template.lines]
    code.append(f"    return ''.join(sorted([{', '.join(final)}]))")
    namespace = {"_escape": _escape, "_needs": _NEEDS_ESCAPE, "_sha": hashlib.sha256}
    exec(compile("\n".join(code), "<rdfc template>", "exec"), namespace)  # noqa: S102 - our own source, see above
    return namespace["render"]


def _split(line: tuple) -> tuple[tuple, tuple[str, ...]]:
    """A line's pieces cut at its blank nodes: (segments, blank node labels),
    each segment a constant string or a tuple of strings and slot indexes."""
    segments: list = []
    labels: list[str] = []
    current: list = []
    for part in line:
        if type(part) is tuple:
            segments.append(current)
            labels.append(part[0])
            current = []
        else:
            current.append(part)
    segments.append(current)
    packed = tuple(seg[0] if len(seg) == 1 and type(seg[0]) is str else "" if not seg else tuple(seg)
                   for seg in segments)
    return packed, tuple(labels)


def _join(segments: list[str], labels: tuple[str, ...], names: dict, other: str | None) -> str:
    """A line with its blank nodes named: `names[label]`, else `other`."""
    if not labels:
        return segments[0]
    out = [segments[0]]
    for label, segment in zip(labels, segments[1:], strict=True):
        out.append(names.get(label, other))
        out.append(segment)
    return "".join(out)


def _literal_suffix(datatype: str, language: str | None) -> str:
    """What pyld's serialize_nquad writes after a literal's closing quote."""
    if datatype == _RDF_LANGSTRING:
        return f"@{language}" if language else ""
    return "" if datatype == _XSD_STRING else f"^^<{datatype}>"


def _compile_lines(graphs: list) -> tuple[tuple, tuple]:
    """Each quad as the pieces of its N-Quads line (pyld's serialize_nquad,
    piece by piece), and for each blank node the lines that name it, once
    per mention as RDFC-1.0's blank node to quads map has it."""
    lines = []
    mentions: dict[str, list[int]] = {}

    def term(recipe: tuple, parts: list) -> None:
        kind, ref, extra = recipe
        if kind == _CONST:
            if ref["type"] == "IRI":
                parts.append(f"<{ref['value']}>")
            else:
                parts.append(f'"{_escape(ref["value"])}"{_literal_suffix(ref["datatype"], ref.get("language"))}')
        elif kind == _BNODE:
            parts.append((ref,))
            mentions.setdefault(ref, []).append(len(lines))
        elif kind == _IRI:
            parts.extend(("<", ref, ">"))
        else:
            parts.extend(('"', ref, '"' + _literal_suffix(*extra)))

    for name, recipes in graphs:
        for subject, predicate, obj in recipes:
            parts: list = []
            term(subject, parts)
            parts.append(f" <{predicate['value']}> ")
            term(obj, parts)
            if name != "@default":
                if name.startswith("_:"):
                    parts.append(" ")
                    parts.append((name,))
                    mentions.setdefault(name, []).append(len(lines))
                else:
                    parts.append(f" <{name}>")
            parts.append(" .\n")
            merged: list = []
            for part in parts:
                if type(part) is str and merged and type(merged[-1]) is str:
                    merged[-1] += part
                else:
                    merged.append(part)
            lines.append(tuple(merged))
    return (tuple(_split(line) for line in lines),
            tuple((label, tuple(indexes)) for label, indexes in mentions.items()))


def _rendered(recipe: tuple, values: list[str]) -> tuple:
    """An object term as a comparable tuple (type, value, datatype, language)."""
    kind, ref, extra = recipe
    if kind == _CONST:
        return (ref["type"], ref["value"], ref.get("datatype"), ref.get("language"))
    if kind == _BNODE:
        return ("blank node", ref, None, None)
    if kind == _IRI:
        return ("IRI", values[ref], None, None)
    return ("literal", values[ref], *extra)


class _Misplaced(Exception):
    pass


def make_template(document: dict, slot_count: int) -> Template | None:
    """Expand and convert `document` once with a placeholder in every slot;
    None when a placeholder lands anywhere but a literal's value or a node's
    IRI, or when anything is dropped (plain pyld will then say what)."""
    placeholders = {f"{_PLACEHOLDER_PREFIX}{i}": i for i in range(slot_count)}
    probe = _with_values(document, placeholders)
    try:
        dataset = dataset_from_expanded(jsonld.expand_safe(probe))
        jsonld.check_portable(dataset)  # the constants, once; slots per document
    except (ValueError, _pyld.JsonLdError):
        return None
    seen: set[int] = set()
    iri_slots: set[int] = set()
    literal_slots: set[int] = set()

    def recipe(term: dict) -> tuple:
        kind, value = term["type"], term["value"]
        if kind == "blank node":
            return (_BNODE, value, None)
        index = placeholders.get(value)
        if index is None:
            if _PLACEHOLDER_PREFIX in value or _PLACEHOLDER_PREFIX in term.get("datatype", ""):
                raise _Misplaced(value)
            return (_CONST, term, None)
        seen.add(index)
        if kind == "IRI":
            iri_slots.add(index)
            return (_IRI, index, None)
        literal_slots.add(index)
        return (_LITERAL, index, (term["datatype"], term.get("language")))

    try:
        graphs = []
        for name, triples in dataset.items():
            if _PLACEHOLDER_PREFIX in name:
                raise _Misplaced(name)
            recipes = []
            for triple in triples:
                if _PLACEHOLDER_PREFIX in triple["predicate"]["value"]:
                    raise _Misplaced(triple["predicate"]["value"])
                recipes.append((recipe(triple["subject"]), triple["predicate"], recipe(triple["object"])))
            graphs.append((name, tuple(recipes)))
    except _Misplaced:
        return None
    if len(seen) != slot_count:
        return None
    return Template(tuple(graphs), *_compile_lines(graphs), tuple(sorted(iri_slots)),
                    tuple(sorted(literal_slots)), *_merge_guards(graphs))


def _merge_guards(graphs: list) -> tuple[tuple[int, ...], frozenset[str], tuple]:
    """What `accepts` checks against merging: the slots that name subjects,
    the constant subject IRIs, and every (graph, subject, property) group of
    two or more objects of which a slot is one."""
    subject_slots: set[int] = set()
    constant_subjects: set[str] = set()
    grouped: dict[tuple, list[tuple]] = {}
    for name, recipes in graphs:
        for subject, predicate, obj in recipes:
            kind, ref, _ = subject
            if kind == _IRI:
                subject_slots.add(ref)
            elif kind == _CONST:
                constant_subjects.add(ref["value"])
            subject_key = (kind, ref if kind != _CONST else ref["value"])
            grouped.setdefault((name, subject_key, predicate["value"]), []).append(obj)
    groups = tuple(tuple(objects) for objects in grouped.values()
                   if len(objects) > 1 and any(k in (_IRI, _LITERAL) for k, _, _ in objects))
    return tuple(sorted(subject_slots)), frozenset(constant_subjects), groups


def _canonize_fresh(dataset: dict) -> str:
    """RDFC-1.0 of a template's dataset: portability was checked on the
    template's constants and in `accepts`, so straight to pyld's algorithm."""
    return URDNA2015().main(dataset, {"algorithm": "URDNA2015", "format": "application/n-quads"})


_UNUSABLE = object()  # cache entry: this shape goes through plain pyld


class ShapeCanonicalizer:
    """`canonize(document)`, equal to `jsonld.canonize(document)`, computing
    the JSON-LD expansion once per shape. One per process; thread-safe."""

    def __init__(self, max_shapes: int = 256, check_first: bool = True):
        self._templates: dict = {}
        self._lock = threading.Lock()
        self.max_shapes = max_shapes
        self.check_first = check_first
        self.stats = {"fast": 0, "plain": 0, "shapes": 0}

    def canonize(self, document: dict) -> str:
        """RDFC-1.0 canonical N-Quads of `document`, as `jsonld.canonize`."""
        try:
            key, values = shape_of(document)
        except _Unshaped:
            return self._plain(document)
        template = self._templates.get(key)
        if template is None and self.check_first:
            return self._first(document, key, values)
        fast = self._fast(document, key, values, template)
        return fast if fast is not None else self._plain(document)

    def try_fast(self, document: dict) -> str | None:
        """The fast path alone (no first-document check): the N-Quads, or None
        when this document must go through plain pyld. For tests and bench."""
        try:
            key, values = shape_of(document)
        except _Unshaped:
            return None
        return self._fast(document, key, values, self._templates.get(key))

    def _fast(self, document: dict, key: tuple, values: list[str], template) -> str | None:
        if template is None:
            template = make_template(document, len(values)) or _UNUSABLE
            self._store(key, template)
        if template is _UNUSABLE or not template.accepts(values):
            return None
        self.stats["fast"] += 1
        return template.canonical_nquads(values)

    def _plain(self, document: dict) -> str:
        self.stats["plain"] += 1
        return jsonld.canonize(document)

    def _first(self, document: dict, key: tuple, values: list[str]) -> str:
        """A shape not seen before: make its template and prove it on this
        document against plain pyld before trusting it. A document whose own
        ids the template cannot take leaves the shape for the next one."""
        plain = self._plain(document)  # raises for unsafe documents, before anything is cached
        template = make_template(document, len(values))
        if template is None:
            self._store(key, _UNUSABLE)
        elif template.accepts(values):
            if template.canonical_nquads(values) == plain and _canonize_fresh(template.dataset(values)) == plain:
                self._store(key, template)
            else:
                log.warning("per-shape canonicalization disagreed with pyld; this shape uses pyld")
                self._store(key, _UNUSABLE)
        return plain

    def _store(self, key: tuple, template) -> None:
        with self._lock:
            if len(self._templates) >= self.max_shapes:
                self._templates.clear()
            self._templates[key] = template
            self.stats["shapes"] += 1
