"""The Flask app, its test client and CLI runner, each on a fresh data dir."""

from __future__ import annotations

import pytest

from app import create_app, open_database
from credentials.verification import PROVEN


@pytest.fixture(autouse=True)
def nothing_proven_yet():
    """Every test starts with no credential remembered as verified
    (credentials.verification.PROVEN is per process, like a worker's)."""
    PROVEN.clear()
    yield
    PROVEN.clear()


@pytest.fixture
def app(tmp_path, anvil_url):
    app = create_app({"TESTING": True, "data_dir": tmp_path / "appdata", "rpc_url": anvil_url,
                      "SECRET_KEY": "test-secret"})
    yield app
    registry = app.extensions.pop("attest.registry", None)
    if registry is not None:
        registry.close()
    reader = app.extensions.pop("attest.chain_reader", None)
    if reader is not None:
        reader.close()  # its revocation feeds' threads end


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def database(db_urls):
    """A fresh, migrated database of its own (SQLite or PostgreSQL, as the
    session runs), without the app."""
    database = open_database(db_urls.fresh())
    yield database
    database.engine.dispose()


@pytest.fixture
def session(database):
    with database.session() as session:
        yield session


@pytest.fixture
def worker(app):
    """The app's embedded job worker (as `flask serve` runs it), stopped after the test."""
    from kernel.jobs.worker import EmbeddedWorker

    with EmbeddedWorker(app, workers=2, reap_every=1.0) as running:
        yield running


def wait_for_job(app, job_id: str, timeout: float = 60.0):
    """Poll a job until it is finished or waiting; returns it."""
    import time

    from kernel.jobs import JobState, get_job

    deadline = time.monotonic() + timeout
    while True:
        with app.extensions["attest.db"].session() as session:
            job = get_job(session, job_id)
            if job is not None and job.state in (JobState.DONE, JobState.FAILED, JobState.WAITING):
                return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} did not finish within {timeout:.0f} s: "
                                 f"{job.as_dict() if job else 'missing'}")
        time.sleep(0.1)
