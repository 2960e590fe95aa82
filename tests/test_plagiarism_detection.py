"""Detection with the real embedding model: copies, edits and paraphrases are found with the right
spans; same-topic answers, quotations and bibliographies are not counted; anomalies come with reasons."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from plagiarism.anomaly import detect_anomalies
from plagiarism.nearduplicate import FLAG_THRESHOLD, scan
from tests import fixtures_plagiarism
from tests.fixtures_plagiarism import (
    CONCLUSION,
    COPIED,
    HEAVY_PARAPHRASE,
    INDEPENDENT_A,
    INDEPENDENT_B,
    INTRO,
    LIGHT_EDIT,
    LIGHTLY_EDITED,
    PARAPHRASED,
    QUOTED,
    SOURCE,
    VERBATIM,
)

# The session-scoped model fixtures (also loadable as a pytest plugin).
embedder = fixtures_plagiarism.embedder
encode = fixtures_plagiarism.encode

pytestmark = pytest.mark.slow
AUTHORSHIP = Path(__file__).resolve().parent.parent / "bench" / "data" / "authorship.jsonl"


def _scan_one(text: str, encode) -> tuple:
    result = scan({"essay.txt": text}, {"reading.txt": SOURCE}, encode=encode)
    return result.reports[0]


def _region(text: str, part: str) -> tuple[int, int]:
    start = text.index(part)
    return start, start + len(part)


def _sentence_range(sentence_start: str, sentence_end: str) -> tuple[int, int]:
    return SOURCE.index(sentence_start), SOURCE.index(sentence_end) + len(sentence_end)


def test_verbatim_copy_is_flagged_and_its_passage_found(encode):
    report = _scan_one(VERBATIM, encode)
    assert report.flagged and report.score > 0.4
    (match,) = report.matches
    assert match.source == "reading.txt" and match.similarity > 0.95
    lo, hi = _region(VERBATIM, COPIED)
    s0, s1 = match.submission_span
    assert abs(s0 - lo) <= 1 and abs(s1 - hi) <= 2, VERBATIM[s0:s1]
    r0, r1 = match.source_span
    assert SOURCE[r0:r1].rstrip(".") == COPIED.rstrip(".")
    # The student's own introduction and conclusion are not part of the passage.
    assert s0 >= len(INTRO) and s1 <= VERBATIM.index(CONCLUSION)


def test_light_edit_is_flagged_and_points_at_the_edited_sentences(encode):
    report = _scan_one(LIGHT_EDIT, encode)
    # The score weighs passage coverage with masked n-gram containment; a human light edit
    # changes function words too, so the coverage (the share of the text in matched
    # passages) carries it here, and the score stays well above the flag threshold.
    assert report.flagged and report.evidence["coverage"] > 0.3 and report.score > 2 * FLAG_THRESHOLD
    lo, hi = _region(LIGHT_EDIT, LIGHTLY_EDITED)
    src_lo, src_hi = _sentence_range("Mass bleaching events", "shorter than that.")
    assert report.matches
    covered = 0
    for m in report.matches:
        assert lo - 1 <= m.submission_span[0] and m.submission_span[1] <= hi + 1
        assert src_lo - 1 <= m.source_span[0] and m.source_span[1] <= src_hi + 1
        covered += m.submission_span[1] - m.submission_span[0]
    assert covered > 0.8 * (hi - lo)


def test_heavy_paraphrase_is_flagged_and_matched_to_the_sentences_it_rewrites(encode):
    report = _scan_one(HEAVY_PARAPHRASE, encode)
    assert report.flagged, report.score
    lo, hi = _region(HEAVY_PARAPHRASE, PARAPHRASED)
    src_lo, src_hi = _sentence_range("Coral bleaching happens", "it will die.")
    assert report.matches
    for m in report.matches:
        assert "paraphrase" in m.method
        assert lo <= m.submission_span[0] and m.submission_span[1] <= hi
        assert src_lo <= m.source_span[0] and m.source_span[1] <= src_hi
    # The rewrite of "a bleached coral is not yet dead, but it is starving" is found as such.
    starving = HEAVY_PARAPHRASE.index("At first a bleached coral")
    hit = [m for m in report.matches if m.submission_span[0] == starving]
    assert hit and "A bleached coral is not yet dead" in SOURCE[hit[0].source_span[0]:hit[0].source_span[1]]


def test_independent_answers_to_the_same_question_are_not_flagged(encode):
    result = scan({"a.txt": INDEPENDENT_A, "b.txt": INDEPENDENT_B}, {"reading.txt": SOURCE}, encode=encode)
    for report in result.reports:
        assert not report.flagged and report.score < FLAG_THRESHOLD, report.as_dict()
    assert result.clusters == []


def test_quotations_and_bibliography_do_not_count(encode):
    report = _scan_one(QUOTED, encode)
    assert not report.flagged and report.score == 0.0
    kinds = {k for _, _, k in report.excluded}
    assert kinds == {"quotation", "block quotation", "bibliography"}
    # The same words without quotation marks, '>' and the References heading are copying.
    unmarked = (QUOTED.replace('"', "").replace("> ", "").replace("References\n\n", ""))
    assert _scan_one(unmarked, encode).flagged


def test_instructor_template_does_not_count(encode):
    prompt = ("Assignment 3: coral reefs in a warming ocean. Explain in your own words what coral "
              "bleaching is, what causes it, and what can be done about it. Use at least two sources "
              "and cite them in the references list at the end. Your answer should be between three "
              "and five paragraphs long. Part A: describe the process. Part B: discuss the evidence "
              "from one region of your choice. Part C: give your own view of what should be done.")
    a = f"{prompt}\n\n{INDEPENDENT_A}"
    b = f"{prompt}\n\n{INDEPENDENT_B}"
    with_template = scan({"a.txt": a, "b.txt": b}, templates=[prompt], encode=encode)
    assert not any(r.flagged for r in with_template.reports)
    without = scan({"a.txt": a, "b.txt": b}, encode=encode)
    assert all(r.flagged for r in without.reports)


def test_students_who_copy_from_each_other_form_a_cluster(encode):
    first = f"{INTRO}\n\n{PARAPHRASED}\n\n{CONCLUSION}"
    second = f"{INDEPENDENT_B}\n\n{PARAPHRASED}"
    third = f"{PARAPHRASED}\n\n{INDEPENDENT_A}"
    own = ("My answer focuses on tourism. Visitors pay to see bright reefs, so when a reef turns grey "
           "the dive shops and hotels nearby lose money. In Belize, guides now take groups to deeper "
           "sites where the water stays cooler, and some have started helping scientists count fish.")
    result = scan({"ann.txt": first, "bob.txt": second, "cy.txt": third, "dee.txt": own}, encode=encode)
    assert result.clusters == [["ann.txt", "bob.txt", "cy.txt"]]
    bob = next(r for r in result.reports if r.submission == "bob.txt")
    assert {m.source for m in bob.matches} == {"ann.txt", "cy.txt"}
    lo, hi = _region(second, PARAPHRASED)
    assert all(lo <= m.submission_span[0] and m.submission_span[1] <= hi for m in bob.matches)


def test_each_passage_is_embedded_once_per_scan(embedder):
    seen: list[str] = []

    def counting(texts: list[str]):
        seen.extend(texts)
        return embedder.encode(texts)

    scan({"a.txt": VERBATIM, "b.txt": VERBATIM, "c.txt": LIGHT_EDIT}, {"reading.txt": SOURCE},
         encode=counting)
    assert seen and len(seen) == len(set(seen))


# ---------------------------------------------------------------------------- anomalies

def _authorship(split: str = "eval") -> dict[str, list[str]]:
    by: dict[str, list[str]] = {}
    for line in AUTHORSHIP.open():
        row = json.loads(line)
        if row["split"] == split:
            by.setdefault(row["author"], []).append(row["text"])
    return by


def test_ghost_written_text_among_a_students_own_is_flagged_with_reasons():
    by = _authorship()
    student = {f"{n}-essay.txt": t for n, t in enumerate(by["Vinay Sajip"][:3])}
    student["3-essay.txt"] = by["R. David Murray"][0]  # written by someone else
    students = {"sam": student}
    for author in ("A.M. Kuchling", "Raymond Hettinger", "Guido van Rossum", "Gordon McMillan"):
        students[author.split()[-1].lower()] = {f"{n}.txt": t for n, t in enumerate(by[author][:3])}
    reports = {r.submission: r for r in detect_anomalies(students) if r.student == "sam"}
    ghost = reports["3-essay.txt"]
    assert ghost.flagged
    assert all(not reports[f"{n}-essay.txt"].flagged for n in range(3))
    assert ghost.score > max(reports[f"{n}-essay.txt"].score for n in range(3)) + 0.2
    assert any("not a finding of misconduct" in reason for reason in ghost.reasons)
    assert not any("plagiar" in reason.lower() or "cheat" in reason.lower() for reason in ghost.reasons)
    assert set(ghost.evidence) == {"vocabulary", "function_words", "style", "cohort_outlier"}
    # The reasons name the evidence that drove the flag, with its figures: how many other
    # students' texts resemble the student's own writing more than this text does.
    family = next(r for r in ghost.reasons if r.startswith("By vocabulary"))
    assert "other students' texts most like this one" in family and "resemble this student's" in family
    assert ghost.evidence["vocabulary"] > reports["0-essay.txt"].evidence["vocabulary"]


def test_too_little_history_says_so():
    by = _authorship()
    students = {"new": {"1.txt": by["Vinay Sajip"][0], "2.txt": by["R. David Murray"][0]},
                "old": {f"{n}.txt": t for n, t in enumerate(by["A.M. Kuchling"][:3])}}
    reports = [r for r in detect_anomalies(students) if r.student == "new"]
    assert len(reports) == 2
    for r in reports:
        assert not r.flagged and r.score == 0.0
        assert r.reasons[0].startswith("Too little history")


# ---------------------------------------------------------------------------- same-prompt answers

QUESTION = "Explain what causes coral bleaching and what can be done to protect reefs."
HONEST_A = ("Coral bleaching is mostly caused by water that is warmer than usual. When the sea heats up, "
            "the coral pushes out the tiny algae that live inside it and turns white. "
            "If the heat lasts for weeks the coral can starve and die. "
            "To protect reefs we need to cut pollution and, above all, slow down global warming.")
HONEST_B = ("The main cause of coral bleaching is rising ocean temperature. Hot water makes corals "
            "lose the algae in their tissues, so they go pale. "
            "A coral that stays bleached for a long time may die. "
            "Reducing greenhouse gas emissions is the best way to protect reefs, together with cleaner coastal water.")


def test_same_prompt_answers_close_in_meaning_are_not_flagged_but_a_copy_is(encode):
    from plagiarism.segment import sentences

    def sentence_vectors(text):
        return encode([text[s.start:s.end] for s in sentences(text)])

    # The premise: two honest answers to one question have sentences very close in embedding space.
    closeness = sentence_vectors(HONEST_A) @ sentence_vectors(HONEST_B).T
    assert closeness.max() >= 0.85 and (closeness >= 0.8).sum() >= 2
    result = scan({"a.txt": HONEST_A, "b.txt": HONEST_B, "c.txt": LIGHT_EDIT}, {"reading.txt": SOURCE},
                  templates=[QUESTION], encode=encode)
    reports = {r.submission: r for r in result.reports}
    for honest in ("a.txt", "b.txt"):
        assert not reports[honest].flagged and reports[honest].matches == [], reports[honest].as_dict()
    copy = reports["c.txt"]
    assert copy.flagged and {m.source for m in copy.matches} == {"reading.txt"}
    # Every counted passage names textual evidence, never the embedding alone.
    for m in copy.matches:
        assert {"shared_run", "rare_words", "structure", "aligned"} & set(m.evidence), m.evidence
        assert m.reasons and not m.reasons[0].startswith("Its meaning")
