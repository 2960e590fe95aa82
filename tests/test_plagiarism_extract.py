"""Text extraction from uploads: encodings, Word, PDF, and clear messages for unreadable files."""

from __future__ import annotations

import codecs
import io

import pytest

from plagiarism.extract import UnreadableSubmission, extract_file, extract_text

TEXT = "Café society — “naïve” ideas about résumés cost 5 €."


def test_utf8_with_and_without_bom():
    assert extract_text(TEXT.encode("utf-8"), "a.txt") == TEXT
    assert extract_text(codecs.BOM_UTF8 + TEXT.encode("utf-8"), "a.txt") == TEXT


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_with_bom(codec):
    data = TEXT.encode(codec)
    if codec == "utf-16-le":
        data = codecs.BOM_UTF16_LE + data
    elif codec == "utf-16-be":
        data = codecs.BOM_UTF16_BE + data
    assert extract_text(data, "essay.md") == TEXT


def test_cp1252_fallback_keeps_smart_quotes_and_euro():
    data = TEXT.encode("cp1252")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    assert extract_text(data, "windows.txt") == TEXT


def test_windows_line_endings_become_newlines():
    assert extract_text(b"one\r\ntwo\rthree", "a.txt") == "one\ntwo\nthree"


def test_binary_file_is_refused_with_a_reason():
    with pytest.raises(UnreadableSubmission) as info:
        extract_text(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "photo.txt")
    assert info.value.filename == "photo.txt"
    assert "binary" in info.value.reason
    assert str(info.value).startswith("photo.txt: ")


def test_bytes_undefined_in_cp1252_are_refused():
    # 0x81 and 0x8D are undefined in Windows-1252 and invalid as UTF-8 here.
    with pytest.raises(UnreadableSubmission) as info:
        extract_text(b"Some text \x81\x8d more text", "odd.txt")
    assert "encoding" in info.value.reason


def test_empty_file_is_refused():
    with pytest.raises(UnreadableSubmission, match="empty"):
        extract_text(b"  \n ", "blank.txt")


def test_unsupported_type_names_the_supported_ones():
    with pytest.raises(UnreadableSubmission) as info:
        extract_text(b"whatever", "essay.odt")
    assert ".odt" in info.value.reason and ".docx" in info.value.reason


def test_docx_paragraphs_and_tables():
    import docx

    document = docx.Document()
    document.add_paragraph("First paragraph of the essay.")
    document.add_paragraph("Second paragraph, with “quotes”.")
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text = "cell one"
    table.rows[0].cells[1].text = "cell two"
    buf = io.BytesIO()
    document.save(buf)
    text = extract_text(buf.getvalue(), "essay.docx")
    assert "First paragraph of the essay.\nSecond paragraph, with “quotes”." in text
    assert "cell one | cell two" in text


def test_broken_docx_is_refused():
    with pytest.raises(UnreadableSubmission) as info:
        extract_text(b"PK\x03\x04 not really a zip", "essay.docx")
    assert "Word" in info.value.reason


def _pdf(lines: list[str]) -> bytes:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=A4)
    y = 800
    for line in lines:
        c.drawString(72, y, line)
        y -= 18
    c.showPage()
    c.save()
    return buf.getvalue()


def test_pdf_text_layer():
    text = extract_text(_pdf(["Coral reefs are losing their colour.", "Heat is the main cause."]),
                        "essay.pdf")
    assert "Coral reefs are losing their colour." in text
    assert "Heat is the main cause." in text


def test_pdf_without_text_says_it_may_be_a_scan():
    with pytest.raises(UnreadableSubmission) as info:
        extract_text(_pdf([]), "scan.pdf")
    assert info.value.reason == "the PDF holds no extractable text (is it a scan?)"


def test_garbage_pdf_is_refused():
    with pytest.raises(UnreadableSubmission, match="PDF"):
        extract_text(b"%PDF-1.4 garbage garbage", "broken.pdf")


def test_extract_file_reads_from_disk(tmp_path):
    path = tmp_path / "essay.txt"
    path.write_bytes(TEXT.encode("utf-16"))
    assert extract_file(path) == TEXT
    with pytest.raises(UnreadableSubmission, match="could not be opened"):
        extract_file(tmp_path / "missing.txt")
