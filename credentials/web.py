"""The registrar's web pages (`registrar_bp`, under /registrar).

Thin views: parse the request, call the issuance domain (`credentials.storage`,
`csvimport`, `issuance`, `certificate`), render. Every page needs a registrar
login and every form carries a CSRF token.

A CSV upload is kept server-side between preview and confirm, as a file under
ATTEST_DATA_DIR/uploads named by a random token (never in the cookie session),
so any web worker can serve the confirm. A confirmed batch is issued in a
background thread of the web process; the batch page polls a small JSON
endpoint that reads the batch's stage and count from the database, so the
progress survives a reload and any worker can answer it.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
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
from flask_wtf.file import FileField, FileRequired
from sqlalchemy.orm import Session
from web3.exceptions import Web3Exception
from wtforms import EmailField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length

from credentials import certificate, csvimport, issuance, storage
from credentials.chain import ChainError, Registry
from credentials.document import ACHIEVEMENT_TYPES, CredentialRequest
from credentials.web_trust import institution
from db import utcnow
from services import get_registry
from web_auth import db_session, role_required

log = logging.getLogger(__name__)

registrar_bp = Blueprint("registrar", __name__, url_prefix="/registrar")

PAGE_SIZE = 25
PREVIEW_ROWS = 50  # valid rows shown in a preview (every row with an error is shown)
UPLOAD_TTL = 24 * 3600  # a pending upload not confirmed within a day is swept
STALE_BATCH = timedelta(minutes=10)  # an unfinished batch this old, with no error, was interrupted
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


def resumable(batch: storage.Batch) -> bool:
    """Left waiting for the chain, or interrupted (a stopped process): not a
    batch another thread is writing right now."""
    if batch.state not in storage.UNFINISHED_STATES:
        return False
    return bool(batch.error) or (batch.created_at is not None and utcnow() - batch.created_at > STALE_BATCH)


# How far through its life a batch is, by stage: signing fills the bar to 70%,
# the rest is saving, the anchoring transaction and writing the proofs back.
_STAGE_SPAN = {"signing": (0, 70), "saving": (70, 75), "saved": (75, 75), "waiting for the chain": (75, 75),
               "anchoring": (80, 80), "finishing": (90, 98)}


def percent(batch: storage.Batch) -> int:
    if batch.state == storage.ANCHORED:
        return 100
    start, end = _STAGE_SPAN.get(batch.stage or "", (0, 0))
    share = (batch.done or 0) / batch.count if batch.count else 0
    return int(start + (end - start) * min(share, 1.0))


@registrar_bp.context_processor
def _helpers() -> dict:
    return {"human_date": certificate.human_date, "type_words": certificate.split_type,
            "resumable": resumable, "percent": percent}


# ----- pending uploads -----------------------------------------------------------


@dataclass
class PendingUpload:
    """A CSV kept between preview and confirm: `<token>.csv` and `<token>.json`."""

    token: str
    data: bytes
    filename: str


def _uploads_dir() -> Path:
    path = _settings().data_dir / "uploads"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def _save_upload(data: bytes, filename: str) -> str:
    folder = _uploads_dir()
    now = time.time()
    for old in folder.glob("*.json"):
        if now - old.stat().st_mtime > UPLOAD_TTL:
            old.unlink(missing_ok=True)
            old.with_suffix(".csv").unlink(missing_ok=True)
    token = secrets.token_urlsafe(24)
    (folder / f"{token}.csv").write_bytes(data)
    (folder / f"{token}.json").write_text(json.dumps({"filename": filename, "owner": _actor(), "at": now}))
    return token


def _load_upload(token: str) -> PendingUpload:
    """The upload `token` names, if it belongs to the user asking."""
    if not _TOKEN.match(token):
        abort(404)
    folder = _uploads_dir()
    try:
        meta = json.loads((folder / f"{token}.json").read_text())
        data = (folder / f"{token}.csv").read_bytes()
    except FileNotFoundError:
        abort(404)
    if meta.get("owner") != _actor():
        abort(404)
    return PendingUpload(token, data, meta.get("filename") or "upload.csv")


def _drop_upload(token: str) -> None:
    for suffix in (".csv", ".json"):
        (_uploads_dir() / f"{token}{suffix}").unlink(missing_ok=True)


@dataclass
class PreviewRow:
    number: int  # the spreadsheet row, as CsvError counts it (header = 1)
    values: dict[str, str]


def preview_rows(data: bytes, wanted: set[int], limit: int) -> tuple[list[PreviewRow], int]:
    """The raw rows to show: every row in `wanted` (those with errors) and the
    first `limit` others; and how many others were left out."""
    text = data.decode("utf-8-sig", errors="replace")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except (StopIteration, csv.Error):
        return [], 0
    shown: list[PreviewRow] = []
    hidden = others = 0
    try:
        while True:
            number = reader.line_num + 1
            cells = next(reader, None)
            if cells is None:
                break
            if not any(c.strip() for c in cells):
                continue
            if number not in wanted:
                others += 1
                if others > limit:
                    hidden += 1
                    continue
            shown.append(PreviewRow(number, dict(zip(header, cells, strict=False))))
    except csv.Error:
        pass
    return shown, hidden


# ----- background issuance ---------------------------------------------------------


def start_batch(app: Flask, registry: Registry, requests: list[CredentialRequest], actor: str,
                source_digest: str | None = None, wait: float = 15.0) -> str:
    """Issue `requests` in a background thread and return the batch id once
    its row is written (so the page can poll it). Raises what the thread
    raised if it failed before the batch existed."""
    batch_id = str(uuid.uuid4())
    started = threading.Event()
    failure: list[BaseException] = []

    def progress(done: int, total: int, stage: str) -> None:
        started.set()

    def run() -> None:
        session = app.extensions["attest.db"].session()
        try:
            profile = issuance.issuer_profile(session, registry, app.extensions["attest.settings"])
            issuance.issue_batch(session, registry, profile, requests, actor, progress=progress,
                                 batch_id=batch_id, source_digest=source_digest)
        except issuance.BatchLeftPending as exc:
            log.warning("batch %s left pending: %s", batch_id, exc)
        except BaseException as exc:  # noqa: BLE001 - reported on the batch page or to the caller
            log.exception("batch %s failed", batch_id)
            failure.append(exc)
            _mark_failed(session, batch_id, exc)
        finally:
            session.close()
            started.set()

    threading.Thread(target=run, name=f"attest-batch-{batch_id[:8]}", daemon=True).start()
    started.wait(timeout=wait)
    with app.extensions["attest.db"].session() as session:
        exists = storage.get_batch(session, batch_id) is not None
    if not exists and failure:
        raise failure[0]
    return batch_id


def _mark_failed(session: Session, batch_id: str, exc: BaseException) -> None:
    """An unexpected error in the thread: say so on the batch row, if any."""
    try:
        session.rollback()
        batch = storage.get_batch(session, batch_id)
        if batch is None or batch.error:
            return  # the issuance code said what went wrong already
        if batch.merkle_root is None:
            batch.state, batch.stage = storage.FAILED, "failed"
        batch.error = f"issuing stopped: {exc}"
        session.commit()
    except Exception:  # noqa: BLE001 - the log already has it
        log.exception("could not record the failure of batch %s", batch_id)


# ----- dashboard -----------------------------------------------------------------


@registrar_bp.route("/")
@role_required("registrar")
def index():
    session = db_session()
    counts = {status: storage.count_credentials(session, status=status) for status in storage.CREDENTIAL_STATUSES}
    counts["total"] = sum(counts.values())
    waiting = [b for b in storage.unfinished_batches(session) if resumable(b)]
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
            return _issue_single(parsed) or render_template("registrar/issue.html", form=form)
    return render_template("registrar/issue.html", form=form)


def _issue_single(request_: CredentialRequest) -> Response | None:
    """Issue one credential now; a redirect, or None to show the form again."""
    session = db_session()
    try:
        registry = get_registry()
        profile = issuance.issuer_profile(session, registry, _settings())
        result = issuance.issue_batch(session, registry, profile, [request_], _actor())
    except issuance.BatchLeftPending as exc:
        flash("The credential is saved, but the chain did not answer, so it is not anchored yet. "
              "Nothing is lost: resume the batch below when the chain is back.", "error")
        return redirect(url_for(".batch", batch_id=exc.batch_id))
    except CHAIN_ERRORS as exc:
        flash(f"The chain cannot be reached, so nothing was issued: {exc}", "error")
        return None
    except issuance.IssuanceError as exc:
        flash(f"The credential could not be issued: {exc}", "error")
        return None
    record = storage.search_credentials(session, batch_id=result.batch_id, limit=1)[0]
    flash("Credential issued, signed and anchored on chain.", "success")
    return redirect(url_for(".credential", cid=record.uuid))


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
        token = _save_upload(form.file.data.read(), form.file.data.filename or "upload.csv")
        return redirect(url_for(".preview", token=token))
    return render_template("registrar/upload.html", form=form)


@registrar_bp.route("/upload/<token>")
@role_required("registrar")
def preview(token: str):
    pending = _load_upload(token)
    parsed = csvimport.parse_csv(pending.data)
    by_row = parsed.errors_by_row()
    rows, hidden = preview_rows(pending.data, {r for r in by_row if r}, PREVIEW_ROWS)
    earlier = storage.batches_from_source(db_session(), issuance.source_digest(pending.data))
    return render_template("registrar/preview.html", upload=pending, parsed=parsed, errors_by_row=by_row,
                           rows=rows, hidden_rows=hidden, columns=csvimport.COLUMNS, form=ActionForm(),
                           earlier=earlier[-1] if earlier else None)


def _refuse_repeat(data: bytes, again: bool) -> tuple[str, str | None]:
    """The file's digest, and why it must not be issued now (or None): the
    same file twice is nearly always a retry that would double every credential."""
    digest = issuance.source_digest(data)
    earlier = storage.batches_from_source(db_session(), digest)
    if any(b.state in storage.UNFINISHED_STATES for b in earlier):
        return digest, "This file is already a batch that is waiting for the chain: resume it instead."
    if earlier and not again:
        return digest, "This file was issued already. Tick “issue it again” to issue a second batch."
    return digest, None


@registrar_bp.route("/upload/<token>/issue", methods=["POST"])
@role_required("registrar")
def issue_upload(token: str):
    pending = _load_upload(token)
    parsed = csvimport.parse_csv(pending.data)
    if not parsed.ok:
        flash("This file has errors, so nothing was issued. Fix the rows and upload it again.", "error")
        return redirect(url_for(".preview", token=token))
    digest, refusal = _refuse_repeat(pending.data, again=request.form.get("again") == "1")
    if refusal:
        flash(f"Nothing was issued. {refusal}", "error")
        return redirect(url_for(".preview", token=token))
    try:
        registry = get_registry()
        batch_id = start_batch(current_app._get_current_object(), registry, parsed.requests, _actor(),
                               source_digest=digest)
    except CHAIN_ERRORS as exc:
        flash(f"The chain cannot be reached, so nothing was issued: {exc}. The file is kept: try again.",
              "error")
        return redirect(url_for(".preview", token=token))
    except issuance.IssuanceError as exc:
        flash(f"Nothing was issued: {exc}", "error")
        return redirect(url_for(".preview", token=token))
    _drop_upload(token)
    return redirect(url_for(".batch", batch_id=batch_id))


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
                           pages=_pages(total), action_form=ActionForm())


@registrar_bp.route("/batches/<batch_id>/progress")
@role_required("registrar")
def batch_progress(batch_id: str):
    found = _batch_or_404(batch_id)
    return jsonify(batch=found.id, state=found.state, stage=found.stage, done=found.done or 0,
                   count=found.count or 0, percent=percent(found), error=found.error,
                   finished=found.finished, resumable=resumable(found))


@registrar_bp.route("/batches/resume", methods=["POST"])
@role_required("registrar")
def resume():
    if not ActionForm().validate_on_submit():
        abort(400)
    back = request.form.get("batch_id")
    try:
        finished = issuance.resume_pending(db_session(), get_registry(), actor=_actor())
    except CHAIN_ERRORS as exc:
        flash(f"The chain still does not answer, so the batches stay pending: {exc}", "error")
    except issuance.IssuanceError as exc:
        flash(str(exc), "error")
    else:
        n = len(finished)
        flash(f"{n} batch{'es' if n != 1 else ''} anchored." if n else "No batch was waiting.", "success")
    if back and storage.get_batch(db_session(), back) is not None:
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
            issuance.revoke_credential(db_session(), get_registry(), record.id, form.reason.data, _actor())
        except issuance.RevocationError as exc:
            form.reason.errors.append(str(exc))
        except CHAIN_ERRORS as exc:
            db_session().rollback()
            flash(f"The chain cannot be reached, so nothing was revoked: {exc}. Try again later.", "error")
        else:
            flash("The credential is revoked, on chain: everyone who verifies it now sees that.", "success")
            return redirect(url_for(".credential", cid=record.uuid))
    return render_template("registrar/revoke.html", form=form, **_view_model(record))
