"""Anomalies: a text unlike the same student's other texts, or unlike its whole cohort.

Two questions, each with its own evidence and its own reason sentences:

1. Ghost-writing: is this text unlike the student's own writing?  Answered by
   plagiarism.authorship: per feature family (vocabulary, function words,
   style), is the text closer to the student's other texts than other
   students' texts on the same assignment are?  A fitted logistic model
   weighs the families into one 0..1 score, flagged at a threshold chosen on
   labelled data (bench/eval_anomalies.py).  The reasons name the family
   that drove the score with its figures, and the concrete measures that
   differ most from the student's other texts (sentence length, punctuation,
   function words, vocabulary richness), with the numbers.

2. Is this text an outlier in its cohort: far, in how it is written, from
   every other student's text (a robust z-score of its isolation)?  This
   needs no history, and is reported and flagged separately.

Each flag is a prompt for a person to review, never a finding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from plagiarism.authorship import (
    FAMILY_WORDS,
    MODEL,
    PRONOUNS,
    FamilyEvidence,
    Model,
    family_evidence,
    mask_content_words,
    similarities,
)
from plagiarism.stylometry import FUNCTION_WORDS, SCALAR_FEATURES, function_word_rates, scalar_features

__all__ = ["AnomalyReport", "detect_anomalies", "mask_content_words", "robust_scale", "OUTLIER_Z",
           "MIN_HISTORY", "MIN_IMPOSTORS"]

MIN_HISTORY = 2      # other texts by the same student needed before anything is said
MIN_IMPOSTORS = 3    # other students' texts needed to compare against
FLAG_THRESHOLD = MODEL.threshold
# Cohort outliers: isolation (1 - mean similarity to the nearest other students' texts) in how a
# text is written, as a robust z-score over the cohort; 3.5 is Iglewicz & Hoaglin's cut-off
# for the modified z-score, so it flags only texts far outside the cohort's spread.
OUTLIER_FAMILIES = ("function_words", "style")
OUTLIER_NEIGHBOURS = 3
OUTLIER_Z = 3.5
MIN_OUTLIER_COHORT = 8   # texts needed before a cohort's spread means anything
# A measure is named as a difference when it lies this many spreads from the student's usual value.
DIFFERENCE_Z = 2.0

Encoder = Callable[[list[str]], np.ndarray]
CLOSING = ("This is a prompt for a person to review the text alongside the student's other work, "
           "not a finding of misconduct.")


@dataclass
class AnomalyReport:
    """How unlike the student's other texts one text is, and why."""

    student: str
    submission: str
    score: float
    flagged: bool
    reasons: list[str]
    evidence: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"student": self.student, "submission": self.submission, "score": round(self.score, 4),
                "flagged": self.flagged, "reasons": self.reasons,
                "evidence": {k: round(v, 3) for k, v in self.evidence.items()}}


def robust_scale(values: np.ndarray) -> tuple[float, float]:
    """Median and 1.4826 x median absolute deviation (a standard deviation for normal data,
    unmoved by the few anomalies the cohort may hold); the spread is floored so a tiny or
    uniform cohort cannot make every difference look huge."""
    center = float(np.median(values))
    scale = 1.4826 * float(np.median(np.abs(values - center)))
    return center, max(scale, 0.05 * abs(center), 1e-3)


def cohort_isolation(sims: dict[str, np.ndarray], students: list[str]) -> np.ndarray | None:
    """Per text, a robust z-score of how isolated it is among other students' texts.

    Isolation is 1 - the mean similarity to its OUTLIER_NEIGHBOURS nearest texts
    by other students, on the families that describe how a text is written
    rather than what about; the z-scores of the families are averaged.  None
    when the cohort is too small to have a spread.
    """
    n = len(students)
    if n < MIN_OUTLIER_COHORT or len(set(students)) < 3:
        return None
    same = np.array([[a == b for b in students] for a in students])
    k = min(OUTLIER_NEIGHBOURS, int((~same).sum(axis=1).min()))
    zs = []
    for name in OUTLIER_FAMILIES:
        masked = np.where(same, -np.inf, sims[name])
        isolation = 1.0 - (-np.sort(-masked, axis=1)[:, :k]).mean(axis=1)
        center, scale = robust_scale(isolation)
        zs.append((isolation - center) / scale)
    return np.mean(zs, axis=0)


def outlier_reason(z: float) -> str:
    """The separate sentence for a text far outside its cohort."""
    return (f"Outlier in its cohort: in how it is written (function words, punctuation and style measures) "
            f"this text is farther from every other student's text than is usual in this cohort "
            f"({z:.1f} robust standard deviations beyond the typical isolation; {OUTLIER_Z:.1f} is the "
            f"review cut-off).  A text can stand out for innocent reasons (a different assignment format, "
            f"a pasted template); this is a prompt for a person to look, not a finding of misconduct.")


# ----------------------------------------------------------------------------- what differs

@dataclass
class Measures:
    """The measures a reviewer can check by eye, per text: scalar style features and
    function-word rates (per 100 words)."""

    scalar: np.ndarray       # (n, len(SCALAR_FEATURES))
    function: np.ndarray     # (n, len(FUNCTION_WORDS))

    @classmethod
    def of(cls, texts: list[str]) -> Measures:
        scal = [scalar_features(t) for t in texts]
        return cls(np.array([[s[k] for k in SCALAR_FEATURES] for s in scal], dtype=np.float64),
                   np.array([function_word_rates(t) for t in texts], dtype=np.float64))


def _differing(values: np.ndarray, target: int, own: list[int], cohort: list[int]) -> list[tuple[float, int]]:
    """(z, column) of the measures on which the target lies farthest from the student's texts.

    The spread is the student's own, floored by half the class's (and by 5 % of the
    student's usual value), so a student whose two texts happen to agree is not held
    to a hair's width."""
    hist = values[own]
    spread = np.maximum(hist.std(axis=0), 0.5 * values[cohort].std(axis=0))
    spread = np.maximum(spread, np.maximum(0.05 * np.abs(hist.mean(axis=0)), 1e-3))
    z = (values[target] - hist.mean(axis=0)) / spread
    return [(float(z[i]), int(i)) for i in np.argsort(-np.abs(z)) if abs(z[i]) >= DIFFERENCE_Z]


def differences(measures: Measures, target: int, own: list[int], cohort: list[int],
                top_style: int = 2, top_words: int = 3) -> list[str]:
    """Sentences naming the measures that differ most from the student's other texts, with figures."""
    out = []
    names = list(SCALAR_FEATURES)
    sc = measures.scalar
    for _, i in _differing(sc, target, own, cohort)[:top_style]:
        label, unit = SCALAR_FEATURES[names[i]]
        out.append(f"{label[0].upper()}{label[1:]}: {sc[target, i]:.1f} {unit} in this text, against "
                   f"{sc[own, i].mean():.1f} {unit} on average in the student's other texts "
                   f"({sc[cohort, i].mean():.1f} across the class).")
    fw = measures.function
    # Only words the student or this text actually use: a word absent from both says nothing.
    # Personal pronouns follow the subject (an essay about a novel's hero is full of "he" and
    # "his"), not the writer, so they are not offered as evidence of a different hand.
    words = [(z, i) for z, i in _differing(fw, target, own, cohort)
             if FUNCTION_WORDS[i] not in PRONOUNS
             and (fw[target, i] >= 0.2 or fw[own, i].mean() >= 0.2)][:top_words]
    if words:
        parts = [f"\"{FUNCTION_WORDS[i]}\" {fw[target, i]:.1f} per 100 words here against "
                 f"{fw[own, i].mean():.1f}" for _, i in words]
        out.append("Function words used at a different rate from the student's other texts: "
                   + "; ".join(parts) + ".")
    return out


# ----------------------------------------------------------------------------- reasons

def family_sentence(name: str, ev: FamilyEvidence) -> str:
    """One family's figures in words, from both sides of the comparison: classmates' texts on
    this text's assignment against the student's texts, and this text against classmates'
    texts on the assignments of the student's other texts."""
    return (f"By {FAMILY_WORDS[name]}: of the {ev.peers_count} other students' texts most like this one "
            f"(as a rule, answers to the same assignment), {ev.peers_closer} resemble this student's other "
            f"texts more than this text does; and {round(100 * ev.impostors_closer)} % of other students' "
            f"answers to the assignments of the student's other texts are closer to this text than the "
            f"student's own answers are.")


def explain(score: float, flagged: bool, threshold: float, evidence: dict[str, FamilyEvidence],
            model: Model, diffs: list[str]) -> list[str]:
    """Plain sentences saying which evidence drove the result (largest contributions first)."""
    contrib = [(c, n) for c, n in model.contributions({k: v.z for k, v in evidence.items()}) if n in evidence]
    if not flagged:
        # The family with the largest weight speaks for the verdict: it is what the score mostly is.
        main = max(evidence, key=lambda n: model.weights.get(n, 0.0))
        ev = evidence[main]
        return [f"The text is consistent with the student's other texts (score {score:.2f}, below the "
                f"{threshold:.2f} review threshold): by {FAMILY_WORDS[main]}, it resembles them more than "
                f"{ev.peers_count - ev.peers_closer} of the {ev.peers_count} other students' texts most like "
                f"it do."]
    reasons = [f"Written differently from the student's other texts: score {score:.2f}, at or above the "
               f"{threshold:.2f} review threshold."]
    for c, name in contrib:
        if c > 0 and evidence[name].z > 0:
            reasons.append(family_sentence(name, evidence[name]))
    reasons.extend(diffs)
    reasons.append(CLOSING)
    return reasons


# ----------------------------------------------------------------------------- entry point

def detect_anomalies(students: dict[str, dict[str, str]], encode: Encoder | None = None,
                     threshold: float | None = None, model: Model = MODEL) -> list[AnomalyReport]:
    """Score every text of every student against their other texts, with the cohort as the
    reference; and flag texts that are outliers in the whole cohort.

    `students` maps a student to {file name: text}; file names sort oldest first.
    `encode` is accepted for callers that pass the sentence embedder, and unused:
    on the tuning data, meaning (sentence embeddings) added nothing beside the
    families of plagiarism.authorship.
    """
    del encode
    threshold = model.threshold if threshold is None else threshold
    order = [(s, name) for s in sorted(students) for name in sorted(students[s])]
    reports: list[AnomalyReport] = []
    if not order:
        return reports
    texts = [students[s][n] for s, n in order]
    who = [s for s, _ in order]
    sims = similarities(texts)
    measures = Measures.of(texts)
    by_student: dict[str, list[int]] = {}
    for i, s in enumerate(who):
        by_student.setdefault(s, []).append(i)
    isolation = cohort_isolation(sims, who)
    for i, (student, name) in enumerate(order):
        own = [j for j in by_student[student] if j != i]
        cohort = [j for j, s in enumerate(who) if s != student]
        outlier_z = float(isolation[i]) if isolation is not None else None
        outlier = outlier_z is not None and outlier_z >= OUTLIER_Z
        extra = {"cohort_outlier": outlier_z} if outlier_z is not None else {}
        if len(own) < MIN_HISTORY or len(cohort) < MIN_IMPOSTORS:
            if len(own) < MIN_HISTORY:
                reasons = [f"Too little history: the student has {len(own)} other text"
                           f"{'' if len(own) == 1 else 's'} here, and at least {MIN_HISTORY} are needed "
                           "to judge whether this one is unlike their own writing."]
            else:
                reasons = [f"Too few other students' texts ({len(cohort)}) to compare with; at least "
                           f"{MIN_IMPOSTORS} are needed."]
            if outlier:
                reasons.append(outlier_reason(outlier_z))
            reports.append(AnomalyReport(student, name, 0.0, outlier, reasons, extra))
            continue
        evidence = {fam: family_evidence(sim, i, own, cohort) for fam, sim in sims.items()}
        zs = {fam: ev.z for fam, ev in evidence.items()}
        score = model.score(zs)
        by_history = score >= threshold
        diffs = differences(measures, i, own, cohort) if by_history else []
        reasons = explain(score, by_history, threshold, evidence, model, diffs)
        if outlier:
            reasons.insert(len(reasons) - 1 if by_history else len(reasons), outlier_reason(outlier_z))
        reports.append(AnomalyReport(student, name, score, by_history or outlier, reasons, {**zs, **extra}))
    return reports
