"""Text extraction from uploaded submission files.

Instructors upload whatever students handed in: plain text in any of the usual
encodings, Markdown, Word documents and PDFs.  Every later step works on one
Python string, so this module turns bytes + file name into that string, or
raises `UnreadableSubmission` with a sentence a person can act on.

Every file is read within `ExtractionLimits` (file size, zip members and
ratios, XML size, DTDs, PDF pages, text length): a file past one is refused
with the limit and what was found, and the caller goes on with the others.
These bounds hold in any process; `plagiarism.isolation` runs .docx and .pdf
extraction in a worker process with a memory limit as well, for whatever the
bounds do not foresee. Long extractions report `progress(done, total, stage)`.
"""

from __future__ import annotations

import codecs
import io
from collections.abc import Callable
from pathlib import Path

from plagiarism.extract_limits import ExtractionLimits, describe_bytes

Progress = Callable[[int, int, str], None]
SUPPORTED_SUFFIXES = (".txt", ".md", ".docx", ".pdf")


class UnreadableSubmission(Exception):
    """A file whose text cannot be recovered; `reason` is meant for people."""

    def __init__(self, filename: str, reason: str):
        self.filename = filename
        self.reason = reason
        super().__init__(f"{filename}: {reason}")


class OverLimit(UnreadableSubmission):
    """Refused because it passes one of the `ExtractionLimits` (or ran the
    extraction worker out of memory or time), not because it is broken."""


def _looks_binary(data: bytes) -> bool:
    """NUL bytes or many control characters mean this is not a text file.

    (UTF-16 without a BOM also has NULs; we cannot tell it from binary
    reliably, so such files are refused with a message that says so.)
    """
    sample = data[:4096]
    if b"\x00" in sample:
        return True
    controls = sum(1 for b in sample if b < 9 or 13 < b < 32)
    return bool(sample) and controls / len(sample) > 0.05


def decode_text(data: bytes, filename: str = "submission.txt") -> str:
    """Decode plain text: UTF-8 (with or without BOM), UTF-16 with BOM, else cp1252.

    cp1252 is the fallback because Windows editors still save "ANSI" files;
    bytes cp1252 leaves undefined make the file unreadable rather than garbled.
    """
    if data.startswith(codecs.BOM_UTF8):
        return data[len(codecs.BOM_UTF8):].decode("utf-8", errors="replace")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise UnreadableSubmission(
                filename, "the file starts like UTF-16 text but is not valid UTF-16") from exc
    if _looks_binary(data):
        raise UnreadableSubmission(
            filename,
            "the file holds binary data, not text (save it as .txt in UTF-8, .docx or .pdf)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError as exc:
        raise UnreadableSubmission(
            filename,
            "the text is in an encoding that is neither UTF-8, UTF-16 nor Windows-1252; "
            "save it again as UTF-8") from exc


def _docx_text(data: bytes, filename: str, limits: ExtractionLimits, progress: Progress | None) -> str:
    """Paragraphs and table cells of a Word document, one paragraph per line.

    python-docx reads a copy of the package holding only its checked XML
    parts (`bounded_zip.text_package`), so nothing inflates past the limits.
    """
    import docx  # python-docx
    from docx.opc.exceptions import PackageNotFoundError

    from plagiarism.bounded_zip import PackageRefused, text_package

    if progress:
        progress(0, 2, "checking the Word package")
    try:
        package = text_package(data, limits)
    except PackageRefused as exc:
        raise (OverLimit if exc.over_limit else UnreadableSubmission)(filename, exc.reason) from exc
    if progress:
        progress(1, 2, "reading the Word text")
    try:
        document = docx.Document(io.BytesIO(package))
    except (PackageNotFoundError, KeyError, ValueError, OSError) as exc:
        raise UnreadableSubmission(
            filename, "the file is not a valid Word (.docx) document") from exc
    except MemoryError:
        raise  # the worker reports it as running out of memory, not as a broken file
    except Exception as exc:  # zipfile.BadZipFile and lxml errors vary by version
        raise UnreadableSubmission(
            filename, f"the Word document could not be opened ({type(exc).__name__})") from exc
    parts = [p.text for p in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            parts.append(" | ".join(cell.text for cell in row.cells))
    if progress:
        progress(2, 2, "reading the Word text")
    return "\n".join(parts)


def _pdf_text(data: bytes, filename: str, limits: ExtractionLimits, progress: Progress | None) -> str:
    """Text layer of every page; a scan without OCR has none, and we say so.

    The page count is judged before any page is read, and the text as it
    grows, so a huge PDF stops at the first limit it passes; each page is
    reported to `progress`, so a long one shows it is alive.
    """
    from pypdf import PdfReader
    from pypdf.errors import LimitReachedError, PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                if not reader.decrypt(""):
                    raise UnreadableSubmission(filename, "the PDF is password-protected")
            except UnreadableSubmission:
                raise
            except Exception as exc:
                raise UnreadableSubmission(filename, "the PDF is password-protected") from exc
        count = len(reader.pages)
        if count > limits.max_pdf_pages:
            raise OverLimit(
                filename, f"the PDF has {count:,} pages; at most {limits.max_pdf_pages:,} are read")
        pages: list[str] = []
        length = 0
        for number, page in enumerate(reader.pages, 1):
            text = page.extract_text() or ""
            if len(text) > limits.max_page_chars:
                raise OverLimit(
                    filename, f"page {number} of the PDF holds {len(text):,} characters; at most "
                              f"{limits.max_page_chars:,} a page are read (a dense page has about 5,000)")
            length += len(text) + (2 if pages else 0)
            if length > limits.max_text_chars:
                raise OverLimit(
                    filename, f"the PDF's text passes {limits.max_text_chars:,} characters by page "
                              f"{number:,} of {count:,}; at most that much text is read from one file")
            pages.append(text)
            if progress:
                progress(number, count, "reading pages")
    except UnreadableSubmission:
        raise
    except LimitReachedError as exc:  # pypdf's own bounds: streams past 75 MB, page-tree cycles, ...
        raise OverLimit(filename, f"the PDF passes a safety limit of the PDF reader ({exc}); it is damaged "
                                  "or built to exhaust memory (a decompression bomb)") from exc
    except (PdfReadError, ValueError, KeyError, OSError) as exc:
        raise UnreadableSubmission(filename, "the file is not a readable PDF") from exc
    except MemoryError:
        raise  # the worker reports it as running out of memory, not as a broken PDF
    except Exception as exc:
        raise UnreadableSubmission(
            filename, f"the PDF could not be read ({type(exc).__name__})") from exc
    text = "\n\n".join(pages)
    if not text.strip():
        raise UnreadableSubmission(filename, "the PDF holds no extractable text (is it a scan?)")
    return text


def _check_size(size: int, filename: str, limits: ExtractionLimits) -> None:
    if size > limits.max_file_bytes:
        raise OverLimit(
            filename, f"the file is {describe_bytes(size)}; at most {describe_bytes(limits.max_file_bytes)} "
                      "is read from one submission")


def extract_text(data: bytes, filename: str, limits: ExtractionLimits | None = None,
                 progress: Progress | None = None) -> str:
    """Return the text of a submission file, chosen by its suffix.

    Raises UnreadableSubmission for unsupported types, binary or undecodable
    content, broken documents, empty files, and (as OverLimit) files past
    `limits` (default: `ExtractionLimits.from_env()`).
    `progress(done, total, stage)` hears of each page of a PDF and each step
    of a Word document. This runs in the calling process: for files from
    strangers, `plagiarism.isolation.IsolatedExtractor` runs it in a worker
    with a memory limit.
    """
    limits = limits or ExtractionLimits.from_env()
    _check_size(len(data), filename, limits)
    suffix = Path(filename).suffix.lower()
    if suffix in (".txt", ".md", ""):
        text = decode_text(data, filename)
    elif suffix == ".docx":
        text = _docx_text(data, filename, limits, progress)
    elif suffix == ".pdf":
        text = _pdf_text(data, filename, limits, progress)
    else:
        raise UnreadableSubmission(
            filename,
            f"files of type '{suffix}' are not supported (use .txt, .md, .docx or .pdf)")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise UnreadableSubmission(filename, "the file is empty")
    if len(text) > limits.max_text_chars:
        raise OverLimit(
            filename, f"the file holds {len(text):,} characters of text; at most "
                      f"{limits.max_text_chars:,} are read from one submission")
    return text


def read_submission_file(path: str | Path, limits: ExtractionLimits | None = None) -> bytes:
    """The bytes of a file on disk, refused by size before it is read."""
    path = Path(path)
    limits = limits or ExtractionLimits.from_env()
    try:
        _check_size(path.stat().st_size, path.name, limits)
        with path.open("rb") as handle:
            data = handle.read(limits.max_file_bytes + 1)  # it may have grown since stat
    except OSError as exc:
        raise UnreadableSubmission(path.name, f"the file could not be opened ({exc.strerror})") \
            from exc
    _check_size(len(data), path.name, limits)
    return data


def extract_file(path: str | Path, limits: ExtractionLimits | None = None,
                 progress: Progress | None = None) -> str:
    """Read a file from disk and extract its text (see extract_text), in this process."""
    return extract_text(read_submission_file(path, limits), Path(path).name, limits, progress)
