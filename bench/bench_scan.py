"""Scan 100 real answers to one prompt end to end, the way an instructor's script would, beside copydetect.

    ATTEST_CORPORA_DIR=/path/to/corpora .venv/bin/python bench/bench_scan.py [--essays 100]

Builds (once, seeded) a class of N real answers to one evaluation prompt the way
bench/neardup_corpus.py builds its classes (planted copies, its sources and template),
writes it into a temp folder, then
1. times the real CLI in a new process with an empty data dir, model load included:
   `flask --app app submissions scan DIR --sources SRC --template PROMPT --json`;
2. in this process, times Attest's fingerprinting and peer-to-peer comparison
   (preparing every text, the class's common material, shared wording and the
   sentence-match comparison over embeddings computed beforehand) beside
   copydetect's fingerprinting and comparison of the same files, and prints the ratio.
Writes bench/results/bench_scan.txt.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from bench.neardup_corpus import scan_class  # noqa: E402
from bench.peers import copydetect_scores  # noqa: E402
from plagiarism.nearduplicate import Config, compare_all, embed_windows, english_zipf, prepare  # noqa: E402


def pick(prompt: int, n: int) -> tuple[dict[str, str], dict[str, str], str, dict[str, dict]]:
    """A class of n real answers to an evaluation prompt, its sources, template and labels."""
    c = scan_class(prompt, n)
    return c.texts("submissions"), c.texts("sources"), c.template, {r["submission"]: r for r in c.labels}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--essays", type=int, default=100)
    parser.add_argument("--prompt", type=int, default=6, choices=(2, 4, 6, 8),
                        help="evaluation prompt: 4 and 6 are short answers (~150 words), 2 and 8 essays (350-600)")
    args = parser.parse_args()
    subs, srcs, template, labels = pick(args.prompt, args.essays)
    words = sum(len(t.split()) for t in subs.values())
    tmp = Path(tempfile.mkdtemp(prefix="attest-bench-scan-"))
    try:
        sub_dir, src_dir = tmp / "submissions", tmp / "sources"
        sub_dir.mkdir()
        src_dir.mkdir()
        for name, text in subs.items():
            (sub_dir / name).write_text(text, encoding="utf-8")
        for name, text in srcs.items():
            (src_dir / name).write_text(text, encoding="utf-8")
        prompt = tmp / "prompt.txt"
        prompt.write_text(template, encoding="utf-8")
        env = {**os.environ, "ATTEST_DATA_DIR": str(tmp / "data"), "HF_HUB_OFFLINE": "1"}
        cmd = [str(ROOT / ".venv" / "bin" / "flask"), "--app", "app", "submissions", "scan", str(sub_dir),
               "--sources", str(src_dir), "--template", str(prompt), "--json"]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - t0
        if proc.returncode != 0:
            sys.exit(f"scan failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
        results = json.loads(proc.stdout)

        # Fingerprinting and comparison, embeddings excluded (computed once beforehand, as the
        # product's cache would hold them), beside copydetect on the same files, same run.
        from plagiarism.embedding import get_embedder

        config = Config()
        english_zipf("warm")  # the word list loads once per process, like copydetect's import
        texts = ([prepare(n, t, "submission", [template], config=config) for n, t in sorted(subs.items())]
                 + [prepare(n, t, "source", [template], config=config) for n, t in sorted(srcs.items())])
        windows = embed_windows(texts, get_embedder().encode)
        t0 = time.perf_counter()
        texts = ([prepare(n, t, "submission", [template], config=config) for n, t in sorted(subs.items())]
                 + [prepare(n, t, "source", [template], config=config) for n, t in sorted(srcs.items())])
        compare_all(texts, windows, config, [template])
        attest_compare = time.perf_counter() - t0
        _, copydetect_seconds = copydetect_scores(sub_dir, src_dir, prompt)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    flagged = {r["submission"]: r["flagged"] for r in results}
    copies = [n for n, r in labels.items() if r["label"] == 1]
    independent = [n for n, r in labels.items() if r["label"] == 0]
    load = os.getloadavg()
    lines = [
        f"machine: {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}; "
        f"load average after the run {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (other work shares the cores)",
        f"input: {len(subs)} real answers to ASAP prompt {args.prompt} ({words / len(subs):.0f} words on average) "
        f"against {len(srcs)} sources, the prompt as template",
        f"end to end (new process, model load, empty embedding cache): {elapsed:.1f} s "
        f"= {len(subs) / elapsed:.1f} essays/s; target under 30 s -> {'MET' if elapsed < 30 else 'NOT met'}",
        f"fingerprinting + peer-to-peer comparison (embeddings precomputed): Attest {attest_compare:.2f} s, "
        f"copydetect 0.5 {copydetect_seconds:.2f} s on the same files: Attest/copydetect = "
        f"{attest_compare / copydetect_seconds:.2f} -> {'not slower' if attest_compare <= copydetect_seconds else 'SLOWER'}",
        f"flagged: {sum(flagged[n] for n in copies)} of {len(copies)} planted copies and "
        f"{sum(flagged[n] for n in independent)} of {len(independent)} independent answers "
        f"({len(subs) - len(copies) - len(independent)} donors not counted; accuracy proper: eval_near_duplicates.py)",
    ]
    text = "\n".join(lines)
    print(text)
    (ROOT / "bench" / "results" / "bench_scan.txt").write_text(text + "\n")


if __name__ == "__main__":
    main()
