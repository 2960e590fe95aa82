"""Attest: the application factory.

`flask --app app run` or `flask --app app serve` starts the web service; the
CLI groups (`chain`, `credentials`, `submissions`, `users`) are the same
domain functions, scripted. Nothing happens at import time.
"""

from __future__ import annotations

import importlib
import logging

from flask import Flask, render_template
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import current_user
from flask_wtf.csrf import CSRFProtect

from config import Settings
from credentials.keys import load_or_create_secret
from db import Database

csrf = CSRFProtect()
limiter = Limiter(key_func=get_remote_address, default_limits=[], storage_uri="memory://")

# Optional parts register themselves when their module exists, so the app can
# grow one package at a time: (module, attribute).
BLUEPRINTS = [
    ("credentials.web", "registrar_bp"),
    ("credentials.web_verify", "verify_bp"),
    ("credentials.api", "api_bp"),
    ("credentials.web_trust", "identity_bp"),
    ("plagiarism.web", "bp"),
]
CLI_GROUPS = [
    ("credentials.cli", "chain_cli"),
    ("credentials.cli", "credentials_cli"),
    ("credentials.cli_trust", "trust_cli"),
    ("credentials.cli_trust", "institution_cli"),
    ("credentials.cli_accreditation", "accreditation_cli"),
    ("plagiarism.cli", "submissions_cli"),
    ("plagiarism.cli_store", "submissions_cli"),
    ("users_cli", "users_cli"),
    ("serve", "serve_command"),
]


def _optional(module: str, attr: str):
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            return None
        raise
    return getattr(mod, attr, None)


def create_app(test_config: dict | None = None) -> Flask:
    test_config = dict(test_config or {})
    settings = Settings.from_env(**{k: test_config.pop(k) for k in
                                    ("data_dir", "rpc_url", "database_url", "public_url", "trusted_issuers",
                                     "institution_name", "accreditation_registry", "accreditation_rpc_url") if k in test_config})
    app = Flask(__name__)
    app.config.from_mapping(
        SECRET_KEY=None,
        MAX_CONTENT_LENGTH=64 * 1024 * 1024,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        WTF_CSRF_TIME_LIMIT=None,
        PUBLIC_URL=None,
    )
    app.config.from_prefixed_env("ATTEST")
    app.config.update(test_config)
    if not app.config["SECRET_KEY"]:
        # The session key lives with the other secrets, 0600, never in the repo.
        app.config["SECRET_KEY"] = load_or_create_secret(settings.keys_dir / "session.secret")

    app.extensions["attest.settings"] = settings
    database = Database(settings.sqlalchemy_url)
    database.migrate()
    app.extensions["attest.db"] = database

    csrf.init_app(app)
    limiter.init_app(app)

    import web_auth

    web_auth.login_manager.init_app(app)
    app.register_blueprint(web_auth.bp)
    app.teardown_appcontext(web_auth.close_db_session)

    for module, attr in BLUEPRINTS:
        blueprint = _optional(module, attr)
        if blueprint is not None:
            app.register_blueprint(blueprint)
    for module, attr in CLI_GROUPS:
        command = _optional(module, attr)
        if command is not None:
            app.cli.add_command(command)

    @app.route("/")
    def home():
        return render_template("home.html")

    @app.context_processor
    def _nav():
        return {"current_user": current_user, "has_endpoint": lambda e: e in app.view_functions}

    logging.getLogger("web3").setLevel(logging.WARNING)
    return app
