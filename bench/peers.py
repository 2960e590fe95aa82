"""Other detectors, run on the same folders as Attest, each giving one score per submission.

Every peer answers the same question as Attest's `score`: how much of this
submission is found in one other text (another submission or a source).  Each
is run with its documented defaults except where noted, and its threshold is
chosen by the bench on the tuning split by the same rule as Attest's.

* copydetect 0.5 (PyPI `copydetect`): test files = the submissions, reference
  files = submissions + sources; per submission the largest share of its tokens
  found in one reference (similarity_matrix[..., 0]); noise and guarantee
  thresholds at their defaults (25 characters).
* Dolos 3.5 (npm `@dodona/dolos-lib`, language "char", default k-gram 23 and
  window 17), every submission and source in one analysis, the prompt as its
  ignored (template) file; per submission the largest pair similarity (Dolos's
  own measure) with any other file.
* SIM (`sim_text -p -r 4` from Debian's `similarity-tester`): submissions as new
  files and sources as old; per submission the largest "consists for N % of"
  another file's material, minimum run 4 words (sim_text has no template option).
* word 3-gram containment: the share of the submission's word 3-grams found in
  one other text (the baseline of DESIGN.md), the prompt's 3-grams left out.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOLOS_SCRIPT = r"""
import { Dolos } from "@dodona/dolos-lib";
import { readFileSync } from "node:fs";
const { files, template } = JSON.parse(readFileSync(0, "utf-8"));
const dolos = new Dolos({ language: "char" });
const t0 = performance.now();
const report = await dolos.analyzePaths(files, template ?? undefined);
const best = {};
for (const pair of report.allPairs()) {
  for (const f of [pair.leftFile.path, pair.rightFile.path]) {
    best[f] = Math.max(best[f] ?? 0, pair.similarity);
  }
}
process.stdout.write(JSON.stringify({ best, seconds: (performance.now() - t0) / 1000 }));
"""


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file())


def copydetect_scores(subs: Path, sources: Path, template: Path | None = None) -> tuple[dict[str, float], float]:
    """({submission name: score}, seconds for fingerprinting and comparison)."""
    from copydetect import CopyDetector

    detector = CopyDetector(test_dirs=[str(subs)], ref_dirs=[str(subs), str(sources)], extensions=["txt"],
                            boilerplate_dirs=[str(template.parent)] if template else None,
                            disable_filtering=True, autoopen=False, silent=True)
    t0 = time.perf_counter()
    detector.run()
    seconds = time.perf_counter() - t0
    out = {}
    for i, test in enumerate(detector.test_files):
        row = detector.similarity_matrix[i, :, 0]
        out[Path(test).name] = float(max(0.0, row.max())) if len(row) else 0.0
    return out, seconds


def dolos_available() -> bool:
    return (ROOT / "node_modules" / "@dodona" / "dolos-lib").exists() and shutil.which("node") is not None


def dolos_scores(subs: Path, sources: Path, template: Path | None = None) -> tuple[dict[str, float], float]:
    if not dolos_available():
        raise RuntimeError("Dolos is not installed: run `npm ci` (package.json pins @dodona/dolos-lib)")
    files = [str(p) for p in _files(subs) + _files(sources)]
    script = ROOT / "node_modules" / ".attest-dolos-peer.mjs"
    script.write_text(DOLOS_SCRIPT)
    payload = {"files": files, "template": str(template) if template else None}
    proc = subprocess.run(["node", str(script)], input=json.dumps(payload), capture_output=True, text=True,
                          cwd=ROOT, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"Dolos failed: {proc.stderr[-1000:]}")
    data = json.loads(proc.stdout)
    by_path = data["best"]
    return {p.name: float(by_path.get(str(p), 0.0)) for p in _files(subs)}, float(data["seconds"])


_SIM_LINE = re.compile(r"^(.*) consists for (\d+) % of (.*) material$")


def sim_available() -> bool:
    return shutil.which("sim_text") is not None


def sim_scores(subs: Path, sources: Path, template: Path | None = None) -> tuple[dict[str, float], float]:
    """sim_text has no boilerplate option, so the template is not given to it."""
    if not sim_available():
        raise RuntimeError("sim_text is not installed: apt-get install similarity-tester")
    new = [str(p) for p in _files(subs)]
    old = [str(p) for p in _files(sources)]
    t0 = time.perf_counter()
    proc = subprocess.run(["sim_text", "-p", "-r", "4", "-T", *new, "/", *old], capture_output=True, text=True,
                          check=False, errors="replace")
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"sim_text failed: {proc.stderr[-500:]}")
    best = {Path(p).name: 0.0 for p in new}
    for line in proc.stdout.splitlines():
        m = _SIM_LINE.match(line.strip())
        if m and Path(m.group(1)).name in best:
            name = Path(m.group(1)).name
            best[name] = max(best[name], int(m.group(2)) / 100)
    return best, seconds


def _trigrams(text: str) -> set[tuple[str, str, str]]:
    w = re.findall(r"[^\W_]+(?:'[^\W_]+)*", text.lower())
    return {tuple(w[i:i + 3]) for i in range(len(w) - 2)}


def trigram_scores(subs: Path, sources: Path, template: Path | None = None) -> tuple[dict[str, float], float]:
    """Trigrams of the template are left out, as a baseline with boilerplate removal would."""
    t0 = time.perf_counter()
    skip = _trigrams(template.read_text(encoding="utf-8")) if template else set()
    grams = {p: _trigrams(p.read_text(encoding="utf-8")) - skip for p in _files(subs) + _files(sources)}
    out = {}
    for p in _files(subs):
        mine = grams[p]
        out[p.name] = max((len(mine & g) / len(mine) for q, g in grams.items() if q != p and mine), default=0.0)
    return out, time.perf_counter() - t0


PEERS = {
    "copydetect 0.5": copydetect_scores,
    "Dolos 3.5 (char)": dolos_scores,
    "SIM sim_text -r 4": sim_scores,
    "word 3-gram containment": trigram_scores,
}
