"""The instructor's submission pages (`bp`, named "submissions", under /submissions).

Thin views: parse the request, call one domain function (`plagiarism.courses`,
`submissions`, `reports`), render. Every page needs an instructor login and
every form carries a CSRF token. Views run no long work: uploads (files,
pasted texts, sources) and reports are jobs (`kernel.jobs`) that worker
processes run; their pages poll the job's progress from the database.

Every course, assignment, upload, report and job is reached through its course
and `require_course`: an instructor who is not a member of a course gets 404
for all of it (its existence is not revealed). Admins see every course; a
course with no members (a legacy one) is visible to every instructor. A
course's owner adds other instructors on its page.

"""

from __future__ import annotations

import logging

from flask import (
    Blueprint,
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

from kernel.jobs import Job, JobState, get_job
from kernel.web.auth import db_session, role_required
from plagiarism import courses, reports, submissions
from plagiarism.courses import ServiceError
from plagiarism.extract import SUPPORTED_SUFFIXES
from plagiarism.store import (
    COURSE_MEMBER,
    COURSE_ROLES,
    SOURCE_KINDS,
    Assignment,
    Course,
    Report,
    Source,
    Submission,
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
    if c is None or not courses.can_see_course(session, c, current_user):
        abort(404)
    return c


def _assignment_of(assignment_id: int) -> tuple[Assignment, Course]:
    a = _get(Assignment, assignment_id)
    return a, require_course(a.course_id)


def _checked(model, ident: int):
    """A row that belongs to an assignment (a report), after checking its course."""
    row = _get(model, ident)
    _assignment_of(row.assignment_id)
    return row


def _job_of(job_id: str, kind: str) -> tuple[Job, Assignment | None, Course]:
    """An upload or report job, after checking the course it works on (else 404)."""
    job = get_job(db_session(), job_id)
    if job is None or job.kind != kind:
        abort(404)
    payload = job.payload_dict
    if payload.get("assignment"):
        a, c = _assignment_of(payload["assignment"])
        return job, a, c
    return job, None, require_course(payload.get("course"))


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


def upload_view(job: Job) -> dict:
    """What an upload's page and its poll show: the job's progress in words, and
    once done what became of every file."""
    info = job.as_dict()
    result = job.result_dict
    duplicates = result.get("duplicates", [])
    errors = [{"filename": d["filename"], "reason": f"the same text as {d['same_as']}, which is kept once"}
              for d in duplicates] + result.get("errors", [])
    return {**info, "id": job.id, "added": len(result.get("added", [])), "added_names": result.get("added", []),
            "duplicates": len(duplicates),
            "unreadable": len(result.get("errors", [])), "error_list": errors, "target": result.get("target"),
            "failed": job.state == JobState.FAILED, "created_at": job.created_at, "created_by": job.created_by}


def _upload(course: Course, assignment: Assignment | None, files: list[tuple[str, bytes]], **options) -> Job:
    return submissions.submit_upload(current_app._get_current_object(), db_session(), course, assignment, files,
                                     _actor(), **options)


# ----------------------------------------------------------------------------- courses


@bp.route("/")
@role_required("instructor")
def index():
    session = db_session()
    visible = courses.visible_courses(session, current_user)
    counts = dict(session.execute(select(Assignment.course_id, func.count(Assignment.id))
                                  .group_by(Assignment.course_id)).all())
    return render_template("submissions/index.html", courses=visible, counts=counts, form=CourseForm())


@bp.route("/courses", methods=["POST"])
@role_required("instructor")
def create_course():
    form = CourseForm()
    if not form.validate_on_submit():
        flash("A course needs a code.", "error")
        return redirect(url_for(".index"))
    try:
        course = courses.create_course(db_session(), form.code.data, form.title.data or "", _actor(),
                                       owner_email=current_user.email)
    except ServiceError as exc:
        db_session().rollback()
        flash(str(exc), "error")
        return redirect(url_for(".index"))
    flash(f"Course {course.code} created.", "success")
    return redirect(url_for(".course", course_id=course.id))


@bp.route("/courses/<int:course_id>")
@role_required("instructor")
def course(course_id: int):
    session = db_session()
    c = require_course(course_id)
    counts = dict(session.execute(select(Submission.assignment_id, func.count(Submission.id))
                                  .join(Assignment, Assignment.id == Submission.assignment_id)
                                  .where(Assignment.course_id == c.id)
                                  .group_by(Submission.assignment_id)).all())
    return render_template("submissions/course.html", course=c, assignments=courses.assignments_of(session, c),
                           counts=counts, sources=courses.course_sources(session, c), form=AssignmentForm(),
                           source_form=SourceForm(), members=courses.course_members(session, c),
                           can_manage=courses.can_manage_course(session, c, current_user),
                           member_form=MemberForm())


@bp.route("/courses/<int:course_id>/members", methods=["POST"])
@role_required("instructor")
def add_member(course_id: int):
    """An owner (or an admin) gives another instructor access to the course."""
    session = db_session()
    c = require_course(course_id)
    if not courses.can_manage_course(session, c, current_user):
        abort(403)
    form = MemberForm()
    if not form.validate_on_submit():
        if form.csrf_token.errors:
            abort(400)
        flash("Give the email of the instructor to add.", "error")
        return redirect(url_for(".course", course_id=c.id))
    try:
        courses.add_course_member(session, c, form.email.data, form.role.data, _actor())
    except ServiceError as exc:
        flash(f"Not added: {exc}.", "error")
    else:
        flash(f"{form.email.data.strip().lower()} can now see {c.code} ({form.role.data}).", "success")
    return redirect(url_for(".course", course_id=c.id))


def _sources_from(form: SourceForm) -> list[tuple[str, bytes]]:
    """The form's files, plus its pasted text as one more file."""
    files = _files(form.files)
    if (form.text.data or "").strip():
        files.append(((form.name.data or "").strip() or "pasted text.txt", form.text.data.encode("utf-8")))
    return files


def _sources_job(c: Course, a: Assignment | None, files, kind: str):
    if not files:
        flash("Choose files or paste a text to add.", "error")
        return None
    job = _upload(c, a, files, target=submissions.SOURCES, kind=kind)
    return redirect(url_for(".upload_job", job_id=job.id))


@bp.route("/courses/<int:course_id>/assignments", methods=["POST"])
@role_required("instructor")
def create_assignment(course_id: int):
    c = require_course(course_id)
    form = AssignmentForm()
    if not form.validate_on_submit():
        flash("An assignment needs a short name.", "error")
        return redirect(url_for(".course", course_id=c.id))
    try:
        a = courses.create_assignment(db_session(), c, form.name.data, form.title.data or "",
                                      form.template_text.data or "", _actor())
    except ServiceError as exc:
        db_session().rollback()
        flash(str(exc), "error")
        return redirect(url_for(".course", course_id=c.id))
    flash(f"Assignment {a.title} created.", "success")
    files = _files(form.sources)
    if files:
        _upload(c, a, files, target=submissions.SOURCES, kind="reading")
        flash("Its sources are being read and indexed.", "info")
    return redirect(url_for(".assignment", assignment_id=a.id))


@bp.route("/courses/<int:course_id>/sources", methods=["POST"])
@role_required("instructor")
def add_course_sources(course_id: int):
    c = require_course(course_id)
    form = SourceForm()
    if form.validate_on_submit():
        done = _sources_job(c, None, _sources_from(form), form.kind.data)
        if done is not None:
            return done
    return redirect(url_for(".course", course_id=c.id))


# ----------------------------------------------------------------------------- assignments


@bp.route("/assignments/<int:assignment_id>")
@role_required("instructor")
def assignment(assignment_id: int):
    session = db_session()
    a, c = _assignment_of(assignment_id)
    subs = list(session.scalars(select(Submission).where(Submission.assignment_id == a.id)
                                .order_by(Submission.student_id, Submission.id)))
    last_job = session.scalar(select(Job).where(Job.kind == submissions.KIND, Job.subject == f"assignment:{a.id}")
                              .order_by(Job.created_at.desc()).limit(1))
    return render_template("submissions/assignment.html", course=c, assignment=a, submissions=subs,
                           sources=courses.sources_for(session, a),
                           last_job=upload_view(last_job) if last_job else None,
                           reports=reports.reports_of(session, a), upload_form=UploadForm(),
                           source_form=SourceForm(), button=EmptyForm(), paste_form=PasteForm(), accept=ACCEPT)


@bp.route("/assignments/<int:assignment_id>/sources", methods=["POST"])
@role_required("instructor")
def add_assignment_sources(assignment_id: int):
    a, c = _assignment_of(assignment_id)
    form = SourceForm()
    if form.validate_on_submit():
        done = _sources_job(c, a, _sources_from(form), form.kind.data)
        if done is not None:
            return done
    return redirect(url_for(".assignment", assignment_id=a.id))


@bp.route("/assignments/<int:assignment_id>/paste", methods=["POST"])
@role_required("instructor")
def paste(assignment_id: int):
    """One pasted text: an upload of one file, named for the student."""
    a, c = _assignment_of(assignment_id)
    form = PasteForm()
    if not form.validate_on_submit():
        flash("A pasted submission needs a student id and its text.", "error")
        return redirect(url_for(".assignment", assignment_id=a.id))
    student = form.student_id.data.strip()
    name = (form.student_name.data or "").strip() or student
    job = _upload(c, a, [(f"{student}_pasted.txt", form.text.data.encode("utf-8"))], student=(student, name))
    flash(f"The pasted text for {name} is being added.", "info")
    return redirect(url_for(".upload_job", job_id=job.id))


def _wants_json() -> bool:
    return request.accept_mimetypes.best == "application/json" or request.headers.get("X-Requested-With") == "fetch"


@bp.route("/assignments/<int:assignment_id>/uploads", methods=["POST"])
@role_required("instructor")
def upload(assignment_id: int):
    a, c = _assignment_of(assignment_id)
    form = UploadForm()
    files = _files(form.files) if form.validate_on_submit() else []
    if not files:
        if _wants_json():
            return jsonify({"error": "Choose at least one file to upload."}), 400
        flash("Choose at least one file to upload.", "error")
        return redirect(url_for(".assignment", assignment_id=a.id))
    job = _upload(c, a, files, student_from_filename_=bool(form.student_from_filename.data))
    progress_url = url_for(".upload_progress", job_id=job.id)
    if _wants_json():
        return jsonify({"job": job.id, "progress_url": progress_url,
                        "page_url": url_for(".upload_job", job_id=job.id)}), 202
    return redirect(url_for(".upload_job", job_id=job.id))


@bp.route("/uploads/<job_id>")
@role_required("instructor")
def upload_job(job_id: str):
    job, a, c = _job_of(job_id, submissions.KIND)
    return render_template("submissions/upload_job.html", job=upload_view(job), assignment=a, course=c)


@bp.route("/uploads/<job_id>/progress")
@role_required("instructor")
def upload_progress(job_id: str):
    job, _a, _c = _job_of(job_id, submissions.KIND)
    return jsonify(upload_view(job))


# ----------------------------------------------------------------------------- reports


@bp.route("/assignments/<int:assignment_id>/reports", methods=["POST"])
@role_required("instructor")
def build_report(assignment_id: int):
    """Queue the report; its page follows the worker that builds it."""
    a, _ = _assignment_of(assignment_id)
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        job = reports.submit_report(current_app._get_current_object(), db_session(), a, _actor())
    except ServiceError as exc:
        flash(f"{str(exc)[0].upper()}{str(exc)[1:]}.", "error")
        return redirect(url_for(".assignment", assignment_id=a.id))
    return redirect(url_for(".report_job", job_id=job.id))


def _report_of(job: Job) -> int | None:
    return job.result_dict.get("report") if job.state == JobState.DONE else None


@bp.route("/report-jobs/<job_id>")
@role_required("instructor")
def report_job(job_id: str):
    job, a, c = _job_of(job_id, reports.KIND)
    if _report_of(job) is not None:
        return redirect(url_for(".report", report_id=_report_of(job)))
    return render_template("submissions/report_job.html", job=job.as_dict(), assignment=a, course=c)


@bp.route("/report-jobs/<job_id>/progress")
@role_required("instructor")
def report_job_progress(job_id: str):
    job, _a, _c = _job_of(job_id, reports.KIND)
    report_id = _report_of(job)
    return jsonify({**job.as_dict(), "report_url": url_for(".report", report_id=report_id) if report_id else None})


@bp.route("/reports/<int:report_id>/anchor", methods=["POST"])
@role_required("instructor")
def anchor(report_id: int):
    report = _checked(Report, report_id)
    if not EmptyForm().validate_on_submit():
        abort(400)
    registry = _registry()
    if registry is None:
        flash("The chain is not reachable; try again later.", "error")
    else:
        reports.anchor_report(db_session(), report, registry, _actor())
    return redirect(url_for(".report", report_id=report.id))


def _report_context(report: Report) -> dict:
    session = db_session()
    data = report.data
    a = session.get(Assignment, report.assignment_id)
    return {"report": report, "data": data, "assignment": a, "course": session.get(Course, a.course_id)}


@bp.route("/reports/<int:report_id>")
@role_required("instructor")
def report(report_id: int):
    found = _checked(Report, report_id)
    ctx = _report_context(found)
    reviewed = reports.reviewed_in(db_session(), found)
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
    from credentials.web.identity import institution

    return jsonify(reports.verify_report(report, _registry(), get_trust_policy(), institution()))


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
                           text_changed=sub.sha256 != row["sha256"], reviews=reports.reviews_of(db_session(), sub),
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
    reports.mark_reviewed(db_session(), _actor(), form.comment.data or "", submission=sub, report=report,
                          reviewed=reviewed)
    flash("Marked as reviewed." if reviewed else "Marked for another look.", "success")
    return redirect(url_for(".submission", report_id=report.id, submission_id=sub.id))
