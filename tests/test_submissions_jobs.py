"""Uploads and reports as jobs, with the real model and a real Anvil: a job
whose worker died part-way is finished by another from where it was, and
counts nothing twice; a report stored before its worker died is anchored, not
built again; a chain that is down leaves the report stored, to anchor later."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from kernel.database import utcnow
from kernel.jobs import Job, JobState, get_job, run_inline
from kernel.jobs.runner import claim
from kernel.jobs.worker import EmbeddedWorker
from plagiarism import courses, indexing, reports, submissions
from plagiarism.store import REPORT_ANCHOR_FAILED, REPORT_ANCHORED, Report, Submission, UploadItem
from tests.test_submissions_store import ESSAY_A, ESSAY_B, ESSAY_C


@pytest.fixture
def assignment(app):
    with app.extensions["attest.db"].session() as session:
        course = courses.create_course(session, "HIST210", "Early modern Europe")
        return courses.create_assignment(session, course, "essay1", "The printing press", "")


def wait_done(app, job_id: str, timeout: float = 90) -> Job:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with app.extensions["attest.db"].session() as session:
            job = get_job(session, job_id)
            if job.state in (JobState.DONE, JobState.FAILED):
                return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


def test_an_upload_whose_worker_died_is_finished_by_another(app, assignment):
    files = [("ana.txt", ESSAY_A.encode()), ("ben.txt", ESSAY_B.encode()), ("bad.odt", b"x")]
    database = app.extensions["attest.db"]
    with database.session() as session:
        course = courses.get_course(session, "HIST210")
        job = submissions.submit_upload(app, session, course, assignment, files, "prof@uni.edu", dispatch_now=False)
    # A worker on another machine took it, stored Ana's essay, marked it read, and died.
    assert claim(app, job.id, "elsewhere.example:4242:1") is not None
    with database.session() as session:
        item = session.scalars(select(UploadItem).where(UploadItem.job_id == job.id).order_by(UploadItem.id)).first()
        submissions.store_submission(session, session.merge(assignment), "ana.txt", ESSAY_A, ("ana", "ana"),
                                     "prof@uni.edu", job.id)
        item.processed, item.outcome, item.data = True, "added", None
        session.commit()
        session.execute(update(Job).where(Job.id == job.id).values(lease_until=utcnow() - timedelta(seconds=1)))
        session.commit()
    with EmbeddedWorker(app, workers=1, reap_every=0.2):
        done = wait_done(app, job.id)
    assert done.state == JobState.DONE and done.attempts == 2
    result = done.result_dict
    assert result["added"] == ["ana/ana.txt", "ben/ben.txt"], "its own earlier work is not a duplicate"
    assert [e["filename"] for e in result["errors"]] == ["bad.odt"] and result["duplicates"] == []
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(Submission)) == 2
        course = courses.get_course(session, "HIST210")
        partition = indexing.open_index(app.extensions["attest.settings"].index_dir).partition(
            indexing.assignment_partition(course, assignment))
        assert sorted(partition.doc_ids()) == ["s1", "s2"]


def _two_submissions(app, assignment) -> None:
    with app.extensions["attest.db"].session() as session:
        course = courses.get_course(session, "HIST210")
        job = submissions.submit_upload(app, session, course, assignment,
                                        [("ana.txt", ESSAY_A.encode()), ("cy.txt", ESSAY_C.encode())], "prof@uni.edu",
                                        dispatch_now=False)
    assert run_inline(app, job.id) == JobState.DONE


def test_a_report_made_while_the_chain_is_down_is_kept_and_anchored_later(app, assignment, monkeypatch):
    from credentials.runtime import get_registry

    _two_submissions(app, assignment)

    def chain_down(_app=None):
        raise ConnectionError("cannot reach the chain at http://127.0.0.1:9")

    monkeypatch.setattr("credentials.runtime.get_registry", chain_down)
    with app.extensions["attest.db"].session() as session:
        job = reports.submit_report(app, session, session.merge(assignment), "prof@uni.edu", dispatch_now=False)
    assert run_inline(app, job.id) == JobState.DONE
    monkeypatch.undo()
    with app.extensions["attest.db"].session() as session:
        report = session.get(Report, get_job(session, job.id).result_dict["report"])
        assert report.state == REPORT_ANCHOR_FAILED and "cannot reach the chain" in report.error
        registry = get_registry(app)
        assert not reports.verify_report(report, registry)["valid"]
        reports.anchor_report(session, report, registry, "prof@uni.edu")
        assert report.state == REPORT_ANCHORED and reports.verify_report(report, registry)["valid"]


def test_a_report_stored_before_its_worker_died_is_anchored_not_built_again(app, assignment):
    from credentials.runtime import get_registry

    _two_submissions(app, assignment)
    with app.extensions["attest.db"].session() as session:
        job = reports.submit_report(app, session, session.merge(assignment), "prof@uni.edu", dispatch_now=False)
        stored = reports.build_report(session, session.merge(assignment), app.extensions["attest.settings"].index_dir,
                                      "prof@uni.edu", job_id=job.id)
    assert run_inline(app, job.id) == JobState.DONE
    with app.extensions["attest.db"].session() as session:
        assert session.scalar(select(func.count()).select_from(Report)) == 1
        report = session.get(Report, stored.id)
        assert get_job(session, job.id).result_dict["report"] == report.id and report.state == REPORT_ANCHORED
        assert get_registry(app).anchor_of(report.fingerprint) is not None
