"""Words, sentences and the parts of a submission that must not count.

Every unit keeps character offsets into the original text, so a matched
passage can be highlighted exactly where it is.  Quoted passages, block
quotes, the bibliography and instructor template text are marked as
excluded: copying them is expected, so they neither raise the score nor
count in its denominator.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

WORD_RE = re.compile(r"[^\W_]+(?:['’][^\W_]+)*", re.UNICODE)
# A sentence ends at . ! ? (plus closing quotes/brackets) followed by space, or at a blank line.
_SENT_END_RE = re.compile(r"[.!?]+[\"'”’)\]]*(?=\s)|\n\s*\n")
_ABBREV = {"e.g", "i.e", "mr", "mrs", "ms", "dr", "prof", "st", "vs", "etc", "al", "fig", "no",
           "vol", "pp", "cf", "jr", "sr", "inc", "ltd", "co"}
_BIBLIO_HEADING_RE = re.compile(
    r"^[ \t#*_]*(references|bibliography|works cited|sources|literature cited|reference list)"
    r"[ \t:*_]*$", re.IGNORECASE | re.MULTILINE)
# Straight and curly marks are often mixed in one quotation (“like this"), so any opening
# mark pairs with the next closing one.  A mark opens only at the start of a word (after
# a space or bracket) and closes only at its end (before a space or punctuation): a stray
# closing mark (`roof." This`) then never opens a "quotation" that swallows the student's
# own words up to the next mark.
_QUOTE_RE = re.compile(r"(?:^|(?<=[\s(\[]))[\"“][^\"“”\n]{1,2000}?(?<=\S)[\"”](?=[\s.,;:!?)\]]|$)")
MIN_QUOTE_WORDS = 4
# Style guides (APA: 40 words, MLA: four lines) set longer quotations as block
# quotes; a longer "inline quotation" is more likely two stray quote marks.
MAX_QUOTE_WORDS = 60


@dataclass(frozen=True)
class Span:
    """Half-open character range [start, end) in a text."""

    start: int
    end: int


@dataclass
class Segmented:
    """A text split into words and sentences, with excluded character ranges."""

    text: str
    words: list[tuple[int, int, str]]  # (start, end, lower-cased word)
    sentences: list[Span]
    excluded: list[tuple[int, int, str]] = field(default_factory=list)  # (start, end, kind)
    word_excluded: list[bool] = field(default_factory=list)

    @property
    def countable_chars(self) -> int:
        """Characters of words that count (not excluded): the score's denominator."""
        return sum(e - s for (s, e, _), x in zip(self.words, self.word_excluded, strict=False) if not x)


def words(text: str) -> list[tuple[int, int, str]]:
    """Word tokens with their offsets, lower-cased; punctuation is dropped."""
    return [(m.start(), m.end(), m.group().lower().replace("’", "'"))
            for m in WORD_RE.finditer(text)]


def sentences(text: str) -> list[Span]:
    """Sentence spans (stripped), by punctuation and blank lines.

    A rule-based splitter is enough here: a missed boundary only makes a
    window a little longer, and abbreviations like "e.g." are kept whole.
    """
    spans: list[Span] = []
    start = 0
    for m in _SENT_END_RE.finditer(text):
        end = m.end()
        if m.group().startswith((".",)) and len(m.group()) == 1:
            prev = re.search(r"(\w+)$", text[start:m.start()])
            if prev and (prev.group(1).lower() in _ABBREV or len(prev.group(1)) == 1):
                continue
        _append_stripped(text, start, end, spans)
        start = end
    _append_stripped(text, start, len(text), spans)
    return spans


def _append_stripped(text: str, start: int, end: int, out: list[Span]) -> None:
    chunk = text[start:end]
    left = len(chunk) - len(chunk.lstrip())
    right = len(chunk.rstrip())
    if right > left and WORD_RE.search(chunk):
        out.append(Span(start + left, start + right))


def quoted_spans(text: str) -> list[tuple[int, int, str]]:
    """Inline quotations of at least a few words, and Markdown/indented block quotes."""
    out = [(m.start(), m.end(), "quotation") for m in _QUOTE_RE.finditer(text)
           if MIN_QUOTE_WORDS <= len(WORD_RE.findall(m.group())) <= MAX_QUOTE_WORDS]
    pos = 0
    for line in text.splitlines(keepends=True):
        if line.lstrip().startswith(">"):
            out.append((pos, pos + len(line.rstrip("\n")), "block quotation"))
        pos += len(line)
    # Indented paragraphs are block quotes only where most paragraphs are not
    # indented (some writers indent every paragraph's first line).
    paragraphs = [(m.start(), m.end(), m.group()) for m in re.finditer(r"[^\n](?:.|\n(?!\s*\n))*", text)]
    indented = [(s, e) for s, e, p in paragraphs
                if all(ln.startswith(("    ", "\t")) for ln in p.split("\n") if ln.strip())
                and not p.lstrip().startswith(">")]
    if indented and len(indented) * 2 < len(paragraphs):
        out.extend((s, e, "block quotation") for s, e in indented)
    return out


def bibliography_span(text: str) -> tuple[int, int, str] | None:
    """From a References/Bibliography/Works Cited heading to the end of the text.

    Only a heading in the second half of the text counts, so an essay about
    "sources" whose first line is a heading is not swallowed whole.
    """
    last = None
    for m in _BIBLIO_HEADING_RE.finditer(text):
        if m.start() >= len(text) * 0.3:
            last = m
            break
    if last is None:
        return None
    return (last.start(), len(text), "bibliography")


@lru_cache(maxsize=32)
def _template_grams(template: str, n: int) -> frozenset[tuple[str, ...]]:
    """Word n-grams of one template (a scan segments every text against the same template)."""
    tw = [w for _, _, w in words(template)]
    return frozenset(tuple(tw[i:i + n]) for i in range(len(tw) - n + 1))


def template_spans(text: str, templates: list[str], n: int = 6,
                   toks: list[tuple[int, int, str]] | None = None) -> list[tuple[int, int, str]]:
    """Runs of the text that repeat instructor template text (word n-gram matches);
    `toks` are the text's words when the caller has them already."""
    if not templates:
        return []
    grams = [_template_grams(t, n) for t in templates]
    toks = words(text) if toks is None else toks
    low = [w for _, _, w in toks]
    out: list[tuple[int, int, str]] = []
    for i in range(len(toks) - n + 1):
        gram = tuple(low[i:i + n])
        if any(gram in g for g in grams):
            out.append((toks[i][0], toks[i + n - 1][1], "template"))
    return merge_ranges(out)


def merge_ranges(ranges: list[tuple[int, int, str]], gap: int = 0) -> list[tuple[int, int, str]]:
    """Merge overlapping (or within `gap` chars) ranges, keeping the first kind."""
    merged: list[tuple[int, int, str]] = []
    for s, e, k in sorted(ranges):
        if merged and s <= merged[-1][1] + gap:
            ps, pe, pk = merged[-1]
            merged[-1] = (ps, max(pe, e), pk)
        else:
            merged.append((s, e, k))
    return merged


def segment(text: str, templates: list[str] | None = None) -> Segmented:
    """Split `text` and mark what is excluded from the score."""
    toks = words(text)
    excluded = list(quoted_spans(text))
    bib = bibliography_span(text)
    if bib:
        excluded.append(bib)
    excluded.extend(template_spans(text, templates or [], toks=toks))
    excluded = merge_ranges(excluded)
    flags = _inside(toks, excluded)
    return Segmented(text=text, words=toks, sentences=sentences(text), excluded=excluded,
                     word_excluded=flags)


def _inside(toks: list[tuple[int, int, str]], ranges: list[tuple[int, int, str]]) -> list[bool]:
    """For each word, whether it lies inside one of the (merged, sorted) ranges."""
    flags = []
    j = 0
    for s, e, _ in toks:
        while j < len(ranges) and ranges[j][1] <= s:
            j += 1
        flags.append(j < len(ranges) and ranges[j][0] <= s and e <= ranges[j][1])
    return flags
