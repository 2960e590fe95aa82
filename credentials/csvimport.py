"""Reading an issuance CSV into validated `CredentialRequest`s.

The header is DESIGN.md's, column order free:
`recipient_name,recipient_email,achievement_name,achievement_type,description,awarded_on,valid_until,grade`
(`valid_until` and `grade` may be empty; dates are ISO 8601, YYYY-MM-DD).

A batch is all or nothing, so `parse_csv` never stops at the first problem: it
returns every request it could read *and* every error, each naming its row
(counted as a spreadsheet does: the header is row 1) and column, so a
registrar can fix the file in one pass. Callers issue only when `errors` is empty.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache

from credentials.document import ACHIEVEMENT_TYPES, CredentialRequest
from kernel.heap import collector_paused

COLUMNS = ("recipient_name", "recipient_email", "achievement_name", "achievement_type", "description",
           "awarded_on", "valid_until", "grade")
REQUIRED = ("recipient_name", "recipient_email", "achievement_name", "achievement_type", "description",
            "awarded_on")
MAX_LENGTH = {"recipient_name": 255, "recipient_email": 255, "achievement_name": 255, "achievement_type": 64,
              "grade": 64,
              "description": 4000}

TEMPLATE_CSV = (
    ",".join(COLUMNS) + "\r\n"
    + "Ada Lovelace,ada@example.edu,BSc Mathematics,BachelorDegree,"
      "\"Awarded for completing the three-year honours programme in mathematics.\",2025-06-30,,First Class\r\n"
    + "Alan Turing,alan@example.edu,Introduction to Logic,CertificateOfCompletion,"
      "Completed the twelve-week course and its assessments.,2025-07-15,2030-07-15,\r\n"
)

_EMAIL = re.compile(r"^[^@\s,;<>\"]+@[^@\s,;<>\"]+\.[^@\s,;<>\"]+$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TYPES_BY_LOWER = {t.lower(): t for t in ACHIEVEMENT_TYPES}


@dataclass(frozen=True)
class CsvError:
    """One problem: `row` is the spreadsheet row (header = 1) or None for the
    whole file; `column` is the header name or None."""

    row: int | None
    column: str | None
    message: str

    def __str__(self) -> str:
        where = []
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column:
            where.append(f"column {self.column}")
        return f"{', '.join(where)}: {self.message}" if where else self.message


@dataclass(frozen=True)
class PreviewRow:
    number: int  # the spreadsheet row, as CsvError counts it (header = 1)
    values: dict[str, str]


@dataclass
class CsvResult:
    requests: list[CredentialRequest] = field(default_factory=list)
    errors: list[CsvError] = field(default_factory=list)
    # The spreadsheet row each request came from, parallel to `requests`.
    rows: list[int] = field(default_factory=list)
    # For a preview (parse_csv(..., preview=N)): every row with an error and the
    # first N good ones, as written; and how many good rows were left out.
    shown: list[PreviewRow] = field(default_factory=list)
    hidden: int = 0
    _good_shown: int = field(default=0, repr=False)

    @property
    def ok(self) -> bool:
        return not self.errors and bool(self.requests)

    def errors_by_row(self) -> dict[int | None, list[CsvError]]:
        grouped: dict[int | None, list[CsvError]] = {}
        for error in self.errors:
            grouped.setdefault(error.row, []).append(error)
        return grouped


def _decode(data: bytes | str) -> str:
    if isinstance(data, str):
        return data.removeprefix("\ufeff")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise _FileError(
            f"the file is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}); "
            "save it as \"CSV UTF-8\" and upload it again") from exc


class _FileError(ValueError):
    pass


def parse_date(text: str) -> date:
    """An ISO 8601 calendar date, YYYY-MM-DD; ValueError saying what is wrong."""
    if not _ISO_DATE.match(text):
        raise ValueError(f"{text!r} is not an ISO 8601 date (YYYY-MM-DD)")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a real date") from None


def achievement_type(text: str) -> str:
    """The Open Badges 3.0 spelling of `text`, or an `ext:` extension type."""
    if text.startswith("ext:") and len(text) > 4:
        return text
    try:
        return _TYPES_BY_LOWER[text.lower()]
    except KeyError:
        raise ValueError(
            f"{text!r} is not an Open Badges 3.0 achievement type; use one of "
            f"{', '.join(ACHIEVEMENT_TYPES)}, or an extension written ext:Name") from None


def check_email(text: str) -> str:
    if not _EMAIL.match(text):
        raise ValueError(f"{text!r} is not an email address")
    return text


def _check_header(header: list[str]) -> list[CsvError]:
    names = [h.strip() for h in header]
    missing = [c for c in COLUMNS if c not in names]
    unknown = [h for h in names if h not in COLUMNS]
    repeated = sorted({h for h in names if names.count(h) > 1})
    errors = []
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing column(s): {', '.join(missing)}")
        if unknown:
            parts.append(f"unknown column(s): {', '.join(repr(u) for u in unknown)}")
        hint = ""
        if len(names) == 1 and (";" in names[0] or "\t" in names[0]):
            hint = " (the file seems to use ';' or tabs between columns: save it as comma-separated CSV)"
        errors.append(CsvError(1, None, "; ".join(parts) + f". The header must be: {','.join(COLUMNS)}{hint}"))
    if repeated:
        errors.append(CsvError(1, None, f"column(s) named twice: {', '.join(repeated)}"))
    return errors


_LIMITS = tuple(MAX_LENGTH.items())


@lru_cache(maxsize=4096)
def _good_date(text: str) -> date | None:
    """`parse_date(text)`, or None where it would raise: a batch's rows share
    a handful of dates, so each is parsed once."""
    try:
        return parse_date(text)
    except ValueError:
        return None


@lru_cache(maxsize=1024)
def _good_type(text: str) -> str | None:
    try:
        return achievement_type(text)
    except ValueError:
        return None


def parse_row(values: dict[str, str], row: int) -> tuple[CredentialRequest | None, list[CsvError]]:
    """One data row (already mapped by column name, stripped) → a request or errors."""
    # Nearly every row is good: check it in one pass, and only a row that
    # fails anything goes the long way, which names each problem.
    email, until_text = values["recipient_email"], values["valid_until"]
    if (all(values[column] for column in REQUIRED) and all(len(values[c]) <= n for c, n in _LIMITS)
            and _EMAIL.match(email)):
        kind, awarded = _good_type(values["achievement_type"]), _good_date(values["awarded_on"])
        valid_until = _good_date(until_text) if until_text else None
        if kind is not None and awarded is not None and (
                not until_text or (valid_until is not None and valid_until > awarded)):
            return CredentialRequest(
                recipient_name=values["recipient_name"], recipient_email=email.lower(),
                achievement_name=values["achievement_name"], achievement_type=kind,
                description=values["description"], awarded_on=awarded, valid_until=valid_until,
                grade=values["grade"] or None), []
    return _parse_row_checked(values, row)


def _parse_row_checked(values: dict[str, str], row: int) -> tuple[CredentialRequest | None, list[CsvError]]:
    """parse_row the long way: every check in turn, every error named."""
    errors: list[CsvError] = []

    def err(column: str, message: str) -> None:
        errors.append(CsvError(row, column, message))

    for column in REQUIRED:
        if not values[column]:
            err(column, f"{column.replace('_', ' ')} is missing")
    for column, limit in MAX_LENGTH.items():
        if len(values[column]) > limit:
            err(column, f"longer than {limit} characters")
    email = values["recipient_email"]
    if email:
        try:
            check_email(email)
        except ValueError as exc:
            err("recipient_email", str(exc))
    kind = None
    if values["achievement_type"]:
        try:
            kind = achievement_type(values["achievement_type"])
        except ValueError as exc:
            err("achievement_type", str(exc))
    awarded = valid_until = None
    for column in ("awarded_on", "valid_until"):
        if values[column]:
            try:
                parsed = parse_date(values[column])
            except ValueError as exc:
                err(column, str(exc))
                continue
            if column == "awarded_on":
                awarded = parsed
            else:
                valid_until = parsed
    if awarded and valid_until and valid_until <= awarded:
        err("valid_until", f"{valid_until.isoformat()} is not after awarded_on {awarded.isoformat()}")
    if errors:
        return None, errors
    return CredentialRequest(
        recipient_name=values["recipient_name"], recipient_email=email.lower(),
        achievement_name=values["achievement_name"], achievement_type=kind,
        description=values["description"], awarded_on=awarded, valid_until=valid_until,
        grade=values["grade"] or None,
    ), []


@collector_paused()  # a request object per row: see kernel.heap
def parse_csv(data: bytes | str, preview: int = 0) -> CsvResult:
    """Every request the CSV holds and every error in it; see the module doc.
    With `preview`, also the rows a preview shows (`shown`, `hidden`)."""
    result = CsvResult()
    try:
        text = _decode(data)
    except _FileError as exc:
        result.errors.append(CsvError(None, None, str(exc)))
        return result
    if not text.strip():
        result.errors.append(CsvError(None, None, "the file is empty; the first line must be the header: "
                                      + ",".join(COLUMNS)))
        return result
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except csv.Error as exc:
        result.errors.append(CsvError(1, None, f"the header cannot be read as CSV ({exc})"))
        return result
    header_errors = _check_header(header)
    if header_errors:
        result.errors.extend(header_errors)
        return result
    index = {name.strip(): i for i, name in enumerate(header)}
    order = [index[c] for c in COLUMNS]
    width = len(header)
    seen: dict[tuple, int] = {}
    try:
        while True:
            row = reader.line_num + 1  # the line the record starts on
            cells = next(reader, None)
            if cells is None:
                break
            if not any(c.strip() for c in cells):
                continue  # blank lines are not rows
            if len(cells) != width:
                result.errors.append(CsvError(row, None, f"has {len(cells)} cells; the header has {width}"))
                _show(result, row, dict(zip((h.strip() for h in header), cells, strict=False)), preview, True)
                continue
            values = {c: cells[i].strip() for c, i in zip(COLUMNS, order, strict=True)}
            request, errors = parse_row(values, row)
            if errors:
                result.errors.extend(errors)
                _show(result, row, values, preview, True)
                continue
            key = (request.recipient_name.casefold(), request.recipient_email, request.achievement_name.casefold(),
                   request.achievement_type, request.awarded_on)
            if key in seen:
                result.errors.append(CsvError(row, None, f"duplicate of row {seen[key]} (same recipient, "
                                              "achievement and date)"))
                _show(result, row, values, preview, True)
                continue
            seen[key] = row
            result.requests.append(request)
            result.rows.append(row)
            _show(result, row, values, preview, False)
    except csv.Error as exc:
        result.errors.append(CsvError(row, None, f"not valid CSV ({exc})"))
    if not result.requests and not result.errors:
        result.errors.append(CsvError(None, None, "the file has a header but no credentials"))
    return result


def _show(result: CsvResult, row: int, values: dict[str, str], preview: int, has_error: bool) -> None:
    if not preview:
        return
    if has_error:
        result.shown.append(PreviewRow(row, values))
    elif result._good_shown < preview:
        result._good_shown += 1
        result.shown.append(PreviewRow(row, values))
    else:
        result.hidden += 1
