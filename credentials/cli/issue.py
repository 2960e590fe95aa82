"""`flask --app app credentials issue|revoke|resume|list|batches`: issuance, scripted.

stdout carries only the result (one JSON document), so scripts can parse it;
errors and progress go to stderr. A command that started the embedded node
stops it before it exits.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from flask import current_app

from credentials import storage
from credentials.chain import ChainError, open_registry
from credentials.cli.groups import credentials_cli
from credentials.csvimport import parse_csv
from credentials.issuance import (
    CredentialNotFound,
    IssuanceError,
    RevocationError,
    check_repeat,
    export_batch,
    revoke_credential,
    source_digest,
)
from credentials.jobs import adopt_orphans, batch_job, submit_batch
from credentials.reconcile import reconcile
from credentials.runtime import get_keyring, get_registry
from kernel.jobs import JobState, get_job, run_inline

CLI_ACTOR = "cli"
PROGRESS_FROM = 1000  # batches at least this large report progress on stderr


def _settings():
    return current_app.extensions["attest.settings"]


def _session():
    return current_app.extensions["attest.db"].session()


def _fail(message: str, code: int = 1):
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _stderr_progress(done: int, total: int, stage: str) -> None:
    end = "\n" if stage == "anchored" else ""
    click.echo(f"\r{stage:<10} {done:>7}/{total}", err=True, nl=False)
    if end:
        click.echo("", err=True)


def _print(obj) -> None:
    click.echo(json.dumps(obj, indent=2))


@credentials_cli.command("issue")
@click.argument("csv_file", metavar="CSV", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory for one JSON file per credential.")
@click.option("--again", is_flag=True, help="Issue even if this exact file was issued before.")
def issue_command(csv_file: Path, out_dir: Path, again: bool):
    """Issue one batch from CSV: all rows or none.

    Prints one JSON object: batch, count, merkle_root, tx_hash, gas_used.
    The same file twice is refused (a retry after a crash would issue every
    credential a second time): an unfinished batch is finished by
    `credentials resume`; an anchored one is re-issued only with --again.
    The batch is a job like any other: killed, it is finished by a worker or
    by `credentials resume`."""
    data = csv_file.read_bytes()
    parsed = parse_csv(data)
    if parsed.errors:
        for error in parsed.errors[:50]:
            click.echo(f"error: {error}", err=True)
        if len(parsed.errors) > 50:
            click.echo(f"... and {len(parsed.errors) - 50} more errors", err=True)
        _fail(f"{csv_file}: {len(parsed.errors)} error(s); nothing was issued")
    app = current_app._get_current_object()
    try:
        get_registry(app)  # the chain first: nothing is written while it starts
        with _session() as session:
            refusal = check_repeat(session, source_digest(data), again)
            if refusal:
                _fail(f"{csv_file}: {refusal}")
            upload = storage.save_upload(session, data, csv_file.name, CLI_ACTOR)
            # Not dispatched: this process runs it (a server's worker would race us for it).
            batch, job = submit_batch(app, session, parsed.requests, CLI_ACTOR, upload=upload,
                                      out_dir=str(out_dir.resolve()), dispatch=False)
        progress = _ProgressLine(len(parsed.requests)) if len(parsed.requests) >= PROGRESS_FROM else None
        state = run_here(app, job.id, progress)
        with _session() as session:
            job = get_job(session, job.id)
            if state != JobState.DONE:
                _fail(_not_done(batch.id, job))
            result = job.result_dict
    except ChainError as exc:
        _fail(str(exc))
    _print(result)


class _ProgressLine:
    """`Signing credentials  4000/40000` on stderr while a large batch runs here."""

    def __init__(self, total: int):
        self.total, self.last = total, None

    def __call__(self, stage, done, total) -> None:
        from kernel.jobs import STAGE_LABELS

        line = f"{STAGE_LABELS.get(stage, stage):<28} {done or 0:>7}/{total or self.total}"
        if line != self.last:
            self.last = line
            click.echo(f"\r{line}", err=True, nl=False)


def run_here(app, job_id: str, progress=None) -> str | None:
    """Run a job in this process (the CLI is its worker), showing its progress."""
    try:
        return run_inline(app, job_id, listener=progress)
    finally:
        if progress is not None:
            click.echo("", err=True)


def _not_done(batch_id: str, job) -> str:
    if job.state == JobState.WAITING:
        return (f"batch {batch_id} is saved but not anchored: {job.error}. It stays pending; "
                "`flask --app app credentials resume` (or a running server) anchors it")
    return f"batch {batch_id}: {job.error or job.state}"


@credentials_cli.command("revoke")
@click.argument("credential_id", metavar="ID")
@click.option("--reason", required=True, help="Public and permanent (written on chain): no personal data.")
def revoke_command(credential_id: str, reason: str):
    """Revoke a credential on chain, with a reason."""
    try:
        with open_registry(_settings()) as registry, _session() as session:
            revocation = revoke_credential(session, registry, credential_id, reason, CLI_ACTOR,
                                           keyring=get_keyring(current_app._get_current_object()))
            _print({"credential": revocation.credential_id, "revoked": True, "reason": revocation.reason,
                    "tx_hash": revocation.tx_hash})
    except CredentialNotFound as exc:
        _fail(str(exc.args[0]))
    except (ChainError, IssuanceError, RevocationError) as exc:
        _fail(str(exc))


@credentials_cli.command("resume")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Also write the finished batches' credential files here.")
@click.option("--retry-failed", is_flag=True, help="Also retry saved batches the chain refused before.")
def resume_command(out_dir: Path | None, retry_failed: bool):
    """Finish every batch left unfinished (a crash, a dead chain), each exactly once.

    Each batch's job runs here unless a live worker holds it; a batch killed
    while signing is signed again from its stored file."""
    app = current_app._get_current_object()
    try:
        with _session() as session:
            if retry_failed:
                for batch in storage.unfinished_batches(session, include_failed=True):
                    if batch.state == storage.FAILED:
                        batch.state, batch.error = storage.PENDING, None
                session.commit()
        with _session() as session:
            for line in reconcile(session, get_registry(app)).lines():
                click.echo(line, err=True)
        adopt_orphans(app)
        resumed, still = [], []
        with _session() as session:
            batches = storage.unfinished_batches(session)
            jobs = {b.id: batch_job(session, b.id) for b in batches}
        for batch in batches:
            job = jobs[batch.id]
            state = run_here(app, job.id) if job is not None else None
            with _session() as session:
                job = get_job(session, job.id) if job is not None else None
                current = storage.get_batch(session, batch.id)
                if state == JobState.DONE:
                    if out_dir is not None:
                        export_batch(session, batch.id, out_dir)
                    resumed.append(job.result_dict)
                else:
                    still.append({**current.as_dict(), "job": job.as_dict() if job else None,
                                  "why": _not_done(batch.id, job) if job else "no job"})
    except ChainError as exc:
        _fail(str(exc))
    _print({"resumed": resumed, "still_pending": still})


@credentials_cli.command("export")
@click.argument("batch_id", metavar="BATCH")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
def export_command(batch_id: str, out_dir: Path):
    """Write a stored batch's credential files again (one JSON file each)."""
    with _session() as session:
        batch = storage.get_batch(session, batch_id)
        if batch is None:
            _fail(f"no batch {batch_id}")
        if batch.state != storage.ANCHORED:
            _fail(f"batch {batch.id} is {batch.state}, not anchored: its proofs are not complete "
                  "(run `credentials resume` first)")
        files = export_batch(session, batch.id, out_dir)
        _print({"batch": batch.id, "state": batch.state, "files": len(files), "out": str(out_dir)})


@credentials_cli.command("list")
@click.option("--q", "query", help="Text in the name, email or achievement; or a batch or credential id.")
@click.option("--status", type=click.Choice(storage.CREDENTIAL_STATUSES))
@click.option("--batch", "batch_id")
@click.option("--limit", default=50, show_default=True)
def list_command(query: str | None, status: str | None, batch_id: str | None, limit: int):
    """List credentials (newest first) as JSON."""
    with _session() as session:
        rows = storage.search_credentials(session, q=query, status=status, batch_id=batch_id, limit=limit)
        _print([{"id": r.id, "recipient_name": r.recipient_name, "recipient_email": r.recipient_email,
                 "achievement_name": r.achievement_name, "achievement_type": r.achievement_type,
                 "awarded_on": r.awarded_on.isoformat(), "status": r.status, "batch": r.batch_id,
                 "fingerprint": r.fingerprint} for r in rows])


@credentials_cli.command("batches")
@click.option("--limit", default=50, show_default=True)
def batches_command(limit: int):
    """List batches (newest first) with their state, as JSON."""
    with _session() as session:
        _print([b.as_dict() for b in storage.list_batches(session, limit=limit)])
