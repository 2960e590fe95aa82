"""Hostile files: what isolation costs on normal files, and the peak memory of
`submissions scan` and of the upload page on the issue's 300 MB docx bomb.

    .venv/bin/python bench/bench_extract.py [--files 100] [--no-memory]

1. 100 normal submissions (half .docx essays with a table, half two-page
   PDFs) read four ways: python-docx/pypdf directly (the peer: no bounds, in
   this process), `extract_text` (bounds, in this process), one reused
   `IsolatedExtractor` worker (what uploads and the CLI do; its start-up
   included), and a fresh worker per file (what reuse avoids).
2. The issue's files through the CLI and the upload page (tests/upload_probe.py),
   each in a process of its own, with the tree's memory sampled from /proc:
   with the default limits, and with the zip bounds opened wide so that only
   the worker's memory limit stands.
3. A 10,000-page PDF through the worker, with its progress.

Prints the figures with the load average and writes bench/results/bench_extract.txt.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from plagiarism.extract import extract_text  # noqa: E402
from plagiarism.isolation import IsolatedExtractor, extract_isolated  # noqa: E402
from tests import hostile_files  # noqa: E402
from tests.process_memory import run_measured  # noqa: E402

WORDS = ("reef coral heat algae ocean water warming bleaching survey recovery diver fishing runoff "
         "temperature symbiosis skeleton acidification carbon policy emissions monitoring").split()


def essay(seed: int, words: int = 600) -> list[str]:
    import random

    rnd = random.Random(seed)
    paragraphs, left = [], words
    while left > 0:
        n = min(left, rnd.randint(60, 120))
        paragraphs.append(" ".join(rnd.choice(WORDS) for _ in range(n)).capitalize() + ".")
        left -= n
    return paragraphs


def normal_files(count: int) -> list[tuple[str, bytes]]:
    import docx

    files = []
    for n in range(count):
        paragraphs = essay(n)
        if n % 2 == 0:
            document = docx.Document()
            document.add_heading(f"Essay {n}", 1)
            for p in paragraphs:
                document.add_paragraph(p)
            table = document.add_table(rows=2, cols=2)
            table.cell(0, 0).text, table.cell(1, 1).text = "year", "cover"
            buffer = io.BytesIO()
            document.save(buffer)
            files.append((f"s{n:03d}.docx", buffer.getvalue()))
        else:
            files.append((f"s{n:03d}.pdf", hostile_files.text_pdf(paragraphs[:4]) if n % 4 == 1
                          else _two_pages(paragraphs)))
    return files


def _two_pages(paragraphs: list[str]) -> bytes:
    from pypdf import PdfReader, PdfWriter

    half = len(paragraphs) // 2
    writer = PdfWriter()
    for part in (paragraphs[:half], paragraphs[half:]):
        writer.add_page(PdfReader(io.BytesIO(hostile_files.text_pdf(part))).pages[0])
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def unbounded(data: bytes, name: str) -> str:
    """The peer: what extraction did before the bounds, in this process."""
    if name.endswith(".docx"):
        import docx

        document = docx.Document(io.BytesIO(data))
        return "\n".join([p.text for p in document.paragraphs] + [
            " | ".join(c.text for c in row.cells) for t in document.tables for row in t.rows])
    from pypdf import PdfReader

    return "\n\n".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(data)).pages)


def timed(label: str, files, read) -> tuple[str, float]:
    started = time.perf_counter()
    for name, data in files:
        read(data, name)
    return label, time.perf_counter() - started


def overhead(count: int) -> list[str]:
    files = normal_files(count)
    unbounded(*files[0][::-1])  # imports paid before any timing
    with IsolatedExtractor() as extractor:
        rows = [timed("python-docx / pypdf directly, no bounds (peer)", files, unbounded),
                timed("extract_text, bounds, in this process", files, extract_text)]
        rows.append(timed("IsolatedExtractor, one reused worker (start-up included)", files, extractor.extract))
        started = extractor.workers_started
    rows.append(timed("a fresh worker per file (extract_isolated)", files, extract_isolated))
    base = rows[0][1]
    lines = [f"{count} normal files ({count // 2} .docx essays of 600 words, {count - count // 2} PDFs of 1-2 pages):"]
    for label, seconds in rows:
        lines.append(f"  {label}: {seconds:.2f} s, {seconds / count * 1000:.1f} ms a file "
                     f"({(seconds - base) / count * 1000:+.1f} ms a file against the peer)")
    lines.append(f"  workers started by the reused extractor: {started}")
    return lines


def memory() -> list[str]:
    lines = ["peak memory of the process tree (sampled from /proc every 50 ms; killed past 1.5 GB):"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = hostile_files.write(Path(tmp) / "uploads", {
            "amy_reefs.txt": " ".join(essay(1)).encode(),
            "bo_reefs.docx": hostile_files._docx(hostile_files.deflated(
                "word/document.xml", hostile_files.normal_docx_xml(essay(2)))),
            "cal_reefs.pdf": hostile_files.text_pdf(essay(3)[:4]),
            "bomb_reefs.docx": hostile_files.docx_bomb(300_000_000),
            "liar_reefs.docx": hostile_files.lying_docx(),
            "laughs_reefs.docx": hostile_files.billion_laughs_docx(),
            "flood_reefs.pdf": hostile_files.pdf_bomb(300_000_000),
        })
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("ATTEST_")}
        base_env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
                        ATTEST_RPC_URL="http://127.0.0.1:9")
        wide = {"ATTEST_EXTRACT_MAX_RATIO": "1000000000", "ATTEST_EXTRACT_MAX_MEMBER_BYTES": "4294967296",
                "ATTEST_EXTRACT_MAX_TOTAL_BYTES": "4294967296", "ATTEST_EXTRACT_MAX_XML_BYTES": "4294967296"}
        for bounds, extra in (("default limits", {}), ("zip bounds off", wide)):
            for surface in ("submissions scan", "upload page"):
                data = Path(tmp) / f"data-{len(lines)}"
                env = {**base_env, **extra, "ATTEST_DATA_DIR": str(data)}
                cmd = ([str(ROOT / ".venv/bin/flask"), "--app", "app", "submissions", "scan", str(folder), "--json"]
                       if surface == "submissions scan" else
                       [sys.executable, "-m", "tests.upload_probe", str(data), str(folder)])
                measured = run_measured(cmd, env=env, cwd=str(ROOT))
                status = "killed" if measured.killed else f"exit {measured.returncode}"
                lines.append(f"  {surface}, {bounds}: {measured.describe()}, {status}")
    return lines


def long_pdf() -> list[str]:
    pdf = hostile_files.many_pages_pdf(10_000)
    calls = []
    with IsolatedExtractor() as extractor:
        started = time.perf_counter()
        text = extractor.extract(pdf, "book.pdf", progress=lambda *s: calls.append(s))
        seconds = time.perf_counter() - started
    return [f"10,000-page PDF ({len(pdf) / 1e6:.1f} MB) in the worker: {seconds:.1f} s, {len(text):,} characters, "
            f"{len(calls)} progress reports to the caller (last: {calls[-1] if calls else None})"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--no-memory", action="store_true", help="skip the CLI and upload-page runs")
    args = parser.parse_args()
    lines = [f"machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
             f"Python {platform.python_version()}, load average at start {os.getloadavg()[0]:.2f}"]
    lines += overhead(args.files)
    lines += long_pdf()
    if not args.no_memory:
        lines += memory()
    lines.append(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    text = "\n".join(lines)
    print(text)
    (ROOT / "bench" / "results" / "bench_extract.txt").write_text(text + "\n")


if __name__ == "__main__":
    main()
