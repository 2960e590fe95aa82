"""Log in and out (Flask-Login), and the role guard for registrar and
instructor pages. Sessions are signed cookies: a web worker keeps no state."""

from __future__ import annotations

from functools import wraps
from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, request, url_for
from flask_login import LoginManager, current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Email

import audit
from app import limiter
from users import User, authenticate

bp = Blueprint("auth", __name__)
login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = "Please log in to see that page."
login_manager.login_message_category = "info"


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
def _load_user(user_id: str):
    try:
        return db_session().get(User, int(user_id))
    except ValueError:
        return None


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
@limiter.limit(lambda: current_app.config.get("LOGIN_RATE_LIMIT", "10 per minute"), key_func=_login_attempt_key,
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
            default = "registrar.index" if user.can("registrar") else "submissions.index"
            try:
                fallback = url_for(default)
            except Exception:  # noqa: BLE001 - that blueprint may not be installed
                fallback = url_for("home")
            return redirect(_safe_next(request.args.get("next")) or fallback)
    return render_template("login.html", form=form)


@bp.errorhandler(429)
def too_many_attempts(_exc):
    return render_template("error.html", title="Too many attempts",
                           message="Too many attempts in a short time. Wait a minute, then try again."), 429


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    logout_user()
    flash("You are logged out.", "info")
    return redirect(url_for("home"))
