"""What Attest keeps about submissions: courses, assignments, reference sources,
submissions, uploaded files, reports and reviews (SQLAlchemy; SQLite by default,
PostgreSQL through ATTEST_DATABASE_URL, so no SQLite-only SQL here).

An upload is a job (kernel.jobs, kind `index_upload`) plus one `UploadItem`
per file, written *before* any file is read; whichever worker runs the job
marks each item as it goes, so any web worker can show the progress by
reading the database. (`UploadJob`, `UploadFile` and `ReportJob` are the
tables of the time before jobs, kept for the databases that have them.)

A report keeps its whole JSON body and the keccak256 of that body's canonical
JSON: the fingerprint anchored on chain, so a report shown to a misconduct
panel can be proven unchanged since it was made.

Who may see a course is kept in `CourseMember` (owner or member). A course
with no members at all is a legacy course (made before memberships existed,
or by the CLI without --owner) and stays visible to every instructor.

Migrations 2001-2999 belong to the plagiarism package.
"""

from __future__ import annotations

import json

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)

from kernel.database import Base, add_column, create_tables, migration, utcnow

# Upload job states.
UPLOAD_PENDING, UPLOAD_RUNNING, UPLOAD_DONE, UPLOAD_FAILED = "pending", "running", "done", "failed"
# Report states: written `building` then `unanchored` (stored, fingerprint
# known) and `anchored` once the fingerprint's transaction is mined; `failed`
# keeps the error (the report itself stays usable and can be anchored later).
REPORT_UNANCHORED, REPORT_ANCHORED, REPORT_ANCHOR_FAILED = "unanchored", "anchored", "anchor_failed"

SOURCE_KINDS = ("reading", "past cohort", "other")
COURSE_OWNER, COURSE_MEMBER = "owner", "member"
COURSE_ROLES = (COURSE_OWNER, COURSE_MEMBER)
STALL_MINUTES = 5  # an upload without progress this long has lost its worker


class Course(Base):
    __tablename__ = "plag_courses"
    id = Column(Integer, primary_key=True)
    code = Column(String(64), nullable=False, unique=True)
    title = Column(String(255), nullable=False, default="")
    created_at = Column(DateTime, nullable=False, default=utcnow)
    created_by = Column(String(255), nullable=False, default="system")


class CourseMember(Base):
    """An instructor who may see and work on a course. An `owner` may also
    add other instructors. Keyed by user id (users.id), so a renamed email
    keeps its courses."""

    __tablename__ = "plag_course_members"
    __table_args__ = (UniqueConstraint("course_id", "user_id", name="uq_plag_course_member"),)
    id = Column(Integer, primary_key=True)
    course_id = Column(Integer, ForeignKey("plag_courses.id"), nullable=False, index=True)
    user_id = Column(Integer, ForeignKey("users.id"), nullable=False, index=True)
    role = Column(String(16), nullable=False, default=COURSE_MEMBER)
    added_at = Column(DateTime, nullable=False, default=utcnow)
    added_by = Column(String(255), nullable=False, default="system")


class Assignment(Base):
    __tablename__ = "plag_assignments"
    __table_args__ = (UniqueConstraint("course_id", "name", name="uq_plag_assignment_name"),)
    id = Column(Integer, primary_key=True)
    course_id = Column(Integer, ForeignKey("plag_courses.id"), nullable=False, index=True)
    name = Column(String(128), nullable=False)
    title = Column(String(255), nullable=False, default="")
    # Text the instructor handed out (the question, a scaffold): copying it is
    # expected, so it is excluded from every score.
    template_text = Column(Text, nullable=False, default="")
    created_at = Column(DateTime, nullable=False, default=utcnow)
    created_by = Column(String(255), nullable=False, default="system")


class Source(Base):
    """A reference text: a reading, a past cohort's submission, anything the
    instructor adds. `assignment_id` empty means it applies to the whole course."""

    __tablename__ = "plag_sources"
    id = Column(Integer, primary_key=True)
    course_id = Column(Integer, ForeignKey("plag_courses.id"), nullable=False, index=True)
    assignment_id = Column(Integer, ForeignKey("plag_assignments.id"), nullable=True, index=True)
    name = Column(String(255), nullable=False)
    kind = Column(String(32), nullable=False, default="reading")
    text = Column(Text, nullable=False)
    sha256 = Column(String(64), nullable=False, index=True)
    added_at = Column(DateTime, nullable=False, default=utcnow)
    added_by = Column(String(255), nullable=False, default="system")
    upload_job = Column(String(36), nullable=True, index=True)


class Submission(Base):
    __tablename__ = "plag_submissions"
    __table_args__ = (UniqueConstraint("assignment_id", "sha256", name="uq_plag_submission_content"),)
    id = Column(Integer, primary_key=True)
    assignment_id = Column(Integer, ForeignKey("plag_assignments.id"), nullable=False, index=True)
    student_id = Column(String(128), nullable=False, index=True)
    student_name = Column(String(255), nullable=False, default="")
    filename = Column(String(255), nullable=False)
    text = Column(Text, nullable=False)
    sha256 = Column(String(64), nullable=False, index=True)
    uploaded_at = Column(DateTime, nullable=False, default=utcnow, index=True)
    uploaded_by = Column(String(255), nullable=False, default="system")
    # The upload job that added it, so a resumed job recognises its own work.
    upload_job_id = Column(Integer, nullable=True, index=True)  # before jobs
    upload_job = Column(String(36), nullable=True, index=True)

    @property
    def label(self) -> str:
        """The name reports use: unique within an assignment."""
        return f"{self.student_id}/{self.filename}"


class UploadJob(Base):
    __tablename__ = "plag_upload_jobs"
    id = Column(Integer, primary_key=True)
    assignment_id = Column(Integer, ForeignKey("plag_assignments.id"), nullable=False, index=True)
    created_at = Column(DateTime, nullable=False, default=utcnow)
    created_by = Column(String(255), nullable=False, default="system")
    student_from_filename = Column(Boolean, nullable=False, default=True)
    state = Column(String(16), nullable=False, default=UPLOAD_PENDING, index=True)
    stage = Column(String(64), nullable=True)
    total = Column(Integer, nullable=False, default=0)
    done = Column(Integer, nullable=False, default=0)
    added = Column(Integer, nullable=False, default=0)
    duplicates = Column(Integer, nullable=False, default=0)
    errors = Column(Text, nullable=True)  # JSON list of {"filename", "reason"}
    finished_at = Column(DateTime, nullable=True)
    updated_at = Column(DateTime, nullable=True)  # last progress: a job that stops moving can be resumed

    @property
    def error_list(self) -> list[dict]:
        return json.loads(self.errors) if self.errors else []

    def stalled(self, minutes: float = STALL_MINUTES) -> bool:
        """Unfinished and without progress for a while: its worker has died."""
        if self.state not in (UPLOAD_PENDING, UPLOAD_RUNNING):
            return False
        last = self.updated_at or self.created_at
        return last is not None and (utcnow() - last).total_seconds() > minutes * 60

    def as_dict(self) -> dict:
        return {"job": self.id, "state": self.state, "stage": self.stage, "total": self.total,
                "done": self.done, "added": self.added, "duplicates": self.duplicates,
                "errors": self.error_list, "finished": self.state in (UPLOAD_DONE, UPLOAD_FAILED),
                "stalled": self.stalled()}


class UploadItem(Base):
    """One file of an `index_upload` job: its bytes until it is read, then what
    became of it (added, duplicate of a kept text, unreadable, with the reason)."""

    __tablename__ = "plag_upload_items"
    id = Column(Integer, primary_key=True)
    job_id = Column(String(36), nullable=False, index=True)
    filename = Column(String(255), nullable=False)
    data = Column(LargeBinary, nullable=True)
    processed = Column(Boolean, nullable=False, default=False)
    outcome = Column(String(16), nullable=True)
    reason = Column(Text, nullable=True)


class UploadFile(Base):
    """One uploaded file, kept until its job has read it (then the bytes go)."""

    __tablename__ = "plag_upload_files"
    id = Column(Integer, primary_key=True)
    job_id = Column(Integer, ForeignKey("plag_upload_jobs.id"), nullable=False, index=True)
    filename = Column(String(255), nullable=False)
    data = Column(LargeBinary, nullable=True)
    processed = Column(Boolean, nullable=False, default=False)


class Report(Base):
    __tablename__ = "plag_reports"
    id = Column(Integer, primary_key=True)
    assignment_id = Column(Integer, ForeignKey("plag_assignments.id"), nullable=False, index=True)
    created_at = Column(DateTime, nullable=False, default=utcnow, index=True)
    created_by = Column(String(255), nullable=False, default="system")
    body = Column(Text, nullable=False)  # canonical JSON text of the report
    fingerprint = Column(String(66), nullable=False, index=True)
    state = Column(String(16), nullable=False, default=REPORT_UNANCHORED)
    anchor_root = Column(String(66), nullable=True)
    tx_hash = Column(String(66), nullable=True)
    block_number = Column(Integer, nullable=True)
    chain_id = Column(Integer, nullable=True)
    registry_address = Column("registry", String(42), nullable=True)
    error = Column(Text, nullable=True)
    job_id = Column(String(36), nullable=True, unique=True)  # the job that built it

    @property
    def data(self) -> dict:
        return json.loads(self.body)


class ReportJob(Base):
    """A report being built: its progress lives here, so the page that polls it
    can be served by any web worker; `report_id` is set when it is stored."""

    __tablename__ = "plag_report_jobs"
    id = Column(Integer, primary_key=True)
    assignment_id = Column(Integer, ForeignKey("plag_assignments.id"), nullable=False, index=True)
    created_at = Column(DateTime, nullable=False, default=utcnow)
    created_by = Column(String(255), nullable=False, default="system")
    state = Column(String(16), nullable=False, default=UPLOAD_PENDING)  # same states as uploads
    stage = Column(String(64), nullable=True)
    total = Column(Integer, nullable=False, default=4)
    done = Column(Integer, nullable=False, default=0)
    report_id = Column(Integer, ForeignKey("plag_reports.id"), nullable=True)
    error = Column(Text, nullable=True)
    finished_at = Column(DateTime, nullable=True)

    def as_dict(self) -> dict:
        return {"job": self.id, "state": self.state, "stage": self.stage, "total": self.total,
                "done": self.done, "report": self.report_id, "error": self.error,
                "finished": self.state in (UPLOAD_DONE, UPLOAD_FAILED)}


class Review(Base):
    __tablename__ = "plag_reviews"
    id = Column(Integer, primary_key=True)
    submission_id = Column(Integer, ForeignKey("plag_submissions.id"), nullable=True, index=True)
    report_id = Column(Integer, ForeignKey("plag_reports.id"), nullable=True, index=True)
    reviewer = Column(String(255), nullable=False)
    reviewed = Column(Boolean, nullable=False, default=True)
    comment = Column(Text, nullable=False, default="")
    at = Column(DateTime, nullable=False, default=utcnow)


class ScoreRow(Base):
    """Per-submission numbers of a report, so lists sort and filter in SQL."""

    __tablename__ = "plag_report_rows"
    id = Column(Integer, primary_key=True)
    report_id = Column(Integer, ForeignKey("plag_reports.id"), nullable=False, index=True)
    submission_id = Column(Integer, ForeignKey("plag_submissions.id"), nullable=False, index=True)
    score = Column(Float, nullable=False, default=0.0)
    flagged = Column(Boolean, nullable=False, default=False)
    anomaly_flagged = Column(Boolean, nullable=False, default=False)
    cluster = Column(Integer, nullable=True)


@migration("2001_plagiarism_courses")
def _m2001(conn) -> None:
    create_tables(conn, Course, Assignment, Source)


@migration("2002_plagiarism_submissions")
def _m2002(conn) -> None:
    create_tables(conn, Submission, UploadJob, UploadFile)


@migration("2003_plagiarism_reports")
def _m2003(conn) -> None:
    create_tables(conn, Report, Review, ScoreRow)


@migration("2004_plagiarism_report_jobs")
def _m2004(conn) -> None:
    create_tables(conn, ReportJob)


@migration("2005_plagiarism_upload_resume")
def _m2005(conn) -> None:
    add_column(conn, "plag_submissions", Column("upload_job_id", Integer, nullable=True))
    add_column(conn, "plag_upload_jobs", Column("updated_at", DateTime, nullable=True))


@migration("2006_course_members")
def _m2006(conn) -> None:
    """Only creates the membership table: no rows are written, so every
    course that exists before this step has no members and stays visible to
    every instructor, as it was (no one is locked out of old data). Such a
    course becomes private once someone is added to it."""
    create_tables(conn, CourseMember)


@migration("2007_jobs")
def _m2007(conn) -> None:
    """Uploads and reports become jobs of kernel.jobs: their files, and which job
    stored what (so a job taken up again recognises its own work)."""
    create_tables(conn, UploadItem)
    add_column(conn, "plag_submissions", Column("upload_job", String(36), nullable=True))
    add_column(conn, "plag_sources", Column("upload_job", String(36), nullable=True))
    add_column(conn, "plag_reports", Column("job_id", String(36), nullable=True))
    for table, column in (("plag_submissions", "upload_job"), ("plag_sources", "upload_job")):
        conn.exec_driver_sql(f"CREATE INDEX IF NOT EXISTS ix_{table}_{column} ON {table} ({column})")
    conn.exec_driver_sql("CREATE UNIQUE INDEX IF NOT EXISTS ix_plag_reports_job_id ON plag_reports (job_id)")
