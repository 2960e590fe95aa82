"""The queue that carries "job X is ready" messages: Huey, on one of three stores.

- no ATTEST_QUEUE_URL: SQLite under the data dir (`queue.db`, 0600): `make run`
  needs no server; the web process runs an embedded worker over it;
- `redis://…`: Redis, for separate worker processes on several machines;
- `postgresql://…`: PostgreSQL (LISTEN/NOTIFY), when the database is the only
  server there is.

Why Huey (bench/bench_queue.py, measured here beside RQ): one API over all three
stores, so the embedded and the production shape run the same code; 128 us an
enqueue and p99 7.6 ms to start on Redis; RQ forks a process per job (37
jobs/s against Huey's 438) and has no SQLite store. Like every engine measured,
Huey loses a message whose worker is killed while running it: the job table's
lease and the reaper (kernel.jobs.runner) are what make jobs durable.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from flask import Flask
from huey import RedisHuey, SqliteHuey
from huey.api import Huey

from kernel.settings import Settings

TASK = "attest.run_job"


def make_huey(settings: Settings) -> Huey:
    url = settings.queue_url
    if not url:
        path = settings.data_dir / "queue.db"
        _private_file(path)
        return SqliteHuey("attest", filename=str(path), results=False, timeout=30)
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisHuey("attest", url=url, results=False)
    if url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        from huey.storage import PostgresStorage

        dsn = url.replace("postgresql+psycopg://", "postgresql://", 1)
        return Huey("attest", storage_class=PostgresStorage, dsn=dsn, results=False)
    raise ValueError(f"ATTEST_QUEUE_URL must be redis://… or postgresql://… (or unset for SQLite), not {url!r}")


def _private_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    os.chmod(path, 0o600)


class JobQueue:
    """One app's queue: `enqueue(job_id)` from anywhere, and the Huey instance a
    worker consumes. The task is bound to this app, so several apps in one
    process (the tests) never run each other's jobs."""

    def __init__(self, app: Flask, settings: Settings):
        self.app = app
        self.huey = make_huey(settings)
        self.stopping = threading.Event()

        def run(job_id: str) -> None:
            from kernel.jobs.runner import run_job

            run_job(self.app, job_id, stopping=self.stopping)

        self.task = self.huey.task(name=TASK)(run)

    def enqueue(self, job_id: str) -> None:
        self.task(job_id)

    @property
    def kind(self) -> str:
        return type(self.huey.storage).__name__.replace("Storage", "")
