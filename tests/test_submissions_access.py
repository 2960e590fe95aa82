"""Per-course access through the Flask test client on a real database: a
course's pages, reports, submissions, jobs and actions are for its members
(404 for anyone else, so its existence is not revealed); owners add
instructors; admins see every course; legacy member-less courses stay
visible to every instructor; the CLI can name an owner."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from kernel.audit import AuditEntry
from tests.test_submissions_web import COPIED, INDEPENDENT, csrf_token, log_in, make_user

A, B, ADMIN = "a@uni.edu", "b@uni.edu", "boss@uni.edu"


def _client(app, runner, email: str, role: str = "instructor"):
    make_user(runner, email, role)
    client = app.test_client()
    log_in(client, email)
    return client


def _token(client) -> str:
    return csrf_token(client.get("/submissions/").get_data(as_text=True))


def _wait_for_submissions(app, assignment_code: str, course_code: str, n: int) -> None:
    """Pasted texts are upload jobs: wait until the worker has stored them."""
    import time

    from plagiarism.store import Assignment, Course, Submission

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with app.extensions["attest.db"].session() as session:
            found = session.scalars(select(Submission.id).join(Assignment).join(Course).where(
                Course.code == course_code, Assignment.name == assignment_code)).all()
            if len(found) >= n:
                return
        time.sleep(0.1)
    raise AssertionError(f"{n} submissions were not stored")


@pytest.fixture
def world(app, runner, worker):
    """Instructor A's course with an assignment, a submission, an upload job,
    a report job and a report (built without the chain); B is another instructor."""
    from kernel.web.auth import db_session
    from plagiarism import reports, submissions
    from plagiarism.store import Assignment, Course, Submission

    a = _client(app, runner, A)
    b = _client(app, runner, B)
    token = _token(a)
    course_url = a.post("/submissions/courses", data={"code": "SECRET1", "title": "Private",
                                                      "csrf_token": token}).location
    assignment_url = a.post(course_url + "/assignments", data={"name": "e1", "csrf_token": token}).location
    for student, text in (("amy", COPIED), ("bo", COPIED.replace("tiny", "very small")), ("cal", INDEPENDENT)):
        a.post(assignment_url + "/paste", data={"csrf_token": token, "student_id": student, "text": text})
    _wait_for_submissions(app, "e1", "SECRET1", 3)
    with app.app_context():
        session = db_session()
        course = session.scalar(select(Course).where(Course.code == "SECRET1"))
        assignment = session.scalar(select(Assignment).where(Assignment.course_id == course.id))
        sub = session.scalar(select(Submission).where(Submission.assignment_id == assignment.id,
                                                      Submission.student_id == "amy"))
        upload = submissions.submit_upload(app, session, course, assignment, [("dan.txt", INDEPENDENT.encode())], A,
                                           dispatch_now=False)
        report_job = reports.submit_report(app, session, assignment, A, dispatch_now=False)
        report = reports.build_report(session, assignment, app.extensions["attest.settings"].index_dir, A)
        ids = {"course": course.id, "assignment": assignment.id, "submission": sub.id, "upload": upload.id,
               "report_job": report_job.id, "report": report.id}
    return a, b, ids


def _get_urls(ids: dict) -> list[str]:
    r = f"/submissions/reports/{ids['report']}"
    return [f"/submissions/courses/{ids['course']}", f"/submissions/assignments/{ids['assignment']}",
            f"/submissions/uploads/{ids['upload']}", f"/submissions/uploads/{ids['upload']}/progress",
            f"/submissions/report-jobs/{ids['report_job']}",
            f"/submissions/report-jobs/{ids['report_job']}/progress",
            r, f"{r}/report.json", f"{r}/verify", f"{r}/submissions/{ids['submission']}"]


def _post_urls(ids: dict) -> list[str]:
    c, a, r = (f"/submissions/courses/{ids['course']}", f"/submissions/assignments/{ids['assignment']}",
               f"/submissions/reports/{ids['report']}")
    return [f"{c}/assignments", f"{c}/sources", f"{c}/members", f"{a}/sources", f"{a}/paste",
            f"{a}/uploads", f"{a}/reports", f"{r}/anchor", f"{r}/submissions/{ids['submission']}/review"]


def _counts(app) -> dict:
    from kernel.jobs import Job
    from kernel.web.auth import db_session
    from plagiarism.store import Assignment, CourseMember, Report, Review, Source, Submission, UploadItem

    with app.app_context():
        session = db_session()
        return {m.__name__: len(session.scalars(select(m.id)).all())
                for m in (Assignment, CourseMember, Report, Job, Review, Source, Submission, UploadItem)}


def test_another_instructor_gets_404_everywhere(app, world):
    a, b, ids = world
    for url in _get_urls(ids):
        if not url.endswith("/verify"):  # verify asks the chain; its access check is what matters here
            assert a.get(url).status_code in (200, 302), url
        assert b.get(url).status_code == 404, url
    assert "SECRET1" in a.get("/submissions/").get_data(as_text=True)
    assert "SECRET1" not in b.get("/submissions/").get_data(as_text=True)

    before = _counts(app)
    token = _token(b)
    data = {"csrf_token": token, "name": "mine", "email": B, "role": "owner", "student_id": "x",
            "text": INDEPENDENT, "kind": "reading", "comment": "seen"}
    for url in _post_urls(ids):
        assert b.post(url, data=data).status_code == 404, url
    assert _counts(app) == before, "nothing was changed by the refused actions"


def test_a_report_of_ones_own_cannot_reach_another_courses_submission(app, runner, world):
    from kernel.web.auth import db_session
    from plagiarism import courses, reports
    from plagiarism.store import Course

    _, b, ids = world
    token = _token(b)
    course_url = b.post("/submissions/courses", data={"code": "BEES", "csrf_token": token}).location
    assignment_url = b.post(course_url + "/assignments", data={"name": "e1", "csrf_token": token}).location
    b.post(assignment_url + "/paste", data={"csrf_token": token, "student_id": "zed", "text": INDEPENDENT})
    _wait_for_submissions(app, "e1", "BEES", 1)
    with app.app_context():
        session = db_session()
        mine = courses.get_assignment(session, session.scalar(select(Course).where(Course.code == "BEES")), "e1")
        report = reports.build_report(session, mine, app.extensions["attest.settings"].index_dir, B)
        report_id = report.id
    url = f"/submissions/reports/{report_id}/submissions/{ids['submission']}"
    assert b.get(url).status_code == 404
    assert b.post(url + "/review", data={"csrf_token": token, "comment": "x"}).status_code == 404


def test_the_owner_adds_an_instructor_who_then_sees_the_course(app, runner, world):
    a, b, ids = world
    course_url = f"/submissions/courses/{ids['course']}"
    page = a.get(course_url).get_data(as_text=True)
    assert 'id="add-member-form"' in page and A in page and "owner" in page
    assert page.count('id="course-members"') == 1
    title = page.split("<title>", 1)[1].split("</title>", 1)[0]
    assert "<" not in title and "SECRET1" in title

    token = _token(a)
    assert a.post(course_url + "/members", data={"email": B, "role": "member"}).status_code == 400, "CSRF"
    response = a.post(course_url + "/members", data={"email": "nobody@uni.edu", "role": "member",
                                                     "csrf_token": token}, follow_redirects=True)
    assert "no user has the email" in response.get_data(as_text=True)
    make_user(runner, "reg@uni.edu", "registrar")
    response = a.post(course_url + "/members", data={"email": "reg@uni.edu", "role": "member",
                                                     "csrf_token": token}, follow_redirects=True)
    assert "reg@uni.edu is not an instructor" in response.get_data(as_text=True)
    assert b.get(course_url).status_code == 404

    response = a.post(course_url + "/members", data={"email": " B@uni.edu ", "role": "member",
                                                     "csrf_token": token}, follow_redirects=True)
    assert f"{B} can now see SECRET1" in response.get_data(as_text=True)
    assert "SECRET1" in b.get("/submissions/").get_data(as_text=True)
    for url in _get_urls(ids):
        if not url.endswith("/verify"):
            assert b.get(url).status_code in (200, 302), url
    page = b.get(course_url).get_data(as_text=True)
    assert A in page and B in page and 'id="add-member-form"' not in page, "a member does not manage"
    assert b.post(course_url + "/members", data={"email": B, "role": "owner",
                                                 "csrf_token": _token(b)}).status_code == 403
    again = a.post(course_url + "/members", data={"email": B, "role": "member", "csrf_token": token},
                   follow_redirects=True).get_data(as_text=True)
    assert "already a member" in again

    with app.app_context():
        from kernel.web.auth import db_session

        entries = db_session().scalars(select(AuditEntry).where(AuditEntry.action == "course_member_added")
                                       .order_by(AuditEntry.id)).all()
        assert [(e.actor, e.detail_dict["email"], e.detail_dict["role"]) for e in entries] == [
            (A, A, "owner"), (A, B, "member")]
        assert all(e.subject == f"course:{ids['course']}" for e in entries)


def test_an_admin_sees_every_course(app, runner, world):
    a, b, ids = world
    token = _token(b)
    b.post("/submissions/courses", data={"code": "BEES", "csrf_token": token})
    admin = _client(app, runner, ADMIN, "admin")
    listing = admin.get("/submissions/").get_data(as_text=True)
    assert "SECRET1" in listing and "BEES" in listing
    for url in _get_urls(ids):
        if not url.endswith("/verify"):
            assert admin.get(url).status_code in (200, 302), url
    assert "BEES" not in a.get("/submissions/").get_data(as_text=True)
    response = admin.post(f"/submissions/courses/{ids['course']}/members",
                          data={"email": B, "role": "owner", "csrf_token": _token(admin)})
    assert response.status_code == 302
    assert b.get(f"/submissions/courses/{ids['course']}").status_code == 200


def test_a_legacy_course_without_members_is_visible_to_every_instructor(app, runner, world):
    from kernel.web.auth import db_session
    from plagiarism import courses

    a, b, _ = world
    with app.app_context():
        session = db_session()
        old = courses.create_course(session, "OLD1", "Before access was per course", "system")
        assignment = courses.create_assignment(session, old, "e1", "", "", "system")
        session.commit()
        course_id, assignment_id = old.id, assignment.id
    for client in (a, b):
        assert "OLD1" in client.get("/submissions/").get_data(as_text=True)
        page = client.get(f"/submissions/courses/{course_id}").get_data(as_text=True)
        assert "visible to every instructor" in page and 'id="add-member-form"' not in page
        assert client.get(f"/submissions/assignments/{assignment_id}").status_code == 200


def test_the_membership_migration_is_rerunnable(app):
    from plagiarism.store import _m2006

    engine = app.extensions["attest.db"].engine
    with engine.begin() as conn:
        _m2006(conn)
        _m2006(conn)


def test_cli_create_assignment_with_an_owner_and_add_member(app, runner):
    a = _client(app, runner, A)
    b = _client(app, runner, B)
    result = runner.invoke(args=["submissions", "create-assignment", "OWNED", "e1", "--owner", A])
    assert result.exit_code == 0, result.output
    result = runner.invoke(args=["submissions", "create-assignment", "OPEN", "e1"])
    assert result.exit_code == 0, result.output
    assert "OWNED" in a.get("/submissions/").get_data(as_text=True)
    listing = b.get("/submissions/").get_data(as_text=True)
    assert "OWNED" not in listing and "OPEN" in listing

    bad = runner.invoke(args=["submissions", "create-assignment", "OWNED", "e2", "--owner", "nobody@uni.edu"])
    assert bad.exit_code == 1 and "no user has the email" in bad.output
    result = runner.invoke(args=["submissions", "add-member", "OWNED", B])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["members"] == [{"email": A, "role": "owner"}, {"email": B, "role": "member"}]
    assert "OWNED" in b.get("/submissions/").get_data(as_text=True)
    courses = json.loads(runner.invoke(args=["submissions", "courses", "--json"]).stdout)
    assert {c["code"] for c in courses} == {"OWNED", "OPEN"}, "the CLI sees every course"
