"""The credentials domain's long work as jobs: issuing a batch.

`submit_batch` (the registrar pages, `credentials issue`) commits the batch row
and its `issue_batch` job together; a worker then runs the steps of
`credentials.issuance`, each idempotent: sign and save (nothing is kept until
the one commit that keeps everything), anchor (the chain is asked first), and
finish. A worker that dies at any point leaves the job to another; a chain
that is down leaves it `waiting` and it is tried again.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import date

from flask import Flask
from sqlalchemy.orm import Session

from credentials import issuance, storage
from credentials.chain import ChainError
from credentials.csvimport import parse_csv
from credentials.document import CredentialRequest
from credentials.runtime import get_keyring, get_registry
from credentials.storage import Batch
from kernel.jobs import Job, JobContext, JobFailed, RetryLater, job_kind, submit

KIND = "issue_batch"
RETRY_AFTER = 15.0  # seconds before a batch waiting for the chain is tried again


def batch_subject(batch_id: str) -> str:
    return f"batch:{batch_id}"


def request_dict(request: CredentialRequest) -> dict:
    out = asdict(request)
    for key in ("awarded_on", "valid_until"):
        out[key] = out[key].isoformat() if out[key] else None
    return out


def request_from(data: dict) -> CredentialRequest:
    return CredentialRequest(**{**data, "awarded_on": date.fromisoformat(data["awarded_on"]),
                                "valid_until": date.fromisoformat(data["valid_until"]) if data["valid_until"]
                                else None})


def load_requests(session: Session, payload: dict) -> list[CredentialRequest]:
    """The batch's requests, from its stored CSV or from the payload itself."""
    if "upload" in payload:
        upload = storage.get_upload(session, payload["upload"])
        if upload is None:
            raise JobFailed(f"the uploaded file {payload['upload']} of this batch is gone; issue it again")
        parsed = parse_csv(upload.data)
        if parsed.errors:
            raise JobFailed(f"the uploaded file has {len(parsed.errors)} error(s) now; nothing was issued")
        return parsed.requests
    return [request_from(r) for r in payload["requests"]]


def submit_batch(app: Flask, session: Session, requests: list[CredentialRequest], actor: str, *,
                 upload: storage.CsvUpload | None = None, source_digest: str | None = None,
                 out_dir: str | None = None, dispatch: bool = True) -> tuple[Batch, Job]:
    """The batch row and its job, committed together; the job is queued. Large
    CSV batches keep their requests in the stored upload, small ones in the job."""
    registry = get_registry(app)
    settings = app.extensions["attest.settings"]
    batch = issuance.create_batch(session, registry, len(requests), actor,
                                  source=source_digest or (upload.digest if upload else None))
    payload: dict = {"batch": batch.id, "hash_emails": settings.hash_recipient_emails, "out_dir": out_dir}
    if upload is not None:
        upload.batch_id = batch.id
        payload["upload"] = upload.id
    else:
        payload["requests"] = [request_dict(r) for r in requests]
    job = submit(session, KIND, payload, actor, subject=batch_subject(batch.id), total=len(requests))
    session.commit()
    if dispatch:
        from kernel.jobs import dispatch as send

        send(app, job.id)
    return batch, job


@job_kind(KIND, lease=20)
def issue_batch_job(ctx: JobContext) -> dict:
    app = ctx.app
    try:
        registry = get_registry(app)
    except ChainError as exc:
        raise RetryLater(f"the chain cannot be reached: {exc}", RETRY_AFTER) from exc
    with ctx.session() as session:
        batch = session.get(Batch, ctx.payload["batch"])
        if batch is None:
            raise JobFailed(f"batch {ctx.payload['batch']} is not in the database")
        if batch.merkle_root is None:
            try:
                requests = load_requests(session, ctx.payload)
                profile = issuance.issuer_profile(session, registry, app.extensions["attest.settings"])
                issuance.sign_and_save(session, registry, profile, requests, batch, ctx.created_by,
                                       bool(ctx.payload.get("hash_emails")), ctx.progress, keyring=get_keyring(app))
            except (issuance.IssuanceError, JobFailed) as exc:
                session.rollback()
                batch = session.get(Batch, batch.id)
                batch.state, batch.error = storage.FAILED, f"nothing was issued: {exc}"
                session.commit()
                raise JobFailed(str(exc)) from exc
        ctx.checkpoint()
        try:
            result = issuance.finish_batch(session, registry, session.get(Batch, batch.id), ctx.created_by,
                                           ctx.payload.get("out_dir"), ctx.progress)
        except issuance.BatchLeftPending as exc:
            raise RetryLater(f"saved, waiting for the chain: {exc.reason}", RETRY_AFTER) from exc
        except issuance.IssuanceError as exc:
            raise JobFailed(str(exc)) from exc
    return result.summary()


def adopt_orphans(app: Flask) -> list[str]:
    """Unfinished batches with no unfinished job (from before jobs, or whose job
    failed after their credentials were saved) get a job that finishes them.
    Returns their ids."""
    from sqlalchemy import select

    from kernel.jobs import UNFINISHED, dispatch

    adopted = []
    with app.extensions["attest.db"].session() as session:
        for batch in storage.unfinished_batches(session):
            live = session.scalar(select(Job.id).where(Job.subject == batch_subject(batch.id),
                                                       Job.state.in_([str(s) for s in UNFINISHED])))
            if live is None and batch.merkle_root is not None:
                job = submit(session, KIND, {"batch": batch.id}, batch.created_by,
                             subject=batch_subject(batch.id), total=batch.count)
                adopted.append((batch.id, job.id))
        session.commit()
    for _, job_id in adopted:
        dispatch(app, job_id)
    return [b for b, _ in adopted]


def batch_job(session: Session, batch_id: str) -> Job | None:
    """The newest job of a batch (what its page shows)."""
    from sqlalchemy import select

    return session.scalar(select(Job).where(Job.subject == batch_subject(batch_id))
                          .order_by(Job.created_at.desc()).limit(1))
