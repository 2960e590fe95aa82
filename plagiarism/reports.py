"""Similarity reports: built by a `build_report` job, stored, anchored, reviewed.

A report compares an assignment's submissions with each other and with its
sources (the near-duplicate core), looks for anomalies over every student's
texts in the course (the authorship core), and is stored as the RFC 8785
canonical JSON of its body with that body's keccak256: the fingerprint one
`anchor(fingerprint, 1)` transaction records on chain, so a report shown to a
misconduct panel can be proven unchanged since it was made.

The job is idempotent: the report is stored under the job's id before its
anchoring transaction is sent (a job taken up again anchors the stored report
instead of building another), and the chain is asked before anything is sent.
A chain that is down leaves a usable report in state `anchor_failed`, which
"Anchor now" finishes later.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from kernel import audit
from kernel.database import utcnow
from kernel.jobs import Job, JobContext, Stage, dispatch, job_kind, submit
from plagiarism import audit_anchor
from plagiarism.courses import ServiceError, sources_for
from plagiarism.index import VectorIndex
from plagiarism.indexing import (
    assignment_partition,
    index_documents,
    open_index,
    submission_doc,
    templates_of,
)
from plagiarism.store import (
    REPORT_ANCHOR_FAILED,
    REPORT_ANCHORED,
    REPORT_UNANCHORED,
    Assignment,
    Course,
    Report,
    Review,
    ScoreRow,
    Source,
    Submission,
)

KIND = "build_report"
# Above this many reference sources, a report compares each submission only
# with the sources whose passages the index finds close to its own.
SOURCE_CANDIDATE_LIMIT = 40
# A source with a passage at least this close (cosine) to a submission passage
# gets the full comparison. Kept low on purpose: this only narrows the set,
# the detection core decides what counts.
CANDIDATE_SIM = 0.70
Progress = Callable[[Stage, int, int], None]


def _quiet(stage: Stage, done: int, total: int) -> None:
    pass


def _history(session: Session, assignment: Assignment) -> dict[str, list[Submission]]:
    """Every student's submissions in the course, oldest first."""
    rows = session.execute(
        select(Submission, Assignment).join(Assignment, Submission.assignment_id == Assignment.id)
        .where(Assignment.course_id == assignment.course_id)
        .order_by(Assignment.created_at, Assignment.id, Submission.uploaded_at, Submission.id)).all()
    out: dict[str, list[Submission]] = {}
    for sub, _ in rows:
        out.setdefault(sub.student_id, []).append(sub)
    return out


def _anomalies(session: Session, assignment: Assignment, subs: list[Submission], index: VectorIndex) -> dict[int, dict]:
    """Anomaly results per submission of this assignment, from the authorship core
    run over every student's texts in the course (the cohort as impostors)."""
    from plagiarism.anomaly import detect_anomalies

    history = _history(session, assignment)
    # Names sort oldest first, as the detector expects.
    students = {student: {f"{n:06d}-s{s.id}": s.text for n, s in enumerate(items)}
                for student, items in history.items()}
    wanted = {s.id for s in subs}
    out: dict[int, dict] = {}
    for r in detect_anomalies(students, encode=index.encode):
        sub_id = int(r.submission.rsplit("-s", 1)[1])
        if sub_id in wanted:
            d = r.as_dict()
            out[sub_id] = {"score": d["score"], "flagged": d["flagged"], "reasons": d["reasons"],
                           "evidence": d.get("evidence", {})}
    for s in subs:
        out.setdefault(s.id, {"score": 0.0, "flagged": False, "evidence": {},
                              "reasons": ["No anomaly result for this submission."]})
    return out


def _candidate_sources(index: VectorIndex, course: Course, assignment: Assignment,
                       sources: list[Source], threshold: float) -> list[Source]:
    """With many sources, keep those with a passage close to some submission
    passage: searched in the assignment's partition (its own sources) and the
    course's sources partition, exact or HNSW as the index decides."""
    if len(sources) <= SOURCE_CANDIDATE_LIMIT:
        return sources
    own = index.partition(assignment_partition(course, assignment))
    course_wide = index.partition(assignment_partition(course, None))
    submissions = [d for d in own.doc_ids() if d.startswith("s")]
    hits: set[str] = set()
    for doc in submissions:
        queries = own.vectors(doc)
        for part, exclude in ((own, submissions), (course_wide, ())):
            for found in part.search(queries, k=8, exclude=exclude):
                hits.update(h.doc_id for h in found if h.score >= threshold)
    return [s for s in sources if f"r{s.id}" in hits]


def report_body(course: Course, assignment: Assignment, subs: list[Submission], sources: list[Source],
                result, anomalies: dict[int, dict], actor: str) -> dict:
    """The report as stored and anchored: every piece of evidence the detection
    core gave (`Match.as_dict()`: its signals, reasons and confidence), so the
    stored report needs no edit here when a signal is added."""
    from plagiarism.nearduplicate import FLAG_THRESHOLD

    by_key = {f"s{s.id}": s for s in subs}
    src_by_key = {f"r{s.id}": s for s in sources}
    cluster_of = {key: n + 1 for n, group in enumerate(result.clusters) for key in group}

    def ref(key: str) -> dict:
        if key in by_key:
            s = by_key[key]
            return {"type": "submission", "id": s.id, "name": s.label}
        s = src_by_key[key]
        return {"type": "source", "id": s.id, "name": s.name, "kind": s.kind}

    rows = []
    for r in result.reports:
        s = by_key[r.submission]
        rows.append({
            "id": s.id, "student_id": s.student_id, "student_name": s.student_name,
            "filename": s.filename, "sha256": s.sha256,
            "score": round(r.score, 4), "flagged": r.flagged,
            # `score` is the share of the countable text inside matched, corroborated
            # passages; `coverage` is kept under its old name for stored-report readers.
            "coverage": round(r.evidence.get("coverage", r.score), 4),
            "confidence": round(r.confidence, 4),
            "cluster": cluster_of.get(r.submission),
            "matches": [{**ref(m.source), **{k: v for k, v in m.as_dict().items() if k not in ("source", "source_kind")}}
                        for m in r.matches],
            "excluded": [{"kind": k, "span": [a, b]} for a, b, k in r.excluded],
            "anomaly": anomalies[s.id],
        })
    return {
        "type": "AttestSimilarityReport", "version": 1,
        "course": {"id": course.id, "code": course.code, "title": course.title},
        "assignment": {"id": assignment.id, "name": assignment.name, "title": assignment.title,
                       "template_sha256": hashlib.sha256(assignment.template_text.encode()).hexdigest()},
        "created_at": utcnow().isoformat(timespec="seconds") + "Z", "created_by": actor,
        "flag_threshold": FLAG_THRESHOLD,
        "sources": [{"id": s.id, "name": s.name, "kind": s.kind, "sha256": s.sha256} for s in sources],
        "submissions": rows,
        "clusters": [[by_key[k].id for k in group] for group in result.clusters],
        "nonce": os.urandom(8).hex(),  # two identical runs still anchor two distinct reports
    }


def build_report(session: Session, assignment: Assignment, index_dir: Path, actor: str = "system",
                 encoder=None, progress: Progress = _quiet, job_id: str | None = None,
                 settings=None) -> Report:
    """Compare, look for anomalies, store the report (committed, audit-logged);
    not anchored yet (`anchor_report`)."""
    from plagiarism.nearduplicate import Params, scan

    if job_id is not None:
        stored = session.scalar(select(Report).where(Report.job_id == job_id))
        if stored is not None:
            return stored  # built before this job's worker died
    course = session.get(Course, assignment.course_id)
    subs = list(session.scalars(select(Submission).where(Submission.assignment_id == assignment.id)
                                .order_by(Submission.id)))
    if not subs:
        raise ServiceError("the assignment has no submissions yet")
    index = open_index(index_dir, encoder)
    templates = templates_of(assignment)
    progress(Stage.INDEXING, 0, len(subs))
    # Index anything not indexed yet (a crash between storing and indexing).
    index_documents(index, assignment_partition(course, assignment), [submission_doc(s) for s in subs], templates,
                    settings=settings)
    sources = _candidate_sources(index, course, assignment, sources_for(session, assignment), CANDIDATE_SIM)
    progress(Stage.COMPARING, 1, 4)
    result = scan({f"s{s.id}": s.text for s in subs}, {f"r{s.id}": s.text for s in sources},
                  templates=templates, encode=index.encode, params=Params())
    progress(Stage.ANOMALIES, 2, 4)
    anomalies = _anomalies(session, assignment, subs, index)
    progress(Stage.STORING, 3, 4)
    body = report_body(course, assignment, subs, sources, result, anomalies, actor)
    text = audit_anchor.canonical_body(body)
    report = Report(assignment_id=assignment.id, created_by=actor, body=text, job_id=job_id,
                    fingerprint=audit_anchor.fingerprint_of(text), state=REPORT_UNANCHORED)
    session.add(report)
    session.flush()
    for row in body["submissions"]:
        session.add(ScoreRow(report_id=report.id, submission_id=row["id"], score=row["score"],
                             flagged=row["flagged"], anomaly_flagged=row["anomaly"]["flagged"],
                             cluster=row["cluster"]))
    audit.record(session, actor, "report_built", f"report:{report.id}", assignment=assignment.id,
                 fingerprint=report.fingerprint, flagged=sum(r["flagged"] for r in body["submissions"]))
    session.commit()
    return report


def anchor_report(session: Session, report: Report, registry, actor: str = "system") -> Report:
    """One `anchor(fingerprint, 1)` transaction (unless the chain has it already);
    the report records where. A failure is kept on the report, to retry."""
    if report.state == REPORT_ANCHORED:
        return report
    try:
        existing = registry.anchor_of(report.fingerprint)
        if existing is not None:
            report.block_number = existing.block_number
        else:
            tx = registry.anchor(report.fingerprint, 1)
            report.tx_hash, report.block_number = tx.tx_hash, tx.block_number
        report.anchor_root = report.fingerprint
        report.chain_id, report.registry_address = registry.chain_id, registry.address
        report.state, report.error = REPORT_ANCHORED, None
        audit.record(session, actor, "report_anchored", f"report:{report.id}",
                     fingerprint=report.fingerprint, tx_hash=report.tx_hash, block=report.block_number)
    except Exception as exc:  # noqa: BLE001 - the report stays; the error is shown and can be retried
        report.state, report.error = REPORT_ANCHOR_FAILED, f"{type(exc).__name__}: {exc}"[:2000]
    session.commit()
    return report


def verify_report(report: Report, registry, trust=None, institution=None) -> dict:
    """Recompute the report's fingerprint and check it against the chain (and,
    with `trust` and `institution`, that the institution's own key anchored it)."""
    return audit_anchor.verify(report.body, report.fingerprint, report.block_number, registry, trust, institution)


def latest_report(session: Session, assignment: Assignment) -> Report | None:
    return session.scalar(select(Report).where(Report.assignment_id == assignment.id)
                          .order_by(Report.created_at.desc(), Report.id.desc()).limit(1))


def reports_of(session: Session, assignment: Assignment, limit: int = 10) -> list[Report]:
    return list(session.scalars(select(Report).where(Report.assignment_id == assignment.id)
                                .order_by(Report.id.desc()).limit(limit)))


# ----- the report job -----------------------------------------------------------------

def submit_report(app: Flask, session: Session, assignment: Assignment, actor: str,
                  dispatch_now: bool = True) -> Job:
    """Queue the building of a report for the assignment."""
    if not session.scalar(select(Submission.id).where(Submission.assignment_id == assignment.id).limit(1)):
        raise ServiceError("upload some submissions first")
    job = submit(session, KIND, {"assignment": assignment.id}, actor, subject=f"assignment:{assignment.id}",
                 total=4)
    session.commit()
    if dispatch_now:
        dispatch(app, job.id)
    return job


@job_kind(KIND, lease=30)
def build_report_job(ctx: JobContext) -> dict:
    settings = ctx.app.extensions["attest.settings"]
    with ctx.session() as session:
        assignment = session.get(Assignment, ctx.payload["assignment"])
        report = build_report(session, assignment, settings.index_dir, ctx.created_by, progress=ctx.progress,
                              job_id=ctx.job_id, settings=settings)
        ctx.checkpoint()
        ctx.progress(Stage.ANCHORING_REPORT, 3, 4)
        try:
            from credentials.runtime import get_registry

            registry = get_registry(ctx.app)
        except Exception as exc:  # noqa: BLE001 - the report stays, unanchored, with the reason
            report.state, report.error = REPORT_ANCHOR_FAILED, f"the chain is not reachable: {exc}"[:2000]
            session.commit()
        else:
            anchor_report(session, report, registry, ctx.created_by)
        return {"report": report.id, "state": report.state, "assignment": assignment.id}


# ----- reviews ------------------------------------------------------------------------

def mark_reviewed(session: Session, reviewer: str, comment: str, submission: Submission | None = None,
                  report: Report | None = None, reviewed: bool = True) -> Review:
    """A person looked at this case: recorded in the review table and the audit log."""
    if submission is None and report is None:
        raise ServiceError("a review names a submission or a report")
    review = Review(submission_id=submission.id if submission else None,
                    report_id=report.id if report else None, reviewer=reviewer,
                    reviewed=reviewed, comment=comment.strip())
    session.add(review)
    subject = f"submission:{submission.id}" if submission else f"report:{report.id}"
    audit.record(session, reviewer, "case_reviewed" if reviewed else "case_reopened", subject,
                 comment=review.comment, report=report.id if report else None)
    session.commit()
    return review


def reviews_of(session: Session, submission: Submission) -> list[Review]:
    return list(session.scalars(select(Review).where(Review.submission_id == submission.id)
                                .order_by(Review.at.desc(), Review.id.desc())))


def reviewed_in(session: Session, report: Report) -> set[int]:
    """Submission ids whose latest review mark in this report says "reviewed"."""
    latest: dict[int, bool] = {}
    for sub_id, flag in session.execute(select(Review.submission_id, Review.reviewed)
                                        .where(Review.report_id == report.id).order_by(Review.at, Review.id)):
        latest[sub_id] = flag
    return {sub_id for sub_id, flag in latest.items() if flag}
