"""The instructor's submission pages (`bp`, named "submissions", under /submissions).

Thin views: parse the request, call `plagiarism.service`, render. Every page
needs an instructor login and every form carries a CSRF token.

Every course, assignment, upload, report and job is reached through its course
and `require_course`: an instructor who is not a member of a course gets 404
for all of it (its existence is not revealed). Admins see every course; a
course with no members (a legacy one) is visible to every instructor. A
course's owner adds other instructors on its page.

An upload is written to the database (a job row and its files) by the POST,
then read and indexed in a background thread of the web process; the page
polls a JSON endpoint that reads the job's progress from the database, so a
reload or another web worker shows the same progress. Reports are built in
the request: a report needs the model and the chain, not any state of ours.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from flask_wtf import FlaskForm
from markupsafe import Markup, escape
from sqlalchemy import func, select
from wtforms import BooleanField, MultipleFileField, SelectChoice, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from kernel.database import utcnow
from kernel.web.auth import db_session, role_required
from plagiarism import service
from plagiarism.extract import SUPPORTED_SUFFIXES, UnreadableSubmission
from plagiarism.store import (
    COURSE_MEMBER,
    COURSE_OWNER,
    COURSE_ROLES,
    SOURCE_KINDS,
    Assignment,
    Course,
    Report,
    ReportJob,
    Review,
    Source,
    Submission,
    UploadJob,
)

log = logging.getLogger(__name__)

bp = Blueprint("submissions", __name__, url_prefix="/submissions")
ACCEPT = ",".join(SUPPORTED_SUFFIXES)


# ----------------------------------------------------------------------------- forms


class CourseForm(FlaskForm):
    code = StringField("Course code", validators=[DataRequired(), Length(max=64)])
    title = StringField("Title", validators=[Optional(), Length(max=255)])


class AssignmentForm(FlaskForm):
    name = StringField("Short name", validators=[DataRequired(), Length(max=128)])
    title = StringField("Title", validators=[Optional(), Length(max=255)])
    template_text = TextAreaField("Template text (the question or scaffold you handed out; never counted)")
    sources = MultipleFileField("Reference sources (readings, past cohorts)")


class SourceForm(FlaskForm):
    kind = SelectField("Kind", choices=[SelectChoice(k, k.capitalize()) for k in SOURCE_KINDS])
    files = MultipleFileField("Files")
    name = StringField("Name (for pasted text)", validators=[Optional(), Length(max=255)])
    text = TextAreaField("Or paste the text")


class UploadForm(FlaskForm):
    files = MultipleFileField("Submissions (.txt, .md, .docx, .pdf)")
    student_from_filename = BooleanField("Student id is the file name up to the first _ or -", default=True)


class PasteForm(FlaskForm):
    student_id = StringField("Student id", validators=[DataRequired(), Length(max=128)])
    student_name = StringField("Student name", validators=[Optional(), Length(max=255)])
    text = TextAreaField("Text", validators=[DataRequired()])


class ReviewForm(FlaskForm):
    comment = TextAreaField("Comment", validators=[Optional(), Length(max=4000)])


class MemberForm(FlaskForm):
    email = StringField("Instructor's email", validators=[DataRequired(), Length(max=255)])
    role = SelectField("Role", choices=[SelectChoice(r, r.capitalize()) for r in COURSE_ROLES],
                       default=COURSE_MEMBER)


class EmptyForm(FlaskForm):
    """Just the CSRF token, for buttons."""


# ----------------------------------------------------------------------------- helpers


def _actor() -> str:
    return current_user.email


def _index_dir() -> Path:
    return current_app.extensions["attest.settings"].data_dir / "index"


def _registry():
    """The chain, or None when it cannot be reached (the report is kept and
    shows why it is not anchored yet)."""
    from credentials.runtime import get_registry

    try:
        return get_registry()
    except Exception as exc:  # noqa: BLE001 - any chain failure means "not now"
        log.warning("chain unavailable: %s", exc)
        return None


def _get(model, ident: int):
    row = db_session().get(model, ident)
    if row is None:
        abort(404)
    return row


def require_course(course: Course | int | None) -> Course:
    """The course, if the user may see it; else 404 (never 403: a course the
    user may not see does not exist for them)."""
    session = db_session()
    c = course if isinstance(course, Course) else (session.get(Course, course) if course is not None else None)
    if c is None or not service.can_see_course(session, c, current_user):
        abort(404)
    return c


def _assignment_of(assignment_id: int) -> tuple[Assignment, Course]:
    a = _get(Assignment, assignment_id)
    return a, require_course(a.course_id)


def _checked(model, ident: int):
    """A row that belongs to an assignment (upload, report, job), after checking its course."""
    row = _get(model, ident)
    _assignment_of(row.assignment_id)
    return row


def _files(field) -> list[tuple[str, bytes]]:
    return [(f.filename, f.read()) for f in (field.data or []) if getattr(f, "filename", "")]


def highlight(text: str, spans: list[tuple[int, int, str, str]]) -> Markup:
    """Text with <mark> around each (start, end, css class, title) span;
    overlapping spans are cut at every boundary so the HTML stays nested."""
    cuts = sorted({0, len(text), *[max(0, min(len(text), p)) for s, e, _, _ in spans for p in (s, e)]})
    out = []
    for a, b in zip(cuts, cuts[1:], strict=False):
        if a >= b:
            continue
        covering = [(c, t) for s, e, c, t in spans if s <= a and b <= e]
        piece = escape(text[a:b])
        if covering:
            classes = " ".join(sorted({c for c, _ in covering}))
            titles = "; ".join(dict.fromkeys(t for _, t in covering))
            out.append(Markup('<mark class="{}" title="{}">{}</mark>').format(classes, titles, piece))
        else:
            out.append(piece)
    return Markup("").join(out)


def _in_background(app: Flask, name: str, work) -> None:
    """Run `work(session, index_dir)` outside the request, in an app context and
    a session of its own; failures are recorded on the job row by the work."""
    index_dir = app.extensions["attest.settings"].data_dir / "index"

    def run() -> None:
        with app.app_context():
            session = app.extensions["attest.db"].session()
            try:
                work(session, index_dir)
            except Exception:  # noqa: BLE001 - recorded on the job row by the service
                log.exception("%s failed", name)
            finally:
                session.close()

    threading.Thread(target=run, name=f"attest-{name}", daemon=True).start()


def _start_upload_thread(app: Flask, job_id: int) -> None:
    """Read and index an upload job."""
    _in_background(app, f"upload-{job_id}",
                   lambda session, index_dir: service.run_upload_job(session, job_id, index_dir=index_dir))


def _start_report_thread(app: Flask, job_id: int) -> None:
    """Build a report; the chain is opened only when it is ready to be anchored."""
    from credentials.runtime import get_registry

    _in_background(app, f"report-{job_id}", lambda session, index_dir: service.run_report_job(
        session, job_id, lambda: get_registry(app), index_dir=index_dir))


# ----------------------------------------------------------------------------- courses


@bp.route("/")
@role_required("instructor")
def index():
    session = db_session()
    courses = service.visible_courses(session, current_user)
    counts = dict(session.execute(select(Assignment.course_id, func.count(Assignment.id))
                                  .group_by(Assignment.course_id)).all())
    return render_template("submissions/index.html", courses=courses, counts=counts, form=CourseForm())


@bp.route("/courses", methods=["POST"])
@role_required("instructor")
def create_course():
    form = CourseForm()
    if form.validate_on_submit():
        session = db_session()
        try:
            course = service.create_course(session, form.code.data, form.title.data or "", _actor())
        except service.ServiceError as exc:
            flash(str(exc), "error")
        else:
            from kernel import audit

            audit.record(session, _actor(), "course_created", f"course:{course.id}", code=course.code)
            service.add_course_member(session, course, current_user.email, COURSE_OWNER, _actor())
            session.commit()
            flash(f"Course {course.code} created.", "success")
            return redirect(url_for(".course", course_id=course.id))
    else:
        flash("A course needs a code.", "error")
    return redirect(url_for(".index"))


@bp.route("/courses/<int:course_id>")
@role_required("instructor")
def course(course_id: int):
    session = db_session()
    c = require_course(course_id)
    assignments = list(session.scalars(select(Assignment).where(Assignment.course_id == c.id)
                                       .order_by(Assignment.created_at, Assignment.id)))
    counts = dict(session.execute(select(Submission.assignment_id, func.count(Submission.id))
                                  .join(Assignment, Assignment.id == Submission.assignment_id)
                                  .where(Assignment.course_id == c.id)
                                  .group_by(Submission.assignment_id)).all())
    sources = list(session.scalars(select(Source).where(Source.course_id == c.id,
                                                        Source.assignment_id.is_(None))))
    return render_template("submissions/course.html", course=c, assignments=assignments, counts=counts,
                           sources=sources, form=AssignmentForm(), source_form=SourceForm(),
                           members=service.course_members(session, c),
                           can_manage=service.can_manage_course(session, c, current_user),
                           member_form=MemberForm())


@bp.route("/courses/<int:course_id>/members", methods=["POST"])
@role_required("instructor")
def add_member(course_id: int):
    """An owner (or an admin) gives another instructor access to the course."""
    session = db_session()
    c = require_course(course_id)
    if not service.can_manage_course(session, c, current_user):
        abort(403)
    form = MemberForm()
    if not form.validate_on_submit():
        if form.csrf_token.errors:
            abort(400)
        flash("Give the email of the instructor to add.", "error")
        return redirect(url_for(".course", course_id=c.id))
    try:
        service.add_course_member(session, c, form.email.data, form.role.data, _actor())
    except service.ServiceError as exc:
        session.rollback()
        flash(f"Not added: {exc}.", "error")
    else:
        session.commit()
        flash(f"{form.email.data.strip().lower()} can now see {c.code} ({form.role.data}).", "success")
    return redirect(url_for(".course", course_id=c.id))


def _add_sources(session, course: Course, assignment: Assignment | None, form_files, kind: str,
                 name: str = "", text: str = "") -> list[str]:
    """Add uploaded and pasted sources; returns the messages for files that could not be read."""
    problems = []
    for filename, data in form_files:
        try:
            service.add_source(session, course, filename, data, assignment, kind, _actor(),
                               index_dir=_index_dir())
        except UnreadableSubmission as exc:
            problems.append(f"{exc.filename}: {exc.reason}")
    if text.strip():
        service.add_source(session, course, name.strip() or "pasted text", text, assignment, kind, _actor(),
                           index_dir=_index_dir())
    return problems


@bp.route("/courses/<int:course_id>/assignments", methods=["POST"])
@role_required("instructor")
def create_assignment(course_id: int):
    session = db_session()
    c = require_course(course_id)
    form = AssignmentForm()
    if not form.validate_on_submit():
        flash("An assignment needs a short name.", "error")
        return redirect(url_for(".course", course_id=c.id))
    try:
        a = service.create_assignment(session, c, form.name.data, form.title.data or "",
                                      form.template_text.data or "", _actor())
    except service.ServiceError as exc:
        flash(str(exc), "error")
        return redirect(url_for(".course", course_id=c.id))
    problems = _add_sources(session, c, a, _files(form.sources), "reading")
    from kernel import audit

    audit.record(session, _actor(), "assignment_created", f"assignment:{a.id}", course=c.code, name=a.name)
    session.commit()
    for p in problems:
        flash(f"Source not added: {p}", "error")
    flash(f"Assignment {a.title} created.", "success")
    return redirect(url_for(".assignment", assignment_id=a.id))


@bp.route("/courses/<int:course_id>/sources", methods=["POST"])
@role_required("instructor")
def add_course_sources(course_id: int):
    session = db_session()
    c = require_course(course_id)
    form = SourceForm()
    if form.validate_on_submit():
        problems = _add_sources(session, c, None, _files(form.files), form.kind.data,
                                form.name.data or "", form.text.data or "")
        session.commit()
        for p in problems:
            flash(f"Source not added: {p}", "error")
        flash("Sources saved.", "success")
    return redirect(url_for(".course", course_id=c.id))


# ----------------------------------------------------------------------------- assignments


@bp.route("/assignments/<int:assignment_id>")
@role_required("instructor")
def assignment(assignment_id: int):
    session = db_session()
    a, c = _assignment_of(assignment_id)
    subs = list(session.scalars(select(Submission).where(Submission.assignment_id == a.id)
                                .order_by(Submission.student_id, Submission.id)))
    last_job = session.scalar(select(UploadJob).where(UploadJob.assignment_id == a.id)
                              .order_by(UploadJob.id.desc()).limit(1))
    reports = list(session.scalars(select(Report).where(Report.assignment_id == a.id)
                                   .order_by(Report.id.desc()).limit(10)))
    return render_template("submissions/assignment.html", course=c, assignment=a, submissions=subs,
                           sources=service.sources_for(session, a), last_job=last_job, reports=reports,
                           upload_form=UploadForm(), source_form=SourceForm(), button=EmptyForm(),
                           paste_form=PasteForm(),
                           accept=ACCEPT)


@bp.route("/assignments/<int:assignment_id>/sources", methods=["POST"])
@role_required("instructor")
def add_assignment_sources(assignment_id: int):
    session = db_session()
    a, c = _assignment_of(assignment_id)
    form = SourceForm()
    if form.validate_on_submit():
        problems = _add_sources(session, c, a, _files(form.files), form.kind.data,
                                form.name.data or "", form.text.data or "")
        session.commit()
        for p in problems:
            flash(f"Source not added: {p}", "error")
        flash("Sources saved.", "success")
    return redirect(url_for(".assignment", assignment_id=a.id))


@bp.route("/assignments/<int:assignment_id>/paste", methods=["POST"])
@role_required("instructor")
def paste(assignment_id: int):
    """One pasted text: read and indexed in the request (it is a single text)."""
    from kernel import audit

    session = db_session()
    a, _ = _assignment_of(assignment_id)
    form = PasteForm()
    if not form.validate_on_submit():
        flash("A pasted submission needs a student id and its text.", "error")
        return redirect(url_for(".assignment", assignment_id=a.id))
    student = form.student_id.data.strip()
    name = (form.student_name.data or "").strip() or student
    result = service.add_submissions(session, a, [(f"{student}_pasted.txt", form.text.data.encode("utf-8"))],
                                     student_of=lambda _filename: (student, name), actor=_actor(),
                                     index_dir=_index_dir())
    audit.record(session, _actor(), "submissions_uploaded", f"assignment:{a.id}", pasted=True,
                 added=len(result.added), duplicates=len(result.duplicates))
    session.commit()
    if result.added:
        flash(f"Pasted text added for {name}.", "success")
    elif result.duplicates:
        flash(f"That text is already here, as {result.duplicates[0][1]}.", "info")
    else:
        flash(f"The text could not be used: {result.errors[0][1]}.", "error")
    return redirect(url_for(".assignment", assignment_id=a.id))


def _wants_json() -> bool:
    return request.accept_mimetypes.best == "application/json" or request.headers.get("X-Requested-With") == "fetch"


@bp.route("/assignments/<int:assignment_id>/uploads", methods=["POST"])
@role_required("instructor")
def upload(assignment_id: int):
    session = db_session()
    a, _ = _assignment_of(assignment_id)
    form = UploadForm()
    files = _files(form.files) if form.validate_on_submit() else []
    if not files:
        if _wants_json():
            return jsonify({"error": "Choose at least one file to upload."}), 400
        flash("Choose at least one file to upload.", "error")
        return redirect(url_for(".assignment", assignment_id=a.id))
    job = service.create_upload_job(session, a, files, _actor(), bool(form.student_from_filename.data))
    session.commit()
    _start_upload_thread(current_app._get_current_object(), job.id)
    progress_url = url_for(".upload_progress", job_id=job.id)
    if _wants_json():
        return jsonify({"job": job.id, "progress_url": progress_url,
                        "page_url": url_for(".upload_job", job_id=job.id)}), 202
    return redirect(url_for(".upload_job", job_id=job.id))


@bp.route("/uploads/<int:job_id>")
@role_required("instructor")
def upload_job(job_id: int):
    job = _checked(UploadJob, job_id)
    a = db_session().get(Assignment, job.assignment_id)
    return render_template("submissions/upload_job.html", job=job, assignment=a, button=EmptyForm())


@bp.route("/uploads/<int:job_id>/resume", methods=["POST"])
@role_required("instructor")
def resume_upload(job_id: int):
    """Start a stalled upload again (its worker died): its files are still stored."""
    job = _checked(UploadJob, job_id)
    if not EmptyForm().validate_on_submit():
        abort(400)
    if job.stalled():
        from kernel import audit

        session = db_session()
        job.updated_at = utcnow()  # one resumer at a time
        audit.record(session, _actor(), "upload_resumed", f"upload:{job.id}")
        session.commit()
        _start_upload_thread(current_app._get_current_object(), job.id)
        flash("The upload is running again.", "success")
    return redirect(url_for(".upload_job", job_id=job.id))


@bp.route("/uploads/<int:job_id>/progress")
@role_required("instructor")
def upload_progress(job_id: int):
    session = db_session()
    job = _checked(UploadJob, job_id)
    session.refresh(job)
    return jsonify(job.as_dict())


# ----------------------------------------------------------------------------- reports


@bp.route("/assignments/<int:assignment_id>/reports", methods=["POST"])
@role_required("instructor")
def build_report(assignment_id: int):
    """Start building a report in the background; its page polls the progress."""
    session = db_session()
    a, _ = _assignment_of(assignment_id)
    if not EmptyForm().validate_on_submit():
        abort(400)
    if not session.scalar(select(func.count(Submission.id)).where(Submission.assignment_id == a.id)):
        flash("Upload some submissions first.", "error")
        return redirect(url_for(".assignment", assignment_id=a.id))
    job = service.create_report_job(session, a, _actor())
    session.commit()
    _start_report_thread(current_app._get_current_object(), job.id)
    return redirect(url_for(".report_job", job_id=job.id))


@bp.route("/report-jobs/<int:job_id>")
@role_required("instructor")
def report_job(job_id: int):
    job = _checked(ReportJob, job_id)
    if job.report_id is not None:
        return redirect(url_for(".report", report_id=job.report_id))
    a = db_session().get(Assignment, job.assignment_id)
    return render_template("submissions/report_job.html", job=job, assignment=a,
                           course=db_session().get(Course, a.course_id))


@bp.route("/report-jobs/<int:job_id>/progress")
@role_required("instructor")
def report_job_progress(job_id: int):
    session = db_session()
    job = _checked(ReportJob, job_id)
    session.refresh(job)
    data = job.as_dict()
    data["report_url"] = url_for(".report", report_id=job.report_id) if job.report_id else None
    return jsonify(data)


@bp.route("/reports/<int:report_id>/anchor", methods=["POST"])
@role_required("instructor")
def anchor(report_id: int):
    session = db_session()
    report = _checked(Report, report_id)
    if not EmptyForm().validate_on_submit():
        abort(400)
    registry = _registry()
    if registry is None:
        flash("The chain is not reachable; try again later.", "error")
    else:
        service.anchor_report(session, report, registry, _actor())
    return redirect(url_for(".report", report_id=report.id))


def _report_context(report: Report) -> dict:
    session = db_session()
    data = report.data
    a = session.get(Assignment, report.assignment_id)
    return {"report": report, "data": data, "assignment": a, "course": session.get(Course, a.course_id)}


@bp.route("/reports/<int:report_id>")
@role_required("instructor")
def report(report_id: int):
    ctx = _report_context(_checked(Report, report_id))
    session = db_session()
    latest: dict[int, bool] = {}
    for sub_id, flag in session.execute(select(Review.submission_id, Review.reviewed)
                                        .where(Review.report_id == report_id).order_by(Review.at, Review.id)):
        latest[sub_id] = flag
    reviewed = {sub_id for sub_id, flag in latest.items() if flag}
    rows = sorted(ctx["data"]["submissions"], key=lambda r: (-r["score"], r["student_id"], r["filename"]))
    return render_template("submissions/report.html", rows=rows, reviewed=reviewed, button=EmptyForm(), **ctx)


@bp.route("/reports/<int:report_id>/report.json")
@role_required("instructor")
def report_json(report_id: int):
    """The stored canonical JSON, byte for byte: what the fingerprint hashes."""
    report = _checked(Report, report_id)
    return Response(report.body, mimetype="application/json",
                    headers={"Content-Disposition": f'attachment; filename="report-{report.id}.json"'})


@bp.route("/reports/<int:report_id>/verify")
@role_required("instructor")
def verify(report_id: int):
    report = _checked(Report, report_id)
    from credentials.runtime import get_trust_policy
    from credentials.web_trust import institution

    return jsonify(service.verify_report(report, _registry(), get_trust_policy(), institution()))


def _source_text(ref: dict) -> str:
    session = db_session()
    row = session.get(Submission if ref["type"] == "submission" else Source, ref["id"])
    return row.text if row is not None else ""


@bp.route("/reports/<int:report_id>/submissions/<int:submission_id>")
@role_required("instructor")
def submission(report_id: int, submission_id: int):
    ctx = _report_context(_checked(Report, report_id))
    row = next((r for r in ctx["data"]["submissions"] if r["id"] == submission_id), None)
    sub = db_session().get(Submission, submission_id)
    if row is None or sub is None:
        abort(404)
    # One side-by-side pair per matched text, numbered so each passage on the
    # left has its counterpart on the right.
    pairs: dict[tuple[str, int], dict] = {}
    for n, m in enumerate(row["matches"], start=1):
        key = (m["type"], m["id"])
        pair = pairs.setdefault(key, {"ref": m, "left": [], "right": [], "numbers": []})
        label = f"passage {n}: {m['method'].replace('+', ' and ')} match, similarity {m['similarity']:.2f}"
        cls = "hl " + ("hl-para" if m["method"] == "paraphrase" else "hl-copy")
        pair["left"].append((*m["submission_span"], cls, label))
        pair["right"].append((*m["source_span"], cls, label))
        pair["numbers"].append(n)
    excluded = [(e["span"][0], e["span"][1], "hl-excluded", f"not counted: {e['kind']}") for e in row["excluded"]]
    panels = []
    for pair in pairs.values():
        source_text = _source_text(pair["ref"])
        panels.append({"ref": pair["ref"], "numbers": pair["numbers"],
                       "left": highlight(sub.text, excluded + pair["left"]),
                       "right": highlight(source_text, pair["right"])})
    whole = highlight(sub.text, excluded + [(m["submission_span"][0], m["submission_span"][1],
                                             "hl " + ("hl-para" if m["method"] == "paraphrase" else "hl-copy"),
                                             m["name"]) for m in row["matches"]])
    return render_template("submissions/submission.html", row=row, submission=sub, panels=panels, whole=whole,
                           text_changed=sub.sha256 != row["sha256"], reviews=service.reviews_of(db_session(), sub),
                           review_form=ReviewForm(), **ctx)


@bp.route("/reports/<int:report_id>/submissions/<int:submission_id>/review", methods=["POST"])
@role_required("instructor")
def review(report_id: int, submission_id: int):
    report = _checked(Report, report_id)
    sub = _get(Submission, submission_id)
    if sub.assignment_id != report.assignment_id:
        abort(404)
    form = ReviewForm()
    if not form.validate_on_submit():
        abort(400)
    reviewed = request.form.get("action", "reviewed") != "reopen"
    service.mark_reviewed(db_session(), _actor(), form.comment.data or "", submission=sub, report=report,
                          reviewed=reviewed)
    flash("Marked as reviewed." if reviewed else "Marked for another look.", "success")
    return redirect(url_for(".submission", report_id=report.id, submission_id=sub.id))
