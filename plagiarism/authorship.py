"""Authorship verification with the class as the reference: is a text closer to
the student's other texts than other students' texts on the same assignment are?

Why not the distance to the student's own texts alone: in a class every
student answers the same assignments, so a text sits close to every other
answer to its assignment and far from the student's answers to other ones,
whoever wrote it.  With two to five earlier texts that topic effect swamps
style, and both the centroid distance and the classic impostors test (is the
text closer to the student's texts than to a few random classmates' texts?)
stay near chance: a classmate's answer to the same assignment usually wins.

So every similarity between the text t and one of the student's texts h is
judged against two cohort references (the class's own texts; no labels):

* reference side: the K classmates' texts most similar to t (in practice the
  other answers to t's assignment) - how similar are *they* to h?
* impostor side: the K classmates' texts most similar to h (the other answers
  to h's assignment) - how similar is t to *them*?

    z(t, h) = (s(t, h) - mean s(P(t), h)) / sd  +  (s(t, h) - mean s(t, P(h))) / sd

the two-sided cohort normalisation of speaker verification (Z-norm and T-norm
with an adaptive cohort, "AS-norm"), here with the impostors of Koppel and
Winter's method chosen as the same-assignment texts.  The text's evidence per
feature family is minus the mean of z over the student's texts: high when the
student's own writing resembles this text less than it resembles other
students' answers to the same assignment.

Feature families (each a similarity matrix over the class's texts):

* vocabulary: word 1-3-grams (tf-idf): word choice, spelling, set phrases;
* function words: character 2-5-grams of the text with every word that is
  not a function word (pronouns included) masked to its length (Stamatatos' text distortion):
  function words, word lengths and punctuation, blind to the topic;
* style: the measures of plagiarism.stylometry (sentence length, punctuation
  rates, vocabulary richness, function-word rates), standardised over the class.

A logistic model fitted on the tuning split of bench/eval_anomalies.py
weighs the families into one 0..1 score.  Measured there (`--fit --extra`,
bench/results/eval_anomalies_fit_extra.txt) and left out: a compression
distance (zlib NCD of the masked texts: CV AUC 0.765 alone, nothing added
beside the others, and a compression per pair of texts) and sentence-embedding
meaning (0.429 alone, below chance: answers to one assignment mean the same
things whoever wrote them; +0.009 beside the others on 78 cases, within the
noise, for the cost of the model).  The plain impostors test is the bench's
baseline.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from plagiarism.stylometry import FUNCTION_WORDS, style_vector

# Cohort texts on each side of the normalisation.  10-20 were equally good on the
# tuning split (a class answers each assignment with about that many texts); fewer
# is noisy.  A small class uses what it has.
NEIGHBOURS = 10
# A floor under the cohort's spread, as a share of the similarity scale, so that a
# tiny or uniform cohort cannot turn a hair's difference into a large z.
MIN_SPREAD = 0.01

_WORD = re.compile(r"[^\W\d_]+")
# Personal pronouns follow the subject, not the writer (an essay on a novel's hero is full of
# "he" and "his"), so they are masked like content words: on the tuning split this raised the
# function-word family's CV AUC with the others from 0.931 to 0.937.
PRONOUNS = frozenset("""i me my mine we us our ours you your yours he him his she her hers it its itself
they them their theirs""".split())
_KEPT = frozenset(FUNCTION_WORDS) - PRONOUNS
# Words and punctuation marks as tokens: "however ," and "however" are different habits.
_TOKENS = r"(?u)\b\w+\b|[^\w\s]"


def mask_content_words(text: str) -> str:
    """Keep function words (not pronouns), punctuation and word lengths; mask every other word's letters.

    Classmates answer the same assignment, so unmasked character n-grams would
    mostly say "same topic" (text distortion, Stamatatos 2017): what remains is
    how a person writes - function words, affixes of length, punctuation habits.
    """
    return _WORD.sub(lambda m: m.group() if m.group().lower() in _KEPT else "*" * len(m.group()), text)


def _cosine(matrix) -> np.ndarray:
    """Cosine similarity of every pair of rows (sparse or dense), as a dense array."""
    g = matrix @ matrix.T
    g = np.asarray(g.toarray() if hasattr(g, "toarray") else g, dtype=np.float64)
    norms = np.sqrt(np.maximum(np.diag(g), 1e-12))
    return g / np.outer(norms, norms)


def _tfidf(texts: list[str], **options) -> np.ndarray:
    from sklearn.feature_extraction.text import TfidfVectorizer

    # A term seen in one text only says nothing about two texts being alike; with
    # very few texts every term is kept so the matrix is never empty.
    vec = TfidfVectorizer(sublinear_tf=True, min_df=2 if len(texts) > 10 else 1, **options)
    return _cosine(vec.fit_transform(texts))


def vocabulary_similarity(texts: list[str]) -> np.ndarray:
    """Word 1-3-gram profiles (punctuation marks count as words), lower-cased."""
    return _tfidf(texts, ngram_range=(1, 3), lowercase=True, token_pattern=_TOKENS)


def function_word_similarity(texts: list[str]) -> np.ndarray:
    """Character 2-5-grams of the texts with their content words masked."""
    return _tfidf([mask_content_words(t) for t in texts], analyzer="char", ngram_range=(2, 5), lowercase=False)


def style_similarity(texts: list[str]) -> np.ndarray:
    """The stylometric measures, standardised over these texts (so the class is the scale)."""
    raw = np.array([style_vector(t) for t in texts], dtype=np.float64)
    sd = raw.std(axis=0)
    sd[sd == 0] = 1.0
    return _cosine((raw - raw.mean(axis=0)) / sd)


@dataclass(frozen=True)
class Family:
    """One kind of evidence: how it is computed and how it is described to people."""

    name: str
    words: str
    similarity: Callable[[list[str]], np.ndarray]


FAMILIES: tuple[Family, ...] = (
    Family("vocabulary", "vocabulary and phrasing (which words and word sequences the text uses, "
           "spelling included)", vocabulary_similarity),
    Family("function_words", "function words, word lengths and punctuation (with the topic words "
           "masked out)", function_word_similarity),
    Family("style", "style measures (sentence length, punctuation rates, vocabulary richness, "
           "function-word rates)", style_similarity),
)
FAMILY_WORDS = {f.name: f.words for f in FAMILIES}


def similarities(texts: list[str], families: tuple[Family, ...] = FAMILIES) -> dict[str, np.ndarray]:
    """Per family, the similarity of every pair of texts (n x n)."""
    return {f.name: f.similarity(texts) for f in families}


@dataclass(frozen=True)
class FamilyEvidence:
    """One family's verdict on one text, with the figures a reason sentence quotes."""

    z: float                # minus the mean two-sided normalised similarity: high = unlike the student
    own: float              # mean similarity of the text to the student's other texts
    peers: float            # mean similarity of its nearest classmates' texts to the student's texts
    peers_closer: int       # how many of those classmates' texts are closer to the student's texts
    peers_count: int
    impostors_closer: float  # share of other students' texts on the assignments of the student's texts
                             # that are closer to this text than the student's own text there is


def _nearest(row: np.ndarray, cohort: np.ndarray, k: int) -> np.ndarray:
    return cohort[np.argsort(-row[cohort], kind="stable")[:k]]


def _z(value: float, reference: np.ndarray, floor: float) -> float:
    return (value - float(reference.mean())) / max(float(reference.std()), floor)


def family_evidence(sim: np.ndarray, target: int, own: list[int], cohort: list[int],
                    k: int = NEIGHBOURS) -> FamilyEvidence:
    """Two-sided cohort-normalised evidence that `target` is not by the author of `own`.

    `sim` is one family's similarity matrix; `own` the student's other texts;
    `cohort` the other students' texts (at least one).
    """
    cohort_a = np.asarray(cohort)
    k = max(1, min(k, len(cohort_a)))
    floor = MIN_SPREAD * max(float(np.abs(sim).max()), 1e-9)
    peers_t = _nearest(sim[target], cohort_a, k)
    zs, beaten = [], []
    for h in own:
        s = float(sim[target, h])
        peers_h = sim[target, _nearest(sim[h], cohort_a, k)]
        zs.append(_z(s, sim[peers_t, h], floor) + _z(s, peers_h, floor))
        beaten.append(float((peers_h > s).mean()))
    own_sim = float(sim[target, own].mean())
    peer_sims = sim[np.ix_(peers_t, own)].mean(axis=1)
    return FamilyEvidence(z=-float(np.mean(zs)), own=own_sim, peers=float(peer_sims.mean()),
                          peers_closer=int((peer_sims > own_sim).sum()), peers_count=len(peers_t),
                          impostors_closer=float(np.mean(beaten)))


@dataclass(frozen=True)
class Model:
    """The logistic combination of the families' evidence (fitted by the bench)."""

    intercept: float
    weights: dict[str, float]
    threshold: float

    def score(self, evidence: dict[str, float]) -> float:
        """0..1, higher is less like the student's own writing.  A family the
        model has no weight for does not count."""
        z = self.intercept + sum(w * evidence[name] for name, w in self.weights.items() if name in evidence)
        return float(1.0 / (1.0 + np.exp(-np.clip(z, -30.0, 30.0))))

    def contributions(self, evidence: dict[str, float]) -> list[tuple[float, str]]:
        """(weight x evidence, family), largest first: what drove the score."""
        return sorted(((w * evidence.get(n, 0.0), n) for n, w in self.weights.items()), reverse=True)


# Fitted on the tuning split by `ATTEST_CORPORA_DIR=... .venv/bin/python bench/eval_anomalies.py --fit`
# (logistic regression on the families' z; see bench/results/eval_anomalies_fit.txt).
# threshold: the lowest score with at most 10 % false positives on the tuning split.
MODEL = Model(intercept=0.536, weights={"vocabulary": 1.040, "function_words": 0.654, "style": 0.358},
              threshold=0.524)
