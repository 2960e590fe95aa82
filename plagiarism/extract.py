"""Text extraction from uploaded submission files.

Instructors upload whatever students handed in: plain text in any of the usual
encodings, Markdown, Word documents and PDFs.  Every later step works on one
Python string, so this module turns bytes + file name into that string, or
raises `UnreadableSubmission` with a sentence a person can act on.
"""

from __future__ import annotations

import codecs
import io
from pathlib import Path

SUPPORTED_SUFFIXES = (".txt", ".md", ".docx", ".pdf")


class UnreadableSubmission(Exception):
    """A file whose text cannot be recovered; `reason` is meant for people."""

    def __init__(self, filename: str, reason: str):
        self.filename = filename
        self.reason = reason
        super().__init__(f"{filename}: {reason}")


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


def _docx_text(data: bytes, filename: str) -> str:
    """Paragraphs and table cells of a Word document, one paragraph per line."""
    import docx  # python-docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, KeyError, ValueError, OSError) as exc:
        raise UnreadableSubmission(
            filename, "the file is not a valid Word (.docx) document") from exc
    except Exception as exc:  # zipfile.BadZipFile and lxml errors vary by version
        raise UnreadableSubmission(
            filename, f"the Word document could not be opened ({type(exc).__name__})") from exc
    parts = [p.text for p in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            parts.append(" | ".join(cell.text for cell in row.cells))
    return "\n".join(parts)


def _pdf_text(data: bytes, filename: str) -> str:
    """Text layer of every page; a scan without OCR has none, and we say so."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

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
        pages = [page.extract_text() or "" for page in reader.pages]
    except UnreadableSubmission:
        raise
    except (PdfReadError, ValueError, KeyError, OSError) as exc:
        raise UnreadableSubmission(filename, "the file is not a readable PDF") from exc
    except Exception as exc:
        raise UnreadableSubmission(
            filename, f"the PDF could not be read ({type(exc).__name__})") from exc
    text = "\n\n".join(pages)
    if not text.strip():
        raise UnreadableSubmission(filename, "the PDF holds no extractable text (is it a scan?)")
    return text


def extract_text(data: bytes, filename: str) -> str:
    """Return the text of a submission file, chosen by its suffix.

    Raises UnreadableSubmission for unsupported types, binary or undecodable
    content, broken documents and empty files.
    """
    suffix = Path(filename).suffix.lower()
    if suffix in (".txt", ".md", ""):
        text = decode_text(data, filename)
    elif suffix == ".docx":
        text = _docx_text(data, filename)
    elif suffix == ".pdf":
        text = _pdf_text(data, filename)
    else:
        raise UnreadableSubmission(
            filename,
            f"files of type '{suffix}' are not supported (use .txt, .md, .docx or .pdf)")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise UnreadableSubmission(filename, "the file is empty")
    return text


def extract_file(path: str | Path) -> str:
    """Read a file from disk and extract its text (see extract_text)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UnreadableSubmission(path.name, f"the file could not be opened ({exc.strerror})") \
            from exc
    return extract_text(data, path.name)
