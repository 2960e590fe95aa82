"""The extraction worker: one reused process with a memory and a time limit.
A file that gets past the bounds kills the worker, not the caller; the caller
gets the reason and the next file a fresh worker; long files show life."""

from __future__ import annotations

import os
import signal
import time

import pytest

from plagiarism.extract import OverLimit, UnreadableSubmission
from plagiarism.extract_limits import MB, ExtractionLimits
from plagiarism.isolation import IsolatedExtractor, extract_isolated
from tests import hostile_files
from tests.fixtures_plagiarism import docx_bytes
from tests.test_extract_bounds import varied_docx

# Every bound on zip packages opened wide: only the worker's memory limit stands.
NO_ZIP_BOUNDS = dict(max_ratio=1e9, max_member_bytes=4096 * MB, max_total_bytes=4096 * MB,
                     max_xml_bytes=4096 * MB)


@pytest.fixture(scope="module")
def book() -> bytes:
    """A 10,000-page PDF: several seconds of pypdf, made once for the module."""
    return hostile_files.many_pages_pdf(10_000)


def _vm_kb(field: str, pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def test_word_and_pdf_files_share_one_worker_and_text_stays_here():
    files = [("a.docx", docx_bytes(["Coral reefs bleach.", "Heat is the cause."])),
             ("b.pdf", hostile_files.many_pages_pdf(3)),
             ("c.txt", b"Plain text is decoded here."),
             ("d.docx", docx_bytes(["Second document."]))]
    with IsolatedExtractor() as extractor:
        texts = {name: extractor.extract(data, name) for name, data in files[2:3]}
        assert extractor.workers_started == 0 and extractor.worker_pid is None, "no worker for plain text"
        texts.update({name: extractor.extract(data, name) for name, data in files})
        pid = extractor.worker_pid
        assert pid is not None and pid != os.getpid()
        assert extractor.extract(files[0][1], "again.docx") == texts["a.docx"]
        assert extractor.worker_pid == pid and extractor.workers_started == 1
    assert texts["a.docx"] == "Coral reefs bleach.\nHeat is the cause."
    assert texts["b.pdf"].startswith("Page 1: coral reefs") and "Page 3:" in texts["b.pdf"]
    assert texts["d.docx"] == "Second document."
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.05)  # close() lets it exit at end-of-file
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"


def test_refusals_keep_the_worker_and_say_why():
    with IsolatedExtractor() as extractor:
        with pytest.raises(OverLimit, match="packed 287 to 1"):
            extractor.extract(hostile_files.docx_bomb(), "bomb.docx")
        with pytest.raises(UnreadableSubmission, match="not a valid Word"):
            extractor.extract(b"PK\x03\x04 nope", "broken.docx")
        assert extractor.extract(docx_bytes(["Still fine."]), "ok.docx") == "Still fine."
        assert extractor.workers_started == 1


def test_a_bomb_past_the_bounds_kills_only_the_worker():
    """With the zip bounds opened wide, the 300 MB bomb really inflates: in
    the worker, which stops at its 512 MB limit, while this process stays put."""
    before = _vm_kb("VmHWM")
    limits = ExtractionLimits(memory_mb=512, **NO_ZIP_BOUNDS)
    with IsolatedExtractor(limits) as extractor:
        started = time.monotonic()
        with pytest.raises(OverLimit) as refused:
            extractor.extract(hostile_files.docx_bomb(), "bomb.docx")
        assert "more than the 512 MB of memory one file may use" in refused.value.reason \
            or "most likely out of the 512 MB" in refused.value.reason, refused.value.reason
        assert time.monotonic() - started < 60
        assert extractor.extract(docx_bytes(["After the bomb."]), "next.docx") == "After the bomb."
        assert extractor.workers_started == 2, "the next file got a fresh worker"
    grown_mb = (_vm_kb("VmHWM") - before) / 1024
    assert grown_mb < 100, f"this process grew by {grown_mb:.0f} MB"


def test_a_file_that_takes_too_long_is_stopped(book):
    limits = ExtractionLimits(timeout_seconds=1.0)
    with IsolatedExtractor(limits) as extractor:
        started = time.monotonic()
        with pytest.raises(OverLimit) as refused:
            extractor.extract(book, "book.pdf")
        assert refused.value.reason == "reading it took longer than the 1 seconds one file may take, so it was stopped"
        assert time.monotonic() - started < 5
        assert extractor.extract(hostile_files.many_pages_pdf(2), "short.pdf").startswith("Page 1:")
        assert extractor.workers_started == 2


def test_a_worker_killed_between_files_is_replaced():
    with IsolatedExtractor() as extractor:
        extractor.extract(docx_bytes(["One."]), "one.docx")
        os.kill(extractor.worker_pid, signal.SIGKILL)
        time.sleep(0.2)
        assert extractor.extract(docx_bytes(["Two."]), "two.docx") == "Two."
        assert extractor.workers_started == 2


def test_a_worker_killed_mid_file_is_reported_for_that_file(book):
    with IsolatedExtractor(heartbeat_seconds=0.2) as extractor:
        def kill_it(done: int, total: int, stage: str) -> None:
            os.kill(extractor.worker_pid, signal.SIGKILL)

        with pytest.raises(OverLimit, match=r"the process reading it stopped \(SIGKILL\), most likely out of"):
            extractor.extract(book, "book.pdf", progress=kill_it)
        assert extractor.extract(docx_bytes(["Next."]), "next.docx") == "Next."


def test_a_long_pdf_reports_its_pages_while_it_is_read():
    # A heartbeat of 0.1 s: this machine reads the 2,000 pages in about a second, and CI once saw
    # only two reports with 0.25 s (pages 1 and 1,031).
    steps: list[tuple[float, int, int, str]] = []
    with IsolatedExtractor(heartbeat_seconds=0.1) as extractor:
        text = extractor.extract(hostile_files.many_pages_pdf(2_000), "book.pdf",
                                 progress=lambda *s: steps.append((time.monotonic(), *s)))
    assert "Page 2000:" in text
    pages = [done for _, done, total, stage in steps if stage == "reading pages" and total == 2_000]
    assert len(pages) >= 3 and pages == sorted(pages) and 0 < pages[0] < pages[-1] <= 2_000, steps
    gaps = [b[0] - a[0] for a, b in zip(steps, steps[1:], strict=False)]
    assert min(gaps) >= 0.05, f"relayed at most once per heartbeat: {steps}"


def test_a_silent_worker_still_gives_heartbeats():
    """python-docx parses a large document.xml in one call, with nothing to
    report: the caller still hears the last progress again, regularly."""
    data = varied_docx(6_000_000)
    steps: list[tuple[float, tuple]] = []
    roomy = ExtractionLimits(max_text_chars=20_000_000)  # this document is dense text: not the point here
    with IsolatedExtractor(roomy, heartbeat_seconds=0.25) as extractor:
        started = time.monotonic()
        text = extractor.extract(data, "long.docx", progress=lambda *s: steps.append((time.monotonic(), s)))
        took = time.monotonic() - started
    assert len(text) > 1_000_000
    assert took > 1.0, "the file must take long enough to need heartbeats"
    repeats = [at for at, s in steps if s == (1, 2, "reading the Word text")]
    assert len(repeats) >= 3, steps
    assert max(b - a for a, b in zip(repeats, repeats[1:], strict=False)) < 1.5


def test_a_single_file_can_go_through_a_worker_of_its_own():
    assert extract_isolated(docx_bytes(["Alone."]), "alone.docx") == "Alone."
    assert extract_isolated(b"Plain.", "plain.txt") == "Plain."
    with pytest.raises(OverLimit, match="the PDF has 3 pages; at most 2 are read"):
        extract_isolated(hostile_files.many_pages_pdf(3), "p.pdf", ExtractionLimits(max_pdf_pages=2))
