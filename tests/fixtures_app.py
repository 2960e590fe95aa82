"""The Flask app, its test client and CLI runner, each on a fresh data dir."""

from __future__ import annotations

import pytest

from app import create_app
from db import Database


@pytest.fixture
def app(tmp_path, anvil_url):
    app = create_app({"TESTING": True, "data_dir": tmp_path / "appdata", "rpc_url": anvil_url,
                      "SECRET_KEY": "test-secret"})
    yield app
    registry = app.extensions.pop("attest.registry", None)
    if registry is not None:
        registry.close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def database(tmp_path) -> Database:
    """A fresh, migrated SQLite database of its own, without the app."""
    database = Database(f"sqlite:///{tmp_path / 'attest.db'}")
    database.migrate()
    return database


@pytest.fixture
def session(database):
    with database.session() as session:
        yield session
