"""Durable jobs for every piece of long work (issuing a batch, indexing an
upload, building a report), on the Huey queue engine.

    from kernel.jobs import JobContext, Stage, enqueue, job_kind

`model` holds the table and the typed stages (no Flask: domain code imports
it), `runner` the kinds, claiming, leases, heartbeats and the reaper, `queue`
the Huey store (SQLite, Redis or PostgreSQL), `worker` the embedded worker
and the worker process. The runner's names load on first use, so importing
`Stage` does not import Flask.
"""

from kernel.jobs.model import STAGE_LABELS, UNFINISHED, Job, JobState, Stage

_RUNNER = ("KINDS", "HandBack", "JobContext", "JobFailed", "RetryLater", "dispatch", "enqueue", "get_job",
           "job_kind", "jobs_for", "make_due", "reap", "run_inline", "run_job", "submit")

__all__ = ["STAGE_LABELS", "UNFINISHED", "Job", "JobState", "Stage", *_RUNNER]


def __getattr__(name: str):
    if name in _RUNNER:
        from kernel.jobs import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'kernel.jobs' has no attribute {name!r}")
