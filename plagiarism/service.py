"""Submissions over time: courses, assignments, uploads, the persistent
passage index, reports and their anchoring. Plain functions over a
SQLAlchemy session (no Flask), called by the web pages, the CLI and the tests.

The detection itself (extraction, segmentation, fingerprints, paraphrase
matching, anomalies) is the detection core's; this module decides *what* is
compared with what, keeps every passage's embedding so nothing is embedded
twice, and keeps the results.

The persistent index is `plagiarism.index.VectorIndex` under
ATTEST_DATA_DIR/index, with its content-hash embedding cache
(`plagiarism.cache`), so a passage is embedded once however many
assignments, uploads, reports or restarts see it. One partition per
assignment (`<course code>/<assignment name>`: its submissions and its own
sources) and one per course (`<course code>/*sources`: readings and past
cohorts for every assignment); a text's passages (the detection core's
sentence windows, with their character spans) are added when it arrives,
and adding one submission never touches the others.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kernel import audit
from kernel.database import utcnow
from plagiarism import audit_anchor
from plagiarism.index import VectorIndex, partition_key
from plagiarism.isolation import IsolatedExtractor, extract_isolated
from plagiarism.store import (
    COURSE_OWNER,
    COURSE_ROLES,
    REPORT_ANCHOR_FAILED,
    REPORT_ANCHORED,
    REPORT_UNANCHORED,
    UPLOAD_DONE,
    UPLOAD_FAILED,
    UPLOAD_RUNNING,
    Assignment,
    Course,
    CourseMember,
    Report,
    ReportJob,
    Review,
    ScoreRow,
    Source,
    Submission,
    UploadFile,
    UploadJob,
)

# Above this many reference sources, a report compares each submission only
# with the sources whose passages the index finds close to its own.
SOURCE_CANDIDATE_LIMIT = 40
# A source with a passage at least this close (cosine) to a submission passage
# gets the full comparison. Kept low on purpose: this only narrows the set,
# the detection core decides what counts.
CANDIDATE_SIM = 0.70
Progress = Callable[[int, int, str], None]


class ServiceError(ValueError):
    """Something the user asked for that cannot be done; the message says why."""


class Encoder(Protocol):
    """What the index embeds with (plagiarism.embedding.Embedder or a stand-in)."""

    dim: int
    model_id: str

    def encode(self, texts: list[str]) -> np.ndarray: ...


def default_index_dir() -> Path:
    from kernel.settings import Settings

    return Settings.from_env().data_dir / "index"


# ============================================================================ the index
# The vector index and its content-hash embedding cache are `plagiarism.index`
# and `plagiarism.cache`; this section only decides partition keys and which
# passages (the detection core's sentence windows) go in.

SOURCES_PARTITION = "*sources"  # cannot be an assignment name (see ASSIGNMENT_NAME)
_open_indexes: dict[tuple[str, int], VectorIndex] = {}
_open_lock = threading.Lock()


def open_index(root: Path | None = None, encoder: Encoder | None = None) -> VectorIndex:
    """One VectorIndex per directory (and encoder) per process, so the model,
    the cache connection and loaded partitions are reused across requests
    (each partition reloads by itself when another process changed it)."""
    root = Path(root or default_index_dir()).resolve()
    key = (str(root), id(encoder) if encoder is not None else 0)
    with _open_lock:
        if key not in _open_indexes:
            _open_indexes[key] = VectorIndex(root, embedder=encoder)
        return _open_indexes[key]


def assignment_partition(course: Course, assignment: Assignment | None) -> str:
    """`<course code>/<assignment name>`, or `<course code>/*sources` for the
    sources every assignment of the course is compared with."""
    return partition_key(course.code, assignment.name if assignment is not None else SOURCES_PARTITION)


INDEX_CHUNK = 8  # documents embedded per call: big enough to batch well, small enough to show progress


def _index_documents(index: VectorIndex, key: str, docs: list[tuple[str, str, str, dict]],
                     templates: list[str], progress: Progress | None = None) -> int:
    """Embed (through the cache) and add documents [(doc id, kind, text, meta)]
    not yet in partition `key`, a few at a time; returns how many were added."""
    from plagiarism.nearduplicate import embed_windows, prepare

    partition = index.partition(key)
    new = [d for d in docs if d[0] not in partition]
    for start in range(0, len(new), INDEX_CHUNK):
        chunk = new[start:start + INDEX_CHUNK]
        prepared = [prepare(doc, text, kind, templates) for doc, kind, text, _ in chunk]
        windows = embed_windows(prepared, index.encode)
        for p, (_, _, _, meta) in zip(prepared, chunk, strict=True):
            w = windows[f"{p.kind}:{p.name}"]
            if len(w.spans):
                partition.add(p.name, w.vectors, w.spans, meta)
        if progress:
            progress(start + len(chunk), len(new), "indexing passages")
    if new:
        index.flush()
    return len(new)


# ============================================================================ courses


# Names that are safe in partition keys, URLs and file names.
COURSE_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$")
ASSIGNMENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def create_course(session: Session, code: str, title: str = "", actor: str = "system") -> Course:
    code = code.strip()
    if not COURSE_CODE.match(code):
        raise ServiceError("a course code is letters, digits, spaces, '_', '.' or '-' (up to 64), "
                           "starting with a letter or digit")
    if session.scalar(select(Course).where(Course.code == code)):
        raise ServiceError(f"a course with the code {code!r} exists already")
    course = Course(code=code, title=title.strip() or code, created_by=actor)
    session.add(course)
    session.flush()
    return course


def get_course(session: Session, code_or_id: str | int) -> Course | None:
    if isinstance(code_or_id, int) or str(code_or_id).isdigit():
        found = session.get(Course, int(code_or_id))
        if found:
            return found
    return session.scalar(select(Course).where(Course.code == str(code_or_id)))


# ----------------------------------------------------------------------------- course access
# A course's submissions are for the people teaching it: its members (owner or
# member). Admins see every course. A course with no members at all (made
# before memberships existed, or by the CLI without --owner) is a legacy
# course and stays visible to every instructor, so no one loses old data.


def _is_admin(user) -> bool:
    return getattr(user, "role", None) == "admin"


def course_role(session: Session, course: Course, user) -> str | None:
    """The user's role in the course (`owner`/`member`), or None."""
    return session.scalar(select(CourseMember.role).where(CourseMember.course_id == course.id,
                                                          CourseMember.user_id == user.id))


def can_see_course(session: Session, course: Course, user) -> bool:
    if _is_admin(user):
        return True
    if course_role(session, course, user) is not None:
        return True
    return session.scalar(select(CourseMember.id).where(CourseMember.course_id == course.id).limit(1)) is None


def can_manage_course(session: Session, course: Course, user) -> bool:
    """May add people to the course: its owners, and admins."""
    return _is_admin(user) or course_role(session, course, user) == COURSE_OWNER


def visible_courses(session: Session, user) -> list[Course]:
    """The courses the user may see, by code."""
    query = select(Course).order_by(Course.code)
    if not _is_admin(user):
        mine = select(CourseMember.course_id).where(CourseMember.user_id == user.id)
        with_members = select(CourseMember.course_id)
        query = query.where(or_(Course.id.in_(mine), Course.id.not_in(with_members)))
    return list(session.scalars(query))


def course_members(session: Session, course: Course) -> list[tuple[CourseMember, object]]:
    from kernel.accounts import User

    rows = session.execute(select(CourseMember, User).join(User, User.id == CourseMember.user_id)
                           .where(CourseMember.course_id == course.id)
                           .order_by(CourseMember.added_at, CourseMember.id))
    return [(member, user) for member, user in rows]


def add_course_member(session: Session, course: Course, email: str, role: str, actor: str) -> CourseMember:
    """Give an instructor access to a course (or change their role in it);
    audit-logged. Raises ServiceError for an unknown email or a non-instructor."""
    from kernel.accounts import User

    if role not in COURSE_ROLES:
        raise ServiceError(f"a course role is one of {', '.join(COURSE_ROLES)}, not {role!r}")
    email = (email or "").strip().lower()
    user = session.scalar(select(User).where(User.email == email)) if email else None
    if user is None:
        raise ServiceError(f"no user has the email {email!r}: they need an instructor account first")
    if not user.can("instructor"):
        raise ServiceError(f"{email} is not an instructor")
    member = session.scalar(select(CourseMember).where(CourseMember.course_id == course.id,
                                                       CourseMember.user_id == user.id))
    if member is not None:
        if member.role == role:
            raise ServiceError(f"{email} is already {'an' if role == COURSE_OWNER else 'a'} {role} of {course.code}")
        previous, member.role = member.role, role
        audit.record(session, actor, "course_member_changed", f"course:{course.id}", code=course.code,
                     email=email, role=role, previous=previous)
        return member
    member = CourseMember(course_id=course.id, user_id=user.id, role=role, added_by=actor)
    session.add(member)
    session.flush()
    audit.record(session, actor, "course_member_added", f"course:{course.id}", code=course.code,
                 email=email, role=role)
    return member


def create_assignment(session: Session, course: Course, name: str, title: str = "",
                      template_text: str = "", actor: str = "system") -> Assignment:
    name = name.strip()
    if not ASSIGNMENT_NAME.match(name):
        raise ServiceError("an assignment's short name is letters, digits, '_', '.' or '-' (no spaces), "
                           "starting with a letter or digit")
    if session.scalar(select(Assignment).where(Assignment.course_id == course.id, Assignment.name == name)):
        raise ServiceError(f"{course.code} has an assignment called {name!r} already")
    assignment = Assignment(course_id=course.id, name=name, title=title.strip() or name,
                            template_text=template_text or "", created_by=actor)
    session.add(assignment)
    session.flush()
    return assignment


def get_assignment(session: Session, course: Course, name_or_id: str | int) -> Assignment | None:
    found = session.scalar(select(Assignment).where(Assignment.course_id == course.id,
                                                    Assignment.name == str(name_or_id)))
    if found is None and str(name_or_id).isdigit():
        found = session.get(Assignment, int(name_or_id))
        if found is not None and found.course_id != course.id:
            found = None
    return found


def templates_of(assignment: Assignment) -> list[str]:
    return [assignment.template_text] if assignment.template_text.strip() else []


def add_source(session: Session, course: Course, name: str, data: bytes | str,
               assignment: Assignment | None = None, kind: str = "reading", actor: str = "system",
               index_dir: Path | None = None, encoder: Encoder | None = None,
               extractor: IsolatedExtractor | None = None) -> Source:
    """A reference text for one assignment (or the whole course when
    `assignment` is None); indexed right away, like a submission.

    A Word or PDF file is read in an extraction worker (`extractor`, or one
    of its own), never in this process: a hostile source costs the worker.
    """
    if isinstance(data, str):
        text = data
    else:
        text = extractor.extract(data, name) if extractor else extract_isolated(data, name)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    source = Source(course_id=course.id, assignment_id=assignment.id if assignment else None,
                    name=name, kind=kind, text=text, sha256=digest, added_by=actor)
    session.add(source)
    session.flush()
    audit.record(session, actor, "source_added", f"source:{source.id}", course=course.code,
                 assignment=assignment.name if assignment else None, name=name, kind=kind, sha256=digest)
    _index_documents(open_index(index_dir, encoder), assignment_partition(course, assignment),
                     [(f"r{source.id}", "source", text, {"name": name, "kind": kind})],
                     templates_of(assignment) if assignment else [])
    return source


def sources_for(session: Session, assignment: Assignment) -> list[Source]:
    return list(session.scalars(select(Source).where(
        Source.course_id == assignment.course_id,
        or_(Source.assignment_id == assignment.id, Source.assignment_id.is_(None))).order_by(Source.id)))


# ============================================================================ submissions

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


def _submission_doc(sub: Submission) -> tuple[str, str, str, dict]:
    return (f"s{sub.id}", "submission", sub.text,
            {"student": sub.student_id, "filename": sub.filename, "sha256": sub.sha256})


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


def _reading_stage(filename: str, done: int, total: int, stage: str) -> str:
    """The job's stage while one file is read, such as `reading files (thesis.pdf:
    page 1,200 of 10,000)`, cut to fit the job's 64-character stage column."""
    detail = f"page {done:,} of {total:,}" if stage == "reading pages" else stage
    room = 64 - len("reading files (: )") - len(detail)
    name = filename if len(filename) <= room else filename[:max(room - 1, 1)] + "…"
    return f"reading files ({name}: {detail})"[:64]


def add_submissions(session: Session, assignment: Assignment, files: Iterable[tuple[str, bytes]],
                    student_of: Callable[[str], tuple[str, str]] = student_from_filename,
                    progress: Progress | None = None, actor: str = "system",
                    index_dir: Path | None = None, encoder: Encoder | None = None,
                    job_id: int | None = None, extractor: IsolatedExtractor | None = None) -> AddResult:
    """Read, deduplicate, store and index a set of uploaded files.

    A file that cannot be read becomes an error naming the reason; the rest
    are kept. Identical text (by sha256 of the extracted text, so a .docx and
    its .txt export are one submission) is stored once per assignment; a
    text that upload job `job_id` itself stored before its worker died counts
    as added, not as a duplicate. Only the new submissions' passages are
    embedded (through the content-hash cache) and added to the assignment's
    partition.

    Files are read by `extractor` (or a worker of this call's own): Word and
    PDF files in a worker process within the extraction limits, so a hostile
    file is refused with its reason and cannot exhaust this process. While a
    long file is read, `progress` hears of it about once a second
    ("reading files (name: page n of m)", `done` still counting whole files),
    so the job shows life.
    """
    from plagiarism.extract import UnreadableSubmission

    files = list(files)
    total = len(files)
    result = AddResult()
    existing = {s.sha256: s for s in session.scalars(
        select(Submission).where(Submission.assignment_id == assignment.id))}
    ours: set[int] = set()
    # A worker of our own is closed after the loop (and by its finalizer if
    # the loop raises): it holds memory the indexing below can use.
    reader = extractor or IsolatedExtractor()
    for i, (filename, data) in enumerate(files):
        filename = Path(filename).name or "unnamed"
        within = None
        if progress:
            def within(done: int, pages: int, stage: str, _i=i, _name=filename) -> None:
                progress(_i, total, _reading_stage(_name, done, pages, stage))
        try:
            text = reader.extract(data, filename, progress=within)
        except UnreadableSubmission as exc:
            result.errors.append((filename, exc.reason))
        else:
            digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
            found = existing.get(digest)
            if found is None:
                student_id, student_name = student_of(filename)
                sub = Submission(assignment_id=assignment.id, student_id=student_id,
                                 student_name=student_name, filename=filename, text=text,
                                 sha256=digest, uploaded_by=actor, upload_job_id=job_id)
                try:
                    with session.begin_nested():  # another upload may store the same text meanwhile
                        session.add(sub)
                        session.flush()
                except IntegrityError:
                    found = session.scalar(select(Submission).where(Submission.assignment_id == assignment.id,
                                                                    Submission.sha256 == digest))
                else:
                    existing[digest] = sub
                    ours.add(sub.id)
                    result.added.append(sub)
            if found is not None:
                if job_id is not None and found.upload_job_id == job_id and found.id not in ours:
                    ours.add(found.id)
                    result.added.append(found)  # stored by this job before a restart
                else:
                    result.duplicates.append((filename, found.label))
        if progress:
            progress(i + 1, total, "reading files")
    if extractor is None:
        reader.close()
    if result.added:
        if progress:
            progress(0, len(result.added), "indexing passages")
        course = session.get(Course, assignment.course_id)
        _index_documents(open_index(index_dir, encoder), assignment_partition(course, assignment),
                         [_submission_doc(s) for s in result.added], templates_of(assignment), progress)
    return result


# ============================================================================ upload jobs


def create_upload_job(session: Session, assignment: Assignment, files: Iterable[tuple[str, bytes]],
                      actor: str, student_from_name: bool = True) -> UploadJob:
    """Record an upload and its files before anything is read, so progress
    and the files themselves live in the database, not in a web worker."""
    files = list(files)
    job = UploadJob(assignment_id=assignment.id, created_by=actor, total=len(files),
                    student_from_filename=student_from_name, stage="waiting")
    session.add(job)
    session.flush()
    for filename, data in files:
        session.add(UploadFile(job_id=job.id, filename=Path(filename).name, data=data))
    session.flush()
    return job


def run_upload_job(session: Session, job_id: int, index_dir: Path | None = None,
                   encoder: Encoder | None = None) -> UploadJob:
    """Process an upload job, committing its progress after every file.

    Safe to run again on a job whose worker died (see `UploadJob.stalled`):
    its files are still in the database until the job finishes, and what it
    had already stored is recognised as its own.
    """
    job = session.get(UploadJob, job_id)
    if job is None:
        raise ServiceError(f"no upload job {job_id}")
    assignment = session.get(Assignment, job.assignment_id)
    files = list(session.scalars(select(UploadFile).where(UploadFile.job_id == job.id,
                                                          UploadFile.processed.is_(False))
                                 .order_by(UploadFile.id)))
    job.state, job.stage, job.updated_at = UPLOAD_RUNNING, "reading files", utcnow()
    session.commit()

    def progress(done: int, total: int, stage: str) -> None:
        # Counts are per stage ("reading files" 3 of 10, then "indexing passages" 2 of 9).
        job.done, job.total, job.stage, job.updated_at = done, total, stage, utcnow()
        session.commit()

    try:
        result = add_submissions(session, assignment, [(f.filename, f.data or b"") for f in files],
                                 student_of=student_from_filename if job.student_from_filename
                                 else student_per_file,
                                 progress=progress, actor=job.created_by, index_dir=index_dir,
                                 encoder=encoder, job_id=job.id)
    except Exception as exc:
        session.rollback()
        job = session.get(UploadJob, job_id)
        job.state, job.stage = UPLOAD_FAILED, f"failed: {type(exc).__name__}: {exc}"[:64]
        job.errors = json.dumps([{"filename": "(upload)", "reason": str(exc)}])
        job.finished_at = utcnow()
        session.commit()
        raise
    for f in files:
        f.processed, f.data = True, None
    job.added, job.duplicates = len(result.added), len(result.duplicates)
    job.errors = json.dumps(result.as_dict()["errors"] + [
        {"filename": f, "reason": f"the same text as {s}, which is kept once"} for f, s in result.duplicates])
    job.state, job.stage, job.total, job.done, job.finished_at = UPLOAD_DONE, "done", len(files), len(files), utcnow()
    audit.record(session, job.created_by, "submissions_uploaded", f"assignment:{assignment.id}",
                 job=job.id, added=job.added, duplicates=job.duplicates,
                 unreadable=len(result.errors))
    session.commit()
    return job


# ============================================================================ reports


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


def _anomalies(session: Session, assignment: Assignment, subs: list[Submission],
               index: VectorIndex) -> dict[int, dict]:
    """Anomaly results per submission of this assignment, from the detection
    core's impostors method run over every student's texts in the course
    (the student's other texts as their own, the cohort as impostors)."""
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


def build_report(session: Session, assignment: Assignment, registry=None, actor: str = "system",
                 index_dir: Path | None = None, encoder: Encoder | None = None,
                 progress: Progress | None = None) -> Report:
    """Compare the assignment's submissions with each other and its sources,
    look for anomalies, store the report and anchor its fingerprint.

    The report is committed before its anchoring transaction is sent, so a
    chain that is down leaves a usable report in state `anchor_failed` that
    `anchor_report` can finish later.
    """
    from plagiarism.nearduplicate import FLAG_THRESHOLD, Params, scan

    course = session.get(Course, assignment.course_id)
    subs = list(session.scalars(select(Submission).where(Submission.assignment_id == assignment.id)
                                .order_by(Submission.id)))
    index = open_index(index_dir, encoder)
    templates = templates_of(assignment)
    if progress:
        progress(0, 4, "indexing passages")
    # Index anything not indexed yet (a crash between commit and indexing).
    _index_documents(index, assignment_partition(course, assignment), [_submission_doc(s) for s in subs],
                     templates)
    params = Params()
    sources = _candidate_sources(index, course, assignment, sources_for(session, assignment), CANDIDATE_SIM)
    if progress:
        progress(1, 4, "comparing passages")
    result = scan({f"s{s.id}": s.text for s in subs}, {f"r{s.id}": s.text for s in sources},
                  templates=templates, encode=index.encode, params=params)
    if progress:
        progress(2, 4, "looking for anomalies")
    anomalies = _anomalies(session, assignment, subs, index)
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
    body = {
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
    text = audit_anchor.canonical_body(body)
    report = Report(assignment_id=assignment.id, created_by=actor, body=text,
                    fingerprint=audit_anchor.fingerprint_of(text), state=REPORT_UNANCHORED)
    session.add(report)
    session.flush()
    for row in rows:
        session.add(ScoreRow(report_id=report.id, submission_id=row["id"], score=row["score"],
                             flagged=row["flagged"], anomaly_flagged=row["anomaly"]["flagged"],
                             cluster=row["cluster"]))
    audit.record(session, actor, "report_built", f"report:{report.id}", assignment=assignment.id,
                 fingerprint=report.fingerprint, flagged=sum(r["flagged"] for r in rows))
    session.commit()
    if registry is not None:
        if progress:
            progress(3, 4, "anchoring the fingerprint")
        anchor_report(session, report, registry, actor)
    if progress:
        progress(4, 4, "done")
    return report


def create_report_job(session: Session, assignment: Assignment, actor: str) -> ReportJob:
    job = ReportJob(assignment_id=assignment.id, created_by=actor, stage="waiting")
    session.add(job)
    session.flush()
    return job


def run_report_job(session: Session, job_id: int, registry_factory: Callable[[], object | None],
                   index_dir: Path | None = None, encoder: Encoder | None = None) -> ReportJob:
    """Build a job's report, committing each stage so a polling page can show it.

    `registry_factory` is called once the report is about to be anchored, so
    a chain that is down costs nothing until then (and leaves the report
    stored, not anchored, with the reason).
    """
    job = session.get(ReportJob, job_id)
    if job is None:
        raise ServiceError(f"no report job {job_id}")
    assignment = session.get(Assignment, job.assignment_id)
    job.state, job.stage = UPLOAD_RUNNING, "starting"
    session.commit()

    def progress(done: int, total: int, stage: str) -> None:
        if stage == "done":  # build_report's end; anchoring comes next, here
            return
        job.done, job.total, job.stage = done, total, stage
        session.commit()

    try:
        report = build_report(session, assignment, None, job.created_by, index_dir=index_dir,
                              encoder=encoder, progress=progress)
        progress(3, 4, "anchoring the fingerprint")
        try:
            registry = registry_factory()
        except Exception as exc:  # noqa: BLE001 - the report stays, unanchored, with the reason
            registry = None
            report.state, report.error = REPORT_ANCHOR_FAILED, f"the chain is not reachable: {exc}"[:2000]
            session.commit()
        if registry is not None:
            anchor_report(session, report, registry, job.created_by)
    except Exception as exc:
        session.rollback()
        job = session.get(ReportJob, job_id)
        job.state, job.error, job.finished_at = UPLOAD_FAILED, f"{type(exc).__name__}: {exc}"[:2000], utcnow()
        session.commit()
        raise
    job.report_id, job.state, job.stage, job.done, job.finished_at = report.id, UPLOAD_DONE, "done", 4, utcnow()
    session.commit()
    return job


def anchor_report(session: Session, report: Report, registry, actor: str = "system") -> Report:
    """One `anchor(fingerprint, 1)` transaction; the report records where."""
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


# ============================================================================ reviews


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
