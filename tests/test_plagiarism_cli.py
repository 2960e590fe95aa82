"""`submissions scan` and `submissions anomalies` through Flask's CLI runner, with the real model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flask import Flask

from plagiarism.cli import submissions_cli
from tests import fixtures_plagiarism
from tests.fixtures_plagiarism import (
    HEAVY_PARAPHRASE,
    INDEPENDENT_A,
    LIGHT_EDIT,
    SOURCE,
    VERBATIM,
    docx_bytes,
)

pytestmark = pytest.mark.slow
embedder = fixtures_plagiarism.embedder
AUTHORSHIP = Path(__file__).resolve().parent.parent / "bench" / "data" / "authorship.jsonl"


@pytest.fixture
def runner(embedder):
    app = Flask("submissions-cli-test")
    app.cli.add_command(submissions_cli)
    return app.test_cli_runner()


@pytest.fixture
def folders(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "verbatim.txt").write_text(VERBATIM, encoding="utf-8")
    (subs / "light.txt").write_bytes(LIGHT_EDIT.replace("my view", "my ‘view’").encode("cp1252"))
    (subs / "heavy.docx").write_bytes(docx_bytes(HEAVY_PARAPHRASE.split("\n\n")))
    (subs / "own.md").write_bytes(INDEPENDENT_A.encode("utf-16"))
    (subs / "scan.pdf").write_bytes(b"%PDF-1.4 not a real pdf")
    (subs / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    sources = tmp_path / "sources"
    sources.mkdir()
    (sources / "reading.txt").write_text(SOURCE, encoding="utf-8")
    return subs, sources


def test_scan_json_reports_every_readable_submission(runner, folders):
    subs, sources = folders
    result = runner.invoke(args=["submissions", "scan", str(subs), "--sources", str(sources), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    by_name = {r["submission"]: r for r in rows}
    assert sorted(by_name) == ["heavy.docx", "light.txt", "own.md", "verbatim.txt"]
    for row in rows:
        assert {"submission", "score", "flagged", "matches"} <= set(row)
        assert 0.0 <= row["score"] <= 1.0
        for m in row["matches"]:
            assert {"source", "similarity", "submission_span", "source_span"} <= set(m)
            assert len(m["submission_span"]) == 2 and len(m["source_span"]) == 2
    assert by_name["verbatim.txt"]["flagged"] and by_name["light.txt"]["flagged"]
    assert by_name["heavy.docx"]["flagged"]
    assert not by_name["own.md"]["flagged"]
    # The score is the share of text in corroborated passages; the strength of the evidence is a
    # field of its own, and every passage carries its named evidence and the sentences that explain it.
    verbatim = by_name["verbatim.txt"]
    assert verbatim["evidence"]["coverage"] == verbatim["score"] > by_name["own.md"]["score"]
    assert set(by_name["own.md"]["evidence"]) == {"coverage", "confidence", "passages"}
    assert 0 < verbatim["confidence"] <= 1 and by_name["own.md"]["confidence"] == 0
    for m in verbatim["matches"]:
        assert m["evidence"] and m["reasons"] and 0 < m["confidence"] <= 1
    reading = [m for m in by_name["verbatim.txt"]["matches"] if m["source"] == "reading.txt"]
    s0, s1 = reading[0]["source_span"]
    assert SOURCE[s0:s1].startswith("Coral bleaching happens when corals under stress")
    # Unreadable files are named on stderr with the reason; the rest was still scanned.
    assert "scan.pdf: the file is not a readable PDF" in result.stderr
    assert "photo.png: files of type '.png' are not supported" in result.stderr


def test_scan_table_and_clusters(runner, folders):
    subs, sources = folders
    result = runner.invoke(args=["submissions", "scan", str(subs), "--sources", str(sources)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["submission", "score", "flagged"]
    verbatim = next(line for line in lines if line.startswith("verbatim.txt"))
    assert " yes " in verbatim
    # The three copies share the student's intro and conclusion: one cluster.
    assert "cluster 1: heavy.docx, light.txt, verbatim.txt" in result.stdout


def test_scan_of_a_folder_with_nothing_readable_fails_clearly(runner, tmp_path):
    (tmp_path / "x.bin").write_bytes(b"\x00\x01\x02")
    result = runner.invoke(args=["submissions", "scan", str(tmp_path), "--json"])
    assert result.exit_code == 2
    assert "no readable submissions" in result.stderr


def test_anomalies_json(runner, tmp_path):
    by: dict[str, list[str]] = {}
    for line in AUTHORSHIP.open():
        row = json.loads(line)
        if row["split"] == "eval":
            by.setdefault(row["author"], []).append(row["text"])
    layout = {"sam": by["Vinay Sajip"][:3] + by["R. David Murray"][:1],
              "kim": by["A.M. Kuchling"][:3], "raj": by["Raymond Hettinger"][:3],
              "gus": by["Guido van Rossum"][:3], "new": by["Gordon McMillan"][:1]}
    for student, texts in layout.items():
        folder = tmp_path / student
        folder.mkdir()
        for n, text in enumerate(texts):
            (folder / f"2026-0{n + 1}-essay.txt").write_text(text, encoding="utf-8")
    (tmp_path / "stray.txt").write_text("not in a folder")
    result = runner.invoke(args=["submissions", "anomalies", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert len(rows) == sum(len(t) for t in layout.values())
    for row in rows:
        assert {"student", "submission", "score", "flagged", "reasons"} <= set(row)
        assert row["reasons"] and all(isinstance(r, str) for r in row["reasons"])
    sam = {r["submission"]: r for r in rows if r["student"] == "sam"}
    assert sam["2026-04-essay.txt"]["flagged"]
    newcomer = next(r for r in rows if r["student"] == "new")
    assert not newcomer["flagged"] and "Too little history" in newcomer["reasons"][0]
    assert "stray.txt: not inside a student's folder" in result.stderr
