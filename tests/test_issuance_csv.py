"""The issuance CSV: every kind of error names its row (header = row 1) and column."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from credentials.csvimport import COLUMNS, TEMPLATE_CSV, parse_csv

HEADER = ",".join(COLUMNS)
GOOD = "Ada Lovelace,ada@example.edu,BSc Mathematics,BachelorDegree,Honours programme.,2025-06-30,,First Class"
DATA = Path(__file__).parent / "data"


def csv_of(*rows: str, header: str = HEADER) -> str:
    return "\n".join([header, *rows]) + "\n"


def only_error(text: str | bytes):
    result = parse_csv(text)
    assert len(result.errors) == 1, result.errors
    return result.errors[0]


def test_the_template_and_the_sample_parse_cleanly():
    for source in (TEMPLATE_CSV, (DATA / "issue_sample.csv").read_bytes()):
        result = parse_csv(source)
        assert result.ok, result.errors
    result = parse_csv((DATA / "issue_sample.csv").read_bytes())
    assert [r.recipient_name for r in result.requests] == ["Ada Lovelace", "Alan Turing", "Zoë Ñúñez"]
    assert result.rows == [2, 3, 4]
    turing = result.requests[1]
    assert turing.valid_until == date(2030, 7, 15) and turing.grade is None
    assert turing.description == "Twelve-week course, with assessments."


def test_a_utf8_bom_is_accepted_and_columns_may_be_reordered():
    reordered = "grade,valid_until,awarded_on,description,achievement_type,achievement_name,recipient_email,recipient_name"
    text = "\ufeff" + reordered + "\r\nA,,2025-01-02,Desc,diploma,Diploma in Art,x@example.org,Bo Li\r\n"
    result = parse_csv(text.encode("utf-8"))
    assert result.ok, result.errors
    assert result.requests[0].achievement_type == "Diploma", "type names are matched case-insensitively"
    assert result.requests[0].recipient_name == "Bo Li"


@pytest.mark.parametrize("row, column, words", [
    (",ada@example.edu,BSc,BachelorDegree,Desc,2025-06-30,,", "recipient_name", "missing"),
    ("Ada,not-an-email,BSc,BachelorDegree,Desc,2025-06-30,,", "recipient_email", "not an email"),
    ("Ada,ada@example.edu,BSc,BachelorDegree,Desc,30/06/2025,,", "awarded_on", "ISO 8601"),
    ("Ada,ada@example.edu,BSc,BachelorDegree,Desc,2025-02-30,,", "awarded_on", "not a real date"),
    ("Ada,ada@example.edu,BSc,BachelorDegree,Desc,2025-06-30,2024-01-01,", "valid_until", "not after"),
    ("Ada,ada@example.edu,BSc,Wizardry,Desc,2025-06-30,,", "achievement_type", "BachelorDegree"),
    ("Ada,ada@example.edu,,BachelorDegree,Desc,2025-06-30,,", "achievement_name", "missing"),
    ("Ada,ada@example.edu,BSc,BachelorDegree,,2025-06-30,,", "description", "missing"),
])
def test_each_row_error_names_its_row_and_column(row, column, words):
    error = only_error(csv_of(GOOD.replace("Ada Lovelace", "Someone Else"), row))
    assert error.row == 3 and error.column == column
    assert words in error.message
    assert str(error).startswith(f"row 3, column {column}: ")


def test_unknown_type_lists_the_allowed_ones():
    error = only_error(csv_of("Ada,ada@example.edu,BSc,Wizardry,Desc,2025-06-30,,"))
    for allowed in ("BachelorDegree", "Diploma", "Certificate", "MasterDegree", "ext:Name"):
        assert allowed in error.message


def test_every_error_is_reported_not_just_the_first():
    result = parse_csv(csv_of(",bad,BSc,Wizardry,Desc,2025-13-01,,", GOOD))
    assert {(e.row, e.column) for e in result.errors} == {
        (2, "recipient_name"), (2, "recipient_email"), (2, "achievement_type"), (2, "awarded_on")}
    assert len(result.requests) == 1, "good rows are still read, for the preview"


def test_duplicate_row():
    error = only_error(csv_of(GOOD, GOOD.replace("ada@", "ADA@")))
    assert error.row == 3 and "duplicate of row 2" in error.message


def test_wrong_header_names_missing_and_unknown_columns():
    header = HEADER.replace("awarded_on", "date").replace(",grade", "")
    error = only_error(csv_of(GOOD, header=header))
    assert error.row == 1
    assert "missing column(s): awarded_on, grade" in error.message
    assert "unknown column(s): 'date'" in error.message


def test_wrong_number_of_cells():
    error = only_error(csv_of("Ada,ada@example.edu,BSc"))
    assert error.row == 2 and "3 cells" in error.message


@pytest.mark.parametrize("content", [b"", b"   \n\n", ""])
def test_empty_file(content):
    error = only_error(content)
    assert error.row is None and "empty" in str(error)


def test_header_without_rows():
    assert "no credentials" in str(only_error(csv_of()))


def test_not_utf8():
    error = only_error(csv_of(GOOD.replace("Ada Lovelace", "Zoë")).encode("latin-1"))
    assert "not UTF-8" in error.message and "line 2" in error.message


def test_blank_lines_are_skipped_and_rows_keep_their_line_numbers():
    result = parse_csv(csv_of(GOOD, "", "Bo,bad-email,BSc,BachelorDegree,Desc,2025-06-30,,"))
    assert [(e.row, e.column) for e in result.errors] == [(4, "recipient_email")]


def test_semicolon_separated_files_get_a_hint():
    error = only_error(csv_of(GOOD.replace(",", ";"), header=HEADER.replace(",", ";")))
    assert error.row == 1 and "comma-separated" in error.message


_CELLS = {
    "recipient_name": ["", "Ada Lovelace", "Zoë", "n" * 255, "n" * 256],
    "recipient_email": ["", "ada@example.edu", "Ada@Example.EDU", "not-an-email", "a@b", "a b@c.d",
                        "x" * 250 + "@e.du", "x" * 251 + "@e.du"],
    "achievement_name": ["", "BSc Mathematics", "a" * 256],
    "achievement_type": ["", "BachelorDegree", "bachelordegree", "Diploma", "NoSuchType", "ext:Mine", "ext:",
                         "ext:" + "x" * 61],
    "description": ["", "Three years.", "d" * 4000, "d" * 4001],
    "awarded_on": ["", "2025-06-30", "2025-02-30", "30/06/2025", "2025-6-30"],
    "valid_until": ["", "2030-01-01", "2025-06-30", "2020-01-01", "2031-13-01", "soon"],
    "grade": ["", "First", "g" * 64, "g" * 65],
}


def test_the_quick_row_check_agrees_with_the_full_one():
    """parse_row answers a good row in one pass and sends any other to the
    full check: on rows drawn from good and bad cells in every column, both
    give the same request or the same errors."""
    import random

    from credentials.csvimport import _parse_row_checked, parse_row

    rng = random.Random(14)
    outcomes = set()
    for _ in range(4000):
        values = {column: rng.choice(cells) for column, cells in _CELLS.items()}
        if rng.random() < 0.5:  # half the rows good but for at most one cell
            values.update({c: cells[1] for c, cells in _CELLS.items() if c != rng.choice(COLUMNS)})
        quick, full = parse_row(values, 7), _parse_row_checked(values, 7)
        assert quick == full, values
        outcomes.add(quick[0] is None)
    assert outcomes == {True, False}
