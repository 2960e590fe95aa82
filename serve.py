"""`flask --app app serve`: what `make run` starts.

Starts (or finds) the chain, deploys the registry if needed, seeds a demo
registrar and instructor on an empty database and prints their login, then
serves on 127.0.0.1:5000 until Ctrl-C, and stops the node it started.
"""

from __future__ import annotations

import signal
import sys

import click
from flask import current_app
from sqlalchemy import select
from werkzeug.serving import run_simple

import audit
from credentials.chain import ChainError
from credentials.issuance import IssuanceError, resume_pending
from credentials.keys import load_or_create_secret
from services import get_registry
from users import User, create_user

DEMO_USERS = (("registrar@example.edu", "registrar", "Demo Registrar"),
              ("instructor@example.edu", "instructor", "Demo Instructor"))


def seed_demo_users(app) -> list[tuple[str, str]]:
    """On an empty user table, create the demo accounts; return their logins.
    The password is random, kept 0600 in ATTEST_DATA_DIR/keys/demo-password."""
    settings = app.extensions["attest.settings"]
    password_file = settings.keys_dir / "demo-password"
    with app.extensions["attest.db"].session() as session:
        if session.scalar(select(User).limit(1)) is None:
            password_file.unlink(missing_ok=True)
            password = load_or_create_secret(password_file, 6)
            for email, role, name in DEMO_USERS:
                create_user(session, email, password, role, name)
                audit.record(session, "system", "user_created", email, role=role, seeded=True)
            session.commit()
        if not password_file.exists():
            return []
        password = password_file.read_text().strip()
        present = {u.email for u in session.scalars(select(User))}
    return [(email, password) for email, _role, _name in DEMO_USERS if email in present]


def resume_unfinished_batches(app, registry) -> None:
    """Finish batches a crash or a dead chain left pending (exactly once: the
    chain is asked for each root before anything is re-sent)."""
    with app.extensions["attest.db"].session() as session:
        try:
            results = resume_pending(session, registry)
        except (ChainError, IssuanceError) as exc:
            click.echo(f"warning: unfinished batches stay pending: {exc}", err=True)
            return
    for result in results:
        click.echo(f"resumed  batch {result.batch_id}: {result.count} credentials anchored in {result.tx_hash}")


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True)
def serve_command(host: str, port: int):
    """Start the chain and serve the web app (development server, threaded)."""
    app = current_app._get_current_object()
    try:
        registry = get_registry(app)
    except ChainError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    status = registry.status()
    click.echo(f"chain    {status['rpc_url']} (chain id {status['chain_id']}, block {status['block']})")
    click.echo(f"registry {status['registry']}")
    from credentials.identity import load_institution

    with app.extensions["attest.db"].session() as session:
        inst = load_institution(session, app.extensions["attest.settings"].profile_defaults)
    click.echo(f"issuer   {inst.name} as {inst.did} (set it on /registrar/institution)")
    from services import get_trust_policy

    for source in get_trust_policy(app).sources:
        if getattr(source, "error", None):
            click.echo(f"warning: {source.error}", err=True)
    resume_unfinished_batches(app, registry)
    for email, password in seed_demo_users(app):
        click.echo(f"login    {email} / {password}")
    click.echo(f"serving  http://{host}:{port}/   (Ctrl-C to stop)")
    # A plain SIGTERM (a service manager stopping us) would skip `finally` and
    # leave the node running; as SystemExit it stops the node like Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        run_simple(host, port, app, threaded=True, use_reloader=False, use_debugger=False)
    finally:
        registry.close()


