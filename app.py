"""Attest: the application factory, and the one place the parts are wired.

`flask --app app serve` (what `make run` runs) or `flask --app app run` starts
the web service; the CLI groups are the same domain functions, scripted.
Nothing happens at import time.

    kernel/        settings, database, accounts, audit, jobs, web plumbing
    credentials/   issuing, verifying, identity and trust (domain, then faces)
    plagiarism/    submissions, near-duplicates, anomalies, reports
"""

from __future__ import annotations

import logging
import os

from flask import Flask, render_template
from flask_login import current_user

from kernel.database import Database
from kernel.jobs.queue import JobQueue
from kernel.secrets import load_or_create_secret
from kernel.settings import Settings
from kernel.web import security
from kernel.web.extensions import csrf, limiter, login_manager

# Every module that declares tables (each registers its migrations on import).
MODEL_MODULES = (
    "kernel.audit", "kernel.accounts", "kernel.jobs.model",
    "credentials.storage", "credentials.identity", "credentials.trust_store",
    "credentials.sharing", "credentials.oid4vci",  # the holder's side (issue 12, item 6)
    "plagiarism.store",
)
# Modules that register job kinds (kernel.jobs.job_kind) on import.
JOB_MODULES = ("credentials.jobs", "plagiarism.submissions", "plagiarism.reports")
# Where each role lands after logging in.
ROLE_HOMES = {"registrar": "registrar.index", "instructor": "submissions.index"}
# test_config keys that are settings rather than Flask config.
SETTING_KEYS = ("data_dir", "rpc_url", "database_url", "queue_url", "public_url", "trusted_issuers",
                "institution_name", "accreditation_registry", "accreditation_rpc_url", "hash_recipient_emails",
                "workers", "rate_limit_storage", "ed25519_key")


def open_database(url: str) -> Database:
    """A migrated database with every table of every package."""
    database = Database(url, MODEL_MODULES)
    database.migrate()
    return database


def create_app(test_config: dict | None = None) -> Flask:
    import importlib

    test_config = dict(test_config or {})
    # Everything this process writes under the data dir (the index, job files,
    # deployments, exports) holds personal data or keys: owner only, as
    # PostgreSQL does for its data directory.
    os.umask(0o077)
    settings = Settings.from_env(**{k: test_config.pop(k) for k in SETTING_KEYS if k in test_config})
    app = Flask(__name__)
    app.config.from_mapping(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=64 * 1024 * 1024,
        WTF_CSRF_TIME_LIMIT=None,
        VERIFY_RPC_URL=settings.verify_rpc_url,
        VERIFY_RATE_LIMIT=settings.verify_rate_limit,
        LOGIN_RATE_LIMIT=settings.login_rate_limit,
        DID_CACHE_TTL=settings.did_cache_ttl,
        RATELIMIT_STORAGE_URI=settings.limiter_storage_uri,
        RATELIMIT_HEADERS_ENABLED=True,
        ROLE_HOMES=ROLE_HOMES,
    )
    security.init_app(app, https=(settings.public_url or "").startswith("https://"))
    app.config.update(test_config)
    if not app.config["SECRET_KEY"]:
        # The session key lives with the other secrets, 0600, never in the repo.
        app.config["SECRET_KEY"] = load_or_create_secret(settings.keys_dir / "session.secret")

    app.extensions["attest.settings"] = settings
    app.extensions["attest.db"] = open_database(settings.sqlalchemy_url)
    for module in JOB_MODULES:
        importlib.import_module(module)
    app.extensions["attest.queue"] = JobQueue(app, settings)

    csrf.init_app(app)
    limiter.init_app(app)
    login_manager.init_app(app)
    _register_faces(app)

    @app.route("/")
    def home():
        return render_template("home.html")

    @app.context_processor
    def _nav():
        return {"current_user": current_user}

    logging.getLogger("web3").setLevel(logging.WARNING)
    logging.getLogger("huey").setLevel(logging.WARNING)
    return app


def _register_faces(app: Flask) -> None:
    """Blueprints, CLI groups and start-up hooks of every package."""
    from credentials import runtime
    from credentials.cli import accreditation_cli, chain_cli, credentials_cli, institution_cli, trust_cli
    from credentials.web.api import VerifyFastPath, api_bp
    from credentials.web.holder import holder_bp  # the holder's side: share page, holder's link, wallet offer
    from credentials.web.identity import identity_bp
    from credentials.web.oid4vci import oid4vci_bp  # OID4VCI metadata, token, nonce and credential endpoints
    from credentials.web.registrar import registrar_bp
    from credentials.web.verify import verify_bp
    from kernel.cli import jobs_cli, users_cli
    from kernel.serve import (
        on_production_service,
        on_shutdown,
        on_startup,
        prepare_command,
        serve_command,
        serve_prod_command,
    )
    from kernel.web import auth, jobs_web
    from plagiarism.cli import submissions_cli
    from plagiarism.web import bp as submissions_bp

    app.teardown_appcontext(auth.close_db_session)
    for blueprint in (auth.bp, jobs_web.bp, registrar_bp, verify_bp, api_bp, identity_bp, submissions_bp,
                      holder_bp, oid4vci_bp):
        app.register_blueprint(blueprint)
    for command in (chain_cli, credentials_cli, trust_cli, institution_cli, accreditation_cli, submissions_cli,
                    users_cli, jobs_cli, serve_command, serve_prod_command, prepare_command):
        app.cli.add_command(command)
    app.wsgi_app = VerifyFastPath(app, app.wsgi_app)  # the API's hot route, before Flask dispatches
    on_startup(app, runtime.startup)
    on_shutdown(app, runtime.shutdown)
    on_production_service(app, runtime.embedded_chain_service)
