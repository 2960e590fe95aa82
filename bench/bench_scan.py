"""Scan 100 short essays end to end, the way an instructor's script would.

    .venv/bin/python bench/bench_scan.py [--essays 100]

Writes N submissions (from the labelled near-duplicate set's evaluation split:
copies, edits, paraphrases and independent answers) and the news articles they
draw on into a temp folder, then times the real CLI in a new process with an
empty data dir: `flask --app app submissions scan DIR --sources SRC --json`,
model load included. Writes bench/results/bench_scan.txt.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--essays", type=int, default=100)
    args = parser.parse_args()
    cases = [json.loads(line) for line in (DATA / "near_duplicates.jsonl").read_text().splitlines()]
    cases = [c for c in cases if c["split"] == "eval"]
    # 70 % copies, 30 % independent answers; an independent essay is kept only
    # if its own article is not among the sources or copied by another essay,
    # so that "flagged" can be read against the labels.
    pool = [c for c in cases if c["label"] == 1]
    n_copies = round(args.essays * 0.7)
    while True:
        copies = pool[:n_copies]
        taken = {s for c in copies for s in c["sources"]} | {c["article"] for c in copies}
        independent = [c for c in cases if c["label"] == 0 and c["article"] not in taken]
        independent = independent[: args.essays - n_copies]
        if n_copies + len(independent) >= args.essays or n_copies >= len(pool):
            break
        n_copies += 1
    cases = copies + independent
    articles = {a["id"]: a["text"] for a in map(json.loads, (DATA / "news_articles.jsonl").read_text().splitlines())}
    needed = sorted({s for c in copies for s in c["sources"]})
    with tempfile.TemporaryDirectory() as tmp:
        subs, srcs = Path(tmp, "submissions"), Path(tmp, "sources")
        subs.mkdir()
        srcs.mkdir()
        for i, case in enumerate(cases):
            (subs / f"essay-{i:03d}.txt").write_text(case["submission"])
        for sid in needed:
            (srcs / f"article-{sid:03d}.txt").write_text(articles[sid])
        words = sum(len(c["submission"].split()) for c in cases)
        env = {**os.environ, "ATTEST_DATA_DIR": str(Path(tmp, "data")), "HF_HUB_OFFLINE": "1"}
        cmd = [str(ROOT / ".venv" / "bin" / "flask"), "--app", "app", "submissions", "scan", str(subs),
               "--sources", str(srcs), "--json"]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        elapsed = time.perf_counter() - t0
        if proc.returncode != 0:
            sys.exit(f"scan failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
        results = json.loads(proc.stdout)
    by_name = {r["submission"]: r["flagged"] for r in results}
    label = {f"essay-{i:03d}.txt": c["label"] for i, c in enumerate(cases)}
    hits = sum(by_name[n] for n, y in label.items() if y == 1)
    false_alarms = sum(by_name[n] for n, y in label.items() if y == 0)
    load = os.getloadavg()[0]
    lines = [
        f"machine: {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}; "
        f"load average after the run {load:.1f}",
        f"input: {len(cases)} essays ({words / len(cases):.0f} words on average) against {len(needed)} sources",
        f"end to end (new process, model load, empty embedding cache): {elapsed:.1f} s "
        f"= {len(cases) / elapsed:.1f} essays/s",
        f"flagged: {hits} of {sum(label.values())} copies (verbatim, light, heavy) and {false_alarms} of "
        f"{len(label) - sum(label.values())} independent same-topic essays (accuracy proper: eval_near_duplicates.py)",
        f"target: 100 short essays under 30 s -> {'MET' if elapsed < 30 else 'NOT met'}",
    ]
    text = "\n".join(lines)
    print(text)
    (ROOT / "bench" / "results" / "bench_scan.txt").write_text(text + "\n")


if __name__ == "__main__":
    main()
