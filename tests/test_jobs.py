"""The job system on its own: claiming, leases, heartbeats, hand-back, waiting,
failing, reaping lost messages and dead workers' jobs; progress any web worker
can read. Test kinds are registered here; the queue is the app's (SQLite)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import update

from kernel.database import utcnow
from kernel.jobs import Job, JobContext, JobFailed, JobState, RetryLater, Stage, enqueue, get_job, job_kind
from kernel.jobs.runner import claim, reap, run_job
from kernel.jobs.worker import EmbeddedWorker

GATE = threading.Event()
SEEN: list[str] = []


@job_kind("test_count", lease=2.0)
def count_job(ctx: JobContext) -> dict:
    total = ctx.payload["n"]
    for i in range(ctx.payload.get("start", 0), total):
        ctx.progress(Stage.SIGNING, i + 1, total)
        if ctx.payload.get("slow") and ctx.attempt == 1:
            time.sleep(0.05)
        ctx.checkpoint()
    SEEN.append(ctx.job_id)
    return {"counted": total, "attempt": ctx.attempt}


@job_kind("test_wait_for_gate", lease=2.0)
def gate_job(ctx: JobContext) -> dict:
    ctx.progress(Stage.ANCHORING, 0, 1)
    if not GATE.is_set():
        raise RetryLater("the gate is closed", after=0.2)
    return {"through": True}


@job_kind("test_fails")
def failing_job(ctx: JobContext) -> dict:
    if ctx.payload.get("how") == "said":
        raise JobFailed("the file this job needs is gone; upload it again")
    raise KeyError("surprise")


def state(app, job_id: str) -> Job:
    with app.extensions["attest.db"].session() as session:
        return get_job(session, job_id)


def wait_for(app, job_id: str, states=(JobState.DONE, JobState.FAILED), timeout: float = 30) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = state(app, job_id)
        if job.state in states:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} is {state(app, job_id).as_dict()}")


def submit(app, kind: str, **payload) -> str:
    with app.extensions["attest.db"].session() as session:
        return enqueue(app, session, kind, payload, "tester@example.edu", subject="test").id


def test_a_queued_job_runs_and_records_its_result(app):
    with EmbeddedWorker(app, workers=1):
        job_id = submit(app, "test_count", n=5)
        job = wait_for(app, job_id)
    assert job.state == JobState.DONE and job.stage == Stage.DONE
    assert job.result_dict == {"counted": 5, "attempt": 1}
    assert job.lease_owner is None and job.finished_at is not None
    assert job.as_dict()["stage_label"] == "Done" and job.as_dict()["percent"] == 100


def test_only_one_claim_wins(app):
    with app.extensions["attest.db"].session() as session:
        job_id = enqueue(app, session, "test_count", {"n": 1}, "tester").id
    first, second = claim(app, job_id, "a:1:1"), claim(app, job_id, "b:2:2")
    assert first is not None and second is None
    assert state(app, job_id).lease_owner == "a:1:1"


def test_a_lease_that_expires_is_taken_up_by_another_worker(app):
    """A worker on another machine stopped renewing: once its lease is over,
    the reaper sends the job again and a live worker finishes it."""
    with app.extensions["attest.db"].session() as session:
        job_id = enqueue(app, session, "test_count", {"n": 3}, "tester").id
    assert claim(app, job_id, "elsewhere.example:4242:1") is not None
    assert reap(app) == []  # its lease is still good
    assert run_job(app, job_id) is None  # nobody may take it meanwhile
    with app.extensions["attest.db"].engine.begin() as conn:
        conn.execute(update(Job).where(Job.id == job_id).values(lease_until=utcnow() - timedelta(seconds=1)))
    with EmbeddedWorker(app, workers=1, reap_every=0.2):
        job = wait_for(app, job_id)
    assert job.state == JobState.DONE and job.attempts == 2


def test_a_dead_local_holder_need_not_be_waited_for(app):
    """The holder was a process of this machine that no longer exists (a CLI
    killed with -9): its job is taken at once, not when its lease ends."""
    import subprocess

    dead = subprocess.Popen(["true"])
    dead.wait()
    import socket

    with app.extensions["attest.db"].session() as session:
        job_id = enqueue(app, session, "test_count", {"n": 2}, "tester").id
    assert claim(app, job_id, f"{socket.gethostname()}:{dead.pid}:1") is not None
    assert job_id in reap(app)
    assert run_job(app, job_id) == JobState.DONE


def test_stopping_hands_the_job_back_at_its_next_step(app):
    with app.extensions["attest.db"].session() as session:
        job_id = enqueue(app, session, "test_count", {"n": 400, "slow": True}, "tester").id
    worker = EmbeddedWorker(app, workers=1).start()
    deadline = time.monotonic() + 20
    while state(app, job_id).done < 5 and time.monotonic() < deadline:
        time.sleep(0.02)
    worker.stop()
    job = state(app, job_id)
    assert job.state == JobState.QUEUED and job.lease_owner is None and 5 <= job.done < 400
    with EmbeddedWorker(app, workers=1):
        job = wait_for(app, job_id)
    assert job.state == JobState.DONE and job.attempts == 2


def test_a_job_that_must_wait_is_tried_again_by_itself(app):
    GATE.clear()
    with EmbeddedWorker(app, workers=1, reap_every=0.1):
        job_id = submit(app, "test_wait_for_gate")
        job = wait_for(app, job_id, states=(JobState.WAITING,))
        assert job.error == "the gate is closed" and job.stage == Stage.WAITING_FOR_CHAIN
        GATE.set()
        job = wait_for(app, job_id)
    assert job.state == JobState.DONE and job.result_dict == {"through": True} and job.attempts >= 2


def test_failures_are_recorded_in_words(app):
    with EmbeddedWorker(app, workers=1):
        said = wait_for(app, submit(app, "test_fails", how="said"))
        crashed = wait_for(app, submit(app, "test_fails"))
    assert said.state == JobState.FAILED and said.error == "the file this job needs is gone; upload it again"
    assert crashed.state == JobState.FAILED and crashed.error.startswith("KeyError")
    assert said.stage == Stage.FAILED and said.as_dict()["stage_label"] == "Failed"


def test_a_lost_message_is_sent_again(app):
    """The row was committed but its message never reached the queue."""
    with app.extensions["attest.db"].session() as session:
        from kernel.jobs import submit as submit_only

        job = submit_only(session, "test_count", {"n": 1}, "tester")
        job.updated_at = utcnow() - timedelta(minutes=5)
        session.commit()
        job_id = job.id
    with EmbeddedWorker(app, workers=1, reap_every=0.1):
        assert wait_for(app, job_id).state == JobState.DONE


def test_a_job_whose_worker_keeps_dying_is_given_up(app):
    with app.extensions["attest.db"].session() as session:
        job_id = enqueue(app, session, "test_count", {"n": 1}, "tester").id
    with app.extensions["attest.db"].engine.begin() as conn:
        conn.execute(update(Job).where(Job.id == job_id).values(attempts=25))
    assert run_job(app, job_id) is None
    job = state(app, job_id)
    assert job.state == JobState.FAILED and "stopped 25 times" in job.error


def test_progress_is_json_for_whoever_may_see_it(app, client, runner):
    app.config["WTF_CSRF_ENABLED"] = False
    for email, role in (("reg@uni.edu", "registrar"), ("ins@uni.edu", "instructor")):
        runner.invoke(args=["users", "create", "--email", email, "--password", "a-long-password", "--role", role])
    with app.extensions["attest.db"].session() as session:
        job_id = enqueue(app, session, "issue_batch", {"batch": "none"}, "someone@uni.edu").id
    assert client.get(f"/jobs/{job_id}").status_code == 302  # a login first
    client.post("/login", data={"email": "ins@uni.edu", "password": "a-long-password"})
    assert client.get(f"/jobs/{job_id}").status_code == 404  # not an instructor's kind of job
    client.post("/logout")
    client.post("/login", data={"email": "reg@uni.edu", "password": "a-long-password"})
    body = client.get(f"/jobs/{job_id}").get_json()
    assert body["state"] == "queued" and body["stage_label"] == "Waiting for a worker"
    assert client.get("/jobs/not-a-job").status_code == 404


@pytest.mark.parametrize("stage", list(Stage))
def test_every_stage_has_words(stage):
    from kernel.jobs import STAGE_LABELS

    assert STAGE_LABELS[stage] and STAGE_LABELS[stage][0].isupper()
