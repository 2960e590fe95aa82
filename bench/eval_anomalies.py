"""Ghost-writing detection on real student essays, beside its peers, in one run.

    ATTEST_CORPORA_DIR=/work/corpora ATTEST_PEERS_PYTHON=/work/peers-venv/bin/python \\
        .venv/bin/python bench/eval_anomalies.py [--fit] [--extra] [--rounds N] [--c50]

Data (bench/CORPORA.md, "Authorship"): classes of the Uppsala Student English
corpus, built by bench/authorship_corpora.py: each student has 2-5 earlier
essays and one latest essay, which is either their own or the same assignment
written by a student outside the class.  Students are split once into a tuning
and an evaluation half; everything below is chosen on "tune" and reported on
"eval".

Methods, all scored on the same cases of the same run:
* Attest: `detect_anomalies` on each class, exactly as `submissions anomalies`
  runs it; the latest text's score.
* char-4-gram impostors: the classic General Impostors test (Koppel & Winter
  2014) on character 4-gram frequencies, the class's other students' texts as
  impostors: 100 trials, each on a random half of the features with 10 random
  impostors; the score is the share of trials in which some impostor is more
  similar to the text than the student's nearest own text.
* mowen's General Imposters and faststylometry's Burrows' Delta (PyPI), run by
  bench/peers_authorship.py under ATTEST_PEERS_PYTHON (they need Python >= 3.12).
Each method's threshold is the F1-optimal one on the tuning split; Attest is
also shown at its shipped threshold (at most 10 % false positives on tune).

--fit refits the logistic model of plagiarism/authorship.py on the tuning split
and prints it (author-grouped cross-validated AUC per family set); --extra adds
the families measured and left out (zlib compression distance, sentence
embeddings) to that comparison.  --c50 adds Reuters C50 as a secondary check.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from itertools import combinations
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

from bench.authorship_corpora import (  # noqa: E402
    ClassCase,
    CorpusMissing,
    c50_classes,
    load_c50,
    load_use,
    use_classes,
)
from bench.eval_near_duplicates import best_threshold, prf, roc_auc, threshold_at_fpr  # noqa: E402
from plagiarism.anomaly import detect_anomalies  # noqa: E402
from plagiarism.authorship import (  # noqa: E402
    FAMILIES,
    MODEL,
    Model,
    family_evidence,
    mask_content_words,
    similarities,
)

RESULTS = ROOT / "bench" / "results"
PEERS_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "attest-bench"
GI_TRIALS = 100
GI_IMPOSTORS = 10
GI_BLOCKS = 20


# ----------------------------------------------------------------------------- the classic baseline

def char4_impostors(texts: list[str], who: list[str], targets: dict[str, int], seed: int = 0) -> dict[str, float]:
    """General Impostors on character 4-gram frequencies, the class as impostors.

    A trial keeps a random half of the features by summing the Gram matrices of
    a random half of GI_BLOCKS feature blocks (one pass over the features, not
    one per trial)."""
    from sklearn.feature_extraction.text import CountVectorizer

    x = CountVectorizer(analyzer="char", ngram_range=(4, 4), lowercase=False).fit_transform(texts).astype(float)
    x = x.multiply(1.0 / np.maximum(x.sum(axis=1), 1)).tocsr().tocsc()   # relative frequencies
    rng = np.random.default_rng(seed)
    parts = np.array_split(rng.permutation(x.shape[1]), GI_BLOCKS)
    grams = np.stack([(lambda b: (b @ b.T).toarray())(x[:, np.sort(p)]) for p in parts])
    sq = np.einsum("bii->bi", grams)
    out = {}
    who_a = np.array(who)
    for student, t in targets.items():
        own = np.array([j for j in np.where(who_a == student)[0] if j != t])
        cohort = np.where(who_a != student)[0]
        losses = 0
        for _ in range(GI_TRIALS):
            chosen = rng.choice(GI_BLOCKS, GI_BLOCKS // 2, replace=False)
            g = grams[chosen, t, :].sum(axis=0) / np.sqrt(np.maximum(sq[chosen].sum(axis=0), 1e-18)
                                                            * max(sq[chosen, t].sum(), 1e-18))
            imps = rng.choice(cohort, min(GI_IMPOSTORS, len(cohort)), replace=False)
            losses += g[imps].max() >= g[own].max()
        out[student] = losses / GI_TRIALS
    return out


# ----------------------------------------------------------------------------- families left out

def zlib_similarity(texts: list[str]) -> np.ndarray:
    """Minus the normalised compression distance (Cilibrasi & Vitanyi) of the masked texts."""
    import zlib

    b = [mask_content_words(t).encode() for t in texts]
    c = [len(zlib.compress(x, 9)) for x in b]
    n = len(b)
    s = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            cij = (len(zlib.compress(b[i] + b[j], 9)) + len(zlib.compress(b[j] + b[i], 9))) / 2
            s[i, j] = s[j, i] = -(cij - min(c[i], c[j])) / max(c[i], c[j])
    return s


def meaning_similarity(texts: list[str]) -> np.ndarray:
    """Cosine of the texts' mean sentence embeddings (all-MiniLM-L6-v2, offline)."""
    from plagiarism.embedding import get_embedder
    from plagiarism.segment import sentences

    enc = get_embedder().encode
    per = [[" ".join(t[s.start:s.end].split()) for s in sentences(t)] or [t] for t in texts]
    uniq = list(dict.fromkeys(s for p in per for s in p))
    vec = enc(uniq)
    index = {s: i for i, s in enumerate(uniq)}
    m = np.stack([vec[[index[s] for s in p]].mean(axis=0) for p in per])
    m /= np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-9)
    return m @ m.T


# ----------------------------------------------------------------------------- one split

def score_split(classes: list[ClassCase], extra: bool, with_attest: bool) -> dict:
    """Per latest text: labels, the families' z, Attest's score, the baseline's score."""
    rows = []
    for ci, cl in enumerate(classes):
        order = [(s, f) for s in sorted(cl.students) for f in sorted(cl.students[s])]
        texts = [cl.students[s][f] for s, f in order]
        who = [s for s, _ in order]
        targets = {s: order.index((s, cl.latest[s][0])) for s in cl.latest}
        sims = similarities(texts)
        if extra:
            sims["compression"] = zlib_similarity(texts)
            sims["meaning"] = meaning_similarity(texts)
        baseline = char4_impostors(texts, who, targets, seed=ci)
        attest = {}
        if with_attest:
            attest = {(r.student, r.submission): r.score for r in detect_anomalies(cl.students)}
        for s, t in targets.items():
            own = [j for j, w in enumerate(who) if w == s and j != t]
            cohort = [j for j, w in enumerate(who) if w != s]
            z = {name: family_evidence(sim, t, own, cohort).z for name, sim in sims.items()}
            rows.append({"class": ci, "student": s, "label": cl.latest[s][1], "z": z, "target": t, "own": own,
                         "baseline": baseline[s], "attest": attest.get((s, cl.latest[s][0]))})
    return {"rows": rows, "classes": classes}


def run_peers(split: dict, python: str) -> dict[str, dict[str, float]]:
    """mowen and faststylometry on this split's cases, in their own interpreter."""
    payload = {"classes": [], "cases": []}
    for cl in split["classes"]:
        order = [(s, f) for s in sorted(cl.students) for f in sorted(cl.students[s])]
        payload["classes"].append({"texts": [cl.students[s][f] for s, f in order], "authors": [s for s, _ in order]})
    for k, r in enumerate(split["rows"]):
        payload["cases"].append({"id": k, "class": r["class"], "student": r["student"], "target": r["target"],
                                 "own": r["own"]})
    raw = json.dumps(payload, sort_keys=True)
    # The peers take half an hour on 2 cores; the same cases give the same answers, so they are
    # kept by a hash of the cases and of the peer script (delete the folder to recompute).
    key = hashlib.sha256(raw.encode() + (ROOT / "bench" / "peers_authorship.py").read_bytes()).hexdigest()[:16]
    cached = PEERS_CACHE / f"peers-{key}.json"
    if cached.exists():
        return json.loads(cached.read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory() as tmp:
        cases, out = Path(tmp) / "cases.json", Path(tmp) / "out.json"
        cases.write_text(raw, encoding="utf-8")
        subprocess.run([python, str(ROOT / "bench" / "peers_authorship.py"), str(cases), str(out)], check=True)
        PEERS_CACHE.mkdir(parents=True, exist_ok=True)
        cached.write_text(out.read_text(encoding="utf-8"), encoding="utf-8")
        return json.loads(cached.read_text(encoding="utf-8"))


# ----------------------------------------------------------------------------- the model

def fit_model(rows: list[dict], names: list[str]) -> tuple[float, Model]:
    """Student-grouped cross-validated AUC on the tuning split, and the model fitted on all of it,
    its threshold the lowest score with at most 10 % false positives there."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold, cross_val_predict

    x = np.array([[r["z"][n] for n in names] for r in rows])
    y = [r["label"] for r in rows]
    groups = [r["student"] for r in rows]
    cv = cross_val_predict(LogisticRegression(C=1.0), x, y, groups=groups, cv=GroupKFold(5),
                           method="decision_function")
    lr = LogisticRegression(C=1.0).fit(x, y)
    model = Model(float(lr.intercept_[0]), dict(zip(names, map(float, lr.coef_[0]), strict=True)), 0.5)
    scores = [model.score(r["z"]) for r in rows]
    return roc_auc(y, list(cv)), Model(model.intercept, model.weights, threshold_at_fpr(y, scores, 0.10))


def _line(name: str, labels: list[int], scores: list[float], threshold: float) -> str:
    p, r, f1 = prf(labels, scores, threshold)
    return (f"  {name:<44} AUC {roc_auc(labels, scores):.3f}  precision {p:.3f}  recall {r:.3f}  "
            f"F1 {f1:.3f}  (threshold {threshold:.3f})")


def evaluate(corpus: str, tune: dict, ev: dict, peers: tuple[dict, dict] | None) -> list[str]:
    """The table for one corpus: every method on the evaluation split, at its tuned threshold."""
    lt = [r["label"] for r in tune["rows"]]
    le = [r["label"] for r in ev["rows"]]
    methods: dict[str, tuple[list[float], list[float]]] = {
        "Attest (cohort-normalised families)": ([MODEL.score(r["z"]) for r in tune["rows"]],
                                                [r["attest"] for r in ev["rows"]]),
        "char-4-gram impostors (class as impostors)": ([r["baseline"] for r in tune["rows"]],
                                                       [r["baseline"] for r in ev["rows"]]),
    }
    if peers:
        for key, label in (("mowen_gi", "mowen General Imposters (char 4-grams)"),
                           ("faststylometry_delta", "faststylometry Burrows' Delta")):
            methods[label] = ([peers[0][str(k)][key] for k in range(len(lt))],
                              [peers[1][str(k)][key] for k in range(len(le))])
    for fam in FAMILIES:
        methods[f"  family alone: {fam.name}"] = ([r["z"][fam.name] for r in tune["rows"]],
                                                  [r["z"][fam.name] for r in ev["rows"]])
    students = len({r["student"] for r in ev["rows"]})
    lines = [f"{corpus}, evaluation split: {len(le)} latest texts ({sum(le)} ghost-written) of {students} "
             f"students in {len(ev['classes'])} classes; tuning split: {len(lt)} ({sum(lt)})"]
    for name, (st, se) in methods.items():
        lines.append(_line(name, le, se, best_threshold(lt, st)))
        if name.startswith("Attest"):
            lines.append(_line("  same, at the shipped threshold", le, se, MODEL.threshold))
    auc = {name: roc_auc(le, se) for name, (_, se) in methods.items()}
    lines.append(f"  Attest minus the char-4-gram impostor baseline: AUC "
                 f"{auc['Attest (cohort-normalised families)'] - auc['char-4-gram impostors (class as impostors)']:+.3f}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fit", action="store_true", help="refit the model on the tuning split and print it")
    ap.add_argument("--extra", action="store_true", help="with --fit: also measure compression and meaning")
    ap.add_argument("--rounds", type=int, default=2, help="class draws per intake and split")
    ap.add_argument("--c50", action="store_true", help="also Reuters C50 (secondary, topic-confounded)")
    args = ap.parse_args()
    t0 = time.time()
    try:
        use = load_use()
        c50 = load_c50() if args.c50 else None
    except CorpusMissing as exc:
        sys.exit(f"error: {exc}")
    peers_python = os.environ.get("ATTEST_PEERS_PYTHON")
    load = os.getloadavg()
    lines = ["Ghost-writing detection: labelled evaluation on real student essays",
             f"command: .venv/bin/python bench/eval_anomalies.py {' '.join(sys.argv[1:])}".rstrip(),
             f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} ({os.cpu_count()} cores)", ""]
    tune = score_split(use_classes(use, "tune", args.rounds, seed=1), args.extra, with_attest=False)
    if args.fit:
        names_all = list(tune["rows"][0]["z"])
        lines.append("Tuning split, logistic regression on the families' z (student-grouped 5-fold CV AUC):")
        fitted = {}
        for r in range(1, len(names_all) + 1):
            for combo in combinations(names_all, r):
                fitted[combo] = fit_model(tune["rows"], list(combo))
                lines.append(f"  {' + '.join(combo):<58} CV AUC {fitted[combo][0]:.3f}")
        chosen = tuple(f.name for f in FAMILIES)
        model = fitted[chosen][1]
        lines += [f"  shipped families: {' + '.join(chosen)}",
                  f"  MODEL = Model(intercept={model.intercept:.3f}, weights={{"
                  + ", ".join(f'"{k}": {v:.3f}' for k, v in model.weights.items())
                  + f"}}, threshold={model.threshold:.3f})", ""]
        print("\n".join(lines))
        RESULTS.mkdir(exist_ok=True)
        name = "eval_anomalies_fit_extra.txt" if args.extra else "eval_anomalies_fit.txt"
        (RESULTS / name).write_text("\n".join(lines) + "\n")
        return
    ev = score_split(use_classes(use, "eval", args.rounds, seed=2), False, with_attest=True)
    peers = None
    if peers_python:
        peers = (run_peers(tune, peers_python), run_peers(ev, peers_python))
    else:
        lines.append("peers not run: set ATTEST_PEERS_PYTHON to a Python >= 3.12 with "
                     "bench/requirements-peers.txt installed")
    lines += evaluate("USE (Uppsala Student English)", tune, ev, peers)
    if c50 is not None:
        ct = score_split(c50_classes(c50, "tune", args.rounds, seed=3), False, with_attest=False)
        ce = score_split(c50_classes(c50, "eval", args.rounds, seed=4), False, with_attest=True)
        lines += ["", "Secondary check (journalists keep to their beats: topic helps every method here):"]
        lines += evaluate("Reuters C50", ct, ce, None)
    load = os.getloadavg()
    lines += ["", f"load average at end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; elapsed {time.time() - t0:.0f} s"]
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "eval_anomalies.txt").write_text(text + "\n")


if __name__ == "__main__":
    main()
