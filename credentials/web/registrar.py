"""The registrar's web pages (`registrar_bp`, under /registrar).

Thin views: parse the request, call the issuance domain (`credentials.storage`,
`csvimport`, `issuance`, `certificate`), render. Every page needs a registrar
login and every form carries a CSRF token.

A CSV upload is kept in the database between preview and confirm, under a
random token (never in the cookie session), so any web worker on any machine
can serve the confirm. A confirmed batch is a job (`credentials.jobs`): the
view only enqueues it, a worker issues it, and the batch page polls a small
JSON endpoint that reads the job's stage and count from the database, so the
progress survives a reload, a restart, and a worker that dies.
"""

from __future__ import annotations

import logging
import re

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
from flask_wtf.file import FileField, FileRequired
from web3.exceptions import Web3Exception
from wtforms import EmailField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length

from credentials import certificate, csvimport, issuance, storage
from credentials.chain import ChainError
from credentials.document import ACHIEVEMENT_TYPES, CredentialRequest, anchor_proof
from credentials.jobs import adopt_orphans, batch_job, submit_batch
from credentials.runtime import get_keyring, get_registry
from credentials.web.identity import institution
from kernel.database import utcnow
from kernel.jobs import JobState, Stage, dispatch, make_due
from kernel.web.auth import db_session, role_required

log = logging.getLogger(__name__)

registrar_bp = Blueprint("registrar", __name__, url_prefix="/registrar")

PAGE_SIZE = 25
PREVIEW_ROWS = 50  # valid rows shown in a preview (every row with an error is shown)
# What a dead or unreachable node raises, besides our own ChainError.
CHAIN_ERRORS = (ChainError, Web3Exception, OSError)
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{20,64}$")


# ----- forms -------------------------------------------------------------------


class ActionForm(FlaskForm):
    """A button that posts: only the CSRF token."""


class IssueForm(FlaskForm):
    """One credential; the fields are the CSV's columns, checked by the same
    row validation as an upload so the messages match."""

    recipient_name = StringField("Recipient name")
    recipient_email = EmailField("Recipient email")
    achievement_name = StringField("Achievement")
    achievement_type = SelectField("Achievement type", choices=list(ACHIEVEMENT_TYPES),
                                   default="BachelorDegree", validate_choice=False)
    description = TextAreaField("Description")
    awarded_on = StringField("Awarded on", render_kw={"type": "date"})
    valid_until = StringField("Valid until (optional)", render_kw={"type": "date"})
    grade = StringField("Grade (optional)")

    def row(self) -> dict[str, str]:
        return {name: (getattr(self, name).data or "").strip() for name in csvimport.COLUMNS}


class UploadForm(FlaskForm):
    file = FileField("CSV file", validators=[FileRequired("Choose a CSV file to upload.")])


class RevokeForm(FlaskForm):
    reason = TextAreaField("Reason", validators=[DataRequired("Give the reason for revoking."),
                                                 Length(min=3, max=256)])


# ----- helpers -----------------------------------------------------------------


def _actor() -> str:
    return current_user.email


def _settings():
    return current_app.extensions["attest.settings"]


def _public_base() -> str:
    """The institution's public address, never the request's Host header (which
    anyone can set): QR codes and certificates print it."""
    return institution().public_url + "/"


def _credential_or_404(cid: str) -> storage.CredentialRecord:
    return storage.get_credential(db_session(), cid) or abort(404)


def _batch_or_404(batch_id: str) -> storage.Batch:
    return storage.get_batch(db_session(), batch_id) or abort(404)


def _pages(total: int) -> int:
    return max((total + PAGE_SIZE - 1) // PAGE_SIZE, 1)


def _page_arg() -> int:
    return max(request.args.get("page", 1, type=int) or 1, 1)


def progress_of(batch: storage.Batch) -> dict:
    """What the batch page and its poll show: the batch's state, its job's stage
    (in words), how far it is, and whether a person can resume it now."""
    job = batch_job(db_session(), batch.id)
    # Waiting for a person: no job will take it up by itself soon (a job waiting
    # for the chain is tried again by itself, but a person may hurry it).
    idle = job is None or job.state == JobState.FAILED or (
        job.state == JobState.WAITING and (job.not_before is None or job.not_before > utcnow()))
    waiting = batch.state in storage.UNFINISHED_STATES and idle
    out = {"batch": batch.id, "state": batch.state, "count": batch.count or 0, "error": batch.error,
           "finished": batch.finished, "resumable": waiting}
    if batch.state == storage.ANCHORED:
        return {**out, "stage": str(Stage.DONE), "stage_label": "Anchored", "done": batch.count, "percent": 100}
    if job is None:
        return {**out, "stage": "", "stage_label": "Saved, not anchored yet" if batch.merkle_root else batch.state,
                "done": 0, "percent": 0}
    info = job.as_dict()
    if batch.state == storage.FAILED:
        info["stage_label"] = "Failed"
    return {**out, "stage": info["stage"], "stage_label": info["stage_label"], "done": info["done"],
            "percent": info["percent"] if batch.state != storage.FAILED else 0,
            "error": batch.error or job.error, "job": job.id}


@registrar_bp.context_processor
def _helpers() -> dict:
    return {"human_date": certificate.human_date, "type_words": certificate.split_type,
            "progress_of": progress_of}


# ----- pending uploads -----------------------------------------------------------


def _load_upload(token: str) -> storage.CsvUpload:
    """The upload `token` names, if it belongs to the user asking (else 404)."""
    if not _TOKEN.match(token):
        abort(404)
    return storage.get_upload(db_session(), token, owner=_actor()) or abort(404)


# ----- dashboard -----------------------------------------------------------------


@registrar_bp.route("/")
@role_required("registrar")
def index():
    session = db_session()
    counts = {status: storage.count_credentials(session, status=status) for status in storage.CREDENTIAL_STATUSES}
    counts["total"] = sum(counts.values())
    waiting = [b for b in storage.unfinished_batches(session) if progress_of(b)["resumable"]]
    return render_template("registrar/index.html", batches=storage.list_batches(session, limit=10),
                           counts=counts, waiting=waiting)


# ----- issue one ---------------------------------------------------------------


@registrar_bp.route("/issue", methods=["GET", "POST"])
@role_required("registrar")
def issue_one():
    form = IssueForm()
    if form.validate_on_submit():
        parsed, errors = csvimport.parse_row(form.row(), row=2)
        for error in errors:
            getattr(form, error.column).errors.append(error.message)
        if parsed is not None:
            return _submit([parsed]) or render_template("registrar/issue.html", form=form)
    return render_template("registrar/issue.html", form=form)


def _submit(requests: list[CredentialRequest], upload: storage.CsvUpload | None = None) -> Response | None:
    """Enqueue the batch; a redirect to its page, or None (with a message) when
    the chain cannot be reached to say which registry it will be anchored in."""
    try:
        batch, _job = submit_batch(current_app._get_current_object(), db_session(), requests, _actor(),
                                   upload=upload)
    except CHAIN_ERRORS as exc:
        db_session().rollback()
        flash(f"The chain cannot be reached, so nothing was issued: {exc}. Try again in a minute.", "error")
        return None
    except issuance.IssuanceError as exc:
        db_session().rollback()
        flash(f"Nothing was issued: {exc}", "error")
        return None
    return redirect(url_for(".batch", batch_id=batch.id))


# ----- CSV upload ----------------------------------------------------------------


@registrar_bp.route("/template.csv")
@role_required("registrar")
def csv_template():
    return Response(csvimport.TEMPLATE_CSV, mimetype="text/csv",
                    headers={"Content-Disposition": "attachment; filename=attest-template.csv"})


@registrar_bp.route("/upload", methods=["GET", "POST"])
@role_required("registrar")
def upload():
    form = UploadForm()
    if form.validate_on_submit():
        session = db_session()
        pending = storage.save_upload(session, form.file.data.read(), form.file.data.filename or "upload.csv",
                                      _actor())
        session.commit()
        return redirect(url_for(".preview", token=pending.id))
    return render_template("registrar/upload.html", form=form)


@registrar_bp.route("/upload/<token>")
@role_required("registrar")
def preview(token: str):
    pending = _load_upload(token)
    if pending.batch_id:
        return redirect(url_for(".batch", batch_id=pending.batch_id))
    parsed = csvimport.parse_csv(pending.data, preview=PREVIEW_ROWS)
    by_row = parsed.errors_by_row()
    rows, hidden = parsed.shown, parsed.hidden
    earlier = storage.batches_from_source(db_session(), pending.digest)
    return render_template("registrar/preview.html", upload=pending, parsed=parsed, errors_by_row=by_row,
                           rows=rows, hidden_rows=hidden, columns=csvimport.COLUMNS, form=ActionForm(),
                           earlier=earlier[-1] if earlier else None)


@registrar_bp.route("/upload/<token>/issue", methods=["POST"])
@role_required("registrar")
def issue_upload(token: str):
    pending = _load_upload(token)
    if pending.batch_id:
        return redirect(url_for(".batch", batch_id=pending.batch_id))
    parsed = csvimport.parse_csv(pending.data)
    if not parsed.ok:
        flash("This file has errors, so nothing was issued. Fix the rows and upload it again.", "error")
        return redirect(url_for(".preview", token=token))
    refusal = issuance.check_repeat(db_session(), pending.digest, again=request.form.get("again") == "1")
    if refusal:
        flash(f"Nothing was issued: {refusal[0].upper()}{refusal[1:]}.", "error")
        return redirect(url_for(".preview", token=token))
    return _submit(parsed.requests, upload=pending) or redirect(url_for(".preview", token=token))


# ----- batches -------------------------------------------------------------------


@registrar_bp.route("/batches/<batch_id>")
@role_required("registrar")
def batch(batch_id: str):
    found = _batch_or_404(batch_id)
    page = _page_arg()
    records = storage.search_credentials(db_session(), batch_id=found.id, limit=PAGE_SIZE,
                                         offset=(page - 1) * PAGE_SIZE)
    total = storage.count_credentials(db_session(), batch_id=found.id)
    return render_template("registrar/batch.html", batch=found, records=records, total=total, page=page,
                           pages=_pages(total), action_form=ActionForm(), progress=progress_of(found))


@registrar_bp.route("/batches/<batch_id>/progress")
@role_required("registrar")
def batch_progress(batch_id: str):
    return jsonify(progress_of(_batch_or_404(batch_id)))


@registrar_bp.route("/batches/resume", methods=["POST"])
@role_required("registrar")
def resume():
    """Unfinished batches go back to the workers now (their jobs are made due)."""
    if not ActionForm().validate_on_submit():
        abort(400)
    back = request.form.get("batch_id")
    app = current_app._get_current_object()
    adopt_orphans(app)
    session = db_session()
    sent = 0
    for waiting in storage.unfinished_batches(session):
        job = batch_job(session, waiting.id)
        if job is not None and job.state in (JobState.WAITING, JobState.QUEUED):
            make_due(session, job.id)
            dispatch(app, job.id)
            sent += 1
    flash(f"{sent} batch{'es are' if sent != 1 else ' is'} being anchored again: the chain is asked first, so "
          "nothing is anchored twice." if sent else "No batch was waiting.", "success")
    if back and storage.get_batch(session, back) is not None:
        return redirect(url_for(".batch", batch_id=back))
    return redirect(url_for(".index"))


# ----- credentials ---------------------------------------------------------------


@registrar_bp.route("/credentials")
@role_required("registrar")
def credentials():
    q = request.args.get("q", "").strip()
    status = request.args.get("status", "").strip()
    status = status if status in storage.CREDENTIAL_STATUSES else ""
    batch_id = request.args.get("batch", "").strip().lstrip("#")
    page = _page_arg()
    filters = {"q": q or None, "status": status or None, "batch_id": batch_id or None}
    records = storage.search_credentials(db_session(), **filters, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    total = storage.count_credentials(db_session(), **filters)
    return render_template("registrar/credentials.html", records=records, total=total, page=page,
                           pages=_pages(total), q=q, status=status, batch_id=batch_id)


def _view_model(record: storage.CredentialRecord) -> dict:
    document = record.document_dict
    revocation = storage.get_revocation(db_session(), record.id) if record.status == storage.REVOKED else None
    return {"record": record, "document": document, "revocation": revocation,
            "anchor": (anchor_proof(document) or {}).get("anchor", {}),
            "verify_url": certificate.verify_url(_public_base(), record.id),
            "institution": (document.get("issuer") or {}).get("name", "")}


@registrar_bp.route("/credentials/<cid>")
@role_required("registrar")
def credential(cid: str):
    return render_template("registrar/credential.html", **_view_model(_credential_or_404(cid)))


@registrar_bp.route("/credentials/<cid>/qr.png")
@role_required("registrar")
def qr(cid: str):
    record = _credential_or_404(cid)
    png = certificate.qr_png(certificate.verify_url(_public_base(), record.id))
    return Response(png, mimetype="image/png", headers={"Cache-Control": "private, max-age=3600"})


@registrar_bp.route("/credentials/<cid>/credential.json")
@role_required("registrar")
def download_json(cid: str):
    record = _credential_or_404(cid)
    return Response(record.document, mimetype="application/json",
                    headers={"Content-Disposition": f"attachment; filename=credential-{record.uuid}.json"})


@registrar_bp.route("/credentials/<cid>/certificate")
@role_required("registrar")
def certificate_page(cid: str):
    return render_template("registrar/certificate.html", **_view_model(_credential_or_404(cid)))


@registrar_bp.route("/credentials/<cid>/certificate.pdf")
@role_required("registrar")
def certificate_pdf(cid: str):
    view = _view_model(_credential_or_404(cid))
    record, revocation = view["record"], view["revocation"]
    pdf = certificate.certificate_pdf(certificate.Certificate(
        institution=view["institution"], holder=record.recipient_name, achievement=record.achievement_name,
        achievement_type=record.achievement_type, awarded_on=record.awarded_on, credential_id=record.id,
        verify_url=view["verify_url"], grade=record.grade, valid_until=record.valid_until,
        revoked=record.status == storage.REVOKED, revocation_reason=revocation.reason if revocation else None))
    return Response(pdf, mimetype="application/pdf",
                    headers={"Content-Disposition": f"attachment; filename=certificate-{record.uuid}.pdf"})


@registrar_bp.route("/credentials/<cid>/revoke", methods=["GET", "POST"])
@role_required("registrar")
def revoke(cid: str):
    record = _credential_or_404(cid)
    if record.status != storage.ACTIVE:
        flash("Only an active, anchored credential can be revoked." if record.status != storage.REVOKED
              else "This credential is revoked already.", "info")
        return redirect(url_for(".credential", cid=record.uuid))
    form = RevokeForm()
    if form.validate_on_submit():
        try:
            issuance.revoke_credential(db_session(), get_registry(), record.id, form.reason.data, _actor(),
                                        keyring=get_keyring())
        except issuance.RevocationError as exc:
            form.reason.errors.append(str(exc))
        except CHAIN_ERRORS as exc:
            db_session().rollback()
            flash(f"The chain cannot be reached, so nothing was revoked: {exc}. Try again later.", "error")
        else:
            flash("The credential is revoked, on chain: everyone who verifies it now sees that.", "success")
            return redirect(url_for(".credential", cid=record.uuid))
    return render_template("registrar/revoke.html", form=form, **_view_model(record))
