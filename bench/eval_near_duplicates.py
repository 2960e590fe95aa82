"""Labelled evaluation of near-duplicate detection against the n-gram containment baseline.

    .venv/bin/python bench/eval_near_duplicates.py [--quick]

Data: bench/data/near_duplicates.jsonl (built by bench/eval_data.py; see its docstring
for how the verbatim / light / heavy / independent cases were made).  Parameters and the
flag threshold are chosen on the "tune" split only; the figures reported are on "eval".
Writes the report to bench/results/eval_near_duplicates.txt as well.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from plagiarism.fingerprint import containment  # noqa: E402
from plagiarism.nearduplicate import Params, combine, prepare, scan, skeleton_containment  # noqa: E402
from plagiarism.segment import words  # noqa: E402

DATA = ROOT / "bench" / "data"
RESULTS = ROOT / "bench" / "results"
AUC_TOLERANCE = 0.001
SKELETON_NS = (7, 8, 9, 10)  # masked word n-gram lengths tried (see plagiarism.nearduplicate.skeleton_grams)


def roc_auc(labels: list[int], scores: list[float]) -> float:
    """Probability that a random positive outscores a random negative (ties count half)."""
    pos = [s for s, y in zip(scores, labels, strict=False) if y]
    neg = [s for s, y in zip(scores, labels, strict=False) if not y]
    if not pos or not neg:
        return float("nan")
    p = np.array(pos)[:, None]
    n = np.array(neg)[None, :]
    return float(((p > n).sum() + 0.5 * (p == n).sum()) / (p.size * n.size))


def prf(labels: list[int], scores: list[float], threshold: float) -> tuple[float, float, float]:
    pred = [s >= threshold for s in scores]
    tp = sum(1 for p, y in zip(pred, labels, strict=False) if p and y)
    fp = sum(1 for p, y in zip(pred, labels, strict=False) if p and not y)
    fn = sum(1 for p, y in zip(pred, labels, strict=False) if not p and y)
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def threshold_at_fpr(labels: list[int], scores: list[float], max_fpr: float = 0.05) -> float:
    """Lowest threshold whose false-positive rate on these cases is at most `max_fpr`.

    An integrity checker's costly error is flagging an honest student, so the
    operating point bounds false positives first and takes the recall it can get.
    """
    neg = sorted((s for s, y in zip(scores, labels, strict=False) if not y), reverse=True)
    allowed = int(max_fpr * len(neg))
    if not neg:
        return 0.0
    # scores strictly above the (allowed+1)-th highest negative are flagged
    cut = neg[allowed] if allowed < len(neg) else -1.0
    above = sorted(s for s in scores if s > cut)
    return (cut + above[0]) / 2 if above else cut + 1e-9


def best_threshold(labels: list[int], scores: list[float]) -> float:
    """Threshold maximising F1 on the tuning split (midpoint between neighbouring scores)."""
    cands = sorted(set(scores))
    mids = [(a + b) / 2 for a, b in zip(cands, cands[1:], strict=False)] or cands
    return max(mids, key=lambda t: (prf(labels, scores, t)[2], -t))


class CachedEncoder:
    """Embeds each distinct passage once for the whole run (as a scan must)."""

    def __init__(self) -> None:
        from plagiarism.embedding import get_embedder

        self.model = get_embedder()
        self.cache: dict[str, np.ndarray] = {}
        self.encoded = 0

    def __call__(self, texts: list[str]) -> np.ndarray:
        todo = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if todo:
            vecs = self.model.encode(todo)
            self.encoded += len(todo)
            self.cache.update(zip(todo, vecs, strict=False))
        return np.stack([self.cache[t] for t in texts])


def load(quick: bool) -> tuple[dict[int, str], list[dict]]:
    arts = {}
    for line in (DATA / "news_articles.jsonl").open():
        row = json.loads(line)
        arts[row["id"]] = row["text"]
    cases = [json.loads(line) for line in (DATA / "near_duplicates.jsonl").open()]
    if True:
        limit = 12 if quick else 1000
        rng = random.Random(7)
        rng.shuffle(cases)
        per: dict[tuple[str, str], int] = {}
        kept = []
        for c in cases:
            key = (c["split"], c["kind"])
            if per.get(key, 0) < limit:
                per[key] = per.get(key, 0) + 1
                kept.append(c)
        cases = kept
    return arts, cases


def detector_evidence(cases: list[dict], arts: dict[int, str], encode, params: Params) -> list[tuple[float, float]]:
    """(passage coverage, word 3-gram containment) of each case: the parts of the score that
    depend on the sentence-match thresholds."""
    out = []
    for c in cases:
        sources = {f"source_{i}.txt": arts[i] for i in c["sources"]}
        ev = scan({"submission.txt": c["submission"]}, sources, encode=encode, params=params).reports[0].evidence
        out.append((ev["coverage"], ev["containment"]))
    return out


def skeleton_evidence(cases: list[dict], arts: dict[int, str], n: int) -> list[float]:
    """Masked word n-gram containment of each case (needs no model, so tuned apart)."""
    out = []
    for c in cases:
        sub = prepare("submission.txt", c["submission"], skeleton_n=n)
        out.append(max(skeleton_containment(sub, prepare(f"source_{i}.txt", arts[i], "source", skeleton_n=n))
                       for i in c["sources"]))
    return out


def detector_scores(cases: list[dict], arts: dict[int, str], encode, params: Params) -> list[float]:
    """The scores scan() itself gives (the tuning grid recombines parts; this is the real thing)."""
    out = []
    for c in cases:
        sources = {f"source_{i}.txt": arts[i] for i in c["sources"]}
        out.append(scan({"submission.txt": c["submission"]}, sources, encode=encode, params=params).reports[0].score)
    return out


def passage_accuracy(cases: list[dict], arts: dict[int, str], encode, params: Params) -> dict[str, tuple]:
    """Character-level precision and recall of the reported passages, per kind of copy.

    The truth is every character of the submission outside the sentences of
    the student's own article (what was inserted from the source); only
    matches against the true source count as found.
    """
    import re

    totals: dict[str, list[int]] = {}
    for c in cases:
        if not c["label"]:
            continue
        text = c["submission"]
        own = arts[c["article"]]
        truth = np.zeros(len(text), bool)
        for m in re.finditer(r"[^.!?]+[.!?]*", text):
            sentence = m.group().strip()
            if len(sentence) > 20 and sentence not in own:
                truth[m.start():m.end()] = True
        for m in re.finditer(r"\s", text):
            truth[m.start()] = False
        true_source = f"source_{c['sources'][0]}.txt"
        sources = {f"source_{i}.txt": arts[i] for i in c["sources"]}
        report = scan({"submission.txt": text}, sources, encode=encode, params=params).reports[0]
        found = np.zeros(len(text), bool)
        for match in report.matches:
            if match.source == true_source:
                found[match.submission_span[0]:match.submission_span[1]] = True
        found &= np.array([not ch.isspace() for ch in text])
        t = totals.setdefault(c["kind"], [0, 0, 0])
        t[0] += int((found & truth).sum())
        t[1] += int(found.sum())
        t[2] += int(truth.sum())
    return {k: (tp / fnd if fnd else 0.0, tp / tru if tru else 0.0) for k, (tp, fnd, tru) in totals.items()}


def baseline_scores(cases: list[dict], arts: dict[int, str], n: int) -> list[float]:
    out = []
    for c in cases:
        sub = [w for _, _, w in words(c["submission"])]
        out.append(max(containment(sub, [w for _, _, w in words(arts[i])], n) for i in c["sources"]))
    return out


def report_block(name: str, cases: list[dict], scores: list[float], threshold: float) -> list[str]:
    labels = [c["label"] for c in cases]
    p, r, f1 = prf(labels, scores, threshold)
    lines = [f"{name:<34} AUC {roc_auc(labels, scores):.3f}  precision {p:.3f}  recall {r:.3f}  "
             f"F1 {f1:.3f}  (threshold {threshold:.3f})"]
    for kind in ("verbatim", "light", "heavy", "independent"):
        sel = [s for s, c in zip(scores, cases, strict=False) if c["kind"] == kind]
        if not sel:
            continue
        flagged = sum(1 for s in sel if s >= threshold) / len(sel)
        sub_labels = [c["label"] for c in cases if c["kind"] in (kind, "independent")]
        sub_scores = [s for s, c in zip(scores, cases, strict=False) if c["kind"] in (kind, "independent")]
        auc = roc_auc(sub_labels, sub_scores) if kind != "independent" else float("nan")
        what = "flagged (false positives)" if kind == "independent" else "flagged (recall)"
        extra = f"  AUC vs independent {auc:.3f}" if kind != "independent" else ""
        lines.append(f"    {kind:<12} n={len(sel):<4} {what} {flagged:.3f}  median score "
                     f"{np.median(sel):.3f}{extra}")
    return lines


def verdict(cases: list[dict], hybrid: list[float], thr: float, base: list[float], base_thr: float) -> list[str]:
    """Plain statement of whether the hybrid beats the 3-gram containment baseline on this split."""
    labels = [c["label"] for c in cases]
    heavy = [c["kind"] == "heavy" for c in cases]

    def heavy_recall(scores: list[float], t: float) -> float:
        return float(np.mean([s >= t for s, h in zip(scores, heavy, strict=True) if h]))

    a_h, a_b = roc_auc(labels, hybrid), roc_auc(labels, base)
    (p_h, r_h, _), (p_b, r_b, _) = prf(labels, hybrid, thr), prf(labels, base, base_thr)
    word = "above" if a_h > a_b else "NOT above"
    return ["Verdict against word 3-gram containment (evaluation split):",
            f"  AUC: hybrid {a_h:.3f}, baseline {a_b:.3f} - the hybrid is {word} the baseline on AUC.",
            f"  at each one's 5 %-false-positive operating point: precision {p_h:.3f} vs {p_b:.3f}, recall "
            f"{r_h:.3f} vs {r_b:.3f}, heavy-paraphrase recall {heavy_recall(hybrid, thr):.3f} vs "
            f"{heavy_recall(base, base_thr):.3f}."]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="12 cases per split and kind (default: all, about 60)")
    args = ap.parse_args()
    t0 = time.time()
    arts, cases = load(args.quick)
    tune = [c for c in cases if c["split"] == "tune"]
    test = [c for c in cases if c["split"] == "eval"]
    encode = CachedEncoder()
    tune_labels = [c["label"] for c in tune]

    # Tune on the tuning split only: the sentence-match thresholds, the masked n-gram length and
    # the weights of the score's three parts (AUC; ties go to more weight on coverage, the part
    # a reader can check).  F1 is shown for the best few.
    skeletons = {n: skeleton_evidence(tune, arts, n) for n in SKELETON_NS}
    weights = [(round(wc, 1), round(wn, 1)) for wc in np.arange(0, 1.01, 0.1) for wn in np.arange(0, 1.01, 0.1)
               if wc + wn <= 1.0001]
    grid = []
    for strong, supported, margin in itertools.product((0.92,), (1.2, 1.3, 1.4, 1.5, 1.6), (1.6, 1.8, 2.0, 2.2)):
        evidence = detector_evidence(tune, arts, encode, Params(strong_sim=strong, supported_evidence=supported,
                                                                strong_evidence=margin))
        for n, skel in skeletons.items():
            for wc, wn in weights:
                p = Params(coverage_weight=wc, containment_weight=wn)
                scores = [combine(cov, con, sk, p) for (cov, con), sk in zip(evidence, skel, strict=True)]
                grid.append((round(roc_auc(tune_labels, scores), 4), wc, -wn, strong, supported, margin, n, scores))
    # Differences of a few 0.0001 in tuning AUC are noise; among the settings within
    # AUC_TOLERANCE of the best, prefer the most weight on coverage (the part a reader checks,
    # and the part least tied to how this set's synthetic paraphrases were made).
    best_auc = max(g[0] for g in grid)
    grid.sort(key=lambda g: (g[0] >= best_auc - AUC_TOLERANCE, g[1], g[0], g[2:7]), reverse=True)
    auc_t, wc, neg_wn, strong, supported, margin, n_skel, _ = grid[0]
    params = Params(strong_sim=strong, supported_evidence=supported, strong_evidence=margin,
                    coverage_weight=wc, containment_weight=-neg_wn, skeleton_ngram=n_skel)
    best_cov_only = max(g[0] for g in grid if g[1] == 1.0)
    best_no_skel = max(g[0] for g in grid if g[1] - g[2] >= 0.9999)
    tune_scores = detector_scores(tune, arts, encode, params)
    assert abs(roc_auc(tune_labels, tune_scores) - auc_t) < 1e-3, "scan() disagrees with the tuning grid"
    threshold = threshold_at_fpr(tune_labels, tune_scores)
    coverage_only = Params(strong_sim=strong, supported_evidence=supported, strong_evidence=margin,
                           coverage_weight=1.0, containment_weight=0.0)
    cov_tune = detector_scores(tune, arts, encode, coverage_only)
    cov_thr = threshold_at_fpr(tune_labels, cov_tune)
    params.flag_threshold = threshold

    fp_only = Params(use_embeddings=False, coverage_weight=1.0, containment_weight=0.0)
    skel_tune = skeleton_evidence(tune, arts, n_skel)
    skel_thr = threshold_at_fpr(tune_labels, skel_tune)
    fp_tune = detector_scores(tune, arts, encode, fp_only)
    fp_thr = threshold_at_fpr(tune_labels, fp_tune)
    base3_tune = baseline_scores(tune, arts, 3)
    base5_tune = baseline_scores(tune, arts, 5)
    b3_thr = threshold_at_fpr(tune_labels, base3_tune)
    b5_thr = threshold_at_fpr(tune_labels, base5_tune)
    b3_f1thr = best_threshold(tune_labels, base3_tune)

    test_scores = detector_scores(test, arts, encode, params)
    cov_test = detector_scores(test, arts, encode, coverage_only)
    spans = passage_accuracy(test, arts, encode, params)
    fp_test = detector_scores(test, arts, encode, fp_only)
    base3_test = baseline_scores(test, arts, 3)
    base5_test = baseline_scores(test, arts, 5)

    lines = [
        "Near-duplicate detection: labelled evaluation" + (" (--quick subset)" if args.quick else ""),
        "command: .venv/bin/python bench/eval_near_duplicates.py" + (" --quick" if args.quick else ""),
        f"cases: tune {len(tune)}, eval {len(test)} (verbatim / light edit / heavy paraphrase copies of a "
        "same-topic news article, and independent same-topic articles; see bench/eval_data.py)",
        "",
        "Tuning split (parameters chosen here):",
        *[f"  strong_sim {g[3]:.2f} supported_evidence {g[4]:.2f} strong_evidence {g[5]:.2f} skeleton n {g[6]} "
          f"weights coverage {g[1]:.1f} containment {-g[2]:.1f} skeleton {1 - g[1] + g[2]:.1f}: AUC {g[0]:.4f} "
          f"F1 {prf(tune_labels, g[7], best_threshold(tune_labels, g[7]))[2]:.3f}" for g in sorted(grid, key=lambda g: g[0], reverse=True)[:6]],
        f"  best AUC with coverage alone {best_cov_only:.4f}; coverage + 3-gram containment, no skeleton "
        f"{best_no_skel:.4f}; baseline 3-gram containment {roc_auc(tune_labels, base3_tune):.4f}",
        f"  chosen (within {AUC_TOLERANCE} of the best AUC, most weight on coverage): strong_sim={strong:.2f} supported_evidence={supported:.2f} strong_evidence={margin:.2f} "
        f"SKELETON_NGRAM={n_skel} COVERAGE_WEIGHT={wc:.1f} CONTAINMENT_WEIGHT={-neg_wn:.1f} "
        f"(skeleton {1 - wc + neg_wn:.1f}) FLAG_THRESHOLD={threshold:.3f}",
        "  operating point (every method below): the lowest threshold with at most 5 % false positives",
        "  on the tuning split's independent answers; the last baseline line uses the F1-optimal one.",
        "",
        "Evaluation split (never used for tuning):",
        *report_block("hybrid (fingerprints + embeddings)", test, test_scores, threshold),
        *report_block("  its passage coverage alone", test, cov_test, cov_thr),
        *report_block("fingerprints only (winnowed 5-grams)", test, fp_test, fp_thr),
        *report_block(f"  its masked word {n_skel}-gram part alone", test, skeleton_evidence(test, arts, n_skel),
                      skel_thr),
        *report_block("baseline: word 3-gram containment", test, base3_test, b3_thr),
        *report_block("baseline: word 5-gram containment", test, base5_test, b5_thr),
        *report_block("baseline: 3-gram containment, F1-optimal thr", test, base3_test, b3_f1thr),
        "",
        *verdict(test, test_scores, threshold, base3_test, b3_thr),
        "Reading: on the tuning split the hybrid's AUC is well above the baseline's (see above); on the",
        "evaluation split the baseline's own AUC is higher than on tuning, and the AUC comparison",
        "turns on the ranking of a handful of pairs.  The highest-scoring independent answers (seen",
        "on the tuning split) are news leads on the same event, which paraphrase each other by",
        "nature, so sentence matching alone cannot clear them.  The masked n-gram part profits",
        "from how this set's paraphrases were made (one-for-one synonym swaps keep a sentence's",
        "skeleton); a human paraphrase reshapes sentences more, which is why ties in tuning go to",
        "more weight on the matched passages.",
        "",
        "Passages (evaluation split, hybrid): character-level precision / recall of the reported",
        "spans against the inserted text, counting only matches to the true source:",
        *[f"    {k:<10} precision {p:.3f}  recall {r:.3f}" for k, (p, r) in sorted(spans.items())],
        "",
        f"passages embedded: {encode.encoded}; elapsed {time.time() - t0:.0f} s",
    ]
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    name = "eval_near_duplicates_quick.txt" if args.quick else "eval_near_duplicates.txt"
    (RESULTS / name).write_text(text + "\n")


if __name__ == "__main__":
    main()
