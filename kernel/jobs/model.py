"""The job table: one row per piece of long work, whatever its kind.

A job is written `queued` before any worker hears of it, so nothing asked for
is lost if the message is. A worker *claims* it by one conditional UPDATE that
sets its lease (`lease_owner`, `lease_until`); while it runs, a heartbeat
renews the lease every few seconds and records progress (`stage`, `done`,
`total`). A worker that dies stops renewing: once the lease has expired,
another worker's reaper puts the job back in the queue and it goes on from its
last durable step. Every step of every kind is idempotent.

Stages are one enum for every kind (a page shows `STAGE_LABELS[stage]`), never
phrases typed again in each module and script.

Migrations 0101-0199 belong here.
"""

from __future__ import annotations

import json
from enum import StrEnum

from sqlalchemy import BigInteger, Column, DateTime, Index, Integer, String, Text

from kernel.database import Base, create_tables, migration, utcnow


class JobState(StrEnum):
    QUEUED = "queued"      # waiting for a worker
    RUNNING = "running"    # leased by a worker (see lease_until)
    WAITING = "waiting"    # a source it needs is down: tried again at not_before
    DONE = "done"
    FAILED = "failed"      # will not be retried; `error` says why and what to do


UNFINISHED = (JobState.QUEUED, JobState.RUNNING, JobState.WAITING)


class Stage(StrEnum):
    QUEUED = "queued"
    # issuing a batch
    SIGNING = "signing"
    SAVING = "saving"
    ANCHORING = "anchoring"
    WAITING_FOR_CHAIN = "waiting_for_chain"
    CONFIRMING = "confirming"
    FINISHING = "finishing"
    # indexing an upload
    READING = "reading"
    INDEXING = "indexing"
    # building a report
    COMPARING = "comparing"
    ANOMALIES = "anomalies"
    STORING = "storing"
    ANCHORING_REPORT = "anchoring_report"
    DONE = "done"
    FAILED = "failed"


STAGE_LABELS = {
    Stage.QUEUED: "Waiting for a worker",
    Stage.SIGNING: "Signing credentials",
    Stage.SAVING: "Building the Merkle tree",
    Stage.ANCHORING: "Anchoring on chain",
    Stage.WAITING_FOR_CHAIN: "Waiting for the chain",
    Stage.CONFIRMING: "Waiting for confirmations",
    Stage.FINISHING: "Writing the proofs",
    Stage.READING: "Reading files",
    Stage.INDEXING: "Indexing passages",
    Stage.COMPARING: "Comparing passages",
    Stage.ANOMALIES: "Looking for anomalies",
    Stage.STORING: "Storing the report",
    Stage.ANCHORING_REPORT: "Anchoring the report's fingerprint",
    Stage.DONE: "Done",
    Stage.FAILED: "Failed",
}


class Job(Base):
    __tablename__ = "jobs"
    id = Column(String(36), primary_key=True)
    kind = Column(String(32), nullable=False, index=True)
    # What the job works on, e.g. "batch:<id>", "upload:<id>", "assignment:<id>".
    subject = Column(String(120), nullable=True, index=True)
    state = Column(String(16), nullable=False, default=JobState.QUEUED)
    stage = Column(String(32), nullable=False, default=Stage.QUEUED)
    done = Column(BigInteger, nullable=False, default=0)
    total = Column(BigInteger, nullable=False, default=0)
    # What the stage is busy with, in words (a file's name, "page 1,200 of 10,000").
    detail = Column(String(200), nullable=True)
    payload = Column(Text, nullable=False, default="{}")
    result = Column(Text, nullable=True)
    error = Column(Text, nullable=True)
    attempts = Column(Integer, nullable=False, default=0)
    created_by = Column(String(255), nullable=False, default="system")
    created_at = Column(DateTime, nullable=False, default=utcnow)
    updated_at = Column(DateTime, nullable=False, default=utcnow)  # the last heartbeat or progress
    started_at = Column(DateTime, nullable=True)
    finished_at = Column(DateTime, nullable=True)
    lease_owner = Column(String(120), nullable=True)
    lease_until = Column(DateTime, nullable=True)
    not_before = Column(DateTime, nullable=True)

    @property
    def payload_dict(self) -> dict:
        return json.loads(self.payload or "{}")

    @property
    def result_dict(self) -> dict:
        return json.loads(self.result) if self.result else {}

    @property
    def finished(self) -> bool:
        return self.state in (JobState.DONE, JobState.FAILED)

    @property
    def stage_label(self) -> str:
        try:
            return STAGE_LABELS[Stage(self.stage)]
        except ValueError:
            return self.stage

    def as_dict(self) -> dict:
        percent = 100 if self.state == JobState.DONE else (
            int(100 * self.done / self.total) if self.total else 0)
        return {"job": self.id, "kind": self.kind, "subject": self.subject, "state": self.state,
                "stage": self.stage, "stage_label": self.stage_label, "detail": self.detail,
                "done": self.done, "total": self.total,
                "percent": min(percent, 100), "error": self.error, "result": self.result_dict,
                "attempts": self.attempts, "finished": self.finished,
                "updated_at": self.updated_at.isoformat() + "Z" if self.updated_at else None}


Index("ix_jobs_state_lease", Job.state, Job.lease_until)


@migration("0101_jobs")
def _create(conn) -> None:
    create_tables(conn, Job)


@migration("0102_jobs_detail")
def _detail(conn) -> None:
    from kernel.database import add_column

    add_column(conn, "jobs", Column("detail", String(200), nullable=True))
