"""How much a submission file may cost to read: one validated, immutable object.

Uploaded files are hostile until read. A 1 MB .docx can inflate to gigabytes
(a decompression bomb), a PDF can hold ten thousand pages, and an XML part can
declare entities that expand without end. Extraction checks every one of these
against `ExtractionLimits` and refuses the file with a sentence naming the
limit and what it found, so the other files of an upload go on.

The defaults fit real coursework with a wide margin (a 300-page thesis is
about 600,000 characters, its document.xml a few MB) and keep the extraction
worker well under its memory limit. Operators change them with environment
variables named after the fields: ATTEST_EXTRACT_MAX_PDF_PAGES=20000,
ATTEST_EXTRACT_MEMORY_MB=1024, ... (`ExtractionLimits.from_env`); tests pass
`ExtractionLimits(max_pdf_pages=50)` or `DEFAULT_LIMITS.replace(...)`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields

MB = 1024 * 1024
ENV_PREFIX = "ATTEST_EXTRACT_"


@dataclass(frozen=True)
class ExtractionLimits:
    """Bounds on reading one submission file (sizes in bytes unless named otherwise)."""

    # The file as uploaded. The web form allows 64 MB per request in all.
    max_file_bytes: int = 50 * MB
    # Characters of extracted text: about 170,000 words, far past a thesis.
    max_text_chars: int = 1_000_000

    # Zip packages (.docx), judged from the central directory before anything
    # is inflated. A Word file has 10-40 parts, a few hundred with many images.
    max_zip_members: int = 1_000
    # Declared uncompressed size of one member, and of all members together.
    max_member_bytes: int = 64 * MB
    max_total_bytes: int = 256 * MB
    # Uncompressed / compressed size of one member. Word's XML packs about
    # 10:1; Apache POI's zip-bomb guard uses 100:1 too. Members that inflate
    # to less than `ratio_grace_bytes` are not judged: small parts of
    # repetitive markup may pack very tightly and cost nothing.
    max_ratio: float = 100.0
    ratio_grace_bytes: int = 1 * MB
    # XML actually inflated and handed to the parser, all parts together.
    # python-docx needs about 13 bytes of memory per byte of dense XML, so
    # 32 MB of XML stays near 400 MB in the worker.
    max_xml_bytes: int = 32 * MB

    # PDFs. pypdf reads about 1,500 simple pages a second here, so even the
    # largest allowed file finishes in seconds to minutes, with progress.
    max_pdf_pages: int = 10_000
    # Characters on one page: a dense page has 3,000-5,000.
    max_page_chars: int = 100_000

    # The extraction worker process (plagiarism.isolation): its address-space
    # limit, and the wall-clock time one file may take in it.
    memory_mb: int = 768
    timeout_seconds: float = 300.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"extraction limit {f.name} must be a number, not {value!r}")
            if value <= 0:
                raise ValueError(f"extraction limit {f.name} must be positive, not {value!r}")
        if self.max_member_bytes > self.max_total_bytes:
            raise ValueError("extraction limit max_member_bytes cannot exceed max_total_bytes")
        # The worker's interpreter and libraries take about 70 MB before any file.
        if self.memory_mb < 128:
            raise ValueError(f"extraction limit memory_mb must be at least 128, not {self.memory_mb}")

    def replace(self, **changes: int | float) -> ExtractionLimits:
        """A copy with some limits changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, int | float]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, int | float]) -> ExtractionLimits:
        """Limits from a mapping of field names; unknown names are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown extraction limits: {', '.join(unknown)}")
        return cls(**values)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ExtractionLimits:
        """The defaults, with any ATTEST_EXTRACT_<FIELD> environment variable applied."""
        environ = os.environ if environ is None else environ
        changes: dict[str, int | float] = {}
        for f in fields(cls):
            raw = environ.get(ENV_PREFIX + f.name.upper())
            if raw is None or not raw.strip():
                continue
            try:
                changes[f.name] = float(raw) if f.type in ("float", float) else int(raw)
            except ValueError:
                raise ValueError(f"{ENV_PREFIX}{f.name.upper()} must be a number, not {raw!r}") from None
        return cls(**changes)


DEFAULT_LIMITS = ExtractionLimits()


def describe_bytes(n: int | float) -> str:
    """A size as a person reads it: 512 bytes, 40 KB, 12.5 MB, 2.1 GB."""
    if n < 1024:
        return f"{int(n)} bytes"
    for unit, size in (("GB", MB * 1024), ("MB", MB), ("KB", 1024)):
        if n >= size:
            value = n / size
            return f"{value:.0f} {unit}" if value >= 10 or value == int(value) else f"{value:.1f} {unit}"
    return f"{int(n)} bytes"  # pragma: no cover - the loop always returns
