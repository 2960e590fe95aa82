"""The ghost-writing benchmark's classes are built as the evaluation claims: no markup that names the
student, the ghost-written essay answers the same assignment, tuning and evaluation never share a student."""

from __future__ import annotations

import pytest

from bench.authorship_corpora import CorpusMissing, clean_use, load_use, split_of, use_classes


def _essay(student: str, code: str, words: str) -> str:
    return f"<doc.id={student}.{code}>\r\n<title> On {code} </title>\r\n{words}\r\n<table removed>\r\n</doc>\r\n"


def test_the_markup_that_names_the_student_is_removed():
    text = clean_use(_essay("0123", "a2", "I think so."))
    assert "0123" not in text and "<" not in text
    assert text == "On a2 \nI think so."


def test_classes_draw_ghost_essays_from_outside_the_class_on_the_same_assignment(tmp_path, monkeypatch):
    codes = ("a1", "a2", "a3", "a4")
    for n in range(40):
        student = f"{n:04d}"
        for code in codes:
            folder = tmp_path / "use" / code
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{student}.{code}.txt").write_text(_essay(student, code, f"text of {student} for {code}"),
                                                          encoding="latin-1")
    monkeypatch.setenv("ATTEST_CORPORA_DIR", str(tmp_path))
    by = load_use()
    assert len(by) == 40 and by["0007"]["a3"] == "On a3 \ntext of 0007 for a3"
    seen = {}
    for split in ("tune", "eval"):
        for cl in use_classes(by, split, rounds=2, seed=1):
            for student, (latest, label) in cl.latest.items():
                sid = student[1:]
                assert split_of(f"use:{sid}") == split
                seen.setdefault(split, set()).add(sid)
                assert latest == "3-a4.txt" and sorted(cl.students[student]) == ["0-a1.txt", "1-a2.txt",
                                                                                "2-a3.txt", "3-a4.txt"]
                text = cl.students[student][latest]
                writer = text.split()[-3]
                assert text.endswith("for a4")
                assert (writer == sid) == (label == 0)
                if label:
                    assert f"s{writer}" not in cl.students and split_of(f"use:{writer}") == split
    assert seen["tune"] and seen["eval"] and not seen["tune"] & seen["eval"]


def test_a_missing_corpus_says_where_to_get_it(tmp_path, monkeypatch):
    monkeypatch.delenv("ATTEST_CORPORA_DIR", raising=False)
    with pytest.raises(CorpusMissing, match="ATTEST_CORPORA_DIR is not set"):
        load_use()
    monkeypatch.setenv("ATTEST_CORPORA_DIR", str(tmp_path))
    with pytest.raises(CorpusMissing, match="CORPORA.md"):
        load_use()
