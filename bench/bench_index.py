"""Query latency of the passage index at 100,000 passages, exact vs approximate.

    .venv/bin/python bench/bench_index.py [--n 100000] [--queries 300] [--data clustered,random]
                                           [--compare]

Vectors: synthetic, 384-d unit vectors (embedding the 100k passages would take
an hour on 2 cores). `clustered` is "real-ish": 2,000 topic centres, each
passage a noisy copy of one (cosine to its centre ~0.6, like passages of the
same topic). `random` is uniform on the sphere: no structure, the worst case
for graph indexes (the 10 nearest are barely nearer than the rest, so recall@10
means little there). In both, each query is a paraphrase-like perturbation of
one indexed passage (cosine ~0.86), and "paraphrased passage in top 10" says
whether the search finds it: the question plagiarism detection asks. Passages arrive as 1,000 documents of 100 through
`LocalPartition.add` in a temp dir (so add time includes the atomic writes).

Prints, and writes to bench/results/bench_index.txt: add time, graph build,
flush and reopen time, single-query (k=10) p50/p99 latency of exact search
and of the usearch HNSW graph, and the graph's recall@10 against exact.
`--compare` also measures hnswlib and faiss HNSW with the same parameters
if they are importable (they are not project dependencies).
Target (DESIGN.md): a query against 100,000 passages under 20 ms.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

from plagiarism.index import ANN_EF_ADD, ANN_EF_SEARCH, ANN_M, ANN_THRESHOLD, DIM, LocalPartition  # noqa: E402

DOC_SIZE = 100
M, EF_ADD, EF_SEARCH = ANN_M, ANN_EF_ADD, ANN_EF_SEARCH  # the graph parameters index.py uses


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def make_data(n: int, queries: int, kind: str, seed: int = 7) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(passages, queries, the passage each query is a paraphrase of: cosine ~0.86 to it)."""
    rng = np.random.default_rng(seed)
    if kind == "random":
        data = unit(rng.standard_normal((n, DIM)))
    else:
        centres = unit(rng.standard_normal((2000, DIM)))
        data = unit(centres[rng.integers(0, len(centres), n)] + rng.standard_normal((n, DIM)) * (1.3 / np.sqrt(DIM)))
    sources = rng.integers(0, n, queries)
    return data, unit(data[sources] + rng.standard_normal((queries, DIM)) * (0.6 / np.sqrt(DIM))), sources


def latencies(fn, queries: np.ndarray) -> tuple[np.ndarray, list]:
    fn(queries[0])
    times, results = [], []
    for q in queries:
        t = time.perf_counter()
        results.append(fn(q))
        times.append((time.perf_counter() - t) * 1000)
    return np.array(times), results


def pct(times: np.ndarray) -> str:
    return f"p50 {np.percentile(times, 50):6.2f} ms  p99 {np.percentile(times, 99):6.2f} ms"


def recall(approx: list[set], exact: list[set]) -> float:
    return float(np.mean([len(a & e) / len(e) for a, e in zip(approx, exact, strict=True)]))


def compare_engines(data: np.ndarray, queries: np.ndarray, truth: list[set], say) -> None:
    """Library against library, same graph parameters, single-query latency."""
    from usearch.index import Index, ScalarKind

    keys = np.arange(len(data))
    t = time.perf_counter()
    u = Index(ndim=DIM, metric="ip", dtype=ScalarKind.F32, connectivity=M, expansion_add=EF_ADD,
              expansion_search=EF_SEARCH)
    u.add(keys, data)
    build = time.perf_counter() - t
    times, res = latencies(lambda q: set(u.search(q, 10).keys.tolist()), queries)
    say(f"  usearch 2.26  build {build:6.1f} s  {pct(times)}  recall@10 {recall(res, truth):.3f}")
    try:
        import hnswlib
    except ImportError:
        say("  hnswlib       not installed")
    else:
        t = time.perf_counter()
        h = hnswlib.Index(space="ip", dim=DIM)
        h.init_index(max_elements=len(data), M=M, ef_construction=EF_ADD)
        h.add_items(data, keys)
        h.set_ef(EF_SEARCH)
        build = time.perf_counter() - t
        times, res = latencies(lambda q: set(h.knn_query(q, 10)[0][0].tolist()), queries)
        say(f"  hnswlib 0.8   build {build:6.1f} s  {pct(times)}  recall@10 {recall(res, truth):.3f}")
    try:
        import faiss
    except ImportError:
        say("  faiss         not installed")
    else:
        t = time.perf_counter()
        f = faiss.IndexHNSWFlat(DIM, M, faiss.METRIC_INNER_PRODUCT)
        f.hnsw.efConstruction = EF_ADD
        f.add(data)
        f.hnsw.efSearch = EF_SEARCH
        build = time.perf_counter() - t
        times, res = latencies(lambda q: set(f.search(q[None, :], 10)[1][0].tolist()), queries)
        say(f"  faiss 1.15    build {build:6.1f} s  {pct(times)}  recall@10 {recall(res, truth):.3f}"
            "  (no delete by key in HNSW)")


def run(kind: str, args: argparse.Namespace, say) -> None:
    """Add, search exact and approximate, save, reopen: one partition of `kind` vectors."""
    data, queries, sources = make_data(args.n, args.queries, kind)
    source_ids = [(f"doc{i // DOC_SIZE}", int(i % DOC_SIZE)) for i in sources]

    with tempfile.TemporaryDirectory() as tmp:
        part = LocalPartition(Path(tmp) / "p", "bench/index", ann_threshold=args.n + 1)
        spans = np.stack([np.arange(DOC_SIZE) * 100, np.arange(DOC_SIZE) * 100 + 90], axis=1)
        t = time.perf_counter()
        for d in range(0, args.n, DOC_SIZE):
            chunk = data[d:d + DOC_SIZE]
            part.add(f"doc{d // DOC_SIZE}", chunk, spans[:len(chunk)])
        add = time.perf_counter() - t
        say(f"add:    {args.n // DOC_SIZE} documents x {DOC_SIZE} passages in {add:.1f} s "
            f"({add / (args.n // DOC_SIZE) * 1000:.1f} ms per document, atomic writes included)")
        extra = unit(np.random.default_rng(1).standard_normal((DOC_SIZE, DIM)))
        t = time.perf_counter()
        part.add("one-more", extra, spans)
        say(f"        one more document into the full partition: {(time.perf_counter() - t) * 1000:.1f} ms")
        part.delete("one-more")

        def hits(q, exact):
            return {(h.doc_id, h.passage) for h in part.search(q, k=10, exact=exact)[0]}

        times_exact, truth = latencies(lambda q: hits(q, True), queries)
        say(f"exact:  {pct(times_exact)}   (numpy float32 matrix product over all {args.n:,})")
        t = time.perf_counter()
        part.search(queries[:1], k=10, exact=False)
        say(f"graph:  usearch HNSW (M={M}, ef_add={EF_ADD}, ef_search={EF_SEARCH}) built in "
            f"{time.perf_counter() - t:.1f} s")
        times_ann, approx = latencies(lambda q: hits(q, False), queries)
        found_exact = np.mean([s in t for s, t in zip(source_ids, truth, strict=True)])
        found_ann = np.mean([s in a for s, a in zip(source_ids, approx, strict=True)])
        say(f"approx: {pct(times_ann)}   recall@10 vs exact {recall(approx, truth):.3f}; paraphrased "
            f"passage in top 10: exact {found_exact:.3f}, graph {found_ann:.3f}")
        t = time.perf_counter()
        part.flush()
        flush = time.perf_counter() - t
        t = time.perf_counter()
        again = LocalPartition(Path(tmp) / "p", "bench/index", ann_threshold=1)
        reopen = time.perf_counter() - t
        t = time.perf_counter()
        same = [{(h.doc_id, h.passage) for h in r} for r in again.search(queries[:20], k=10, exact=False)]
        first = time.perf_counter() - t
        agree = recall(same, approx[:20])
        say(f"disk:   graph saved in {flush:.1f} s; reopen (manifest + {args.n // DOC_SIZE:,} files) {reopen:.1f} s, "
            f"graph load + first 20 queries {first:.2f} s; same results after reopen: {agree:.3f}")
        auto = times_ann if args.n >= ANN_THRESHOLD else times_exact
        say(f"target: query under 20 ms at {args.n:,} passages; the index uses "
            f"{'the graph' if args.n >= ANN_THRESHOLD else 'exact search'} at this size (threshold "
            f"{ANN_THRESHOLD:,}): p99 {np.percentile(auto, 99):.1f} ms -> "
            f"{'MET' if np.percentile(auto, 99) < 20 else 'NOT MET'}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--data", default="clustered,random", help="clustered, random or both (comma)")
    ap.add_argument("--compare", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "bench_index.txt"))
    args = ap.parse_args()

    lines: list[str] = []

    def say(line: str = "") -> None:
        print(line, flush=True)
        lines.append(line)

    say(f"bench_index: {args.n:,} passages, synthetic unit vectors (dim {DIM}), {args.queries} single queries, "
        f"top-k 10, data: {args.data}")
    say(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f} at start (shared machine: other work runs alongside)")
    for kind in args.data.split(","):
        say(f"--- {kind} vectors")
        run(kind, args, say)

    if args.compare:
        kind = args.data.split(",")[0]
        data, queries, _ = make_data(args.n, args.queries, kind)
        say(f"--- engines, {kind} vectors, same parameters, library calls only:")
        truth_ids = [{int(i) for i in np.argsort(-(data @ q))[:10]} for q in queries]
        compare_engines(data, queries, truth_ids, say)

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
