"""Log in and out (Flask-Login), and the role guard for registrar and
instructor pages. Sessions are signed cookies naming the user and the user's
session version (see `kernel.accounts`): a web worker keeps no state, and a
logout ends the session server-side, for every cookie of that user."""

from __future__ import annotations

from functools import wraps
from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Email

from kernel import audit
from kernel.accounts import authenticate, load_session_user
from kernel.web.extensions import limiter, login_manager

bp = Blueprint("auth", __name__)


def db_session():
    """The request's database session, opened once and closed at teardown."""
    if "db_session" not in g:
        g.db_session = current_app.extensions["attest.db"].session()
    return g.db_session


def close_db_session(_exc=None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()


@login_manager.user_loader
def _load_user(session_id: str):
    return load_session_user(db_session(), session_id)


def role_required(role: str):
    """Log in first; then the user must hold `role` (or be an admin)."""

    def decorate(view):
        @wraps(view)
        @login_required
        def wrapped(*args, **kwargs):
            if not current_user.can(role):
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorate


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Email(check_deliverability=False)])
    password = PasswordField("Password", validators=[DataRequired()])


def _safe_next(target: str | None) -> str | None:
    if not target:
        return None
    parts = urlsplit(target)
    # Only same-site paths: never bounce a user to another host after login.
    if parts.scheme or parts.netloc or not target.startswith("/"):
        return None
    return target


def _login_attempt_key() -> str:
    """Failed logins are counted per client address and account, so guessing
    one account's password is slowed without locking out a shared office."""
    email = (request.form.get("email") or "").strip().lower()
    return f"{request.remote_addr}|{email}"


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], key_func=_login_attempt_key,
               methods=["POST"], deduct_when=lambda response: response.status_code != 302)
def login():
    form = LoginForm()
    if form.validate_on_submit():
        session = db_session()
        user = authenticate(session, form.email.data, form.password.data)
        if user is None:
            audit.record(session, form.email.data or "?", "login_failed")
            session.commit()
            flash("That email and password do not match an account.", "error")
        else:
            login_user(user)
            audit.record(session, user.email, "login")
            session.commit()
            # Each domain names its landing page per role (app.py, ROLE_HOMES).
            homes = current_app.config.get("ROLE_HOMES", {})
            fallback = url_for(next((page for role, page in homes.items() if user.can(role)), "home"))
            return redirect(_safe_next(request.args.get("next")) or fallback)
    return render_template("login.html", form=form)


@bp.errorhandler(429)
def too_many_attempts(_exc):
    return render_template("error.html", title="Too many attempts",
                           message="Too many attempts in a short time. Wait a minute, then try again."), 429


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    # Server-side: the session version moves on, so this cookie (and any copy
    # of it) no longer opens a page.
    session = db_session()
    user = session.merge(current_user._get_current_object())
    user.end_sessions()
    audit.record(session, user.email, "logout")
    session.commit()
    logout_user()
    flash("You are logged out.", "info")
    return redirect(url_for("home"))
