"""Labelled evaluation of anomaly detection (impostors method) against centroid-distance baselines.

    .venv/bin/python bench/eval_anomalies.py [--quick]

Data: bench/data/authorship.jsonl (built by bench/eval_data.py: ~300-word pieces of the
Python documentation's single-author "What's New" documents and HOWTOs, one author per
"student").  A case: a student with 3 of their own texts as history, and one more text,
either theirs (label 0) or another author's (label 1, the ghost-written essay).  The
cohort (impostors) is every other student's texts except the ghost-writer's (a bought
essay is not written by a classmate).  Weights and the flag threshold are chosen on the
"tune" split; the figures reported are on "eval", whose texts never appear in "tune".
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, cross_val_predict

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.eval_near_duplicates import best_threshold, prf, roc_auc, threshold_at_fpr  # noqa: E402
from plagiarism.anomaly import (  # noqa: E402
    FAMILIES,
    OUTLIER_Z,
    TRIALS,
    Profiles,
    calibrate,
    cohort_isolation,
    model_score,
    text_features,
)

DATA = ROOT / "bench" / "data"
RESULTS = ROOT / "bench" / "results"
HISTORY = 3
C_REG = 1.0  # inverse regularisation strength of the logistic models


def make_cases(texts: list[dict], rounds: int, rng: random.Random) -> list[dict]:
    by_author: dict[str, list[int]] = defaultdict(list)
    for i, t in enumerate(texts):
        by_author[t["author"]].append(i)
    cases = []
    authors = sorted(a for a, idx in by_author.items() if len(idx) >= HISTORY + 1)
    for a in authors:
        for _ in range(rounds):
            idx = rng.sample(by_author[a], HISTORY + 1)
            history, own_target = idx[:HISTORY], idx[HISTORY]
            ghost_author = rng.choice([b for b in by_author if b != a])
            ghost = rng.choice(by_author[ghost_author])
            for target, label, excluded in ((own_target, 0, None), (ghost, 1, ghost_author)):
                cohort = [j for b, js in by_author.items() if b not in (a, excluded) for j in js
                          if j != target]
                cases.append({"author": a, "history": history, "target": target, "label": label,
                              "cohort": cohort})
    return cases


def centroid_distance(matrix: np.ndarray, case: dict) -> float:
    centroid = matrix[case["history"]].mean(axis=0)
    t = matrix[case["target"]]
    return float(1 - t @ centroid / max(np.linalg.norm(t) * np.linalg.norm(centroid), 1e-12))


def calibration_groups(texts: list[dict], rng: random.Random) -> list[tuple[int, list[int]]]:
    """The split as a cohort: every text with HISTORY other texts of its author as history
    (no labels used), the groups the detector calibrates its distances on."""
    by_author: dict[str, list[int]] = defaultdict(list)
    for i, t in enumerate(texts):
        by_author[t["author"]].append(i)
    return [(i, rng.sample([j for j in idx if j != i], HISTORY))
            for idx in by_author.values() if len(idx) > HISTORY for i in idx]


def fit(rows: list[dict[str, float]], labels: list[int], keys: list[str], groups: list[str]
        ) -> tuple[float, LogisticRegression]:
    """Author-grouped cross-validated AUC on the tuning split, and the model fitted on all of it."""
    x = np.array([[r[k] for k in keys] for r in rows])
    cv = cross_val_predict(LogisticRegression(C=C_REG), x, labels, groups=groups,
                           cv=GroupKFold(len(set(groups))), method="decision_function")
    return roc_auc(labels, list(cv)), LogisticRegression(C=C_REG).fit(x, labels)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer cases and trials")
    args = ap.parse_args()
    t0 = time.time()
    rows = [json.loads(line) for line in (DATA / "authorship.jsonl").open()]
    rng = random.Random(11)
    rounds = 4 if args.quick else 12
    lines = ["Anomaly detection: labelled evaluation" + (" (--quick)" if args.quick else ""),
             "command: .venv/bin/python bench/eval_anomalies.py" + (" --quick" if args.quick else ""),
             f"authors: {', '.join(sorted({r['author'] for r in rows}))}", ""]
    results = {}
    for split in ("tune", "eval"):
        texts = [r for r in rows if r["split"] == split]
        profiles = Profiles([t["text"] for t in texts])
        cases = make_cases(texts, rounds, rng)
        labels = [c["label"] for c in cases]
        calibration = calibrate(profiles, calibration_groups(texts, random.Random(5)))
        feats = []
        for k, c in enumerate(cases):
            f, _ = text_features(profiles, c["target"], c["history"], c["cohort"], calibration,
                                 np.random.default_rng(k), trials=30 if args.quick else TRIALS)
            feats.append(f)
        plain = TfidfVectorizer(analyzer="char", ngram_range=(3, 4), sublinear_tf=True, lowercase=False,
                                max_features=20000, min_df=2).fit_transform([t["text"] for t in texts]).toarray()
        masked = profiles.char.toarray()
        base = {"centroid distance, embeddings": [centroid_distance(profiles.meaning, c) for c in cases],
                "centroid distance, char n-grams": [centroid_distance(plain, c) for c in cases],
                "centroid distance, masked char n-grams": [centroid_distance(masked, c) for c in cases],
                "centroid distance, stylometry": [centroid_distance(profiles.style, c) for c in cases]}
        order = [(t["author"], str(i)) for i, t in enumerate(texts)]
        results[split] = (cases, labels, feats, base, cohort_isolation(profiles, order))

    cases, labels, feats, base, _ = results["tune"]
    authors = [c["author"] for c in cases]
    candidates = {
        "distance + impostors": [f"{kind}:{fam}" for kind in ("distance", "impostors") for fam in FAMILIES],
        "distance only": [f"distance:{fam}" for fam in FAMILIES],
        "impostors only": [f"impostors:{fam}" for fam in FAMILIES],
        "impostors, masked char + style + meaning (as before)":
            [f"impostors:{fam}" for fam in ("character", "style", "meaning")],
    }
    fitted = {name: fit(feats, labels, keys, authors) for name, keys in candidates.items()}
    chosen = max(fitted, key=lambda n: fitted[n][0])
    model = fitted[chosen][1]
    keys = candidates[chosen]
    coefs = {k: round(float(c), 3) for k, c in zip(keys, model.coef_[0], strict=True)}
    intercept = round(float(model.intercept_[0]), 3)

    def scores_of(fs: list[dict[str, float]], name: str) -> list[float]:
        m = fitted[name][1]
        return [model_score(f, dict(zip(candidates[name], m.coef_[0], strict=True)), float(m.intercept_[0]))
                for f in fs]

    tune_scores = [model_score(f, coefs, intercept) for f in feats]
    threshold = best_threshold(labels, tune_scores)
    thr_fpr = threshold_at_fpr(labels, tune_scores, 0.10)
    base_thr = {k: best_threshold(labels, v) for k, v in base.items()}
    single = {k: best_threshold(labels, [f[k] for f in feats]) for k in candidates["distance + impostors"]}
    other_thr = {n: best_threshold(labels, scores_of(feats, n)) for n in candidates}
    lines += [f"Tuning split: {len(cases)} cases ({sum(labels)} ghost-written); logistic regression "
              f"(C={C_REG}), AUC cross-validated by leaving one student out:",
              *[f"  {name:<56} CV AUC {auc:.3f}" for name, (auc, _) in fitted.items()],
              f"  chosen: {chosen}",
              f"  INTERCEPT = {intercept}",
              f"  COEFFICIENTS = {coefs}",
              f"  FLAG_THRESHOLD = {thr_fpr:.3f} (lowest with <=10 % false positives on tune; "
              f"F1-optimal would be {threshold:.3f})", ""]

    cases, labels, feats, base, isolation = results["eval"]
    scores = [model_score(f, coefs, intercept) for f in feats]
    lines.append(f"Evaluation split: {len(cases)} cases ({sum(labels)} ghost-written)")

    def row(name: str, sc: list[float], thr: float) -> str:
        p, r, f1 = prf(labels, sc, thr)
        return (f"  {name:<48} AUC {roc_auc(labels, sc):.3f}  precision {p:.3f}  recall {r:.3f}  "
                f"F1 {f1:.3f}  (threshold {thr:.3f})")

    lines.append(row(f"this detector ({chosen})", scores, threshold))
    lines.append(row("  same, at <=10 % tune false positives", scores, thr_fpr))
    for name in candidates:
        if name != chosen:
            lines.append(row(f"model: {name}", scores_of(feats, name), other_thr[name]))
    for k, thr in single.items():
        lines.append(row(f"  feature {k} alone", [f[k] for f in feats], thr))
    for name, sc in base.items():
        lines.append(row(f"baseline: {name}", sc, base_thr[name]))
    if isolation is not None:
        flagged = float((isolation >= OUTLIER_Z).mean())
        lines += ["", "Cohort outliers (no labels: every text of the evaluation split is honest): "
                  f"{flagged * 100:.1f} % of its {len(isolation)} texts are flagged as outliers "
                  f"(robust z >= {OUTLIER_Z}); largest z {isolation.max():.1f}, median {np.median(isolation):.1f}."]
    lines += ["",
              "Reading: the impostor evidence (Koppel & Winter; now also on plain character n-grams) does",
              "not beat the plain character n-gram centroid baseline on its own here, and adds nothing",
              "once the cohort-calibrated distances are in the model (tune CV), so the score uses the",
              "distances and the reasons report the impostor shares as context.  The detector's edge",
              "over the best single baseline is modest (one split, 120 cases).",
              "",
              "Reading: here each author's texts share topics (logging, descriptors, release notes), so",
              "distance to the student's own texts on plain character n-grams and meaning profits from",
              "topic; in a class, classmates share the assignment's topic, which the cohort calibration",
              "(and the masked families) are there for.  This set has 7 authors of technical prose and",
              "3 texts of history per case: treat the figures as a sanity check, not a measurement on",
              "student essays.",
              "", f"elapsed {time.time() - t0:.0f} s"]
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / ("eval_anomalies_quick.txt" if args.quick else "eval_anomalies.txt")).write_text(text + "\n")


if __name__ == "__main__":
    main()
