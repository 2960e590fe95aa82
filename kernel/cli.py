"""`flask --app app users ...` and `jobs ...`: accounts and jobs, scripted."""

from __future__ import annotations

import json
import sys

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import select

from kernel import audit
from kernel.accounts import ROLES, User, UserError, create_user, set_password

users_cli = AppGroup("users", help="Registrar and instructor accounts.")
jobs_cli = AppGroup("jobs", help="Long work (batches, uploads, reports): workers and their jobs.")


def _session():
    return current_app.extensions["attest.db"].session()


@users_cli.command("create")
@click.option("--email", required=True)
@click.option("--role", type=click.Choice(ROLES), default="registrar", show_default=True)
@click.option("--name", default="")
@click.password_option("--password", help="Prompted (twice, hidden) when not given.")
def create_command(email: str, role: str, name: str, password: str):
    """Create a user who can log in."""
    with _session() as session:
        try:
            user = create_user(session, email, password, role, name)
        except UserError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        audit.record(session, "cli", "user_created", user.email, role=role)
        session.commit()
        click.echo(f"created {role} {user.email}")


@users_cli.command("set-password")
@click.option("--email", required=True)
@click.password_option("--password", help="Prompted (twice, hidden) when not given.")
def set_password_command(email: str, password: str):
    """Set a user's password; every session of that user ends."""
    with _session() as session:
        user = session.scalar(select(User).where(User.email == email.strip().lower()))
        if user is None:
            click.echo(f"error: no user {email}", err=True)
            sys.exit(1)
        try:
            set_password(user, password)
        except UserError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        audit.record(session, "cli", "password_changed", user.email)
        session.commit()
        click.echo(f"password changed for {user.email}; their sessions are ended")


@users_cli.command("list")
def list_command():
    """List the users."""
    with _session() as session:
        for user in session.scalars(select(User).order_by(User.id)):
            click.echo(f"{user.id}\t{user.role}\t{user.email}\t{'active' if user.active else 'disabled'}")


@jobs_cli.command("worker")
@click.option("--workers", "threads", type=int, default=None, help="Worker threads (default ATTEST_WORKERS, 2).")
def worker_command(threads: int | None):
    """Run jobs from the queue until SIGTERM/SIGINT/SIGHUP, then stop gracefully
    (running jobs hand back at their next durable step)."""
    from kernel.jobs.worker import run_worker_process

    app = current_app._get_current_object()
    settings = app.extensions["attest.settings"]
    threads = threads or settings.workers
    click.echo(f"worker: {threads} thread(s) on the {app.extensions['attest.queue'].kind} queue", err=True)
    run_worker_process(app, threads)
    click.echo("worker: stopped", err=True)


@jobs_cli.command("list")
@click.option("--all", "show_all", is_flag=True, help="Finished jobs too.")
@click.option("--limit", default=50, show_default=True)
def jobs_list_command(show_all: bool, limit: int):
    """Jobs (newest first) as JSON: kind, state, stage, progress, lease."""
    from kernel.jobs import UNFINISHED, Job

    with _session() as session:
        stmt = select(Job).order_by(Job.created_at.desc()).limit(limit)
        if not show_all:
            stmt = stmt.where(Job.state.in_([str(s) for s in UNFINISHED]))
        rows = [{**j.as_dict(), "lease_owner": j.lease_owner,
                 "lease_until": j.lease_until.isoformat() + "Z" if j.lease_until else None}
                for j in session.scalars(stmt)]
    click.echo(json.dumps(rows, indent=2))
