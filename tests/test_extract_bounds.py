"""Extraction within `ExtractionLimits`, on real hostile files made by the tests:
each refusal names the limit and what was found, and a normal file still reads
exactly as python-docx / pypdf read it."""

from __future__ import annotations

import io
import json
import random
import re
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import pytest

from plagiarism.extract import OverLimit, UnreadableSubmission, extract_file, extract_text
from plagiarism.extract_limits import DEFAULT_LIMITS, MB, ExtractionLimits
from tests import hostile_files
from tests.fixtures_plagiarism import docx_bytes

REPO = Path(__file__).resolve().parent.parent

# Runs extract_text in a child limited to 2 GB of address space, so that a bomb
# that gets through fails this test instead of taking the machine's memory.
PROBE = """
import json, resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
from plagiarism.extract import extract_text, UnreadableSubmission
data = open(sys.argv[1], "rb").read()
started, out = time.monotonic(), {}
try:
    out["chars"] = len(extract_text(data, sys.argv[2]))
except UnreadableSubmission as exc:
    out["reason"], out["kind"] = exc.reason, type(exc).__name__
except BaseException as exc:
    out["crash"] = repr(exc)[:300]
out["seconds"] = time.monotonic() - started
# VmHWM, not ru_maxrss: the latter keeps the forking parent's size across exec.
out["max_rss_mb"] = next(int(line.split()[1]) for line in open("/proc/self/status")
                         if line.startswith("VmHWM")) // 1024
print(json.dumps(out))
"""


def extract_in_limited_child(tmp_path: Path, data: bytes, name: str) -> dict:
    path = tmp_path / name
    path.write_bytes(data)
    done = subprocess.run([sys.executable, "-c", PROBE, str(path), name], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_300_mb_docx_bomb_is_refused_from_its_central_directory(tmp_path):
    bomb = hostile_files.docx_bomb(300_000_000)
    assert len(bomb) < 1.2 * MB
    with zipfile.ZipFile(io.BytesIO(bomb)) as z:
        assert z.getinfo("word/document.xml").file_size >= 300_000_000
    out = extract_in_limited_child(tmp_path, bomb, "bomb.docx")
    assert out.get("kind") == "OverLimit", out
    assert "word/document.xml is packed 287 to 1" in out["reason"]
    assert "at most 100 to 1" in out["reason"] and "decompression bomb" in out["reason"]
    assert out["max_rss_mb"] < 150 and out["seconds"] < 5, out  # nothing was inflated


def _varied_block(size: int, seed: int = 7) -> bytes:
    """Paragraphs of shuffled words: packs about 5 to 1, like real prose."""
    rnd = random.Random(seed)
    words = "reef coral heat algae ocean white stress bleach warming recover survey diver".split()
    out = bytearray()
    while len(out) < size:
        out += b"<w:p><w:r><w:t>%s</w:t></w:r></w:p>" % " ".join(rnd.choices(words, k=12)).encode()
    return bytes(out)


def varied_docx(xml_bytes: int) -> bytes:
    """A valid .docx with about `xml_bytes` of document.xml that packs below the ratio limit."""
    _, head, tail = hostile_files._template()
    block = _varied_block(1_000_000)
    member = hostile_files.repeated("word/document.xml", head, block, max(1, xml_bytes // len(block)), tail)
    return hostile_files._docx(member)


def test_a_bomb_packed_below_the_ratio_limit_is_stopped_by_the_xml_limit():
    data = varied_docx(40_000_000)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        info = z.getinfo("word/document.xml")
        assert info.file_size / info.compress_size < DEFAULT_LIMITS.max_ratio
    with pytest.raises(OverLimit) as refused:
        extract_text(data, "long.docx")
    assert refused.value.reason == ("the Word document's XML would inflate to 38 MB; at most 32 MB of XML is "
                                    "read (a long thesis has a few MB)")


def test_declared_sizes_that_lie_are_caught_while_inflating():
    data = hostile_files.lying_docx(inflated=50_000_000, declared=10_000)
    with pytest.raises(OverLimit) as refused:
        extract_text(data, "liar.docx")
    assert refused.value.reason.startswith(
        "the part word/document.xml inflates to more than the 9.8 KB its header declares")


def test_billion_laughs_is_refused_before_any_parser_sees_it():
    with pytest.raises(OverLimit) as refused:
        extract_text(hostile_files.billion_laughs_docx(), "laughs.docx")
    assert "declares a DTD or entities (<!DOCTYPE)" in refused.value.reason
    assert "billion laughs" in refused.value.reason


def test_an_entity_declared_in_utf16_is_found_too():
    _, head, tail = hostile_files._template()
    head = re.sub(rb"encoding=.UTF-8.", b"encoding='UTF-16'", head)
    assert b"UTF-16" in head
    xml = (head.replace(b"?>", b'?><!ENTITY a "b">', 1) + tail).decode("utf-8").encode("utf-16")  # with its BOM
    data = hostile_files._docx(hostile_files.deflated("word/document.xml", xml))
    with pytest.raises(OverLimit, match=r"declares a DTD or entities \(<!ENTITY\)"):
        extract_text(data, "utf16.docx")


def test_xml_in_an_encoding_word_does_not_write_is_refused():
    _, head, tail = hostile_files._template()
    xml = re.sub(rb"encoding=.UTF-8.", b"encoding='UTF-7'", head) + tail
    data = hostile_files._docx(hostile_files.deflated("word/document.xml", xml))
    with pytest.raises(UnreadableSubmission, match="in the encoding UTF-7, which Word does not write"):
        extract_text(data, "utf7.docx")


def test_a_nested_archive_is_never_opened():
    data = hostile_files.nested_archive_docx(["The reef is bleaching.", "Corals expel their algae."])
    with zipfile.ZipFile(io.BytesIO(data)) as outer, outer.open("word/embeddings/data.zip") as member:
        with zipfile.ZipFile(io.BytesIO(member.read())) as inner:
            assert inner.getinfo("zeros.bin").file_size == 1_000_000_000
    assert extract_text(data, "embedded.docx") == "The reef is bleaching.\nCorals expel their algae."


def test_a_package_of_too_many_parts_is_refused():
    parts = [hostile_files.deflated(f"word/media/p{n}.bin", b"x") for n in range(1_000)]
    data = hostile_files._docx(hostile_files.deflated("word/document.xml", hostile_files.normal_docx_xml(["Hi."])),
                               parts)
    with pytest.raises(OverLimit) as refused:
        extract_text(data, "parts.docx")
    assert refused.value.reason.startswith("the Word document has 1,01")
    assert "at most 1,000 are read" in refused.value.reason


def test_declared_part_and_total_sizes_are_judged_before_inflating():
    png = b"\x89PNG" + bytes(1_500_000)
    picture = hostile_files.Member("word/media/photo.png", png, zlib.crc32(png), len(png), method=0)
    data = hostile_files._docx(hostile_files.deflated("word/document.xml", hostile_files.normal_docx_xml(["Hi."])),
                               [picture])
    assert extract_text(data, "photo.docx") == "Hi."
    with pytest.raises(OverLimit, match=r"the part word/media/photo.png would inflate to 1.4 MB; at most 1 MB per"):
        extract_text(data, "photo.docx", ExtractionLimits(max_member_bytes=1 * MB))
    with pytest.raises(OverLimit, match=r"would inflate to [0-9.]+ MB in all; at most 1.4 MB is read"):
        extract_text(data, "photo.docx", ExtractionLimits(max_member_bytes=int(1.44 * MB),
                                                           max_total_bytes=int(1.44 * MB)))


def test_a_word_document_reads_exactly_as_python_docx_reads_it():
    """Uploads are deduplicated by the sha256 of their text: the bounded
    reading must not change a single character of it."""
    import docx
    from docx.shared import Inches
    from PIL import Image

    picture = io.BytesIO()
    Image.new("RGB", (120, 60), "teal").save(picture, "PNG")
    document = docx.Document()
    document.add_heading("Coral reefs", 0)
    document.add_paragraph("Warming water makes corals expel their algae.\tThen they starve.")
    document.add_picture(io.BytesIO(picture.getvalue()), width=Inches(1))
    table = document.add_table(rows=2, cols=3)
    table.cell(0, 0).merge(table.cell(0, 1)).text = "merged"
    table.cell(1, 2).text = "last"
    document.sections[0].header.paragraphs[0].text = "Header"
    buffer = io.BytesIO()
    document.save(buffer)
    data = buffer.getvalue()

    original = docx.Document(io.BytesIO(data))
    expected = "\n".join([p.text for p in original.paragraphs] + [
        " | ".join(c.text for c in row.cells) for t in original.tables for row in t.rows])
    assert extract_text(data, "essay.docx") == expected
    assert extract_text(docx_bytes(["One.", "Two."]), "short.docx") == "One.\nTwo."


def test_a_pdf_whose_content_stream_inflates_to_300_mb_is_refused(tmp_path):
    bomb = hostile_files.pdf_bomb(300_000_000)
    assert len(bomb) < 1.2 * MB
    out = extract_in_limited_child(tmp_path, bomb, "bomb.pdf")
    assert out.get("kind") == "OverLimit", out
    assert out["reason"].startswith("the PDF passes a safety limit of the PDF reader (Limit reached while "
                                    "decompressing"), out
    assert out["max_rss_mb"] < 400 and out["seconds"] < 10, out


def test_pdf_pages_are_counted_before_any_is_read():
    pdf = hostile_files.many_pages_pdf(60)
    with pytest.raises(OverLimit) as refused:
        extract_text(pdf, "long.pdf", ExtractionLimits(max_pdf_pages=50),
                     progress=lambda *step: pytest.fail(f"a page was read: {step}"))
    assert refused.value.reason == "the PDF has 60 pages; at most 50 are read"


def test_pdf_text_stops_at_the_text_limit_and_names_the_page():
    pdf = hostile_files.many_pages_pdf(60)
    steps = []
    with pytest.raises(OverLimit) as refused:
        extract_text(pdf, "long.pdf", ExtractionLimits(max_text_chars=2_000), progress=lambda *s: steps.append(s))
    # Each page holds its one line and a newline (pypdf's), and two characters join it to the one before.
    lengths = [len(f"Page {n}: coral reefs and the heat that bleaches them.\n") for n in range(1, 61)]
    passing = next(n for n in range(1, 61) if sum(lengths[:n]) + 2 * (n - 1) > 2_000)
    assert passing == 36
    assert refused.value.reason == ("the PDF's text passes 2,000 characters by page 36 of 60; at most that much "
                                    "text is read from one file")
    assert steps[-1] == (35, 60, "reading pages"), "it stopped at the page that passed"


def test_a_page_with_too_much_text_is_refused():
    pdf = hostile_files.many_pages_pdf(3)
    with pytest.raises(OverLimit, match="page 1 of the PDF holds 5[0-9] characters; at most 40 a page"):
        extract_text(pdf, "dense.pdf", ExtractionLimits(max_page_chars=40))


def test_every_pdf_page_reports_progress():
    steps = []
    text = extract_text(hostile_files.many_pages_pdf(200), "p.pdf", progress=lambda *s: steps.append(s))
    assert steps == [(n, 200, "reading pages") for n in range(1, 201)]
    assert text.startswith("Page 1: coral reefs") and "Page 200: coral reefs" in text


def test_a_file_past_the_size_limit_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "huge.pdf"
    with path.open("wb") as handle:
        handle.truncate(60 * MB)  # sparse: no disk, and reading it would take 60 MB
    with pytest.raises(OverLimit) as refused:
        extract_file(path)
    assert refused.value.reason == "the file is 60 MB; at most 50 MB is read from one submission"
    with pytest.raises(OverLimit, match="the file is 60 MB"):
        extract_text(b"x" * (60 * MB), "huge.txt")


def test_plain_text_past_the_text_limit_is_refused():
    with pytest.raises(OverLimit) as refused:
        extract_text(b"coral " * 50, "essay.txt", ExtractionLimits(max_text_chars=100))
    assert refused.value.reason == ("the file holds 300 characters of text; at most 100 are read from one "
                                    "submission")


def test_broken_files_are_unreadable_not_over_a_limit():
    with pytest.raises(UnreadableSubmission) as refused:
        extract_text(b"PK\x03\x04 not really a zip", "essay.docx")
    assert not isinstance(refused.value, OverLimit)


def test_limits_are_validated_once_and_read_from_the_environment():
    assert DEFAULT_LIMITS.max_pdf_pages == 10_000 and DEFAULT_LIMITS.memory_mb == 768
    with pytest.raises(ValueError, match="max_pdf_pages must be positive"):
        ExtractionLimits(max_pdf_pages=0)
    with pytest.raises(ValueError, match="must be a number"):
        ExtractionLimits(max_ratio="high")
    with pytest.raises(ValueError, match="max_member_bytes cannot exceed max_total_bytes"):
        ExtractionLimits(max_member_bytes=10 * MB, max_total_bytes=5 * MB)
    with pytest.raises(ValueError, match="unknown extraction limits: max_pages"):
        ExtractionLimits.from_dict({"max_pages": 3})
    env = {"ATTEST_EXTRACT_MAX_PDF_PAGES": "20000", "ATTEST_EXTRACT_MAX_RATIO": "250",
           "ATTEST_EXTRACT_TIMEOUT_SECONDS": "90.5"}
    limits = ExtractionLimits.from_env(env)
    assert (limits.max_pdf_pages, limits.max_ratio, limits.timeout_seconds) == (20_000, 250.0, 90.5)
    assert limits.max_text_chars == DEFAULT_LIMITS.max_text_chars
    with pytest.raises(ValueError, match="ATTEST_EXTRACT_MEMORY_MB must be a number, not 'lots'"):
        ExtractionLimits.from_env({"ATTEST_EXTRACT_MEMORY_MB": "lots"})
    assert DEFAULT_LIMITS.replace(max_pdf_pages=5).max_pdf_pages == 5
    assert ExtractionLimits.from_dict(limits.as_dict()) == limits
