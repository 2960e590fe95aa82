"""The instructor's submission pages through the Flask test client: login and
CSRF on everything, upload with progress read from the database, the report,
the per-submission page with its passages and anchor proof, the review mark."""

from __future__ import annotations

import io
import json
import re
import time

import pytest
from sqlalchemy import select

from kernel.audit import AuditEntry

PASSWORD = "instructor-pass-1"
COPIED = (
    "Coral reefs cover a tiny share of the ocean floor yet shelter about a quarter of all marine species. "
    "Warming water makes corals expel the algae that feed them, and the reef turns white. "
    "If the heat lasts for weeks the corals starve and the reef slowly crumbles. "
    "Local pollution and overfishing make it harder for a bleached reef to recover."
)
INDEPENDENT = (
    "Last summer I learned to sail on a small lake near my grandparents' farm. "
    "The first lesson was how to read the wind from ripples on the water. "
    "Capsizing was less frightening than I expected because the boat rights itself. "
    "By August I could take friends out on my own and bring them back dry."
)


def csrf_token(html: str) -> str:
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)


def make_user(runner, email: str, role: str = "instructor") -> None:
    result = runner.invoke(args=["users", "create", "--email", email, "--password", PASSWORD, "--role", role])
    assert result.exit_code == 0, result.output


def log_in(client, email: str) -> None:
    token = csrf_token(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 302


@pytest.fixture
def instructor(client, runner, worker):
    """An instructor logged in; the app's embedded worker runs uploads and reports."""
    make_user(runner, "prof@uni.edu")
    log_in(client, "prof@uni.edu")
    return client


def token_of(client, url: str) -> str:
    return csrf_token(client.get(url).get_data(as_text=True))


def test_every_page_needs_an_instructor(client, runner):
    for url in ("/submissions/", "/submissions/courses/1", "/submissions/assignments/1",
                "/submissions/reports/1", "/submissions/uploads/1/progress"):
        response = client.get(url)
        assert response.status_code == 302 and "/login" in response.location, url
    assert client.post("/submissions/courses", data={"code": "X"}).status_code in (302, 400)
    make_user(runner, "reg@uni.edu", "registrar")
    log_in(client, "reg@uni.edu")
    assert client.get("/submissions/").status_code == 403


def test_forms_need_a_csrf_token(instructor):
    assert instructor.post("/submissions/courses", data={"code": "BIO1"}).status_code == 400
    token = token_of(instructor, "/submissions/")
    response = instructor.post("/submissions/courses", data={"code": "BIO1", "title": "Biology",
                                                             "csrf_token": token})
    assert response.status_code == 302
    assert instructor.post("/submissions/assignments/1/uploads", data={}).status_code == 400
    assert instructor.post("/submissions/assignments/1/reports", data={}).status_code == 400


def _wait(client, url: str) -> dict:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = client.get(url).get_json()
        if job["finished"]:
            return job
        time.sleep(0.2)
    raise AssertionError("the upload did not finish")


def test_upload_report_submission_review(app, instructor):
    token = token_of(instructor, "/submissions/")
    response = instructor.post("/submissions/courses", data={"code": "BIO1", "title": "Biology",
                                                             "csrf_token": token})
    course_url = response.location
    response = instructor.post(course_url + "/assignments", content_type="multipart/form-data", data={
        "csrf_token": token, "name": "reefs", "title": "Coral reefs",
        "template_text": "Explain why coral reefs are in danger.",
        "sources": [(io.BytesIO(b"An unrelated reading about volcanoes and the rocks they leave behind them."),
                     "volcanoes.txt")]})
    assert response.status_code == 302
    assignment_url = response.location
    page = instructor.get(assignment_url).get_data(as_text=True)
    assert "Its sources are being read and indexed" in page and 'id="upload-form"' in page
    deadline = time.monotonic() + 60  # a worker reads and indexes the source
    while "volcanoes.txt" not in page and time.monotonic() < deadline:
        time.sleep(0.2)
        page = instructor.get(assignment_url).get_data(as_text=True)
    assert "volcanoes.txt" in page

    response = instructor.post(assignment_url + "/uploads", content_type="multipart/form-data",
                               headers={"Accept": "application/json", "X-Requested-With": "fetch"},
                               data={"csrf_token": token, "student_from_filename": "y", "files": [
                                   (io.BytesIO(COPIED.encode()), "amy_reefs.txt"),
                                   (io.BytesIO(COPIED.replace("tiny", "very small").encode()), "bo_reefs.md"),
                                   (io.BytesIO(INDEPENDENT.encode()), "cal_reefs.txt"),
                                   (io.BytesIO(b"\x89PNG\r\n\x1a\n\x00\x00"), "dot_reefs.txt"),
                               ]})
    assert response.status_code == 202, response.get_data(as_text=True)
    job = _wait(instructor, response.get_json()["progress_url"])
    assert job["state"] == "done" and job["added"] == 3 and job["percent"] == 100
    assert job["error_list"][0]["filename"] == "dot_reefs.txt" and "binary" in job["error_list"][0]["reason"]
    page = instructor.get(assignment_url).get_data(as_text=True)
    assert "dot_reefs.txt</strong>: the file holds binary data" in page
    assert "amy_reefs.txt" in page and "cal_reefs.txt" in page

    response = instructor.post(assignment_url + "/reports", data={"csrf_token": token})
    assert response.status_code == 302 and "/report-jobs/" in response.location
    job = _wait(instructor, response.location + "/progress")
    assert job["state"] == "done" and job["done"] == job["total"], job
    report_url = job["report_url"]
    assert instructor.get(response.location).location == report_url, "a finished job's page leads to its report"
    page = instructor.get(report_url).get_data(as_text=True)
    rows = re.findall(r'<tr class="(flagged)?" data-submission="(\d+)">(.*?)</tr>', page, re.S)
    by_file = {re.search(r">(\w+_reefs\.\w+)</a>", body).group(1): (flag, sid) for flag, sid, body in rows}
    assert by_file["amy_reefs.txt"][0] == "flagged" and by_file["bo_reefs.md"][0] == "flagged"
    assert by_file["cal_reefs.txt"][0] == ""
    assert "Cluster 1" in page and "Still matches" not in page  # the live check runs in the browser

    verify = instructor.get(report_url + "/verify").get_json()
    assert verify["valid"], verify
    identity = next(c for c in verify["checks"] if c["id"] == "issuer_identity")
    assert identity["status"] == "passed" and identity["message"].startswith("anchored by Example University")

    amy = by_file["amy_reefs.txt"][1]
    page = instructor.get(f"{report_url}/submissions/{amy}").get_data(as_text=True)
    assert "bo/bo_reefs.md" in page
    assert re.search(r"\d+% of the countable text lies in passages that match other texts", page)
    # Each matched passage is explained in words: the evidence that made it count.
    assert "Why these passages count" in page and "words in a row are the same as in the other text" in page
    assert re.search(r'<mark class="hl hl-copy"[^>]*>[^<]*Warming water makes corals', page)
    assert "Writing style" in page and 'id="anchor-proof"' in page
    report_id = int(report_url.rsplit("/", 1)[1])
    with app.app_context():
        from kernel.web.auth import db_session
        from plagiarism.store import Report

        report = db_session().get(Report, report_id)
        assert report.tx_hash in page and report.fingerprint in page and str(report.block_number) in page

    body = instructor.get(report_url + "/report.json")
    assert body.headers["Content-Disposition"].startswith("attachment")

    response = instructor.post(f"{report_url}/submissions/{amy}/review",
                               data={"csrf_token": token, "comment": "Met both students.", "action": "reviewed"})
    assert response.status_code == 302
    page = instructor.get(f"{report_url}/submissions/{amy}").get_data(as_text=True)
    assert "Met both students." in page and "by prof@uni.edu" in page
    assert "Reviewed" in instructor.get(report_url).get_data(as_text=True)
    with app.app_context():
        from kernel.web.auth import db_session

        entry = db_session().scalar(select(AuditEntry).where(AuditEntry.action == "case_reviewed"))
        assert entry.actor == "prof@uni.edu" and entry.detail_dict["comment"] == "Met both students."


def test_upload_without_files_says_so(instructor):
    token = token_of(instructor, "/submissions/")
    course_url = instructor.post("/submissions/courses", data={"code": "C1", "csrf_token": token}).location
    assignment_url = instructor.post(course_url + "/assignments", data={"name": "a1", "csrf_token": token}).location
    response = instructor.post(assignment_url + "/uploads", data={"csrf_token": token},
                               headers={"Accept": "application/json"})
    assert response.status_code == 400 and "at least one file" in response.get_json()["error"]


def test_cli_adds_to_the_persistent_index_and_reports(app, runner, tmp_path):
    folder = tmp_path / "essays"
    folder.mkdir()
    (folder / "amy_reefs.txt").write_text(COPIED)
    (folder / "bo_reefs.txt").write_text(COPIED.replace("tiny", "very small"))
    (folder / "cal_reefs.txt").write_text(INDEPENDENT)
    (folder / "dot_reefs.docx").write_bytes(b"not a zip")
    result = runner.invoke(args=["submissions", "add", "BIO1", "reefs", str(folder)])
    assert result.exit_code == 1, result.output  # one file could not be read
    added = json.loads(result.stdout)
    assert sorted(added["added"]) == ["amy/amy_reefs.txt", "bo/bo_reefs.txt", "cal/cal_reefs.txt"]
    assert added["errors"][0]["filename"] == "dot_reefs.docx" and "Word" in added["errors"][0]["reason"]

    again = runner.invoke(args=["submissions", "add", "BIO1", "reefs", str(folder)])
    assert json.loads(again.stdout)["added"] == [] and len(json.loads(again.stdout)["duplicates"]) == 3

    courses = runner.invoke(args=["submissions", "courses", "--json"])
    assert json.loads(courses.stdout) == [{"code": "BIO1", "title": "BIO1", "assignments": [
        {"name": "reefs", "title": "reefs", "submissions": 3}]}]
    index_root = app.extensions["attest.settings"].data_dir / "index"
    from plagiarism.index import VectorIndex

    assert VectorIndex(index_root).partitions() == ["BIO1/reefs"], "the assignment has its own partition"

    report = runner.invoke(args=["submissions", "report", "BIO1", "reefs", "--json"])
    assert report.exit_code == 0, report.output
    out = json.loads(report.stdout)
    assert out["state"] == "anchored" and out["tx_hash"]
    flagged = {r["filename"] for r in out["body"]["submissions"] if r["flagged"]}
    assert flagged == {"amy_reefs.txt", "bo_reefs.txt"}
    verify = runner.invoke(args=["submissions", "verify-report", str(out["report"])])
    assert verify.exit_code == 0 and json.loads(verify.stdout)["valid"]
    missing = runner.invoke(args=["submissions", "report", "NOPE", "reefs"])
    assert missing.exit_code == 1 and "no course" in missing.output


def test_a_pasted_submission_is_added(instructor):
    token = token_of(instructor, "/submissions/")
    course_url = instructor.post("/submissions/courses", data={"code": "C2", "csrf_token": token}).location
    assignment_url = instructor.post(course_url + "/assignments",
                                     data={"name": "a1", "csrf_token": token}).location
    data = {"csrf_token": token, "student_id": "s123", "student_name": "Sam Lee", "text": INDEPENDENT}
    response = instructor.post(assignment_url + "/paste", data=data)
    assert "The pasted text for Sam Lee is being added." in instructor.get(response.location).get_data(as_text=True)
    job = _wait(instructor, response.location + "/progress")
    assert job["added_names"] == ["s123/s123_pasted.txt"]
    assert "s123_pasted.txt" in instructor.get(assignment_url).get_data(as_text=True)
    again = instructor.post(assignment_url + "/paste", data=data)
    _wait(instructor, again.location + "/progress")
    page = instructor.get(again.location).get_data(as_text=True)
    assert "s123/s123_pasted.txt, which is kept once" in page


def test_an_upload_page_shows_its_stage_in_words_until_a_worker_has_read_it(app, client, runner):
    """No worker yet: the page says the upload waits for one; the files are stored.
    A worker then reads and indexes them, and the page lists what became of each."""
    from kernel.jobs.worker import EmbeddedWorker

    make_user(runner, "prof@uni.edu")
    log_in(client, "prof@uni.edu")
    token = token_of(client, "/submissions/")
    course_url = client.post("/submissions/courses", data={"code": "C3", "csrf_token": token}).location
    assignment_url = client.post(course_url + "/assignments", data={"name": "a1", "csrf_token": token}).location
    queued = client.post(assignment_url + "/uploads", content_type="multipart/form-data", data={
        "csrf_token": token, "student_from_filename": "y",
        "files": [(io.BytesIO(COPIED.encode()), "amy.txt"), (io.BytesIO(b"\x00\x01binary"), "junk.txt")]})
    job_url = queued.location
    page = client.get(job_url).get_data(as_text=True)
    assert "Waiting for a worker" in page and "0 / 2" in page
    with EmbeddedWorker(app, workers=1):
        job = _wait(client, job_url + "/progress")
    assert job["state"] == "done" and job["added"] == 1 and job["unreadable"] == 1
    page = client.get(job_url).get_data(as_text=True)
    assert "junk.txt" in page and "binary data" in page

