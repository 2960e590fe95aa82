"""Running jobs: kinds, claiming with a lease, heartbeats, hand-back and reaping.

A domain registers a kind once:

    @job_kind("issue_batch", lease=30)
    def issue_batch_job(ctx: JobContext) -> dict: ...

and submits work with `enqueue(app, session, "issue_batch", payload, actor)`:
the row is committed first, then a message goes to the queue (Huey). Whoever
receives the message calls `run_job`, which claims the row with one
conditional UPDATE (so a duplicate message, or a second worker, runs nothing),
keeps the lease alive from a heartbeat thread, and records the outcome:

- the function returns: `done`, with its result;
- it raises `HandBack` (the worker is shutting down, at a durable step): back
  to `queued` at once, for another worker;
- `RetryLater` (the chain is down): `waiting` until `not_before`;
- `JobFailed`: `failed`, with the sentence for people;
- anything else: `failed`, with the exception named (and logged).

`reap()` (every worker runs it every few seconds) re-queues jobs whose lease
expired, because their worker died, and re-sends messages that were lost.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from flask import Flask
from sqlalchemy import or_, select, update

from kernel.database import utcnow
from kernel.jobs.model import Job, JobState, Stage
from kernel.processes import pid_alive

log = logging.getLogger(__name__)

HEARTBEATS_PER_LEASE = 4
PROGRESS_EVERY = 0.5  # seconds between progress writes (a stage change is written at once)
LOST_MESSAGE_AFTER = timedelta(seconds=20)


class HandBack(Exception):
    """The worker is stopping: the job goes back to the queue at its last durable step."""


class RetryLater(Exception):
    """Something the job needs is down; try again after `after` seconds."""

    def __init__(self, reason: str, after: float = 30.0, stage: Stage = Stage.WAITING_FOR_CHAIN):
        super().__init__(reason)
        self.reason, self.after, self.stage = reason, after, stage


class JobFailed(Exception):
    """The job cannot succeed as it is; the message says why and what to do."""


class LeaseLost(Exception):
    """Another worker holds this job now (this one was thought dead)."""


@dataclass(frozen=True)
class JobKind:
    name: str
    run: Callable[[JobContext], dict | None]
    lease: float = 30.0          # seconds a worker may go silent before it is taken for dead
    max_attempts: int = 25       # claims (deaths included) before the job is given up


KINDS: dict[str, JobKind] = {}


def job_kind(name: str, lease: float = 30.0, max_attempts: int = 25):
    """Register a kind of job (see the module doc)."""

    def register(fn: Callable[[JobContext], dict | None]):
        if name in KINDS and KINDS[name].run is not fn:
            raise ValueError(f"job kind {name} is registered twice")
        KINDS[name] = JobKind(name, fn, lease, max_attempts)
        return fn

    return register


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident() % 100000}"


def owner_is_dead(owner: str | None) -> bool:
    """A lease held by a process of this machine that no longer exists can be
    taken at once, without waiting for it to expire (a CLI killed with -9)."""
    if not owner:
        return False
    parts = owner.split(":")
    if len(parts) < 2 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return False
    return not pid_alive(int(parts[1]))


class JobContext:
    """What a running job sees: its payload, a database, progress, and whether to stop."""

    def __init__(self, app: Flask, job: Job, owner: str, stopping: threading.Event, lease: float,
                 listener: Callable[[Stage, int | None, int | None], None] | None = None):
        self.app = app
        self.job_id = job.id
        self.kind = job.kind
        self.payload = job.payload_dict
        self.created_by = job.created_by
        self.attempt = job.attempts
        self.owner = owner
        self.stopping = stopping
        self.lease = lease
        self._last_write = 0.0
        self._stage: str | None = job.stage
        self._listener = listener

    @property
    def database(self):
        return self.app.extensions["attest.db"]

    def session(self):
        return self.database.session()

    def progress(self, stage: Stage, done: int | None = None, total: int | None = None,
                 detail: str | None = None) -> None:
        """Record where the job is (throttled; a new stage is written at once) and
        renew the lease. LeaseLost if another worker holds the job now."""
        import time

        if self._listener is not None:
            self._listener(stage, done, total)
        now = time.monotonic()
        if stage == self._stage and now - self._last_write < PROGRESS_EVERY:
            return
        values = {"stage": str(stage), "updated_at": utcnow(), "detail": (detail or None) and detail[:200],
                  "lease_until": utcnow() + timedelta(seconds=self.lease)}
        if done is not None:
            values["done"] = done
        if total is not None:
            values["total"] = total
        self._write(values)
        self._stage, self._last_write = stage, now

    def checkpoint(self) -> None:
        """Call at each durable step: hands the job back if the worker is stopping."""
        if self.stopping.is_set():
            raise HandBack()

    def _write(self, values: dict) -> None:
        with self.database.engine.begin() as conn:
            changed = conn.execute(update(Job).where(Job.id == self.job_id, Job.lease_owner == self.owner)
                                   .values(**values)).rowcount
        if changed != 1:
            raise LeaseLost(f"job {self.job_id} is held by another worker now")

    def heartbeat(self) -> bool:
        try:
            self._write({"updated_at": utcnow(), "lease_until": utcnow() + timedelta(seconds=self.lease)})
            return True
        except LeaseLost:
            return False


# ----- submitting -----------------------------------------------------------------------

def submit(session, kind: str, payload: dict, actor: str, subject: str | None = None, total: int = 0) -> Job:
    """Add a queued job to `session` (the caller commits, then calls `dispatch`)."""
    if kind not in KINDS:
        raise ValueError(f"unknown job kind {kind!r}")
    job = Job(id=str(uuid.uuid4()), kind=kind, subject=subject, state=JobState.QUEUED, stage=Stage.QUEUED,
              payload=json.dumps(payload), created_by=actor, total=total, created_at=utcnow(), updated_at=utcnow())
    session.add(job)
    return job


def dispatch(app: Flask, job_id: str) -> None:
    """Tell the queue a job is ready (a lost message is re-sent by `reap`)."""
    queue = app.extensions.get("attest.queue")
    if queue is None:
        return
    try:
        queue.enqueue(job_id)
    except Exception:  # noqa: BLE001 - the job row is safe; the reaper sends the message again
        log.exception("could not queue job %s; the reaper will", job_id)


def enqueue(app: Flask, session, kind: str, payload: dict, actor: str, subject: str | None = None,
            total: int = 0) -> Job:
    """Submit, commit, dispatch: what a web view or a CLI command calls."""
    job = submit(session, kind, payload, actor, subject, total)
    session.commit()
    dispatch(app, job.id)
    return job


# ----- running ----------------------------------------------------------------------------

def claim(app: Flask, job_id: str, owner: str) -> Job | None:
    """Take the job if it is free (queued, waiting and due, or running with an
    expired lease). One conditional UPDATE: two claimants never both win."""
    database = app.extensions["attest.db"]
    with database.session() as session:
        job = session.get(Job, job_id)
        if job is None or job.kind not in KINDS:
            return None
        kind = KINDS[job.kind]
        now = utcnow()
        if job.state == JobState.RUNNING and owner_is_dead(job.lease_owner):
            session.execute(update(Job).where(Job.id == job_id, Job.lease_owner == job.lease_owner)
                            .values(lease_until=now - timedelta(seconds=1)))
        claimable = or_(Job.state == JobState.QUEUED,
                        (Job.state == JobState.RUNNING) & (Job.lease_until < now),
                        (Job.state == JobState.WAITING) & (Job.not_before <= now))
        changed = session.execute(update(Job).where(Job.id == job_id, claimable).values(
            state=JobState.RUNNING, lease_owner=owner, lease_until=now + timedelta(seconds=kind.lease),
            attempts=Job.attempts + 1, started_at=job.started_at or now, updated_at=now,
            not_before=None)).rowcount
        session.commit()
        if changed != 1:
            return None
        job = session.get(Job, job_id)
        session.refresh(job)
        if job.attempts > kind.max_attempts:
            _finish(database, job_id, owner, state=JobState.FAILED, stage=Stage.FAILED,
                    error=f"its worker stopped {job.attempts - 1} times before it could finish; see the "
                          "worker logs, then submit it again")
            return None
        return job


def _finish(database, job_id: str, owner: str, **values) -> None:
    values.setdefault("updated_at", utcnow())
    with database.engine.begin() as conn:
        conn.execute(update(Job).where(Job.id == job_id, Job.lease_owner == owner).values(
            lease_owner=None, lease_until=None, **values))


def run_job(app: Flask, job_id: str, owner: str | None = None, stopping: threading.Event | None = None,
            listener: Callable[[Stage, int | None, int | None], None] | None = None) -> str | None:
    """Claim and run one job; returns its state afterwards (None if not claimed).
    `listener` hears every progress report (the CLI prints them)."""
    owner = owner or worker_name()
    stopping = stopping or threading.Event()
    job = claim(app, job_id, owner)
    if job is None:
        return None
    kind = KINDS[job.kind]
    ctx = JobContext(app, job, owner, stopping, kind.lease, listener)
    database = app.extensions["attest.db"]
    done = threading.Event()

    def beat() -> None:
        while not done.wait(kind.lease / HEARTBEATS_PER_LEASE):
            if not ctx.heartbeat():
                return

    beater = threading.Thread(target=beat, name=f"heartbeat-{job_id[:8]}", daemon=True)
    beater.start()
    try:
        with app.app_context():
            result = kind.run(ctx) or {}
    except HandBack:
        _finish(database, job_id, owner, state=JobState.QUEUED, error=None)
        dispatch(app, job_id)
        return JobState.QUEUED
    except RetryLater as retry:
        _finish(database, job_id, owner, state=JobState.WAITING, stage=retry.stage, error=retry.reason,
                not_before=utcnow() + timedelta(seconds=retry.after))
        return JobState.WAITING
    except LeaseLost:
        log.warning("job %s was taken over by another worker", job_id)
        return None
    except JobFailed as exc:
        _finish(database, job_id, owner, state=JobState.FAILED, stage=Stage.FAILED, error=str(exc),
                finished_at=utcnow())
        return JobState.FAILED
    except Exception as exc:  # noqa: BLE001 - recorded on the job; the worker goes on
        log.exception("job %s (%s) failed", job_id, job.kind)
        _finish(database, job_id, owner, state=JobState.FAILED, stage=Stage.FAILED,
                error=f"{type(exc).__name__}: {exc}"[:4000], finished_at=utcnow())
        return JobState.FAILED
    finally:
        done.set()
        beater.join(timeout=5)
    _finish(database, job_id, owner, state=JobState.DONE, stage=Stage.DONE, error=None, detail=None,
            done=Job.total, result=json.dumps(result, default=str), finished_at=utcnow())
    return JobState.DONE


def reap(app: Flask, limit: int = 200) -> list[str]:
    """Send again the jobs nobody is working on: leases expired (their worker died),
    waits that are due, and queued jobs whose message was lost. Returns their ids."""
    now = utcnow()
    database = app.extensions["attest.db"]
    with database.session() as session:
        due = list(session.scalars(select(Job.id).where(or_(
            (Job.state == JobState.RUNNING) & (Job.lease_until < now),
            (Job.state == JobState.WAITING) & (Job.not_before <= now),
            (Job.state == JobState.QUEUED) & (Job.updated_at < now - LOST_MESSAGE_AFTER),
        )).order_by(Job.created_at).limit(limit)).all())
        # A holder that died on this machine need not be waited for (claim() checks again).
        running = session.execute(select(Job.id, Job.lease_owner).where(
            Job.state == JobState.RUNNING, Job.lease_until >= now)).all()
        due += [job_id for job_id, owner in running if owner_is_dead(owner)]
        if due:
            # Queued jobs count as re-sent now, so the next pass does not send them again.
            session.execute(update(Job).where(Job.id.in_(due), Job.state == JobState.QUEUED)
                            .values(updated_at=now))
            session.commit()
    for job_id in due:
        dispatch(app, job_id)
    return list(due)


def run_inline(app: Flask, job_id: str,
               listener: Callable[[Stage, int | None, int | None], None] | None = None) -> str | None:
    """Run a job in this process (a CLI command is its own worker), or, when a
    live worker holds it, wait for that worker; returns the job's final state.
    A holder that dies meanwhile is taken over (its lease expires)."""
    import time

    with app.extensions["attest.db"].session() as session:
        make_due(session, job_id)
    state = run_job(app, job_id, listener=listener)
    while state is None:
        time.sleep(0.5)
        with app.extensions["attest.db"].session() as session:
            job = get_job(session, job_id)
            if job is None or job.state in (JobState.DONE, JobState.FAILED, JobState.WAITING):
                return job.state if job else None
        state = run_job(app, job_id, listener=listener)
    return state


def make_due(session, job_id: str) -> None:
    """A waiting job may be tried now (a person asked: resume)."""
    session.execute(update(Job).where(Job.id == job_id, Job.state == JobState.WAITING).values(not_before=utcnow()))
    session.commit()


def get_job(session, job_id: str) -> Job | None:
    return session.get(Job, job_id)


def jobs_for(session, subject: str) -> list[Job]:
    return list(session.scalars(select(Job).where(Job.subject == subject).order_by(Job.created_at)))
