"""Near-duplicate detection: which passages of a submission were copied or paraphrased.

Two kinds of passage-level evidence are combined:

* fingerprints: shared winnowed word 5-grams (MOSS style) find verbatim and
  lightly edited copying; runs of shared n-grams are merged across small gaps
  into passages with character spans on both sides;
* sentence embeddings: each sentence of a submission is compared with the
  sentences and two-sentence windows of every other text; it counts as
  paraphrased when its evidence (cosine, how far the best partner stands out
  from the rest of that text, shared content words, shared 3-grams) is very
  strong, or strong and supported by a neighbouring sentence that matches
  near the same place (a paraphrase follows its source, while two answers on
  the same topic share at most a stray sentence).

The score of a submission (0..1) weighs three shares of its countable text
(quotes, bibliography and template excluded): the share covered by such
passages, the share of its word 3-grams found in another text, and the share
of its masked word n-grams ("the * * of a *": function words kept, content
words masked) found in another text, which survives the synonym swaps of a
paraphrase.  The weights are fitted on the tuning split (see combine()).
Whole-document similarity is deliberately not used: it measures topic, not
copying.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from plagiarism.fingerprint import NGRAM, WINDOW, ngram_hashes, normalise_word, winnow
from plagiarism.segment import Segmented, Span, segment
from plagiarism.stylometry import FUNCTION_WORDS

# Calibrated on the tuning split by `.venv/bin/python bench/eval_near_duplicates.py`
# (see bench/results/eval_near_duplicates.txt).  FLAG_THRESHOLD is the lowest score
# with at most 5 % false positives on the tuning split's independent same-topic answers.
FLAG_THRESHOLD = 0.063
STRONG_SENTENCE_SIM = 0.92    # a sentence this close to a source sentence counts on its own
STRONG_EVIDENCE = 2.20        # cosine + margin + shared words + shared 3-grams: counts on its own
SUPPORTED_EVIDENCE = 1.40     # counts when a neighbouring sentence matches in the same order
# score = COVERAGE_WEIGHT * share of the text in matched passages + CONTAINMENT_WEIGHT * word
# 3-gram containment + the rest * masked word n-gram containment (see combine()).
COVERAGE_WEIGHT = 0.3
CONTAINMENT_WEIGHT = 0.0
SKELETON_NGRAM = 9            # length of the masked word n-grams
MIN_SENTENCE_WORDS = 5
MIN_RUN_TOKENS = 8            # shared n-gram runs shorter than this are common phrases
MERGE_GAP_TOKENS = 6          # runs this close on both sides form one passage

Encoder = Callable[[list[str]], np.ndarray]
_FUNCTION_NORMS = frozenset(normalise_word(w) for w in FUNCTION_WORDS)
_FUNCTION_SET = frozenset(FUNCTION_WORDS)


@dataclass
class Params:
    """Tunable thresholds (the bench tunes them; the defaults are the calibrated ones)."""

    strong_sim: float = STRONG_SENTENCE_SIM
    strong_evidence: float = STRONG_EVIDENCE
    supported_evidence: float = SUPPORTED_EVIDENCE
    min_run_tokens: int = MIN_RUN_TOKENS
    merge_gap: int = MERGE_GAP_TOKENS
    flag_threshold: float = FLAG_THRESHOLD
    coverage_weight: float = COVERAGE_WEIGHT
    containment_weight: float = CONTAINMENT_WEIGHT
    skeleton_ngram: int = SKELETON_NGRAM
    use_embeddings: bool = True
    use_fingerprints: bool = True


@dataclass
class Text:
    """One submission or reference source, segmented and normalised."""

    name: str
    text: str
    kind: str  # "submission" or "source"
    seg: Segmented
    norm: list[str]
    counted: np.ndarray  # per token: counts towards the score
    units: list[Span]     # sentences used for paraphrase matching
    unit_words: list[set[str]] = field(default_factory=list)  # content words of each unit
    unit_trigrams: list[set[int]] = field(default_factory=list)  # word 3-gram hashes of each unit
    trigrams: set[int] = field(default_factory=set)  # every word 3-gram hash of the text
    counted_trigrams: set[int] = field(default_factory=set)  # 3-grams wholly inside counted text
    skeleton: set[int] = field(default_factory=set)  # every masked word n-gram (see skeleton_grams)
    counted_skeleton: set[int] = field(default_factory=set)  # those wholly inside counted text
    grams: list[int] = field(default_factory=list)  # word n-gram (NGRAM) hash at each position
    gram_positions: dict[int, list[int]] = field(default_factory=dict)  # n-gram hash -> positions
    winnowed: set[int] = field(default_factory=set)  # the text's fingerprints (winnowed n-grams)

    @property
    def starts(self) -> np.ndarray:
        return np.array([s for s, _, _ in self.seg.words], dtype=np.int64)

    @property
    def token_chars(self) -> np.ndarray:
        return np.array([e - s for s, e, _ in self.seg.words], dtype=np.int64)


@dataclass
class Match:
    """A merged passage of a submission that matches a passage of another text."""

    source: str
    source_kind: str
    similarity: float
    method: str  # "fingerprint", "paraphrase" or "fingerprint+paraphrase"
    submission_span: tuple[int, int]
    source_span: tuple[int, int]

    def as_dict(self) -> dict:
        return {"source": self.source, "source_kind": self.source_kind,
                "similarity": round(self.similarity, 3), "method": self.method,
                "submission_span": list(self.submission_span),
                "source_span": list(self.source_span)}


@dataclass
class SubmissionReport:
    """Score, flag and passages for one submission."""

    submission: str
    score: float
    flagged: bool
    matches: list[Match] = field(default_factory=list)
    excluded: list[tuple[int, int, str]] = field(default_factory=list)
    source_scores: dict[str, float] = field(default_factory=dict)
    evidence: dict[str, float] = field(default_factory=dict)  # the parts behind `score`

    def as_dict(self) -> dict:
        return {"submission": self.submission, "score": round(self.score, 4),
                "flagged": self.flagged, "matches": [m.as_dict() for m in self.matches],
                "excluded": [{"kind": k, "span": [s, e]} for s, e, k in self.excluded],
                "evidence": {k: round(v, 4) for k, v in self.evidence.items()}}


@dataclass
class ScanResult:
    """Reports for every submission and clusters of submissions that share passages."""

    reports: list[SubmissionReport]
    clusters: list[list[str]]


def skeleton_grams(words: Sequence[str], counted: np.ndarray, n: int) -> tuple[set[int], set[int]]:
    """Word n-grams with every content word masked: (counted ones, all).

    Function words stay and every other word becomes a placeholder, so
    "the * * of the * was * in *" survives synonym swaps, the paraphraser's
    first tool, while the topic's vocabulary is gone (the word-level form of
    Stamatatos's text distortion; his stopword n-grams, Stamatatos 2011,
    serve plagiarism detection the same way).  A gram needs at least two
    words of each kind, so runs of placeholders or of "of the" do not count.
    """
    masked = [w.lower() if w.lower() in _FUNCTION_SET else "*" for w in words]
    hashes = ngram_hashes(masked, n)
    counted_out: set[int] = set()
    for i, h in enumerate(hashes):
        gram = masked[i:i + n]
        stars = gram.count("*")
        if 2 <= stars <= n - 2 and counted[i:i + n].all():
            counted_out.add(h)
    return counted_out, set(hashes)


def prepare(name: str, text: str, kind: str = "submission",
            templates: list[str] | None = None, skeleton_n: int | None = None) -> Text:
    """Segment a text and choose its sentence units (excluded or tiny ones dropped)."""
    seg = segment(text, templates)
    norm = [normalise_word(w) for _, _, w in seg.words]
    counted = ~np.array(seg.word_excluded, dtype=bool) if seg.words else np.zeros(0, bool)
    starts = np.array([s for s, _, _ in seg.words], dtype=np.int64)
    tri = ngram_hashes(norm, 3)
    units, unit_words, unit_tri = [], [], []
    for sent in seg.sentences:
        lo, hi = np.searchsorted(starts, sent.start), np.searchsorted(starts, sent.end)
        if hi - lo >= MIN_SENTENCE_WORDS and counted[lo:hi].mean() > 0.5:
            units.append(sent)
            unit_words.append({w for w in norm[lo:hi] if w not in _FUNCTION_NORMS})
            unit_tri.append(set(tri[lo:max(lo, hi - 2)]))
    grams = ngram_hashes(norm, NGRAM)
    positions: dict[int, list[int]] = {}
    for i, h in enumerate(grams):
        positions.setdefault(h, []).append(i)
    winnowed = {h for h, _ in winnow(grams, WINDOW)}
    counted_tri = {h for i, h in enumerate(tri) if counted[i:i + 3].all()}
    skel_counted, skel_all = skeleton_grams([w for _, _, w in seg.words], counted, skeleton_n or SKELETON_NGRAM)
    return Text(name, text, kind, seg, norm, counted, units, unit_words, unit_tri, set(tri),
                counted_tri, skel_all, skel_counted, grams, positions, winnowed)


# --------------------------------------------------------------------------- fingerprints

def fingerprint_passages(sub: Text, other: Text, params: Params) -> list[tuple[int, int, int, int, float]]:
    """Passages shared word for word: (sub_tok_lo, sub_tok_hi, oth_tok_lo, oth_tok_hi, sim).

    Candidate pairs come from the winnowed fingerprints of `sub`; the passage
    then grows over every shared n-gram of the pair, and runs are merged
    across gaps of a few words (a light edit breaks the n-grams around it).
    """
    n = NGRAM
    if len(sub.norm) < n or len(other.norm) < n:
        return []
    other_grams = other.gram_positions
    # The winnowed fingerprints are the index: no shared fingerprint, no candidate pair.
    if not any(h in other_grams for h in sub.winnowed):
        return []
    pairs: list[tuple[int, int]] = []
    for i, h in enumerate(sub.grams):
        if h in other_grams and sub.counted[i:i + n].all():
            pairs.extend((i, j) for j in other_grams[h])
    if not pairs:
        return []
    pairs.sort()
    # Chain matches that progress together on both sides.
    chains: list[list[tuple[int, int]]] = []
    for i, j in pairs:
        for chain in reversed(chains[-8:]):
            pi, pj = chain[-1]
            if 0 <= i - pi <= params.merge_gap + n and -n <= j - pj <= params.merge_gap + n:
                chain.append((i, j))
                break
        else:
            chains.append([(i, j)])
    out = []
    for chain in chains:
        lo, hi = chain[0][0], chain[-1][0] + n
        olo = min(j for _, j in chain)
        ohi = max(j for _, j in chain) + n
        if hi - lo < params.min_run_tokens:
            continue
        covered = np.zeros(hi - lo, bool)
        for i, _ in chain:
            covered[i - lo:i - lo + n] = True
        a, b = set(sub.norm[lo:hi]), set(other.norm[olo:ohi])
        sim = 0.5 * covered.mean() + 0.5 * (len(a & b) / max(1, len(a | b)))
        out.append((lo, hi, olo, ohi, float(sim)))
    return out


# --------------------------------------------------------------------------- embeddings

@dataclass
class _Windows:
    spans: list[tuple[int, int]]   # char spans of the text's sentence windows
    vectors: np.ndarray


def _key(t: Text) -> str:
    return f"{t.kind}:{t.name}"


def _windows(text: Text) -> list[tuple[int, int]]:
    """Single sentences and pairs of consecutive sentences (paraphrase merges/splits them)."""
    singles = [(u.start, u.end) for u in text.units]
    pairs = [(a.start, b.end) for a, b in zip(text.units, text.units[1:], strict=False)]
    return singles + pairs


def embed_windows(texts: Sequence[Text], encode: Encoder, queries_only: Sequence[Text] = ()) -> dict[str, _Windows]:
    """Embed every window of every text once, deduplicated by content.

    Texts in `queries_only` are never compared against, so only their single
    sentences are needed (their two-sentence windows are skipped).
    """
    query_keys = {_key(t) for t in queries_only}
    spans = {}
    for t in texts:
        w = _windows(t)
        spans[_key(t)] = w[: len(t.units)] if _key(t) in query_keys else w
    unique: dict[str, int] = {}
    for t in texts:
        for s, e in spans[_key(t)]:
            unique.setdefault(" ".join(t.text[s:e].split()), len(unique))
    keys = list(unique)
    vecs = encode(keys) if keys else np.zeros((0, 384), np.float32)
    out = {}
    for t in texts:
        idx = [unique[" ".join(t.text[s:e].split())] for s, e in spans[_key(t)]]
        empty = np.zeros((0, vecs.shape[1]), np.float32)
        out[_key(t)] = _Windows(spans[_key(t)], vecs[idx] if idx else empty)
    return out


def paraphrase_passages(sub: Text, other: Text, sub_w: _Windows, other_w: _Windows,
                        params: Params) -> list[tuple[int, int, int, int, float]]:
    """Sentences of `sub` whose meaning follows a window of `other`: char spans + cosine.

    Two answers on the same topic have many moderately similar sentence
    pairs; a paraphrased sentence has one partner that stands out.  Each
    sentence's evidence adds four parts, each 0..1: its best cosine; its
    margin (best cosine minus the mean of the next three sentences of that
    text); the share of its content words (names, numbers, terms a
    paraphrase keeps) found in that partner sentence; and the share of its
    word 3-grams found anywhere in the other text.  A sentence counts if
    its cosine alone reaches `strong_sim`, if its evidence reaches
    `strong_evidence`, or if it reaches `supported_evidence` while a
    neighbouring sentence (within two) also matches near the same place in
    `other` (local order kept: swapped neighbours still count, scattered
    topical echoes do not).
    """
    k = len(sub.units)
    n_single = len(other.units)
    if k == 0 or n_single == 0 or len(other_w.spans) == 0:
        return []
    sims = sub_w.vectors[:k] @ other_w.vectors.T
    best = sims.argmax(axis=1)
    best_sim = sims[np.arange(k), best]
    single_sims = sims[:, :n_single]
    order = np.argsort(-single_sims, axis=1)
    best_single = order[:, 0]
    top = np.take_along_axis(single_sims, order[:, :4], axis=1)
    margin = top[:, 0] - (top[:, 1:].mean(axis=1) if n_single > 1 else 0.0)
    lexical = np.array([len(sub.unit_words[i] & other.unit_words[best_single[i]]) / max(1, len(sub.unit_words[i]))
                        for i in range(k)])
    trigram = np.array([len(sub.unit_trigrams[i] & other.trigrams) / max(1, len(sub.unit_trigrams[i]))
                        for i in range(k)])
    evidence = best_sim + margin + lexical + trigram
    other_start = np.array([s for s, _ in other_w.spans])
    pos = other_start[best]
    candidate = evidence >= params.supported_evidence
    accepted = (best_sim >= params.strong_sim) | (evidence >= params.strong_evidence)
    near = max(400, int(np.median([e - s for s, e in other_w.spans]) * 4))
    for i in np.flatnonzero(candidate & ~accepted):
        for d in (-2, -1, 1, 2):
            j = i + d
            if 0 <= j < k and (candidate[j] or accepted[j]) and abs(pos[j] - pos[i]) <= near * abs(d):
                accepted[i] = True
                break
    return [(sub.units[i].start, sub.units[i].end, *other_w.spans[best[i]], float(best_sim[i]))
            for i in np.flatnonzero(accepted)]


# --------------------------------------------------------------------------- combining

def _tok_range_to_chars(t: Text, lo: int, hi: int) -> tuple[int, int]:
    return t.seg.words[lo][0], t.seg.words[hi - 1][1]


def _chars_to_mask(t: Text, start: int, end: int) -> np.ndarray:
    mask = np.zeros(len(t.seg.words), bool)
    lo = int(np.searchsorted(t.starts, start))
    hi = int(np.searchsorted(t.starts, end))
    mask[lo:hi] = True
    return mask


def _merge_matches(matches: list[Match]) -> list[Match]:
    """Merge overlapping passages against the same source into one."""
    out: list[Match] = []
    for m in sorted(matches, key=lambda m: (m.source, m.submission_span)):
        if out and out[-1].source == m.source and m.submission_span[0] <= out[-1].submission_span[1] + 2:
            p = out[-1]
            methods = sorted(set(p.method.split("+")) | set(m.method.split("+")))
            out[-1] = Match(p.source, p.source_kind, max(p.similarity, m.similarity),
                            "+".join(methods),
                            (p.submission_span[0], max(p.submission_span[1], m.submission_span[1])),
                            (min(p.source_span[0], m.source_span[0]),
                             max(p.source_span[1], m.source_span[1])))
        else:
            out.append(m)
    return sorted(out, key=lambda m: (m.submission_span, m.source))


def containment3(sub: Text, other: Text) -> float:
    """Share of the submission's counted word 3-grams that occur anywhere in `other`."""
    if not sub.counted_trigrams:
        return 0.0
    return len(sub.counted_trigrams & other.trigrams) / len(sub.counted_trigrams)


def skeleton_containment(sub: Text, other: Text) -> float:
    """Share of the submission's counted masked word n-grams that occur anywhere in `other`."""
    if not sub.counted_skeleton:
        return 0.0
    return len(sub.counted_skeleton & other.skeleton) / len(sub.counted_skeleton)


def combine(coverage: float, containment: float, skeleton: float, params: Params) -> float:
    """The submission's score, 0..1: a weighted mean of three shares of its text.

    The shares: the text inside matched passages (coverage); its word
    3-grams found in one other text (containment, the baseline the detector
    must beat); its masked word n-grams found in one other text (skeleton,
    see skeleton_grams).  Coverage is what a reader checks, but it is
    all-or-nothing per sentence: weak copies and independent answers tie at
    0, and two news-style leads on the same event can match by meaning.
    Containment grades smoothly but misses paraphrase; the skeleton keeps
    the sentence structure a synonym-swapping paraphrase leaves behind and
    rarely matches between independent texts.  The weights (summing to 1)
    are fitted on the tuning split (bench/results/eval_near_duplicates.txt),
    which gave the 3-gram containment no weight once the masked n-grams were
    in; it stays in the report's evidence for a reader.
    """
    w_cov, w_con = params.coverage_weight, params.containment_weight
    return float(w_cov * coverage + w_con * containment + (1.0 - w_cov - w_con) * skeleton)


def compare(sub: Text, others: Sequence[Text], windows: dict[str, _Windows] | None,
            params: Params) -> SubmissionReport:
    """Score one submission against every other text."""
    n_tok = len(sub.seg.words)
    weights = sub.token_chars * sub.counted
    total = float(weights.sum())
    covered = np.zeros(n_tok, bool)
    matches: list[Match] = []
    per_source: dict[str, float] = {}
    best_containment = best_skeleton = 0.0
    for other in others:
        if other.name == sub.name and other.kind == sub.kind:
            continue
        mask = np.zeros(n_tok, bool)
        if params.use_fingerprints:
            for lo, hi, olo, ohi, sim in fingerprint_passages(sub, other, params):
                mask[lo:hi] = True
                matches.append(Match(other.name, other.kind, sim, "fingerprint",
                                     _tok_range_to_chars(sub, lo, hi),
                                     _tok_range_to_chars(other, olo, ohi)))
        if params.use_embeddings and windows is not None:
            for s, e, os_, oe, sim in paraphrase_passages(sub, other, windows[_key(sub)],
                                                          windows[_key(other)], params):
                mask |= _chars_to_mask(sub, s, e)
                matches.append(Match(other.name, other.kind, sim, "paraphrase", (s, e), (os_, oe)))
        mask &= sub.counted
        cont, skel = containment3(sub, other), skeleton_containment(sub, other)
        best_containment, best_skeleton = max(best_containment, cont), max(best_skeleton, skel)
        pair_coverage = float((weights * mask).sum() / total) if total else 0.0
        pair = combine(pair_coverage, cont, skel, params)
        if mask.any() or pair >= params.flag_threshold:
            per_source[other.name] = pair
            covered |= mask
    coverage = float((weights * covered).sum() / total) if total else 0.0
    # combine() is monotone in each part, so the submission scores at least as high as any one pair.
    score = combine(coverage, best_containment, best_skeleton, params)
    evidence = {"coverage": coverage, "containment": best_containment, "skeleton": best_skeleton}
    return SubmissionReport(sub.name, score, score >= params.flag_threshold,
                            _merge_matches(matches), sub.seg.excluded, per_source, evidence)


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
         params: Params | None = None) -> ScanResult:
    """Compare every submission with the others and with the reference sources.

    `encode` defaults to the offline sentence-transformer (every distinct
    passage is embedded once); Params(use_embeddings=False) gives a
    fingerprint-only scan that needs no model.
    """
    params = params or Params()
    subs = [prepare(n, t, "submission", templates, params.skeleton_ngram) for n, t in sorted(submissions.items())]
    refs = [prepare(n, t, "source", templates, params.skeleton_ngram) for n, t in sorted((sources or {}).items())]
    everything = subs + refs
    windows = None
    if params.use_embeddings:
        if encode is None:
            from plagiarism.embedding import get_embedder
            encode = get_embedder().encode
        windows = embed_windows(everything, encode, subs if len(subs) == 1 else ())
    reports = [compare(s, everything, windows, params) for s in subs]
    return ScanResult(reports, clusters(reports, params.flag_threshold))
