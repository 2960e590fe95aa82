"""Reading a .docx package without letting it inflate past the limits.

A .docx is a zip of XML parts. Three things make a zip dangerous to open:
its central directory can promise gigabytes (a decompression bomb), it can
lie about sizes (declare 10 KB and inflate to 300 MB), and its XML can declare
entities that expand without end ("billion laughs"). So, before python-docx
sees anything:

1. the central directory is judged first: member count, each member's
   declared size and packing ratio, the declared total, and the XML that
   would be parsed (`check_members`);
2. only the XML parts are inflated, by our own loop that stops one byte past
   the member's declared size (`inflate_member`); images, embedded objects and
   nested archives are never inflated or opened at all;
3. each XML part must be UTF-8 or UTF-16 and declare no DTD or entity
   (`check_xml`), which Word never writes;
4. python-docx then reads a copy of the package holding those checked parts,
   stored uncompressed, and empty placeholders for the rest (`text_package`),
   so its text (and the sha256 that deduplicates uploads) is what it was.

Why our own inflation loop: zipfile's reader trusts the central directory's
size and fails only on the CRC afterwards, with a message no instructor can
act on; here every stop names the part and the limit.
"""

from __future__ import annotations

import io
import re
import struct
import zipfile
import zlib

from plagiarism.extract_limits import ExtractionLimits, describe_bytes

XML_SUFFIXES = (".xml", ".rels")
_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")  # the fixed 30 bytes before a member's name
_LOCAL_MAGIC = b"PK\x03\x04"
_CHUNK = 256 * 1024  # compressed bytes fed to zlib at a time
_BOMB = "it looks built to exhaust memory (a decompression bomb)"


class PackageRefused(Exception):
    """The package breaks a limit or is damaged; `reason` is a sentence for people."""

    def __init__(self, reason: str, over_limit: bool = False):
        self.reason = reason
        self.over_limit = over_limit  # past a limit (rather than damaged)
        super().__init__(reason)


def is_xml_part(name: str) -> bool:
    """Parts python-docx parses; every other part is left packed."""
    return name.lower().endswith(XML_SUFFIXES)


def _ratio(info: zipfile.ZipInfo) -> float:
    return info.file_size / info.compress_size if info.compress_size else float("inf")


def check_members(members: list[zipfile.ZipInfo], limits: ExtractionLimits) -> None:
    """Judge the central directory alone: nothing has been inflated yet."""
    if len(members) > limits.max_zip_members:
        raise PackageRefused(
            f"the Word document has {len(members):,} parts; at most {limits.max_zip_members:,} are read "
            "(a real document has a few dozen)", over_limit=True)
    seen: set[str] = set()
    total = xml_total = 0
    for info in members:
        name = info.filename
        if name in seen:  # which copy would a reader take? Refuse rather than guess.
            raise PackageRefused(f"the Word document holds two parts named {name}; the file is damaged")
        seen.add(name)
        if info.file_size > limits.ratio_grace_bytes and _ratio(info) > limits.max_ratio:
            raise PackageRefused(
                f"the part {name} is packed {_ratio(info):,.0f} to 1 ({describe_bytes(info.compress_size)} "
                f"inflating to {describe_bytes(info.file_size)}); at most {limits.max_ratio:,.0f} to 1 is "
                f"accepted and a Word document packs about 10 to 1, so {_BOMB}", over_limit=True)
        if info.file_size > limits.max_member_bytes:
            raise PackageRefused(
                f"the part {name} would inflate to {describe_bytes(info.file_size)}; at most "
                f"{describe_bytes(limits.max_member_bytes)} per part is read", over_limit=True)
        total += info.file_size
        if is_xml_part(name):
            xml_total += info.file_size
    if total > limits.max_total_bytes:
        raise PackageRefused(
            f"the Word document would inflate to {describe_bytes(total)} in all; at most "
            f"{describe_bytes(limits.max_total_bytes)} is read", over_limit=True)
    if xml_total > limits.max_xml_bytes:
        raise PackageRefused(
            f"the Word document's XML would inflate to {describe_bytes(xml_total)}; at most "
            f"{describe_bytes(limits.max_xml_bytes)} of XML is read (a long thesis has a few MB)", over_limit=True)


def inflate_member(data: bytes, info: zipfile.ZipInfo) -> bytes:
    """The member's bytes, inflating at most one byte more than it declares.

    The central directory's sizes were checked against the limits, so
    stopping at the declared size bounds what is inflated, whatever the
    compressed stream really holds.
    """
    name, declared = info.filename, info.file_size
    if info.flag_bits & 0x1:
        raise PackageRefused(f"the part {name} is encrypted; save the document without a password")
    start = info.header_offset
    header = data[start:start + _LOCAL_HEADER.size]
    if len(header) < _LOCAL_HEADER.size or header[:4] != _LOCAL_MAGIC:
        raise PackageRefused(f"the part {name} cannot be found where the package says; the file is damaged")
    fields = _LOCAL_HEADER.unpack(header)
    begin = start + _LOCAL_HEADER.size + fields[9] + fields[10]  # past the name and extra field
    end = begin + info.compress_size
    if end > len(data):
        raise PackageRefused(f"the part {name} runs past the end of the file; the file is damaged")
    packed = memoryview(data)[begin:end]

    if info.compress_type == zipfile.ZIP_STORED:
        out = bytes(packed)
    elif info.compress_type == zipfile.ZIP_DEFLATED:
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        pieces: list[bytes] = []
        produced = 0
        try:
            for offset in range(0, len(packed), _CHUNK):
                pending = packed[offset:offset + _CHUNK]
                while pending:
                    piece = inflater.decompress(pending, declared + 1 - produced)
                    produced += len(piece)
                    pieces.append(piece)
                    if produced > declared:
                        raise PackageRefused(
                            f"the part {name} inflates to more than the {describe_bytes(declared)} its "
                            f"header declares: the file is damaged or {_BOMB}", over_limit=True)
                    pending = inflater.unconsumed_tail
                if inflater.eof:
                    break
        except zlib.error as exc:
            raise PackageRefused(f"the part {name} is not validly compressed; the file is damaged") from exc
        if not inflater.eof:
            raise PackageRefused(f"the part {name} is cut short; the file is damaged")
        out = b"".join(pieces)
    else:
        raise PackageRefused(
            f"the part {name} uses a compression method (number {info.compress_type}) that Word does not use")
    if len(out) != declared or zlib.crc32(out) != info.CRC:
        raise PackageRefused(f"the part {name} does not match its checksum; the file is damaged")
    return out


# What a part may start with: an optional BOM, whitespace, then "<".
_UTF16_BOMS = {b"\xff\xfe": "utf-16-le", b"\xfe\xff": "utf-16-be"}
_DECLARED_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*?\bencoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
# Encodings in which "<!DOCTYPE" is the same bytes as in ASCII, so the byte
# scan below sees it; UTF-7, EBCDIC and the like could hide it.
_ASCII_BASED = re.compile(rb"^(utf-?8|us-ascii|ascii|iso-?8859-\d{1,2}|latin-?1|windows-125\d|cp125\d)$", re.I)
_DTD_MARKERS = ("<!DOCTYPE", "<!ENTITY")


def check_xml(name: str, blob: bytes) -> None:
    """Refuse XML that could expand while parsed, or hide a DTD from this check.

    Word writes UTF-8 (UTF-16 and other encodings are allowed by the package
    format) and never a DTD, so a part with a DTD or entity declaration, or
    in an encoding that could hide one from a byte scan, is refused before a
    parser sees it. (python-docx parses with
    resolve_entities=False and libxml2 caps entity amplification; this is
    the first line, with a reason a person can read.)
    """
    encoding = _UTF16_BOMS.get(blob[:2])
    if encoding is None:
        head = blob[3:] if blob.startswith(b"\xef\xbb\xbf") else blob
        if head[:4096].lstrip()[:1] != b"<":
            raise PackageRefused(f"the part {name} is not XML in UTF-8 or UTF-16; the file is damaged")
        declared = _DECLARED_ENCODING.match(head[:200])
        if declared and not _ASCII_BASED.match(declared.group(1)):
            raise PackageRefused(
                f"the part {name} is in the encoding {declared.group(1).decode('ascii')}, which Word "
                "does not write; save the document again from Word")
        encoding = "utf-8"
    for marker in _DTD_MARKERS:
        if marker.encode(encoding) in blob:
            raise PackageRefused(
                f"the part {name} declares a DTD or entities ({marker}), which Word never writes and which "
                "can expand without end when read (a 'billion laughs' file)", over_limit=True)


def text_package(data: bytes, limits: ExtractionLimits) -> bytes:
    """A copy of the package for python-docx: the XML parts, checked and
    stored uncompressed, and every other part present but empty."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as source:
            members = source.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError) as exc:
        raise PackageRefused("the file is not a valid Word (.docx) document") from exc
    check_members(members, limits)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as package:
        for info in members:
            if info.is_dir():
                continue
            blob = b""
            if is_xml_part(info.filename):
                blob = inflate_member(data, info)
                check_xml(info.filename, blob)
            package.writestr(info.filename, blob)
    return out.getvalue()
