"""Real hostile files, made in a second or two by the tests that need them.

- `docx_bomb`: a valid 1 MB Word document whose word/document.xml inflates to
  300 MB of real paragraphs (the file from the issue). python-docx alone
  takes a process past 3 GB on it.
- `lying_docx`: a Word document whose central directory and local header
  declare word/document.xml as 10 KB while it inflates to 50 MB.
- `billion_laughs_docx`: word/document.xml with a DTD of nested entities.
- `nested_archive_docx`: a normal document carrying an embedded zip whose
  member would inflate to 1 GB.
- `pdf_bomb`: a one-page PDF whose content stream inflates to 300 MB.
- `many_pages_pdf`: a real PDF with one line of text on each of N pages;
  `text_pdf` an ordinary one.

The zips are written by hand (a few dozen lines below) so that sizes can lie
and so that a 300 MB member costs no 300 MB of compression: deflate blocks
ended with a full flush are independent, so one compressed 1 MB block is
repeated, and the member's CRC is computed over the repeated text.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

PARAGRAPH = b"<w:p><w:r><w:t>reef coral heat algae ocean white stress bleach</w:t></w:r></w:p>"


@dataclass
class Member:
    name: str
    packed: bytes  # raw deflate (method 8) or the bytes themselves (method 0)
    crc: int
    size: int  # what it really inflates to
    method: int = 8
    declared: int | None = None  # what the headers say it inflates to (default: the truth)


def deflated(name: str, data: bytes) -> Member:
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return Member(name, c.compress(data) + c.flush(), zlib.crc32(data), len(data))


def repeated(name: str, head: bytes, block: bytes, copies: int, tail: bytes) -> Member:
    """`head + block * copies + tail`, deflated without building it."""
    def full_flush_block(data: bytes) -> bytes:
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        return c.compress(data) + c.flush(zlib.Z_FULL_FLUSH)

    packed_block = full_flush_block(block)
    final = zlib.compressobj(9, zlib.DEFLATED, -15)
    packed = full_flush_block(head) + packed_block * copies + final.compress(tail) + final.flush()
    crc = zlib.crc32(head)
    for _ in range(copies):
        crc = zlib.crc32(block, crc)
    crc = zlib.crc32(tail, crc)
    return Member(name, packed, crc, len(head) + len(block) * copies + len(tail))


def pdf_bomb(inflated: int = 300_000_000) -> bytes:
    """A one-page PDF whose content stream (FlateDecode) inflates to `inflated`
    bytes of text-drawing operators: under 1 MB on disk."""
    head = b"BT /F1 12 Tf 72 712 Td (Coral reefs bleach.) Tj ET\n"
    block = b"BT /F1 12 Tf 72 712 Td (x) Tj ET\n" * 30_000
    raw = repeated("content", head, block, max(1, inflated // len(block)), b"")
    adler = zlib.adler32(head)
    for _ in range(max(1, inflated // len(block))):
        adler = zlib.adler32(block, adler)
    stream = b"\x78\xda" + raw.packed + struct.pack(">I", adler)  # zlib's header and checksum around deflate
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
               b"/Resources << /Font << /F1 5 0 R >> >> >>",
               b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    out.write(b"".join(b"%010d 00000 n \n" % offset for offset in offsets))
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def write_zip(members: list[Member]) -> bytes:
    """A plain zip (no zip64, no data descriptors) with the headers each member asks for."""
    out = io.BytesIO()
    central = []
    for m in members:
        offset = out.tell()
        declared = m.size if m.declared is None else m.declared
        name = m.name.encode()
        out.write(struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, m.method, 0, 0x21, m.crc,
                              len(m.packed), declared, len(name), 0))
        out.write(name)
        out.write(m.packed)
        central.append(struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, m.method, 0, 0x21,
                                   m.crc, len(m.packed), declared, len(name), 0, 0, 0, 0, 0, offset) + name)
    start = out.tell()
    for entry in central:
        out.write(entry)
    out.write(struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(central), len(central),
                          out.tell() - start, start, 0))
    return out.getvalue()


def _template() -> tuple[dict[str, bytes], bytes, bytes]:
    """The parts of a fresh python-docx document, and its document.xml cut
    into what comes before the body's content and what comes after."""
    import docx

    document = docx.Document()
    document.add_paragraph("MARKER")
    buffer = io.BytesIO()
    document.save(buffer)
    with zipfile.ZipFile(buffer) as z:
        parts = {info.filename: z.read(info) for info in z.infolist()}
    xml = parts["word/document.xml"]
    start = xml.index(b"<w:p>", xml.index(b"<w:body>")) if b"<w:p>" in xml else xml.index(b"<w:body>") + 8
    marker_end = xml.index(b"</w:p>", xml.index(b"MARKER")) + len(b"</w:p>")
    return parts, xml[:start], xml[marker_end:]


def _docx(document: Member, extra: list[Member] = (), rels_extra: bytes = b"", types_extra: bytes = b"") -> bytes:
    parts, _, _ = _template()
    members = []
    for name, data in parts.items():
        if name == "word/document.xml":
            members.append(document)
        elif name == "word/_rels/document.xml.rels" and rels_extra:
            members.append(deflated(name, data.replace(b"</Relationships>", rels_extra + b"</Relationships>")))
        elif name == "[Content_Types].xml" and types_extra:
            members.append(deflated(name, data.replace(b"</Types>", types_extra + b"</Types>")))
        else:
            members.append(deflated(name, data))
    return write_zip(members + list(extra))


def docx_bomb(inflated: int = 300_000_000) -> bytes:
    """About 1 MB of .docx whose document.xml is `inflated` bytes of real paragraphs."""
    _, head, tail = _template()
    block = PARAGRAPH * (1_000_000 // len(PARAGRAPH))
    return _docx(repeated("word/document.xml", head, block, max(1, inflated // len(block)), tail))


def lying_docx(inflated: int = 50_000_000, declared: int = 10_000) -> bytes:
    """document.xml inflates to `inflated` bytes while every header says `declared`."""
    _, head, tail = _template()
    block = PARAGRAPH * (1_000_000 // len(PARAGRAPH))
    member = repeated("word/document.xml", head, block, max(1, inflated // len(block)), tail)
    member.declared = declared
    return _docx(member)


def billion_laughs_docx(levels: int = 10) -> bytes:
    """document.xml declaring lol0..lol{levels-1}, each ten of the one before (10^levels 'lol's)."""
    _, head, tail = _template()
    entities = b'<!ENTITY lol0 "lol">' + b"".join(
        b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1)) * 10) for i in range(1, levels))
    declaration_end = head.index(b"?>") + 2
    xml = (head[:declaration_end] + b"<!DOCTYPE w:document [" + entities + b"]>" + head[declaration_end:]
           + b"<w:p><w:r><w:t>&lol%d;</w:t></w:r></w:p>" % (levels - 1) + tail)
    return _docx(deflated("word/document.xml", xml))


def normal_docx_xml(paragraphs: list[str]) -> bytes:
    _, head, tail = _template()
    body = b"".join(b"<w:p><w:r><w:t>%s</w:t></w:r></w:p>" % p.encode() for p in paragraphs)
    return head + body + tail


def nested_archive_docx(paragraphs: list[str], inner_inflated: int = 1_000_000_000) -> bytes:
    """A readable document with word/embeddings/data.zip, whose member would inflate to 1 GB."""
    block = b"\0" * 1_000_000
    inner = write_zip([repeated("zeros.bin", b"", block, inner_inflated // len(block), b"")])
    embedded = Member("word/embeddings/data.zip", inner, zlib.crc32(inner), len(inner), method=0)
    rel = (b'<Relationship Id="rIdEmbed1" Target="embeddings/data.zip" '
           b'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/package"/>')
    return _docx(deflated("word/document.xml", normal_docx_xml(paragraphs)), [embedded], rel,
                 b'<Default Extension="zip" ContentType="application/zip"/>')


def many_pages_pdf(pages: int, line: str = "Page {n}: coral reefs and the heat that bleaches them.") -> bytes:
    """A PDF with one line of real text on each page (reportlab: about 6,000 pages a second)."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    buffer = io.BytesIO()
    c = canvas.Canvas(buffer, pagesize=A4)
    for n in range(1, pages + 1):
        c.drawString(72, 800, line.format(n=n))
        c.showPage()
    c.save()
    return buffer.getvalue()


def text_pdf(paragraphs: list[str]) -> bytes:
    """A one-page PDF of ordinary prose, wrapped at about 90 characters a line."""
    import textwrap

    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    buffer = io.BytesIO()
    c = canvas.Canvas(buffer, pagesize=A4)
    y = 800
    for paragraph in paragraphs:
        for line in textwrap.wrap(paragraph, 90):
            c.drawString(56, y, line)
            y -= 14
        y -= 8
    c.showPage()
    c.save()
    return buffer.getvalue()


def write(folder: Path, files: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder
