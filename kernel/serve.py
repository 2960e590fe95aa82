"""`flask --app app serve`: what `make run` starts.

Runs each domain's start-up hooks (the credentials domain starts or finds the
chain, deploys the registry if needed, reconciles and resumes batches), seeds
a demo registrar and instructor on an empty database and prints their logins
(each its own password), starts the embedded job worker, then serves on
127.0.0.1:5000 until Ctrl-C or SIGTERM, and runs the shutdown hooks (which stop
a node this process started).

A domain registers hooks with `on_startup(app, fn)` / `on_shutdown(app, fn)`:
`fn(app)` returns the lines to print (or raises StartupError to stop).
"""

from __future__ import annotations

import secrets
import signal
import sys
from collections.abc import Callable

import click
from flask import Flask, current_app
from sqlalchemy import select
from werkzeug.serving import run_simple

from kernel import audit
from kernel.accounts import User, create_user
from kernel.secrets import create_exclusive, read_private

DEMO_USERS = (("registrar@example.edu", "registrar", "Demo Registrar"),
              ("instructor@example.edu", "instructor", "Demo Instructor"))


class StartupError(RuntimeError):
    """A start-up hook cannot go on; the message says why and what to do."""


def on_startup(app: Flask, hook: Callable[[Flask], list[str]]) -> None:
    app.extensions.setdefault("attest.startup", []).append(hook)


def on_shutdown(app: Flask, hook: Callable[[Flask], None]) -> None:
    app.extensions.setdefault("attest.shutdown", []).append(hook)


def seed_demo_users(app: Flask) -> list[tuple[str, str]]:
    """On an empty user table, create the demo accounts, each with its own random
    password, kept 0600 in ATTEST_DATA_DIR/keys/demo-logins; return the logins."""
    logins_file = app.extensions["attest.settings"].keys_dir / "demo-logins"
    with app.extensions["attest.db"].session() as session:
        if session.scalar(select(User).limit(1)) is None:
            logins = [(email, secrets.token_urlsafe(9)) for email, _role, _name in DEMO_USERS]
            logins_file.unlink(missing_ok=True)
            create_exclusive(logins_file, "".join(f"{email} {password}\n" for email, password in logins))
            for (email, role, name), (_, password) in zip(DEMO_USERS, logins, strict=True):
                create_user(session, email, password, role, name)
                audit.record(session, "system", "user_created", email, role=role, seeded=True)
            session.commit()
        if not logins_file.exists():
            return []
        present = {u.email for u in session.scalars(select(User))}
    pairs = [line.split(" ", 1) for line in read_private(logins_file).splitlines() if " " in line]
    return [(email, password) for email, password in pairs if email in present]


def run_startup(app: Flask) -> None:
    for hook in app.extensions.get("attest.startup", []):
        try:
            for line in hook(app) or []:
                click.echo(line, err=line.startswith("warning"))
        except StartupError as exc:
            click.echo(f"error: {exc}", err=True)
            run_shutdown(app)
            sys.exit(1)


def run_shutdown(app: Flask) -> None:
    for hook in reversed(app.extensions.get("attest.shutdown", [])):
        try:
            hook(app)
        except Exception as exc:  # noqa: BLE001 - every hook gets its turn
            click.echo(f"warning: shutting down: {exc}", err=True)


@click.command("prepare")
def prepare_command():
    """Run the start-up hooks once (chain, registry, unfinished batches) and seed the
    demo logins on an empty database: what `serve-prod` runs before its workers start."""
    app = current_app._get_current_object()
    run_startup(app)
    for email, password in seed_demo_users(app):
        click.echo(f"login    {email} / {password}")
    run_shutdown(app)


def on_production_service(app: Flask, service) -> None:
    """A service `serve-prod` starts before its workers (see kernel.production.Service)."""
    app.extensions.setdefault("attest.production_services", []).append(service)


@click.command("serve-prod")
@click.option("--port", default=8000, show_default=True)
@click.option("--web-workers", default=2, show_default=True, help="gunicorn worker processes.")
@click.option("--threads", default=4, show_default=True, help="Threads per gunicorn worker.")
@click.option("--job-workers", default=2, show_default=True, help="`jobs worker` processes.")
def serve_prod_command(port: int, web_workers: int, threads: int, job_workers: int):
    """The production shape on this machine: gunicorn, job worker processes, Redis
    (unless ATTEST_QUEUE_URL is set) and the embedded chain (unless ATTEST_RPC_URL is)."""
    from kernel.production import serve

    app = current_app._get_current_object()
    serve(port, web_workers, threads, job_workers, app.extensions.get("attest.production_services", []))


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True)
def serve_command(host: str, port: int):
    """Start the chain and the embedded job worker, and serve the web app."""
    app = current_app._get_current_object()
    settings = app.extensions["attest.settings"]
    if not settings.serve_url:
        from dataclasses import replace

        app.extensions["attest.settings"] = replace(settings, serve_url=f"http://{host}:{port}")
    run_startup(app)
    for email, password in seed_demo_users(app):
        click.echo(f"login    {email} / {password}")
    from kernel.heap import freeze_startup_heap
    from kernel.jobs.worker import EmbeddedWorker

    freeze_startup_heap()  # the app and the chain client are loaded (kernel.heap)
    worker = EmbeddedWorker(app)
    worker.start()
    click.echo(f"jobs     {worker.describe()}")
    click.echo(f"serving  http://{host}:{port}/   (Ctrl-C to stop)")
    # A plain SIGTERM (a service manager stopping us) would skip `finally` and
    # leave the node running; as SystemExit it stops the node like Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        run_simple(host, port, app, threaded=True, use_reloader=False, use_debugger=False)
    finally:
        worker.stop()
        run_shutdown(app)
