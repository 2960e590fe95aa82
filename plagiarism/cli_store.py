"""`flask --app app submissions ...` over the database and the persistent index:
courses, assignments, sources, adding submissions, reports and their proof.

These attach to the `submissions` group of `plagiarism.cli` (whose `scan` and
`anomalies` need no database). Adding files and building a report are the same
jobs the pages queue (`index_upload`, `build_report`), run here: the CLI is
its own worker, and a command killed half-way leaves its job to a worker or
to the same command run again.

CLI users are trusted operators: the commands see every course, whatever
its members. A course the CLI creates has no members (visible to every
instructor, like a course made before per-course access) unless
`create-assignment --owner EMAIL` names its owner; `add-member` gives an
instructor access to a course afterwards.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from flask import current_app
from sqlalchemy import select

from kernel.jobs import JobState, get_job, run_inline
from plagiarism import courses, reports, submissions
from plagiarism.cli import submissions_cli
from plagiarism.courses import ServiceError
from plagiarism.store import COURSE_MEMBER, COURSE_OWNER, COURSE_ROLES, Assignment, Course, Report, Submission


def _session():
    return current_app.extensions["attest.db"].session()


def _run(job_id: str) -> dict:
    """Run the job here; its result, or exit 1 with its error."""
    app = current_app._get_current_object()
    state = run_inline(app, job_id)
    with _session() as session:
        job = get_job(session, job_id)
    if state != JobState.DONE:
        _fail(f"the job did not finish: {job.error or job.state}")
    return job.result_dict


def _fail(message: str, code: int = 1):
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _course_and_assignment(session, course: str, assignment: str | None, create: bool = False,
                           template: str = ""):
    c = courses.get_course(session, course)
    if c is None:
        if not create:
            _fail(f"no course {course!r} (see `submissions courses`)")
        c = courses.create_course(session, course, course, "cli")
    if assignment is None:
        return c, None
    a = courses.get_assignment(session, c, assignment)
    if a is None:
        if not create:
            _fail(f"{c.code} has no assignment {assignment!r}")
        a = courses.create_assignment(session, c, assignment, assignment, template, "cli")
    return c, a


def _files_in(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith("."))


@submissions_cli.command("courses")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def courses_command(as_json: bool):
    """List courses, their assignments and how many submissions each holds."""
    with _session() as session:
        out = []
        for c in session.scalars(select(Course).order_by(Course.code)):
            items = []
            for a in session.scalars(select(Assignment).where(Assignment.course_id == c.id).order_by(Assignment.id)):
                n = len(session.scalars(select(Submission.id).where(Submission.assignment_id == a.id)).all())
                items.append({"name": a.name, "title": a.title, "submissions": n})
            out.append({"code": c.code, "title": c.title, "assignments": items})
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    for c in out:
        click.echo(f"{c['code']}\t{c['title']}")
        for a in c["assignments"]:
            click.echo(f"  {a['name']}\t{a['submissions']} submissions\t{a['title']}")


@submissions_cli.command("create-assignment")
@click.argument("course")
@click.argument("assignment")
@click.option("--title", default="")
@click.option("--template", "template", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A file with the text handed out (never counted).")
@click.option("--owner", default=None, metavar="EMAIL",
              help="Make this instructor an owner of COURSE (then only its members see it).")
def create_assignment_command(course: str, assignment: str, title: str, template: Path | None,
                              owner: str | None):
    """Create COURSE (if new) and its ASSIGNMENT."""
    with _session() as session:
        try:
            c = courses.get_course(session, course) or courses.create_course(session, course, course, "cli")
            a = courses.create_assignment(session, c, assignment, title,
                                          template.read_text(encoding="utf-8") if template else "", "cli")
            if owner and courses.course_role(session, c, _user(session, owner)) != COURSE_OWNER:
                courses.add_course_member(session, c, owner, COURSE_OWNER, "cli")
        except ServiceError as exc:
            _fail(str(exc))
        click.echo(json.dumps({"course": c.code, "assignment": a.name, "id": a.id}))


def _user(session, email: str):
    from kernel.accounts import User

    user = session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise ServiceError(f"no user has the email {email.strip().lower()!r}")
    return user


@submissions_cli.command("add-member")
@click.argument("course")
@click.argument("email")
@click.option("--role", type=click.Choice(list(COURSE_ROLES)), default=COURSE_MEMBER, show_default=True)
def add_member_command(course: str, email: str, role: str):
    """Give the instructor EMAIL access to COURSE (or change their role in it)."""
    with _session() as session:
        c = courses.get_course(session, course)
        if c is None:
            _fail(f"no course {course!r} (see `submissions courses`)")
        try:
            courses.add_course_member(session, c, email, role, "cli")
        except ServiceError as exc:
            _fail(str(exc))
        members = [{"email": u.email, "role": m.role} for m, u in courses.course_members(session, c)]
    click.echo(json.dumps({"course": c.code, "members": members}, indent=2))


@submissions_cli.command("add-sources")
@click.argument("course")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--assignment", default=None, help="Only for this assignment (default: the whole course).")
@click.option("--kind", type=click.Choice(["reading", "past cohort", "other"]), default="reading")
def add_sources_command(course: str, directory: Path, assignment: str | None, kind: str):
    """Add every file in DIRECTORY as a reference source (read and indexed here)."""
    files, too_big = _read_folder(directory)
    with _session() as session:
        c, a = _course_and_assignment(session, course, assignment, create=True)
        job = submissions.submit_upload(current_app._get_current_object(), session, c, a, files, "cli",
                                        target=submissions.SOURCES, kind=kind, dispatch_now=False)
    result = _run(job.id)
    errors = [{"filename": f, "reason": r} for f, r in too_big] + result["errors"]
    click.echo(json.dumps({"added": result["added"], "errors": errors}, indent=2))


def _read_folder(directory: Path) -> tuple[list[tuple[str, bytes]], list[tuple[str, str]]]:
    """Every file's bytes; a file past the size limit is refused before it is read."""
    from plagiarism.extract import UnreadableSubmission, read_submission_file

    files, too_big = [], []
    for path in _files_in(directory):
        try:
            files.append((path.name, read_submission_file(path)))
        except UnreadableSubmission as exc:
            too_big.append((exc.filename, exc.reason))
    return files, too_big


@submissions_cli.command("add")
@click.argument("course")
@click.argument("assignment")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--student-from-filename/--student-per-file", default=True, show_default=True,
              help="Student id is the file name up to the first _ or - (else: the whole stem).")
@click.option("--template", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Template text for a new assignment.")
def add_command(course: str, assignment: str, directory: Path, student_from_filename: bool,
                template: Path | None):
    """Add the files in DIRECTORY to ASSIGNMENT of COURSE (both created if new).

    Prints JSON: added, duplicates, errors (file and reason). Only new
    passages are embedded. Exit 1 when some file could not be read.
    """
    files, too_big = _read_folder(directory)
    with _session() as session:
        c, a = _course_and_assignment(session, course, assignment, create=True,
                                      template=template.read_text(encoding="utf-8") if template else "")
        job = submissions.submit_upload(current_app._get_current_object(), session, c, a, files, "cli",
                                        student_from_filename_=student_from_filename, dispatch_now=False)
        names = (c.code, a.name)
    result = _run(job.id)
    errors = [{"filename": f, "reason": r} for f, r in too_big] + result["errors"]
    click.echo(json.dumps({"course": names[0], "assignment": names[1], "added": result["added"],
                           "duplicates": result["duplicates"], "errors": errors}, indent=2))
    if errors:
        sys.exit(1)


def _registry_or_none(no_anchor: bool):
    if no_anchor:
        return None
    from credentials.runtime import get_registry

    return get_registry(current_app._get_current_object())


@submissions_cli.command("report")
@click.argument("course")
@click.argument("assignment")
@click.option("--json", "as_json", is_flag=True, help="Print the whole report as JSON.")
@click.option("--no-anchor", is_flag=True, help="Do not anchor the fingerprint on chain.")
def report_command(course: str, assignment: str, as_json: bool, no_anchor: bool):
    """Build, store and anchor a report for ASSIGNMENT of COURSE."""
    with _session() as session:
        _, a = _course_and_assignment(session, course, assignment)
        if no_anchor:
            settings = current_app.extensions["attest.settings"]
            try:
                report = reports.build_report(session, a, settings.index_dir, "cli")
            except ServiceError as exc:
                _fail(str(exc))
        else:
            try:
                job = reports.submit_report(current_app._get_current_object(), session, a, "cli",
                                            dispatch_now=False)
            except ServiceError as exc:
                _fail(str(exc))
            report = session.get(Report, _run(job.id)["report"])
        out = {"report": report.id, "fingerprint": report.fingerprint, "state": report.state,
               "tx_hash": report.tx_hash, "block_number": report.block_number, "error": report.error}
        if as_json:
            click.echo(json.dumps({**out, "body": report.data}, indent=2))
            return
        click.echo(json.dumps(out, indent=2))
        for row in sorted(report.data["submissions"], key=lambda r: -r["score"]):
            flag = "FLAGGED" if row["flagged"] else "-"
            style = "unusual style" if row["anomaly"]["flagged"] else ""
            click.echo(f"{row['score']:.2f}\t{flag}\t{row['student_id']}/{row['filename']}\t{style}", err=True)


@submissions_cli.command("verify-report")
@click.argument("report_id", type=int)
def verify_report_command(report_id: int):
    """Recompute a stored report's fingerprint and check it on chain. Exit 0 valid, 1 not."""
    with _session() as session:
        report = session.get(Report, report_id)
        if report is None:
            _fail(f"no report {report_id}", 2)
        from credentials.identity import load_institution
        from credentials.runtime import get_trust_policy

        inst = load_institution(session, current_app.extensions["attest.settings"].profile_defaults)
        result = reports.verify_report(report, _registry_or_none(False), get_trust_policy(current_app), inst)
    click.echo(json.dumps(result, indent=2))
    sys.exit(0 if result["valid"] else 1)

