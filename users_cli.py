"""`flask --app app users ...`: create and list the people who log in."""

from __future__ import annotations

import sys

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import select

import audit
from users import ROLES, User, UserError, create_user

users_cli = AppGroup("users", help="Registrar and instructor accounts.")


@users_cli.command("create")
@click.option("--email", required=True)
@click.option("--role", type=click.Choice(ROLES), default="registrar", show_default=True)
@click.option("--name", default="")
@click.password_option("--password", help="Prompted (twice, hidden) when not given.")
def create_command(email: str, role: str, name: str, password: str):
    """Create a user who can log in."""
    with current_app.extensions["attest.db"].session() as session:
        try:
            user = create_user(session, email, password, role, name)
        except UserError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        audit.record(session, "cli", "user_created", user.email, role=role)
        session.commit()
        click.echo(f"created {role} {user.email}")


@users_cli.command("list")
def list_command():
    """List the users."""
    with current_app.extensions["attest.db"].session() as session:
        for user in session.scalars(select(User).order_by(User.id)):
            click.echo(f"{user.id}\t{user.role}\t{user.email}\t{'active' if user.active else 'disabled'}")
