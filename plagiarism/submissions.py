"""Submissions and reference sources arriving: stored, deduplicated, indexed.

Every upload (files from the page, a pasted text, `submissions add` and
`add-sources` from the CLI) is an `index_upload` job: `submit_upload` writes
the job and one `UploadItem` per file before anything is read; a worker then
reads each file in an extraction worker process (`plagiarism.isolation`: a
hostile file costs that process, never this one), stores it, marks the item
done and commits, so a worker that dies mid-upload leaves the rest to the next
one, which recognises what this job already stored as its own. Only then are
the new texts' passages embedded and indexed (through the content-hash cache:
nothing is embedded twice).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from flask import Flask
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kernel import audit
from kernel.jobs import Job, JobContext, Stage, dispatch, job_kind, submit
from plagiarism.indexing import (
    assignment_partition,
    index_documents,
    open_index,
    submission_doc,
    templates_of,
)
from plagiarism.store import Assignment, Course, Source, Submission, UploadItem

KIND = "index_upload"
SUBMISSIONS, SOURCES = "submissions", "sources"
_STUDENT_SPLIT = re.compile(r"[_\s]+|-{1,2}|\.")


def student_from_filename(filename: str) -> tuple[str, str]:
    """`alice_essay1.txt` -> ("alice", "alice"): the stem up to the first
    underscore, dash or space; the whole stem when there is none."""
    stem = Path(filename).stem
    first = _STUDENT_SPLIT.split(stem, maxsplit=1)[0] or stem
    return first, first


def student_per_file(filename: str) -> tuple[str, str]:
    """Each file is its own student (the file's stem)."""
    stem = Path(filename).stem
    return stem, stem


@dataclass
class AddResult:
    """What one upload did: the rows added, the files that were already there
    (by content) and the files that could not be read, with the reason."""

    added: list[Submission] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (filename, existing label)
    errors: list[tuple[str, str]] = field(default_factory=list)      # (filename, reason)

    def as_dict(self) -> dict:
        return {"added": [s.label for s in self.added],
                "duplicates": [{"filename": f, "same_as": s} for f, s in self.duplicates],
                "errors": [{"filename": f, "reason": r} for f, r in self.errors]}


def store_submission(session: Session, assignment: Assignment, filename: str, text: str,
                     student: tuple[str, str], actor: str, job_id: str | None) -> tuple[str, Submission]:
    """("added" | "duplicate", the row). The same text (by sha256 of the extracted
    text, so a .docx and its .txt export are one submission) is kept once per
    assignment; a text this job stored before its worker died counts as added."""
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    found = session.scalar(select(Submission).where(Submission.assignment_id == assignment.id,
                                                    Submission.sha256 == digest))
    if found is None:
        sub = Submission(assignment_id=assignment.id, student_id=student[0], student_name=student[1],
                         filename=filename, text=text, sha256=digest, uploaded_by=actor, upload_job=job_id)
        try:
            with session.begin_nested():  # another upload may store the same text meanwhile
                session.add(sub)
                session.flush()
            return "added", sub
        except IntegrityError:
            found = session.scalar(select(Submission).where(Submission.assignment_id == assignment.id,
                                                            Submission.sha256 == digest))
    if job_id is not None and found.upload_job == job_id:
        return "added", found
    return "duplicate", found


def store_source(session: Session, course: Course, assignment: Assignment | None, name: str, text: str,
                 kind: str, actor: str, job_id: str | None) -> Source:
    """A reference text for one assignment (or the whole course); audit-logged."""
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    if job_id is not None:
        mine = session.scalar(select(Source).where(Source.upload_job == job_id, Source.sha256 == digest,
                                                   Source.name == name))
        if mine is not None:
            return mine
    source = Source(course_id=course.id, assignment_id=assignment.id if assignment else None, name=name,
                    kind=kind, text=text, sha256=digest, added_by=actor, upload_job=job_id)
    session.add(source)
    session.flush()
    audit.record(session, actor, "source_added", f"source:{source.id}", course=course.code,
                 assignment=assignment.name if assignment else None, name=name, kind=kind, sha256=digest)
    return source


# ----- the upload job -----------------------------------------------------------------

def submit_upload(app: Flask, session: Session, course: Course, assignment: Assignment | None,
                  files: list[tuple[str, bytes]], actor: str, target: str = SUBMISSIONS, kind: str = "reading",
                  student_from_filename_: bool = True, student: tuple[str, str] | None = None,
                  dispatch_now: bool = True) -> Job:
    """The upload job and its files, committed before anything is read; queued."""
    if target == SUBMISSIONS and assignment is None:
        raise ValueError("submissions belong to an assignment")
    payload = {"course": course.id, "assignment": assignment.id if assignment else None, "target": target,
               "kind": kind, "student_from_filename": student_from_filename_,
               "student": list(student) if student else None}
    subject = f"assignment:{assignment.id}" if assignment else f"course:{course.id}"
    job = submit(session, KIND, payload, actor, subject=subject, total=len(files))
    session.flush()
    for filename, data in files:
        session.add(UploadItem(job_id=job.id, filename=(Path(filename).name or "unnamed")[:255], data=data))
    session.commit()
    if dispatch_now:
        dispatch(app, job.id)
    return job


def upload_items(session: Session, job_id: str) -> list[UploadItem]:
    return list(session.scalars(select(UploadItem).where(UploadItem.job_id == job_id).order_by(UploadItem.id)))


def _reading_detail(filename: str, done: int, total: int, stage: str) -> str:
    """`thesis.pdf: page 1,200 of 10,000`, for the page that watches the job."""
    return f"{filename}: page {done:,} of {total:,}" if stage == "reading pages" else f"{filename}: {stage}"


@job_kind(KIND, lease=30)
def index_upload_job(ctx: JobContext) -> dict:
    from plagiarism.extract import UnreadableSubmission
    from plagiarism.isolation import IsolatedExtractor

    settings = ctx.app.extensions["attest.settings"]
    p = ctx.payload
    with ctx.session() as session:
        course = session.get(Course, p["course"])
        assignment = session.get(Assignment, p["assignment"]) if p.get("assignment") else None
        items = upload_items(session, ctx.job_id)
        pending = [i for i in items if not i.processed]
        if p.get("student"):
            fixed = tuple(p["student"])

            def student_of(_name):
                return fixed
        else:
            student_of = student_from_filename if p.get("student_from_filename", True) else student_per_file
        total, done = len(items), len(items) - len(pending)
        reader = IsolatedExtractor() if pending else None
        try:
            for item in pending:
                ctx.progress(Stage.READING, done, total, detail=item.filename)

                def within(d: int, t: int, stage: str, _name=item.filename, _done=done) -> None:
                    ctx.progress(Stage.READING, _done, total, detail=_reading_detail(_name, d, t, stage))

                try:
                    text = reader.extract(item.data or b"", item.filename, progress=within)
                except UnreadableSubmission as exc:
                    item.outcome, item.reason = "unreadable", exc.reason
                else:
                    if p["target"] == SOURCES:
                        store_source(session, course, assignment, item.filename, text, p.get("kind") or "reading",
                                     ctx.created_by, ctx.job_id)
                        item.outcome = "added"
                    else:
                        outcome, sub = store_submission(session, assignment, item.filename, text,
                                                        student_of(item.filename), ctx.created_by, ctx.job_id)
                        item.outcome, item.reason = outcome, (None if outcome == "added" else sub.label)
                item.processed, item.data = True, None
                session.commit()
                done += 1
                ctx.progress(Stage.READING, done, total)
                ctx.checkpoint()
        finally:
            if reader is not None:
                reader.close()
        # Index what this job stored (all of it again after a restart: indexing skips what is there).
        if p["target"] == SOURCES:
            docs = [(f"r{s.id}", "source", s.text, {"name": s.name, "kind": s.kind}) for s in
                    session.scalars(select(Source).where(Source.upload_job == ctx.job_id))]
        else:
            docs = [submission_doc(s) for s in
                    session.scalars(select(Submission).where(Submission.upload_job == ctx.job_id))]
        if docs:
            ctx.progress(Stage.INDEXING, 0, len(docs))
            index_documents(open_index(settings.index_dir), assignment_partition(course, assignment), docs,
                            templates_of(assignment), lambda d, t: ctx.progress(Stage.INDEXING, d, t),
                            settings=settings)
        items = upload_items(session, ctx.job_id)
        if p["target"] == SOURCES:
            added = [s.name for s in session.scalars(select(Source).where(Source.upload_job == ctx.job_id))]
        else:
            added = [s.label for s in session.scalars(select(Submission).where(Submission.upload_job == ctx.job_id)
                                                      .order_by(Submission.id))]
        result = {"target": p["target"], "added": added,
                  "duplicates": [{"filename": i.filename, "same_as": i.reason} for i in items
                                 if i.outcome == "duplicate"],
                  "errors": [{"filename": i.filename, "reason": i.reason} for i in items if i.outcome == "unreadable"],
                  "assignment": assignment.id if assignment else None, "course": course.id}
        audit.record(session, ctx.created_by, "submissions_uploaded" if p["target"] == SUBMISSIONS else "sources_added",
                     f"assignment:{assignment.id}" if assignment else f"course:{course.id}", job=ctx.job_id,
                     added=len(added), duplicates=len(result["duplicates"]), unreadable=len(result["errors"]))
        session.commit()
    return result


def add_submissions(session: Session, assignment: Assignment, files: list[tuple[str, bytes]],
                    student_of: Callable[[str], tuple[str, str]] = student_from_filename, actor: str = "system",
                    index_dir: Path | None = None, encoder=None) -> AddResult:
    """Read, store and index files in this process (the detection tests and
    scripts; pages and the CLI go through the job). Same rules as the job."""
    from plagiarism.extract import UnreadableSubmission
    from plagiarism.isolation import IsolatedExtractor

    course = session.get(Course, assignment.course_id)
    result = AddResult()
    with IsolatedExtractor() as reader:
        for filename, data in files:
            name = Path(filename).name or "unnamed"
            try:
                text = reader.extract(data, name)
            except UnreadableSubmission as exc:
                result.errors.append((name, exc.reason))
                continue
            outcome, sub = store_submission(session, assignment, name, text, student_of(name), actor, None)
            if outcome == "added":
                result.added.append(sub)
            else:
                result.duplicates.append((name, sub.label))
    session.commit()
    if result.added and index_dir is not None:
        index_documents(open_index(index_dir, encoder), assignment_partition(course, assignment),
                        [submission_doc(s) for s in result.added], templates_of(assignment))
    return result


def add_source(session: Session, course: Course, name: str, data: bytes | str, assignment: Assignment | None = None,
               kind: str = "reading", actor: str = "system", index_dir: Path | None = None, encoder=None) -> Source:
    """A reference text, read (a file: in an extraction worker), stored and indexed
    in this process; the pages and the CLI go through the job."""
    from plagiarism.isolation import extract_isolated

    text = data if isinstance(data, str) else extract_isolated(data, name)
    source = store_source(session, course, assignment, name, text, kind, actor, None)
    session.commit()
    if index_dir is not None:
        index_documents(open_index(index_dir, encoder), assignment_partition(course, assignment),
                        [(f"r{source.id}", "source", text, {"name": name, "kind": kind})], templates_of(assignment))
    return source
