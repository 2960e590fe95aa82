"""Near-duplicate detection: which passages of a submission were copied or paraphrased.

A passage counts only on corroborated evidence (the signals are named entries of
plagiarism.evidence.SIGNALS):

* shared wording: runs of identical word 5-grams (lower case, light stemming),
  chained across gaps of a few words so light edits keep a run whole.  Phrases
  that many submissions share are common material and are dropped first, as MOSS
  drops frequent k-grams; a run counts on its own only when it is long, and a
  shorter one (a stock phrase such as "X can be used to calculate the") only
  when it also carries an uncommon word;
* meaning: each sentence is compared with the single sentences and two-sentence
  windows of every other text through sentence embeddings.  Answers to one
  prompt are close in embedding space by nature, so a close sentence is only a
  lead: it counts when corroborated, by uncommon content words both use, by the
  same sentence structure once content words are masked, by a shorter run of
  shared wording, or by neighbouring sentences that match the same stretch of
  the other text; and, in a class of some size, by how far the pair stands out
  from the same sentence's closeness to the rest of the class.  At least one of
  those corroborators must be textual or positional, never the embedding alone.

`score` is exactly what the report says it is: the share of the submission's
countable text (quotations, bibliography and template excluded) that lies in
matched, corroborated passages.  How strong the evidence is shows separately as
`confidence` (see plagiarism.evidence.confidence).  Whole-document similarity is
deliberately not used: it measures topic, not copying.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from functools import lru_cache

import numpy as np

from plagiarism import evidence as ev
from plagiarism.fingerprint import normalise_word
from plagiarism.segment import Segmented, Span, segment, words
from plagiarism.stylometry import FUNCTION_WORDS

# Calibrated on the tuning split by `.venv/bin/python bench/eval_near_duplicates.py`
# (see bench/results/eval_near_duplicates.txt): the flag threshold is a share of the text.
FLAG_THRESHOLD = 0.018
MIN_SENTENCE_WORDS = 5
# A word this rare in English (Zipf 2.5: a few times in 10^8 words) is one that students
# almost never pick independently, so it stays uncommon when one more text uses it: a
# source and two students who copied it.
VERY_RARE_ZIPF = 2.5

Encoder = Callable[[list[str]], np.ndarray]
_FUNCTION_SET = frozenset(FUNCTION_WORDS)
_FUNCTION_NORMS = frozenset(normalise_word(w) for w in FUNCTION_WORDS)
_MASK = "\x00*"  # stands for a masked content word in structure n-grams
_PRIME = np.uint64(0x9E3779B97F4A7C15)


@dataclass(frozen=True)
class Config:
    """Every threshold of the detector, checked once when made (the bench tunes them).

    The defaults are the values calibrated on the tuning split.
    """

    ngram: int = 5                 # words per shared-wording n-gram
    min_run_words: int = 8         # a shared run shorter than this is never a passage
    long_run_words: int = 12       # a shared run this long counts on its own
    merge_gap: int = 6             # runs this close on both sides form one passage
    common_share: float = 0.05     # an n-gram in more than this share of submissions is common ...
    common_min_docs: int = 4       # ... and in at least this many (a ring of three colluders is no "many")
    rare_zipf: float = 4.0         # a word rarer than this in English (Zipf scale) may be uncommon ...
    rare_share: float = 0.05       # ... if it is in at most this share of the scan's texts ...
    rare_min_texts: int = 2        # ... or in at most this many (one more for words rarer than VERY_RARE_ZIPF)
    sim_min: float = 0.65          # a sentence match below this cosine is no lead at all
    sim_strong: float = 0.90       # from this cosine one corroborator is enough ...
    corroboration: int = 2         # ... below it this many are needed
    align_min_sim: float = 0.85    # neighbours count for alignment from this cosine
    lead_run_words: int = 8        # a shared run this long inside a sentence corroborates it
    rare_min_words: int = 2        # uncommon words needed to corroborate a sentence
    margin: float = 0.12           # stands out: cosine minus the class background ...
    margin_floor: float = 0.0      # ... below this a meaning match never counts (class calibration) ...
    margin_alone: float = 0.30     # ... and from this it counts on the calibration alone
    min_cohort: int = 8            # texts needed before the class background means anything
    background_rank: int = 3       # the background is the n-th closest other text
    skeleton_ngram: int = 9        # length of the masked structure n-grams
    flag_threshold: float = FLAG_THRESHOLD
    use_embeddings: bool = True
    use_fingerprints: bool = True

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool):
                continue
            if isinstance(value, int) and value < 1:
                raise ValueError(f"Config.{f.name} must be a positive integer, got {value}")
            low = -1.0 if f.name == "margin_floor" else 0.0
            if isinstance(value, float) and not low <= value <= (20.0 if f.name == "rare_zipf" else 1.0):
                raise ValueError(f"Config.{f.name} must be between 0 and 1, got {value}")
        if self.min_run_words < self.ngram:
            raise ValueError(f"Config.min_run_words ({self.min_run_words}) must be at least "
                             f"ngram ({self.ngram})")
        if self.long_run_words < self.min_run_words:
            raise ValueError("Config.long_run_words must be at least min_run_words")
        if self.skeleton_ngram < 4:
            raise ValueError("Config.skeleton_ngram must be at least 4 (two masked, two kept words)")


Params = Config  # the name older callers use


# --------------------------------------------------------------------------- words

@lru_cache(maxsize=200_000)
def _word_hash(word: str) -> int:
    """Stable 64-bit hash of one token (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest(), "big")


def gram_keys(tokens: Sequence[str], n: int) -> np.ndarray:
    """A 64-bit key for the word n-gram starting at each position (len - n + 1 of them).

    A polynomial over per-word hashes, in wrapping uint64 arithmetic: vectorised,
    stable across processes, and collisions are negligible at class scale.
    """
    m = len(tokens) - n + 1
    if m <= 0:
        return np.zeros(0, np.uint64)
    h = np.fromiter((_word_hash(t) for t in tokens), dtype=np.uint64, count=len(tokens))
    key = np.zeros(m, np.uint64)
    with np.errstate(over="ignore"):
        for k in range(n):
            key = key * _PRIME + h[k:k + m]
    return key


_zipf: dict[str, float] | None = None


def english_zipf(word: str) -> float:
    """Frequency of a word in English on the Zipf scale (7 = "the", 3 = once per 10^6 words).

    From wordfreq's bundled word list (no network); 0 for unknown words.
    """
    global _zipf
    if _zipf is None:
        from wordfreq import get_frequency_dict

        _zipf = {w: math.log10(f * 1e9) for w, f in get_frequency_dict("en", "small").items() if f > 0}
    return _zipf.get(word, 0.0)


def _content_candidate(raw: str, norm: str) -> bool:
    """A word that can be content: not a function word, and not a code mixing letters and
    digits (ids, and the @CAPS1-style placeholders of anonymised essays, are no vocabulary)."""
    if norm in _FUNCTION_NORMS or raw in _FUNCTION_SET:
        return False
    digits = sum(c.isdigit() for c in raw)
    if digits and digits < len(raw):
        return False
    return len(raw) >= 3 or digits > 0


# --------------------------------------------------------------------------- texts

@dataclass
class Text:
    """One submission or reference source, segmented and normalised."""

    name: str
    text: str
    kind: str  # "submission" or "source"
    seg: Segmented
    raw: list[str]           # lower-cased words
    norm: list[str]          # normalised words (light stemming)
    counted: np.ndarray      # per token: counts towards the score
    units: list[Span]        # sentences used for meaning matches
    unit_tokens: list[tuple[int, int]]  # token range of each unit
    grams: np.ndarray        # word n-gram key at each position
    gram_counted: np.ndarray  # the n-gram lies wholly in counted text
    skeleton: np.ndarray     # masked structure n-gram key at each position
    skeleton_ok: np.ndarray  # that structure n-gram is usable (counted, mixed)
    starts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    token_chars: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    common: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # set by Cohort.of

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.name}"


def skeleton_keys(words: Sequence[str], counted: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Word n-grams with every content word masked: (key at each position, usable).

    Function words stay and every other word becomes a placeholder, so
    "the * * of the * was * in *" survives synonym swaps, the paraphraser's
    first tool, while the topic's vocabulary is gone (the word-level form of
    Stamatatos's text distortion).  A gram is usable only with at least two
    words of each kind and wholly in counted text.
    """
    masked = [w if w in _FUNCTION_SET else _MASK for w in words]
    keys = gram_keys(masked, n)
    m = len(keys)
    if m == 0:
        return keys, np.zeros(0, bool)
    is_mask = np.array([w == _MASK for w in masked], dtype=np.int64)
    stars = np.convolve(is_mask, np.ones(n, np.int64), mode="valid")[:m]
    ok_counted = np.convolve(counted.astype(np.int64), np.ones(n, np.int64), mode="valid")[:m] == n
    return keys, (stars >= 2) & (stars <= n - 2) & ok_counted


def prepare(name: str, text: str, kind: str = "submission", templates: list[str] | None = None,
            skeleton_n: int | None = None, config: Config | None = None) -> Text:
    """Segment a text, normalise its words and choose its sentence units."""
    cfg = config or Config()
    n_skel = skeleton_n or cfg.skeleton_ngram
    seg = segment(text, templates)
    raw = [w for _, _, w in seg.words]
    norm = [normalise_word(w) for w in raw]
    counted = ~np.array(seg.word_excluded, dtype=bool) if seg.words else np.zeros(0, bool)
    starts = np.array([s for s, _, _ in seg.words], dtype=np.int64)
    ends = np.array([e for _, e, _ in seg.words], dtype=np.int64)
    units, unit_tokens = [], []
    for sent in seg.sentences:
        lo, hi = int(np.searchsorted(starts, sent.start)), int(np.searchsorted(starts, sent.end))
        if hi - lo >= MIN_SENTENCE_WORDS and counted[lo:hi].mean() > 0.5:
            units.append(sent)
            unit_tokens.append((lo, hi))
    grams = gram_keys(norm, cfg.ngram)
    m = len(grams)
    gram_counted = (np.convolve(counted.astype(np.int64), np.ones(cfg.ngram, np.int64), mode="valid")[:m]
                    == cfg.ngram) if m else np.zeros(0, bool)
    skel, skel_ok = skeleton_keys(raw, counted, n_skel)
    return Text(name, text, kind, seg, raw, norm, counted, units, unit_tokens, grams, gram_counted,
                skel, skel_ok, starts, ends - starts)


# --------------------------------------------------------------------------- the class

@dataclass
class Cohort:
    """What the scan's texts have in common: the measure of what is common material."""

    n_submissions: int
    n_texts: int
    common_grams: np.ndarray           # sorted keys of n-grams in many submissions
    word_texts: dict[str, int]         # normalised word -> number of texts using it
    word_zipf: dict[str, float]        # normalised word -> highest English Zipf of its forms
    skeleton_texts: dict[int, int]     # structure n-gram -> number of texts using it
    config: Config
    given_words: frozenset[str] = frozenset()  # normalised words of the instructor's template
    _rare: dict[tuple[str, str], bool] = field(default_factory=dict)

    @classmethod
    def of(cls, texts: Sequence[Text], config: Config, templates: Sequence[str] = ()) -> Cohort:
        """The class's common material: frequent wording, word and structure counts, and the
        words of the template (the prompt's own vocabulary is never uncommon)."""
        subs = [t for t in texts if t.kind == "submission"]
        # MOSS's rule for frequent k-grams: wording that many submissions share is what the
        # assignment gave them (the prompt, a quoted reading), not what one copied from another.
        limit = max(config.common_min_docs, config.common_share * len(subs))
        if subs:
            keys = np.concatenate([np.unique(t.grams[t.gram_counted]) for t in subs])
            uniq, counts = np.unique(keys, return_counts=True)
            common = np.sort(uniq[counts >= limit])
        else:
            common = np.zeros(0, np.uint64)
        for t in texts:
            t.common = np.zeros(len(t.norm), bool)
            if len(common) and len(t.grams):
                hit = np.flatnonzero(np.isin(t.grams, common))
                for k in range(config.ngram):
                    t.common[hit + k] = True
        word_texts: dict[str, int] = {}
        word_zipf: dict[str, float] = {}
        skeleton_texts: dict[int, int] = {}
        for t in texts:
            for raw, norm in set(zip(t.raw, t.norm, strict=True)):
                z = english_zipf(raw)
                if norm not in word_zipf or z > word_zipf[norm]:
                    word_zipf[norm] = z
            for norm in set(t.norm):
                word_texts[norm] = word_texts.get(norm, 0) + 1
            for k in set(t.skeleton[t.skeleton_ok].tolist()):
                skeleton_texts[k] = skeleton_texts.get(k, 0) + 1
        given = frozenset(normalise_word(w) for tpl in templates for _, _, w in words(tpl))
        return cls(len(subs), len(texts), common, word_texts, word_zipf, skeleton_texts, config, given)

    @property
    def few_texts(self) -> float:
        """At most this many texts may share a word or structure for it to be uncommon."""
        return max(float(self.config.rare_min_texts), self.config.rare_share * self.n_texts)

    def is_rare(self, raw: str, norm: str) -> bool:
        """An uncommon word: rare in English (or a number) and used by few texts of the scan."""
        key = (raw, norm)
        if key not in self._rare:
            numeric = sum(c.isdigit() for c in raw) >= 2
            zipf = self.word_zipf.get(norm, 0.0)
            allowed = self.few_texts + (1 if zipf < VERY_RARE_ZIPF and not numeric else 0)
            self._rare[key] = (_content_candidate(raw, norm) and (numeric or zipf < self.config.rare_zipf)
                               and norm not in self.given_words and self.word_texts.get(norm, 0) <= allowed)
        return self._rare[key]

    def rare_shared(self, a: Text, a_range: tuple[int, int], b: Text, b_range: tuple[int, int]) -> list[str]:
        """Uncommon words both token ranges use (as written in `a`), sorted."""
        b_norms = set(b.norm[b_range[0]:b_range[1]])
        out = {a.raw[i] for i in range(*a_range)
               if a.counted[i] and not a.common[i] and a.norm[i] in b_norms and self.is_rare(a.raw[i], a.norm[i])}
        return sorted(out)

    def shared_structure(self, a: Text, a_range: tuple[int, int], b: Text, b_range: tuple[int, int]) -> int:
        """Usable structure n-grams of a's range found in b's range and in few texts."""
        n = self.config.skeleton_ngram
        a_lo, a_hi = a_range[0], max(a_range[0], a_range[1] - n + 1)
        b_lo, b_hi = b_range[0], max(b_range[0], b_range[1] - n + 1)
        theirs = set(b.skeleton[b_lo:b_hi][b.skeleton_ok[b_lo:b_hi]].tolist())
        mine = a.skeleton[a_lo:a_hi][a.skeleton_ok[a_lo:a_hi]].tolist()
        return len({k for k in mine if k in theirs and self.skeleton_texts.get(k, 0) <= self.few_texts})


# --------------------------------------------------------------------------- shared wording

@dataclass
class Run:
    """A run of shared wording: token ranges on both sides and how much of it is shared."""

    lo: int
    hi: int
    olo: int
    ohi: int
    similarity: float
    covered: np.ndarray  # per token of [lo, hi): inside a shared n-gram

    @property
    def words(self) -> int:
        """Words of the submission inside shared n-grams (gaps and common material not counted)."""
        return int(self.covered.sum())


def shared_runs(texts: Sequence[Text], cohort: Cohort, config: Config) -> dict[tuple[int, int], list[Run]]:
    """Runs of shared wording for every (submission index, other text index) pair.

    One pass over an inverted index of every text's n-grams (common material
    removed), so only pairs that share wording cost anything; then each pair's
    shared positions are chained while they progress together on both sides.
    """
    n = config.ngram
    keys, owner, pos = [], [], []
    for ti, t in enumerate(texts):
        ok = np.flatnonzero(t.gram_counted)
        keys.append(t.grams[ok])
        owner.append(np.full(len(ok), ti, np.int64))
        pos.append(ok.astype(np.int64))
    if not keys:
        return {}
    k_all, o_all, p_all = np.concatenate(keys), np.concatenate(owner), np.concatenate(pos)
    if len(cohort.common_grams):
        keep = ~np.isin(k_all, cohort.common_grams)
        k_all, o_all, p_all = k_all[keep], o_all[keep], p_all[keep]
    order = np.argsort(k_all, kind="stable")
    k_all, o_all, p_all = k_all[order], o_all[order], p_all[order]
    bounds = np.flatnonzero(np.diff(k_all)) + 1
    starts = np.concatenate(([0], bounds))
    ends = np.concatenate((bounds, [len(k_all)]))
    multi = np.flatnonzero(ends - starts > 1)
    is_sub = np.array([t.kind == "submission" for t in texts])
    pairs: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for g in multi:
        a, b = starts[g], ends[g]
        owners = o_all[a:b]
        if owners.min() == owners.max():
            continue
        members = list(zip(owners.tolist(), p_all[a:b].tolist(), strict=True))
        for si, i in members:
            if not is_sub[si]:
                continue
            for ti, j in members:
                if ti != si:
                    pairs.setdefault((si, ti), []).append((i, j))
    out: dict[tuple[int, int], list[Run]] = {}
    gap = config.merge_gap + n
    for key, found in pairs.items():
        found.sort()
        chains: list[list[tuple[int, int]]] = []
        for i, j in found:
            for chain in reversed(chains[-8:]):
                pi, pj = chain[-1]
                if 0 <= i - pi <= gap and -n <= j - pj <= gap:
                    chain.append((i, j))
                    break
            else:
                chains.append([(i, j)])
        sub, other = texts[key[0]], texts[key[1]]
        runs = []
        for chain in chains:
            lo, hi = chain[0][0], chain[-1][0] + n
            olo, ohi = min(j for _, j in chain), max(j for _, j in chain) + n
            covered = np.zeros(hi - lo, bool)
            for i, _ in chain:
                covered[i - lo:i - lo + n] = True
            a, b = set(sub.norm[lo:hi]), set(other.norm[olo:ohi])
            sim = 0.5 * covered.mean() + 0.5 * (len(a & b) / max(1, len(a | b)))
            runs.append(Run(lo, hi, olo, ohi, float(sim), covered & ~sub.common[lo:hi]))
        out[key] = runs
    return out


# --------------------------------------------------------------------------- embeddings

@dataclass
class _Windows:
    spans: list[tuple[int, int]]   # char spans of the text's sentence windows
    vectors: np.ndarray


def _window_units(text: Text) -> list[tuple[int, int]]:
    """(first, last) unit of each window: single sentences, then pairs of neighbours
    (a paraphrase merges or splits sentences)."""
    k = len(text.units)
    return [(i, i) for i in range(k)] + [(i, i + 1) for i in range(k - 1)]


def _windows(text: Text) -> list[tuple[int, int]]:
    return [(text.units[a].start, text.units[b].end) for a, b in _window_units(text)]


def embed_windows(texts: Sequence[Text], encode: Encoder, queries_only: Sequence[Text] = ()) -> dict[str, _Windows]:
    """Embed every sentence of every text once (deduplicated by content) and derive the windows.

    Only single sentences go through the model.  A two-sentence window's vector is
    the length-weighted mean of its sentences' vectors, renormalised: the model
    mean-pools its token vectors, so this is close to embedding the pair (the
    context across the boundary is all it misses), and it halves the model's work.
    Texts in `queries_only` are never compared against, so they get no pair windows.
    """
    query_keys = {t.key for t in queries_only}
    unique: dict[str, int] = {}
    for t in texts:
        for u in t.units:
            unique.setdefault(" ".join(t.text[u.start:u.end].split()), len(unique))
    keys = list(unique)
    vecs = np.asarray(encode(keys), dtype=np.float32) if keys else np.zeros((0, 384), np.float32)
    dim = vecs.shape[1] if vecs.ndim == 2 and len(vecs) else 384
    out = {}
    for t in texts:
        spans = _windows(t)
        singles = np.array([unique[" ".join(t.text[u.start:u.end].split())] for u in t.units], dtype=np.int64)
        k = len(t.units)
        if k == 0:
            out[t.key] = _Windows([], np.zeros((0, dim), np.float32))
            continue
        single_vecs = vecs[singles]
        if t.key in query_keys or k == 1:
            out[t.key] = _Windows(spans[:k], single_vecs)
            continue
        lengths = np.array([hi - lo for lo, hi in t.unit_tokens], dtype=np.float32)[:, None]
        pairs = single_vecs[:-1] * lengths[:-1] + single_vecs[1:] * lengths[1:]
        pairs /= np.maximum(np.linalg.norm(pairs, axis=1, keepdims=True), 1e-12)
        out[t.key] = _Windows(spans, np.concatenate([single_vecs, pairs.astype(np.float32)]))
    return out


@dataclass
class Lead:
    """A sentence of a submission whose closest window in another text is close in meaning."""

    sub: int
    unit: int
    other: int
    window: int          # index into the other text's windows
    cosine: float
    background: float | None  # the same sentence's n-th closest other text (None: class too small)


def meaning_leads(texts: Sequence[Text], windows: dict[str, _Windows], config: Config) -> list[Lead]:
    """Every (submission sentence, other text) whose best window reaches sim_min.

    One matrix product of every submission sentence against every window of
    every text; per text the best window; the class background of a sentence is
    its n-th closest other text (a copied sentence has one or two close partners,
    a sentence every honest answer contains has many).
    """
    owners, segs, mats = [], [], []
    offset = 0
    for ti, t in enumerate(texts):
        w = windows[t.key]
        if len(w.spans):
            owners.append(ti)
            segs.append(offset)
            mats.append(w.vectors)
            offset += len(w.spans)
    if not mats:
        return []
    allw = np.concatenate(mats)
    segs_a = np.array(segs)
    seg_len = np.diff(np.append(segs_a, offset))
    leads: list[Lead] = []
    col_of_text = {ti: c for c, ti in enumerate(owners)}
    queries = [(si, s) for si, s in enumerate(texts) if s.kind == "submission" and s.units]
    if not queries:
        return []
    # One product for every submission sentence at once (BLAS is far faster on one big matrix).
    q_all = np.concatenate([windows[s.key].vectors[: len(s.units)] for _, s in queries])
    sims_all = q_all @ allw.T
    best_all = np.maximum.reduceat(sims_all, segs_a, axis=1)  # (sentences, texts with windows)
    row = 0
    for si, s in queries:
        sims = sims_all[row:row + len(s.units)]
        best = best_all[row:row + len(s.units)].copy()
        row += len(s.units)
        if si in col_of_text:
            best[:, col_of_text[si]] = -1.0
        n_other = len(owners) - (1 if si in col_of_text else 0)
        rank = config.background_rank
        use_bg = n_other - 1 >= max(config.min_cohort, rank)
        us, cs = np.nonzero(best >= config.sim_min)
        if not len(us):
            continue
        # Best window of each text for each sentence: one argmax per text, not per pair.
        arg = np.zeros(best.shape, np.int64)
        for c in np.unique(cs):
            a = segs_a[c]
            arg[:, c] = sims[:, a:a + seg_len[c]].argmax(axis=1)
        bgs: list[float | None] = [None] * len(us)
        if use_bg:
            # The background of a pair is the rank-th closest text other than the partner.
            top = np.argsort(-best, axis=1)[:, :rank + 1]
            in_top = (top[us, :rank] == cs[:, None]).any(axis=1)
            pick = np.where(in_top, top[us, rank], top[us, rank - 1])
            bgs = best[us, pick].tolist()
        for u, c, w, cos, bg in zip(us.tolist(), cs.tolist(), arg[us, cs].tolist(), best[us, cs].tolist(), bgs,
                                    strict=True):
            leads.append(Lead(si, u, owners[c], w, cos, bg))
    return leads


# --------------------------------------------------------------------------- reports

@dataclass
class Match:
    """A merged passage of a submission that matches a passage of another text."""

    source: str
    source_kind: str
    similarity: float
    method: str  # "fingerprint", "paraphrase" or "fingerprint+paraphrase"
    submission_span: tuple[int, int]
    source_span: tuple[int, int]
    evidence: dict = field(default_factory=dict)  # signal name -> value (plagiarism.evidence)

    @property
    def confidence(self) -> float:
        return ev.confidence(self.evidence)

    @property
    def reasons(self) -> list[str]:
        return ev.reasons(self.evidence)

    def as_dict(self) -> dict:
        return {"source": self.source, "source_kind": self.source_kind,
                "similarity": round(self.similarity, 3), "method": self.method,
                "submission_span": list(self.submission_span),
                "source_span": list(self.source_span),
                "confidence": self.confidence, "evidence": _rounded(self.evidence),
                "reasons": self.reasons}


def _rounded(evidence: dict) -> dict:
    return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in evidence.items()}


@dataclass
class SubmissionReport:
    """Score, flag and passages for one submission."""

    submission: str
    score: float
    flagged: bool
    matches: list[Match] = field(default_factory=list)
    excluded: list[tuple[int, int, str]] = field(default_factory=list)
    source_scores: dict[str, float] = field(default_factory=dict)
    evidence: dict[str, float] = field(default_factory=dict)  # coverage, confidence, passages
    confidence: float = 0.0

    def as_dict(self) -> dict:
        return {"submission": self.submission, "score": round(self.score, 4),
                "flagged": self.flagged, "confidence": round(self.confidence, 4),
                "matches": [m.as_dict() for m in self.matches],
                "excluded": [{"kind": k, "span": [s, e]} for s, e, k in self.excluded],
                "evidence": {k: round(v, 4) for k, v in self.evidence.items()}}


@dataclass
class ScanResult:
    """Reports for every submission and clusters of submissions that share passages."""

    reports: list[SubmissionReport]
    clusters: list[list[str]]


def _merge_evidence(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        if k == "rare_words":
            out[k] = sorted(set(out.get(k, [])) | set(v))
        elif k in out and out[k] is not None and v is not None:
            out[k] = max(out[k], v)
        else:
            out[k] = v if v is not None else out.get(k)
    return out


def _merge_matches(matches: list[Match]) -> list[Match]:
    """Merge overlapping passages against the same source into one, keeping all evidence."""
    out: list[Match] = []
    for m in sorted(matches, key=lambda m: (m.source, m.submission_span)):
        if out and out[-1].source == m.source and m.submission_span[0] <= out[-1].submission_span[1] + 2:
            p = out[-1]
            methods = sorted(set(p.method.split("+")) | set(m.method.split("+")))
            out[-1] = Match(p.source, p.source_kind, max(p.similarity, m.similarity), "+".join(methods),
                            (p.submission_span[0], max(p.submission_span[1], m.submission_span[1])),
                            (min(p.source_span[0], m.source_span[0]), max(p.source_span[1], m.source_span[1])),
                            _merge_evidence(p.evidence, m.evidence))
        else:
            out.append(m)
    return sorted(out, key=lambda m: (m.submission_span, m.source))


def _chars(t: Text, lo: int, hi: int) -> tuple[int, int]:
    return t.seg.words[lo][0], t.seg.words[hi - 1][1]


def _longest_overlap(runs: list[Run], lo: int, hi: int) -> int:
    """Shared words of the longest run that overlaps tokens [lo, hi), clipped to them."""
    best = 0
    for r in runs:
        a, b = max(lo, r.lo), min(hi, r.hi)
        if b > a:
            best = max(best, int(r.covered[a - r.lo:b - r.lo].sum()))
    return best


def accept_lead(evidence: dict, config: Config) -> bool:
    """Whether a meaning match is corroborated enough to count (see the module docstring)."""
    stands_out = evidence.get("stands_out")
    if stands_out is not None and stands_out < config.margin_floor:
        return False  # the class calibration: as close to other students' answers as to this one
    corroborators = (len(evidence.get("rare_words", ())) >= config.rare_min_words, evidence.get("structure", 0) > 0,
                     evidence.get("shared_run", 0) >= config.lead_run_words, evidence.get("aligned", 0) >= 2)
    if stands_out is not None and stands_out >= config.margin_alone:
        # Calibrated against the class: this pair is far closer than the sentence comes to
        # any other answer to the prompt, which honest answers to one prompt never are.
        return True
    if not any(corroborators):
        return False
    count = sum(corroborators) + (stands_out is not None and stands_out >= config.margin)
    need = 1 if evidence["meaning"] >= config.sim_strong else config.corroboration
    return count >= need


def accept_run(run_words: int, rare_words: list[str], config: Config) -> bool:
    """Shared wording counts when long, or when a shorter run carries an uncommon word."""
    if run_words >= config.long_run_words:
        return True
    return run_words >= config.min_run_words and bool(rare_words)


def _textual(evidence: dict, config: Config) -> bool:
    """Evidence in the words themselves, not in the embeddings."""
    return (len(evidence.get("rare_words", ())) >= config.rare_min_words or evidence.get("structure", 0) > 0
            or evidence.get("shared_run", 0) >= config.lead_run_words)


def aligned_groups(group: list[Lead], wunits: list[tuple[int, int]], evidence: dict[int, dict],
                   config: Config) -> dict[int, int]:
    """Sentences in runs of neighbours that match neighbouring sentences of the other text.

    A paraphrased passage follows its source sentence by sentence (swaps allowed),
    while two honest answers share at most a stray close sentence.  Since the
    alignment itself comes from embeddings, a run counts only when at least one of
    its sentences carries textual evidence (an uncommon word, structure, wording):
    alignment extends an anchored match to its neighbours, never creates one.
    Returns unit -> size of its run, for runs of two or more.
    """
    strong = {ld.unit: wunits[ld.window][0] for ld in group
              if ld.cosine >= config.align_min_sim and ld.unit in evidence}
    parent = {u: u for u in strong}

    def find(x: int) -> int:
        while parent[x] != x:
            x = parent[x]
        return x

    for u in strong:
        for d in (1, 2):
            if u + d in strong and abs(strong[u + d] - strong[u]) <= d + 1:
                parent[find(u + d)] = find(u)
    runs: dict[int, list[int]] = {}
    for u in strong:
        runs.setdefault(find(u), []).append(u)
    out = {}
    for members in runs.values():
        if len(members) >= 2 and any(_textual(evidence[u], config) for u in members):
            out.update({u: len(members) for u in members})
    return out


def compare_all(texts: Sequence[Text], windows: dict[str, _Windows] | None, config: Config,
                templates: Sequence[str] = ()) -> list[SubmissionReport]:
    """Score every submission of `texts` against every other text (`templates`: the
    instructor's template texts the texts were prepared with)."""
    cohort = Cohort.of(texts, config, templates)
    runs = shared_runs(texts, cohort, config) if config.use_fingerprints or config.use_embeddings else {}
    matches: dict[int, list[tuple[int, Match, np.ndarray]]] = {}

    def add(si: int, ti: int, m: Match, lo: int, hi: int) -> None:
        mask = np.zeros(len(texts[si].norm), bool)
        mask[lo:hi] = True
        matches.setdefault(si, []).append((ti, m, mask))

    if config.use_fingerprints:
        for (si, ti), found in runs.items():
            sub, other = texts[si], texts[ti]
            for r in found:
                if r.words < config.min_run_words:
                    continue
                rare = cohort.rare_shared(sub, (r.lo, r.hi), other, (r.olo, r.ohi))
                if accept_run(r.words, rare, config):
                    evidence = {"shared_run": r.words}
                    if rare:
                        evidence["rare_words"] = rare
                    add(si, ti, Match(other.name, other.kind, r.similarity, "fingerprint",
                                      _chars(sub, r.lo, r.hi), _chars(other, r.olo, r.ohi), evidence), r.lo, r.hi)

    # Per sentence and per window, what the evidence needs, computed once (a class has
    # tens of thousands of leads, and the same sentences and windows recur in them).
    unit_memo: dict[tuple[int, int], tuple[dict[str, set[str]], set[int], float]] = {}
    window_memo: dict[tuple[int, int, int], tuple[set[str], set[int]]] = {}
    n_skel = config.skeleton_ngram

    def unit_facts(si: int, u: int) -> tuple[dict[str, set[str]], set[int], float]:
        if (si, u) not in unit_memo:
            t = texts[si]
            lo, hi = t.unit_tokens[u]
            rare: dict[str, set[str]] = {}
            for i in range(lo, hi):
                if t.counted[i] and not t.common[i] and cohort.is_rare(t.raw[i], t.norm[i]):
                    rare.setdefault(t.norm[i], set()).add(t.raw[i])
            top = max(lo, hi - n_skel + 1)
            skel = {k for k in t.skeleton[lo:top][t.skeleton_ok[lo:top]].tolist()
                    if cohort.skeleton_texts.get(k, 0) <= cohort.few_texts}
            unit_memo[si, u] = (rare, skel, float(t.common[lo:hi].mean()) if hi > lo else 1.0)
        return unit_memo[si, u]

    def window_facts(ti: int, a: int, b: int) -> tuple[set[str], set[int]]:
        if (ti, a, b) not in window_memo:
            t = texts[ti]
            lo, hi = t.unit_tokens[a][0], t.unit_tokens[b][1]
            top = max(lo, hi - n_skel + 1)
            window_memo[ti, a, b] = (set(t.norm[lo:hi]), set(t.skeleton[lo:top][t.skeleton_ok[lo:top]].tolist()))
        return window_memo[ti, a, b]

    if config.use_embeddings and windows is not None:
        leads = meaning_leads(texts, windows, config)
        by_pair: dict[tuple[int, int], list[Lead]] = {}
        for lead in leads:
            by_pair.setdefault((lead.sub, lead.other), []).append(lead)
        for (si, ti), group in by_pair.items():
            sub, other = texts[si], texts[ti]
            wunits = _window_units(other)
            wspans = windows[other.key].spans
            pair_runs = runs.get((si, ti), [])
            found_ev: dict[int, dict] = {}
            for ld in group:
                lo, hi = sub.unit_tokens[ld.unit]
                rare_here, skel_here, common_share = unit_facts(si, ld.unit)
                if common_share > 0.5:
                    continue  # a sentence made of common material (a quoted prompt) is no lead
                a, b = wunits[ld.window]
                norms_there, skel_there = window_facts(ti, a, b)
                evidence: dict = {"meaning": ld.cosine}
                rare = sorted({raw for norm, raws in rare_here.items() if norm in norms_there for raw in raws})
                if rare:
                    evidence["rare_words"] = rare
                structure = len(skel_here & skel_there)
                if structure:
                    evidence["structure"] = structure
                run = _longest_overlap(pair_runs, lo, hi)
                if run >= config.ngram:
                    evidence["shared_run"] = run
                if ld.background is not None:
                    evidence["stands_out"] = ld.cosine - ld.background
                found_ev[ld.unit] = evidence
            for u, size in aligned_groups(group, wunits, found_ev, config).items():
                found_ev[u]["aligned"] = size
            for ld in group:
                evidence = found_ev.get(ld.unit)
                if evidence is not None and accept_lead(evidence, config):
                    unit = sub.units[ld.unit]
                    add(si, ti, Match(other.name, other.kind, ld.cosine, "paraphrase",
                                      (unit.start, unit.end), wspans[ld.window], evidence), *sub.unit_tokens[ld.unit])

    reports = []
    for si, sub in enumerate(texts):
        if sub.kind != "submission":
            continue
        weights = sub.token_chars * sub.counted
        total = float(weights.sum())
        covered = np.zeros(len(sub.norm), bool)
        per_source: dict[str, np.ndarray] = {}
        found = matches.get(si, [])
        for ti, _, mask in found:
            m = mask & sub.counted & ~sub.common
            covered |= m
            per_source[texts[ti].name] = per_source.get(texts[ti].name, np.zeros_like(m)) | m
        def share(m: np.ndarray, weights: np.ndarray = weights, total: float = total) -> float:
            return float((weights * m).sum() / total) if total else 0.0

        coverage = share(covered)
        merged = _merge_matches([m for _, m, _ in found])
        lengths = [m.submission_span[1] - m.submission_span[0] for m in merged]
        confidence = (sum(m.confidence * n for m, n in zip(merged, lengths, strict=True)) / sum(lengths)
                      if merged else 0.0)
        reports.append(SubmissionReport(
            sub.name, coverage, coverage >= config.flag_threshold and coverage > 0, merged,
            sub.seg.excluded, {name: share(m) for name, m in per_source.items()},
            {"coverage": coverage, "confidence": confidence, "passages": float(len(merged))}, confidence))
    return reports


def clusters(reports: Sequence[SubmissionReport], threshold: float) -> list[list[str]]:
    """Groups of submissions linked by a pairwise score at or above the threshold."""
    names = [r.submission for r in reports]
    parent = {n: n for n in names}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for r in reports:
        for other, s in r.source_scores.items():
            if other in parent and s >= threshold:
                parent[find(r.submission)] = find(other)
    groups: dict[str, list[str]] = {}
    for n in names:
        groups.setdefault(find(n), []).append(n)
    return sorted((sorted(g) for g in groups.values() if len(g) > 1), key=lambda g: g[0])


def scan(submissions: dict[str, str], sources: dict[str, str] | None = None,
         templates: list[str] | None = None, encode: Encoder | None = None,
         params: Config | None = None) -> ScanResult:
    """Compare every submission with the others and with the reference sources.

    `encode` defaults to the offline sentence-transformer (every distinct
    passage is embedded once); Config(use_embeddings=False) gives a
    shared-wording-only scan that needs no model.
    """
    config = params or Config()
    subs = [prepare(n, t, "submission", templates, config=config) for n, t in sorted(submissions.items())]
    refs = [prepare(n, t, "source", templates, config=config) for n, t in sorted((sources or {}).items())]
    everything = subs + refs
    windows = None
    if config.use_embeddings:
        if encode is None:
            from plagiarism.embedding import get_embedder
            encode = get_embedder().encode
        windows = embed_windows(everything, encode, subs if len(subs) == 1 else ())
    reports = compare_all(everything, windows, config, templates or ())
    return ScanResult(reports, clusters(reports, config.flag_threshold))
