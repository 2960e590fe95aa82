"""Jobs survive their workers, with real processes: two `flask jobs worker`
processes share an installation (its database and queue); the one holding a
job is killed with -9 (or stopped gracefully) in the middle of it, and the
other finishes it, anchoring nothing twice (`RootAnchored` events counted).
Three `credentials issue` processes on one key never collide on a nonce."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from app import create_app
from credentials import storage
from credentials.document import CredentialRequest
from credentials.issuance import ROOT_ANCHORED_TOPIC
from credentials.jobs import batch_job, submit_batch
from credentials.runtime import get_registry
from kernel.jobs import JobState, get_job
from kernel.settings import ROOT
from tests.fixtures_chain import start_anvil

pytestmark = pytest.mark.slow
FLASK = ROOT / ".venv" / "bin" / "flask"


def env_for(data_dir: Path, rpc_url: str, **extra: str) -> dict:
    # The test's database stays (on PostgreSQL, ATTEST_DATABASE_URL: tests/fixtures_databases.py).
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATTEST_") or k == "ATTEST_DATABASE_URL"}
    env.update(ATTEST_DATA_DIR=str(data_dir), ATTEST_RPC_URL=rpc_url, **extra)
    return env


class Worker:
    """A real `flask --app app jobs worker` process of the installation."""

    def __init__(self, data_dir: Path, rpc_url: str, log: Path, **extra: str):
        self.log = open(log, "ab")
        self.proc = subprocess.Popen([str(FLASK), "--app", "app", "jobs", "worker", "--workers", "1"], cwd=ROOT,
                                     env=env_for(data_dir, rpc_url, **extra), stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self, sig=signal.SIGTERM, timeout: float = 120) -> int:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


def requests(n: int) -> list[CredentialRequest]:
    from datetime import date

    return [CredentialRequest(f"Student {i}", f"s{i}@example.edu", "BSc Physics", "BachelorDegree",
                              "Three-year programme.", date(2026, 6, 30)) for i in range(n)]


def wait_until(condition, timeout: float, what: str, poll: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"{what} did not happen within {timeout:.0f} s")


def job_state(app, job_id: str):
    with app.extensions["attest.db"].session() as session:
        job = get_job(session, job_id)
        return job.state, job.stage, job.lease_owner, job.done, job.attempts


def batch_state(app, batch_id: str) -> str:
    with app.extensions["attest.db"].session() as session:
        return storage.get_batch(session, batch_id).state


def holder_pid(app, job_id: str) -> int | None:
    _state, _stage, owner, _done, _attempts = job_state(app, job_id)
    return int(owner.split(":")[1]) if owner else None


def root_anchored_events(registry, root: str) -> int:
    return len(registry.w3.eth.get_logs({"address": registry.address, "fromBlock": 0, "toBlock": "latest",
                                         "topics": [ROOT_ANCHORED_TOPIC, root]}))


@pytest.fixture
def installation(tmp_path, anvil_url):
    """The installation the workers serve, seen from the test (as its web process sees it)."""
    app = create_app({"TESTING": True, "data_dir": tmp_path / "data", "rpc_url": anvil_url, "SECRET_KEY": "x"})
    with app.app_context():
        get_registry(app)
    yield app
    app.extensions.pop("attest.registry").close()


def run_with_two_workers(app, tmp_path, count: int, kill_when, rpc_url: str | None = None, sig=None):
    """Submit a batch, start two workers, and when `kill_when(state, stage, done)`
    holds, kill (or signal) the one holding the job. Returns (batch id, job id,
    seconds from the kill to the batch being anchored, the job's attempts)."""
    settings = app.extensions["attest.settings"]
    rpc_url = rpc_url or settings.rpc_url
    with app.extensions["attest.db"].session() as session:
        batch, job = submit_batch(app, session, requests(count), "registrar@example.edu")
    workers = [Worker(settings.data_dir, rpc_url, tmp_path / f"worker-{i}.log") for i in range(2)]
    try:
        wait_until(lambda: kill_when(*job_state(app, job.id)[:2], job_state(app, job.id)[3]), 120,
                   "the moment to stop the worker")
        pid = holder_pid(app, job.id)
        victim = next(w for w in workers if w.pid == pid)
        stopped_at = time.monotonic()
        if sig is None:
            victim.kill()
        else:
            victim.stop(sig)
        wait_until(lambda: batch_state(app, batch.id) == storage.ANCHORED, 120,
                   "the batch anchored by the other worker", poll=0.2)
        took = time.monotonic() - stopped_at
        state, _stage, owner, _done, attempts = job_state(app, job.id)
        wait_until(lambda: job_state(app, job.id)[0] == JobState.DONE, 30, "the job done")
        survivor = next(w for w in workers if w is not victim)
        assert survivor.proc.poll() is None
        return batch.id, job.id, took, attempts
    finally:
        for w in workers:
            w.stop()


def test_a_worker_killed_while_signing_leaves_the_batch_to_the_other(installation, tmp_path):
    batch_id, job_id, took, attempts = run_with_two_workers(
        installation, tmp_path, 20_000, lambda state, stage, done: stage == "signing" and done >= 2000)
    assert took < 60, f"taken up after {took:.0f} s"
    assert attempts == 2
    with installation.extensions["attest.db"].session() as session:
        assert storage.count_credentials(session, batch_id=batch_id, status=storage.ACTIVE) == 20_000
        batch = storage.get_batch(session, batch_id)
        assert root_anchored_events(get_registry(installation), batch.merkle_root) == 1


def test_a_worker_killed_while_anchoring_never_anchors_twice(tmp_path):
    """A node that mines a block every 3 s: the worker is killed while it waits
    for its anchoring transaction; the other finds the root on chain and only
    finishes the batch."""
    node = start_anvil(tmp_path, "--block-time", "3")
    app = create_app({"TESTING": True, "data_dir": tmp_path / "data", "rpc_url": node.url, "SECRET_KEY": "x"})
    try:
        with app.app_context():
            registry = get_registry(app)
        batch_id, _job_id, took, attempts = run_with_two_workers(
            app, tmp_path, 500, lambda state, stage, done: stage == "anchoring", rpc_url=node.url)
        assert took < 60 and attempts == 2
        with app.extensions["attest.db"].session() as session:
            batch = storage.get_batch(session, batch_id)
            assert batch.tx_hash and root_anchored_events(registry, batch.merkle_root) == 1
            assert storage.count_credentials(session, batch_id=batch_id, status=storage.ACTIVE) == 500
    finally:
        app.extensions.pop("attest.registry").close()
        node.stop()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_graceful_restart_during_a_40000_row_batch_loses_nothing(installation, tmp_path, sig):
    batch_id, job_id, took, attempts = run_with_two_workers(
        installation, tmp_path, 40_000, lambda state, stage, done: stage == "signing" and done >= 4000, sig=sig)
    with installation.extensions["attest.db"].session() as session:
        assert storage.count_credentials(session, batch_id=batch_id) == 40_000
        assert storage.count_credentials(session, batch_id=batch_id, status=storage.ACTIVE) == 40_000
        batch = storage.get_batch(session, batch_id)
        assert root_anchored_events(get_registry(installation), batch.merkle_root) == 1
        job = batch_job(session, batch_id)
        assert job.state == JobState.DONE and job.error is None


def test_three_concurrent_issuers_on_one_key_never_collide(installation, tmp_path):
    """20 rounds of three `credentials issue` processes at once, one installation,
    one issuer key: every batch anchored, one transaction each."""
    settings = installation.extensions["attest.settings"]
    env = env_for(settings.data_dir, settings.rpc_url)
    header = "recipient_name,recipient_email,achievement_name,achievement_type,description,awarded_on,valid_until,grade"
    failures, batches = [], []
    for round_ in range(20):
        procs = []
        for k in range(3):
            csv = tmp_path / f"r{round_}-{k}.csv"
            csv.write_text(f"{header}\nStudent {round_}-{k},s{round_}x{k}@example.edu,BSc,BachelorDegree,Done.,"
                           "2026-06-30,,\n")
            procs.append(subprocess.Popen([str(FLASK), "--app", "app", "credentials", "issue", str(csv), "--out",
                                           str(tmp_path / f"out-{round_}-{k}")], cwd=ROOT, env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        for proc in procs:
            out, err = proc.communicate(timeout=180)
            if proc.returncode != 0:
                # The error's own lines, not SQLAlchemy's closing "Background on this error" link.
                lines = [line for line in err.strip().splitlines() if "sqlalche.me" not in line]
                failures.append(" | ".join(lines[-3:]) if lines else f"exit {proc.returncode}")
            else:
                batches.append(json.loads(out))
    assert failures == [], f"{len(failures)} of 60 runs failed: {failures[:3]}"
    assert len({b["tx_hash"] for b in batches}) == 60
    registry = get_registry(installation)
    assert all(root_anchored_events(registry, b["merkle_root"]) == 1 for b in batches)


def test_a_waiting_job_is_tried_again_by_itself(installation, tmp_path, monkeypatch):
    """The chain refuses for a while: the job waits (not failed), then a worker
    tries again and anchors it, with no person involved."""
    from kernel.jobs.runner import reap

    registry = get_registry(installation)
    real = registry.anchor_of
    calls = {"n": 0}

    def flaky(root):
        calls["n"] += 1
        if calls["n"] <= 1:
            from credentials.chain import ChainUnreachable

            raise ChainUnreachable("cannot reach the chain (test)")
        return real(root)

    monkeypatch.setattr(registry, "anchor_of", flaky)
    monkeypatch.setattr("credentials.jobs.RETRY_AFTER", 0.5)
    from kernel.jobs.worker import EmbeddedWorker

    with installation.extensions["attest.db"].session() as session:
        batch, job = submit_batch(installation, session, requests(3), "registrar@example.edu")
    with EmbeddedWorker(installation, workers=1, reap_every=0.5):
        wait_until(lambda: job_state(installation, job.id)[0] == JobState.DONE, 60, "the job done")
    assert calls["n"] >= 2
    assert reap(installation) == []
    with installation.extensions["attest.db"].session() as session:
        assert storage.get_batch(session, batch.id).state == storage.ANCHORED


# ----- uploads and reports: the model runs in the worker processes ---------------------

def news_texts(n: int) -> list[tuple[str, bytes]]:
    """Real prose (news articles of the Lee corpus, committed in bench/data), one file a student."""
    rows = [json.loads(line) for line in (ROOT / "bench" / "data" / "news_articles.jsonl").read_text().splitlines()]
    return [(f"student{i:02d}_essay.txt", rows[i]["text"].encode()) for i in range(n)]


def upload_job(app, n: int):
    from plagiarism import courses
    from plagiarism.submissions import submit_upload

    with app.extensions["attest.db"].session() as session:
        course = courses.create_course(session, "NEWS1", "News writing")
        assignment = courses.create_assignment(session, course, "a1", "An article", "")
        job = submit_upload(app, session, course, assignment, news_texts(n), "prof@uni.edu")
    return course, assignment, job


def kill_holder_when(app, tmp_path, job_id: str, condition, timeout: float = 180) -> float:
    """Two worker processes; kill -9 the one holding the job when `condition(stage, done)`;
    returns the seconds from the kill to the job being done by the other."""
    settings = app.extensions["attest.settings"]
    workers = [Worker(settings.data_dir, settings.rpc_url, tmp_path / f"worker-{i}.log") for i in range(2)]
    try:
        wait_until(lambda: condition(job_state(app, job_id)[1], job_state(app, job_id)[3]), timeout,
                   "the moment to kill the worker", poll=0.02)
        victim = next(w for w in workers if w.pid == holder_pid(app, job_id))
        victim.kill()
        killed_at = time.monotonic()
        wait_until(lambda: job_state(app, job_id)[0] in (JobState.DONE, JobState.FAILED), timeout,
                   "the job finished by the other worker", poll=0.2)
        assert job_state(app, job_id)[0] == JobState.DONE, job_state(app, job_id)
        return time.monotonic() - killed_at
    finally:
        for w in workers:
            w.stop()


def test_a_worker_killed_while_indexing_an_upload_leaves_it_to_the_other(installation, tmp_path):
    from sqlalchemy import func, select

    from plagiarism import indexing
    from plagiarism.store import Submission

    course, assignment, job = upload_job(installation, 40)
    took = kill_holder_when(installation, tmp_path, job.id, lambda stage, done: stage == "indexing" and done >= 8)
    assert took < 60, f"taken up after {took:.0f} s"
    with installation.extensions["attest.db"].session() as session:
        result = get_job(session, job.id).result_dict
        assert len(result["added"]) == 40 and result["duplicates"] == [] and result["errors"] == []
        assert session.scalar(select(func.count()).select_from(Submission)) == 40
    partition = indexing.open_index(installation.extensions["attest.settings"].index_dir).partition(
        indexing.assignment_partition(course, assignment))
    assert len(partition.doc_ids()) == 40


def test_a_worker_killed_while_building_a_report_leaves_it_to_the_other(installation, tmp_path):
    from sqlalchemy import func, select

    from kernel.jobs import run_inline
    from plagiarism.reports import submit_report
    from plagiarism.store import REPORT_ANCHORED, Report

    _course, assignment, upload = upload_job(installation, 30)
    assert run_inline(installation, upload.id) == JobState.DONE
    with installation.extensions["attest.db"].session() as session:
        job = submit_report(installation, session, session.merge(assignment), "prof@uni.edu")
    took = kill_holder_when(installation, tmp_path, job.id, lambda stage, done: stage in ("comparing", "anomalies"))
    assert took < 60, f"taken up after {took:.0f} s"
    registry = get_registry(installation)
    with installation.extensions["attest.db"].session() as session:
        assert session.scalar(select(func.count()).select_from(Report)) == 1, "one report, not two"
        report = session.scalar(select(Report))
        assert report.state == REPORT_ANCHORED and report.job_id == job.id
        assert root_anchored_events(registry, report.fingerprint) == 1
