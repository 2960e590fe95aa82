"""Submissions over time, with the real model: uploads, dedupe, the persistent
partitioned index (incremental, every passage embedded once, survives a
restart) and reports anchored on chain whose tampering is detected."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sqlalchemy import select

from kernel.audit import AuditEntry
from plagiarism import courses, indexing, reports, submissions
from plagiarism.index import VectorIndex
from plagiarism.store import REPORT_ANCHORED, Report, ScoreRow, Submission
from tests.fixtures_plagiarism import docx_bytes

ESSAY_A = (
    "The printing press transformed how ideas travelled across Europe. Before Gutenberg, books were copied "
    "by hand in monasteries, which made them rare and expensive. Movable type let printers produce hundreds "
    "of identical pages in a single day. Pamphlets spread the arguments of reformers faster than the church "
    "could answer them. Literacy rose as cheap books reached merchants and craftsmen in growing towns."
)
ESSAY_B = (
    "Gutenberg's invention mattered less for its machinery than for what it did to trust. A printed page "
    "looked the same in Mainz and in Venice, so scholars could cite the same edition and argue about it. "
    "Errors were fixed in later printings instead of multiplying with every scribe. Scientists began to "
    "build on each other's tables and diagrams. In my view, that shared record is the real revolution."
)
ESSAY_C = (
    "Our class visited a paper mill last spring to see how pulp becomes sheets. The workers showed us vats "
    "of soaked fibre and the long rollers that press out the water. Each sheet was dried on heated drums "
    "before being cut to size. The noise was enormous and everyone wore ear protection. I had never "
    "thought about where the paper in my notebook comes from."
)
TEMPLATE = "Write about the consequences of the printing press for European society."


class CountingEncoder:
    """The real model, counting every passage it is asked to embed."""

    def __init__(self, inner):
        self.inner = inner
        self.model_id = inner.model_id
        self.dim = inner.dim
        self.seen: list[str] = []

    def encode(self, texts: list[str]) -> np.ndarray:
        self.seen.extend(texts)
        return self.inner.encode(texts)


@pytest.fixture(scope="session")
def model():
    from plagiarism.embedding import get_embedder

    return get_embedder()


@pytest.fixture
def encoder(model) -> CountingEncoder:
    return CountingEncoder(model)


@pytest.fixture
def index_dir(tmp_path):
    indexing._open_indexes.clear()
    return tmp_path / "index"


@pytest.fixture
def assignment(session):
    course = courses.create_course(session, "HIST210", "Early modern Europe")
    assignment = courses.create_assignment(session, course, "essay1", "The printing press", TEMPLATE)
    session.commit()
    return assignment


def test_upload_keeps_readable_files_and_says_why_others_are_not(session, assignment, index_dir, encoder):
    result = submissions.add_submissions(session, assignment, [
        ("ana_essay.txt", ESSAY_A.encode("utf-8")),
        ("ben_essay.docx", docx_bytes(ESSAY_B.split(". "))),
        ("cy_essay.txt", ESSAY_C.encode("cp1252")),
        ("dee_essay.pdf", b"%PDF-1.4 this is not really a pdf"),
        ("eve_essay.odt", b"whatever"),
        ("fay_essay.txt", b""),
    ], index_dir=index_dir, encoder=encoder)
    session.commit()
    assert sorted(s.student_id for s in result.added) == ["ana", "ben", "cy"]
    reasons = dict(result.errors)
    assert set(reasons) == {"dee_essay.pdf", "eve_essay.odt", "fay_essay.txt"}
    assert "PDF" in reasons["dee_essay.pdf"]
    assert "not supported" in reasons["eve_essay.odt"] and ".docx" in reasons["eve_essay.odt"]
    assert "empty" in reasons["fay_essay.txt"]
    stored = session.scalars(select(Submission).order_by(Submission.id)).all()
    assert [s.filename for s in stored] == ["ana_essay.txt", "ben_essay.docx", "cy_essay.txt"]
    assert "Gutenberg's invention" in stored[1].text


def test_same_text_is_kept_once(session, assignment, index_dir, encoder):
    first = submissions.add_submissions(session, assignment, [("ana.txt", ESSAY_A.encode()),
                                                          ("ana_again.md", ESSAY_A.encode("utf-8-sig"))],
                                    index_dir=index_dir, encoder=encoder)
    session.commit()
    second = submissions.add_submissions(session, assignment, [("bob.txt", ESSAY_A.encode("utf-16"))],
                                     index_dir=index_dir, encoder=encoder)
    session.commit()
    assert len(first.added) == 1
    assert first.duplicates == [("ana_again.md", "ana/ana.txt")]
    assert second.duplicates == [("bob.txt", "ana/ana.txt")] and not second.added
    assert session.scalar(select(Submission).where(Submission.filename == "bob.txt")) is None


def test_adding_one_submission_embeds_only_its_new_passages(session, assignment, index_dir, encoder):
    submissions.add_submissions(session, assignment, [("ana.txt", ESSAY_A.encode()), ("ben.txt", ESSAY_B.encode())],
                            index_dir=index_dir, encoder=encoder)
    session.commit()
    first = list(encoder.seen)
    assert first and len(first) == len(set(first))
    course = courses.get_course(session, "HIST210")
    partition = indexing.open_index(index_dir, encoder).partition(indexing.assignment_partition(course, assignment))
    rows_before = len(partition)

    encoder.seen.clear()
    # Cy's essay reuses two of Ana's sentences: those passages are already embedded.
    reused = ESSAY_A.split(". ")[0] + ". " + ESSAY_A.split(". ")[1] + ". "
    submissions.add_submissions(session, assignment, [("cy.txt", (reused + ESSAY_C).encode())],
                            index_dir=index_dir, encoder=encoder)
    session.commit()
    assert encoder.seen, "the new submission's passages are embedded"
    assert not set(encoder.seen) & set(first), "no passage is embedded twice"
    assert len(partition) > rows_before
    assert set(partition.doc_ids()) == {"s1", "s2", "s3"}

    # Building a report embeds nothing new: every window is in the cache.
    encoder.seen.clear()
    reports.build_report(session, assignment, index_dir, encoder=encoder)
    assert encoder.seen == []


def test_index_survives_a_restart(session, assignment, index_dir, encoder):
    submissions.add_submissions(session, assignment, [("ana.txt", ESSAY_A.encode()), ("ben.txt", ESSAY_B.encode())],
                            index_dir=index_dir, encoder=encoder)
    session.commit()
    query = encoder.inner.encode([ESSAY_A.split(". ")[2]])

    indexing._open_indexes.clear()  # a new process: nothing in memory
    fresh = CountingEncoder(encoder.inner)
    index = VectorIndex(index_dir, embedder=fresh)
    assert index.partitions() == ["HIST210/essay1"]
    partition = index.partition("HIST210/essay1")
    assert set(partition.doc_ids()) == {"s1", "s2"}
    assert partition.meta("s1")["filename"] == "ana.txt"
    hit = partition.search(query, k=1)[0][0]
    assert hit.score > 0.95 and hit.doc_id == "s1"
    assert ESSAY_A[hit.start:hit.end].startswith("Movable type")

    report = reports.build_report(session, assignment, index_dir, encoder=fresh)
    assert fresh.seen == [], "after a restart the cache still holds every passage"
    assert len(report.data["submissions"]) == 2


def test_partitions_are_separate_and_the_cache_is_shared(session, assignment, index_dir, encoder):
    course = courses.get_course(session, "HIST210")
    other = courses.create_assignment(session, course, "essay2", "Second essay")
    submissions.add_submissions(session, assignment, [("ana.txt", ESSAY_A.encode())], index_dir=index_dir,
                            encoder=encoder)
    n = len(encoder.seen)
    submissions.add_submissions(session, other, [("ana.txt", ESSAY_A.encode())], index_dir=index_dir,
                            encoder=encoder)
    assert len(encoder.seen) == n, "the same passages in another assignment are not embedded again"
    index = indexing.open_index(index_dir, encoder)
    assert sorted(index.partitions()) == ["HIST210/essay1", "HIST210/essay2"]
    assert index.partition("HIST210/essay1").doc_ids() == ["s1"]
    assert index.partition("HIST210/essay2").doc_ids() == ["s2"]


def test_report_flags_the_copy_not_the_independent_essay(session, assignment, index_dir, encoder):
    course = courses.get_course(session, "HIST210")
    submissions.add_source(session, course, "reading.txt", ESSAY_B, assignment, "reading", index_dir=index_dir,
                       encoder=encoder)
    lightly_edited = ESSAY_A.replace("transformed", "changed").replace("rare and expensive", "scarce and costly")
    submissions.add_submissions(session, assignment, [
        ("ana_essay.txt", ESSAY_A.encode()),
        ("ben_essay.txt", lightly_edited.encode()),
        ("cy_essay.txt", ESSAY_C.encode()),
        ("dee_essay.txt", ("Introduction. " + ESSAY_B).encode()),
    ], index_dir=index_dir, encoder=encoder)
    session.commit()
    report = reports.build_report(session, assignment, index_dir, "tester", encoder=encoder)
    rows = {r["student_id"]: r for r in report.data["submissions"]}
    assert rows["ana"]["flagged"] and rows["ben"]["flagged"] and rows["dee"]["flagged"]
    assert not rows["cy"]["flagged"] and rows["cy"]["score"] < 0.1
    # `coverage` is the share of text inside matched passages: all of a copy, none of the independent essay.
    assert rows["ana"]["coverage"] > 0.9 and rows["cy"]["coverage"] < 0.1
    assert rows["ana"]["cluster"] == rows["ben"]["cluster"] is not None
    assert rows["cy"]["cluster"] is None
    match = next(m for m in rows["dee"]["matches"] if m["type"] == "source")
    assert match["name"] == "reading.txt"
    s, e = match["source_span"]
    assert ESSAY_B[s:e] in ("Introduction. " + ESSAY_B)
    assert all("reasons" in r["anomaly"] for r in rows.values())
    assert session.scalars(select(ScoreRow).where(ScoreRow.report_id == report.id)).all()


def test_report_is_anchored_and_tampering_is_detected(session, assignment, index_dir, encoder, registry):
    submissions.add_submissions(session, assignment, [("ana.txt", ESSAY_A.encode()), ("ben.txt", ESSAY_A.encode() + b" ")],
                            index_dir=index_dir, encoder=encoder)
    session.commit()
    report = reports.anchor_report(session, reports.build_report(session, assignment, index_dir, "tester", encoder=encoder), registry, "tester")
    assert report.state == REPORT_ANCHORED and report.tx_hash and report.block_number
    assert report.anchor_root == report.fingerprint
    record = registry.anchor_of(report.fingerprint)
    assert record is not None and record.count == 1 and record.block_number == report.block_number
    result = reports.verify_report(report, registry)
    assert result["valid"], result
    actions = {a.action for a in session.scalars(select(AuditEntry))}
    assert {"report_built", "report_anchored"} <= actions

    # Someone lowers a score in the database: the content no longer hashes to the fingerprint.
    body = json.loads(report.body)
    body["submissions"][0]["score"] = 0.01
    report.body = json.dumps(body)
    session.commit()
    tampered = reports.verify_report(session.get(Report, report.id), registry)
    assert not tampered["valid"]
    assert {c["id"]: c["status"] for c in tampered["checks"]} == {"integrity": "failed", "anchor": "failed"}

    # ... and rewrites the fingerprint too: the chain does not know that one.
    from plagiarism.audit_anchor import fingerprint_of

    report.fingerprint = fingerprint_of(report.body)
    session.commit()
    rewritten = reports.verify_report(report, registry)
    checks = {c["id"]: c for c in rewritten["checks"]}
    assert checks["integrity"]["status"] == "passed" and checks["anchor"]["status"] == "failed"
    assert "not anchored" in checks["anchor"]["message"]


def test_review_is_written_to_the_audit_log(session, assignment, index_dir, encoder):
    submissions.add_submissions(session, assignment, [("ana.txt", ESSAY_A.encode())], index_dir=index_dir,
                            encoder=encoder)
    report = reports.build_report(session, assignment, index_dir, encoder=encoder)
    sub = session.scalar(select(Submission))
    reports.mark_reviewed(session, "prof@uni.edu", "Checked with the student; own work.", submission=sub,
                          report=report)
    entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "case_reviewed"))
    assert entry.actor == "prof@uni.edu" and entry.subject == f"submission:{sub.id}"
    assert entry.detail_dict["comment"] == "Checked with the student; own work."
    assert reports.reviews_of(session, sub)[0].reviewed


def test_many_sources_are_narrowed_through_the_index(session, assignment, index_dir, encoder, monkeypatch):
    course = courses.get_course(session, "HIST210")
    submissions.add_source(session, course, "paper-mills.txt", ESSAY_C, None, "reading", index_dir=index_dir,
                       encoder=encoder)
    submissions.add_source(session, course, "gutenberg.txt", ESSAY_B, None, "past cohort", index_dir=index_dir,
                       encoder=encoder)
    submissions.add_submissions(session, assignment, [("ana.txt", ("In short: " + ESSAY_B).encode())],
                            index_dir=index_dir, encoder=encoder)
    session.commit()
    index = indexing.open_index(index_dir, encoder)
    assert index.partition("HIST210/*sources").doc_ids() == ["r1", "r2"], "course-wide sources have their own"
    monkeypatch.setattr(reports, "SOURCE_CANDIDATE_LIMIT", 0)
    report = reports.build_report(session, assignment, index_dir, encoder=encoder)
    assert [s["name"] for s in report.data["sources"]] == ["gutenberg.txt"]
    row = report.data["submissions"][0]
    assert row["flagged"] and {m["name"] for m in row["matches"]} == {"gutenberg.txt"}



def test_anomalies_use_each_students_history_in_the_course(session, assignment, index_dir, encoder):
    """Wiring, not the detector's accuracy (the detection core's tests and
    bench measure that): a student's earlier assignments are their history,
    other students are the impostors, and too little history says so."""
    course = courses.get_course(session, "HIST210")
    texts = {"ana": [ESSAY_A, ESSAY_A.upper(), ESSAY_A.lower()], "ben": [ESSAY_B, ESSAY_B.lower(), ESSAY_B.upper()],
             "cy": [ESSAY_C, ESSAY_C.lower(), ESSAY_C.upper()]}
    earlier = [courses.create_assignment(session, course, f"warmup{n}") for n in (1, 2)]
    for n, a in enumerate(earlier):
        submissions.add_submissions(session, a, [(f"{who}_w{n}.txt", t[n + 1].encode()) for who, t in texts.items()],
                                index_dir=index_dir, encoder=encoder)
    submissions.add_submissions(session, assignment, [(f"{who}_final.txt", t[0].encode()) for who, t in texts.items()]
                            + [("dee_final.txt", (ESSAY_B + " " + ESSAY_C).encode())],
                            index_dir=index_dir, encoder=encoder)
    session.commit()
    report = reports.build_report(session, assignment, index_dir, encoder=encoder)
    rows = {r["student_id"]: r["anomaly"] for r in report.data["submissions"]}
    assert set(rows) == {"ana", "ben", "cy", "dee"}
    assert not rows["dee"]["flagged"] and "Too little history" in rows["dee"]["reasons"][0]
    for who in ("ana", "ben", "cy"):
        assert rows[who]["reasons"] and not rows[who]["reasons"][0].startswith("Too little history"), rows[who]
        assert rows[who]["evidence"], "the evidence per feature family is kept"


def test_the_same_text_stored_meanwhile_by_another_upload_is_a_duplicate(database, session, assignment):
    import hashlib

    added, ana = submissions.store_submission(session, assignment, "ana.txt", ESSAY_A, ("ana", "ana"), "t", "job-1")
    session.commit()
    with database.session() as other:  # another upload, in another worker, stores Ben's text first
        other.add(Submission(assignment_id=assignment.id, student_id="zed", filename="zed.txt",
                             text=ESSAY_B, sha256=hashlib.sha256(ESSAY_B.encode()).hexdigest()))
        other.commit()
    outcome, kept = submissions.store_submission(session, assignment, "ben.txt", ESSAY_B, ("ben", "ben"), "t",
                                                 "job-1")
    assert (added, outcome, kept.label) == ("added", "duplicate", "zed/zed.txt")
    # The same job stored Ana's before its worker died: taken up again, it is Ana's, not a duplicate.
    assert submissions.store_submission(session, assignment, "ana.txt", ESSAY_A, ("ana", "ana"), "t",
                                        "job-1")[0] == "added"
    assert submissions.store_submission(session, assignment, "ana.txt", ESSAY_A, ("ana", "ana"), "t",
                                        "job-2")[0] == "duplicate"
    assert len(session.scalars(select(Submission)).all()) == 2
