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
import itertools
import json
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.eval_near_duplicates import best_threshold, prf, roc_auc, threshold_at_fpr  # noqa: E402
from plagiarism.anomaly import TRIALS, Profiles, impostor_evidence  # noqa: E402

DATA = ROOT / "bench" / "data"
RESULTS = ROOT / "bench" / "results"
HISTORY = 3


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
        fams = profiles.families()
        ev = defaultdict(list)
        for k, c in enumerate(cases):
            g = np.random.default_rng(k)
            for name, m in fams.items():
                ev[name].append(impostor_evidence(m, c["target"], c["history"], c["cohort"], g,
                                                  trials=30 if args.quick else TRIALS)[0])
        plain = TfidfVectorizer(analyzer="char", ngram_range=(3, 4), sublinear_tf=True, lowercase=False,
                                max_features=20000, min_df=2).fit_transform([t["text"] for t in texts]).toarray()
        masked = profiles.char.toarray()
        base = {"centroid distance, embeddings": [centroid_distance(profiles.meaning, c) for c in cases],
                "centroid distance, char n-grams": [centroid_distance(plain, c) for c in cases],
                "centroid distance, masked char n-grams": [centroid_distance(masked, c) for c in cases],
                "centroid distance, stylometry": [centroid_distance(profiles.style, c) for c in cases]}
        results[split] = (cases, labels, ev, base)

    cases, labels, ev, base = results["tune"]
    grid = []
    for wc, ws in itertools.product(np.arange(0, 1.01, 0.1), repeat=2):
        if wc + ws > 1.0001:
            continue
        wm = 1 - wc - ws
        scores = [wc * a + ws * b + wm * c for a, b, c in zip(ev["character"], ev["style"], ev["meaning"], strict=False)]
        grid.append((roc_auc(labels, scores), round(wc, 1), round(ws, 1), round(wm, 1), scores))
    grid.sort(key=lambda g: (g[0], g[1]), reverse=True)
    auc_t, wc, ws, wm, tune_scores = grid[0]
    threshold = best_threshold(labels, tune_scores)
    thr_fpr = threshold_at_fpr(labels, tune_scores, 0.10)
    base_thr = {k: best_threshold(labels, v) for k, v in base.items()}
    lines += [f"Tuning split: {len(cases)} cases ({sum(labels)} ghost-written)",
              *[f"  weights char {g[1]:.1f} style {g[2]:.1f} meaning {g[3]:.1f}: AUC {g[0]:.3f}"
                for g in grid[:4]],
              f"  chosen: WEIGHTS character={wc:.1f} style={ws:.1f} meaning={wm:.1f}; "
              f"FLAG_THRESHOLD={thr_fpr:.3f} (lowest with <=10 % false positives on tune; "
              f"F1-optimal would be {threshold:.3f})", ""]

    cases, labels, ev, base = results["eval"]
    scores = [wc * a + ws * b + wm * c for a, b, c in zip(ev["character"], ev["style"], ev["meaning"], strict=False)]
    lines.append(f"Evaluation split: {len(cases)} cases ({sum(labels)} ghost-written)")

    def row(name: str, sc: list[float], thr: float) -> str:
        p, r, f1 = prf(labels, sc, thr)
        return (f"  {name:<40} AUC {roc_auc(labels, sc):.3f}  precision {p:.3f}  recall {r:.3f}  "
                f"F1 {f1:.3f}  (threshold {thr:.3f})")

    lines.append(row("impostors, combined (this detector)", scores, threshold))
    lines.append(row("  same, at <=10 % tune false positives", scores, thr_fpr))
    for name in ("character", "style", "meaning"):
        fam_thr = best_threshold(results["tune"][1], results["tune"][2][name])
        lines.append(row(f"impostors, {name} only", ev[name], fam_thr))
    for name, sc in base.items():
        lines.append(row(f"baseline: {name}", sc, base_thr[name]))
    lines += ["",
              "Reading: here each author's texts share topics (logging, descriptors, release notes), so",
              "distance to the student's centroid on plain character n-grams profits from topic; with",
              "content words masked (as this detector does, because classmates share the assignment's",
              "topic) the centroid baseline falls to the impostors method's level.  This set has 7",
              "authors of technical prose: treat the figures as a sanity check, not a measurement on",
              "student essays.",
              "", f"elapsed {time.time() - t0:.0f} s"]
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / ("eval_anomalies_quick.txt" if args.quick else "eval_anomalies.txt")).write_text(text + "\n")


if __name__ == "__main__":
    main()
