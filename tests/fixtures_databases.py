"""Which database engine the suite runs on, and a fresh database for every test.

    ATTEST_TEST_DATABASE=postgresql .venv/bin/pytest     # `make test-postgres`, and `.ci/run`
    .venv/bin/pytest                                    # SQLite, as `make test`

On PostgreSQL the session starts one cluster on loopback
(`tests.servers.PostgresServer`, Debian's postgresql 15), migrates a template
database once, and gives every test that asks for a database its own copy
(`CREATE DATABASE … TEMPLATE`, about 70 ms against about 2 s for migrating an
empty one), dropped when the test ends. On SQLite every installation keeps its
file under its own data dir, as a single machine does in production.

The fixture `db_urls` is the one way a test gets a database URL:

- `db_urls.for_dir(data_dir)`: the database of the installation whose data dir
  that is. The same dir gives the same database within a test, so an app made
  in the test and a `flask` process started on that data dir share it; two
  installations (an issuer and a stranger) get two databases. On SQLite it is
  None: the installation's own `attest.db` under the data dir.
- `db_urls.env(data_dir)`: the same, as the environment of a subprocess
  (`{"ATTEST_DATABASE_URL": …}`, or nothing on SQLite).
- `db_urls.fresh(empty=False)`: a database tied to no data dir; `empty=True`
  gives one with no tables at all (the migration tests).

On PostgreSQL every test also gets a database of its own as the environment's
ATTEST_DATABASE_URL (the autouse `test_database`), so every app, `Settings`
and `flask` subprocess of the test that names no other shares it, as the
installations of one machine share its data dir. A test with a second
installation (a stranger verifying, an impostor) gives it its own with
`db_urls.for_dir(...)` / `db_urls.env(...)`.

When the engine is PostgreSQL, a test that opens a SQLite database through
SQLAlchemy fails (the `no_sqlite_on_postgresql` guard), unless it is marked
`sqlite_only("why")`: those are skipped on PostgreSQL, and say why.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import threading
from pathlib import Path

import pytest

ENGINE_VARIABLE = "ATTEST_TEST_DATABASE"
ENGINES = ("sqlite", "postgresql")
TEMPLATE = "attest_template"


def session_engine() -> str:
    """The engine this session runs on (ATTEST_TEST_DATABASE, default sqlite)."""
    engine = (os.environ.get(ENGINE_VARIABLE) or "sqlite").strip().lower()
    if engine in ("postgres", "pg"):
        engine = "postgresql"
    if engine not in ENGINES:
        raise pytest.UsageError(f"{ENGINE_VARIABLE} must be one of {', '.join(ENGINES)}, not {engine!r}")
    return engine


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "sqlite_only(reason): about SQLite itself (its files); skipped on "
                                       "PostgreSQL, with the reason")


def pytest_collection_modifyitems(config, items) -> None:
    if session_engine() != "postgresql":
        return
    for item in items:
        marker = item.get_closest_marker("sqlite_only")
        if marker is not None:
            reason = marker.args[0] if marker.args else marker.kwargs.get("reason")
            if not reason:
                raise pytest.UsageError(f"{item.nodeid}: sqlite_only needs a reason that says why")
            item.add_marker(pytest.mark.skip(reason=f"SQLite only: {reason}"))


def pytest_report_header(config) -> str:
    return f"database engine: {session_engine()} ({ENGINE_VARIABLE})"


class PostgresDatabases:
    """The session's cluster, its migrated template, and the names handed out."""

    def __init__(self, server):
        from app import open_database

        self.server = server
        self._counter = itertools.count(1)
        self._lock = threading.Lock()
        template = open_database(server.create_database(TEMPLATE))
        # CREATE DATABASE … TEMPLATE needs the template to have no connections.
        template.engine.dispose()

    def create(self, empty: bool = False) -> tuple[str, str]:
        """A new database (a copy of the migrated template, or an empty one): (name, URL)."""
        import psycopg

        with self._lock:
            name = f"t{os.getpid()}_{next(self._counter)}"
        source = "template0" if empty else TEMPLATE
        with psycopg.connect(self.server.dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE {source}')
        return name, self.server.url.rsplit("/", 1)[0] + f"/{name}"

    def drop(self, name: str) -> None:
        self.server.drop_database(name)


@pytest.fixture(scope="session")
def db_engine() -> str:
    """"sqlite" or "postgresql": what this session's databases are."""
    return session_engine()


@pytest.fixture(scope="session")
def postgres_databases(db_engine):
    """One PostgreSQL cluster for the whole session (PostgreSQL runs only)."""
    if db_engine != "postgresql":
        yield None
        return
    import shutil
    import tempfile

    from tests.servers import PostgresServer

    # Not under pytest's base temp: every pytest session that starts (another
    # run on the same machine) chmods /tmp/pytest-of-<user> back to 0700, and
    # a cluster run as the postgres user (when the tests run as root) below it
    # would lose its own files mid-session.
    folder = Path(tempfile.mkdtemp(prefix="attest-test-postgres-"))
    server = PostgresServer(folder)
    try:
        yield PostgresDatabases(server)
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


class DatabaseUrls:
    """Database URLs for one test (see the module docstring)."""

    def __init__(self, engine: str, cluster: PostgresDatabases | None, tmp_path: Path):
        self.engine = engine
        self._cluster = cluster
        self._tmp_path = tmp_path
        self._by_dir: dict[str, str] = {}
        self._made: list[str] = []
        self._engines: list = []

    @property
    def postgresql(self) -> bool:
        return self.engine == "postgresql"

    def for_dir(self, data_dir: str | Path) -> str | None:
        """The database of the installation at `data_dir` (None on SQLite: its own file)."""
        if not self.postgresql:
            return None
        key = str(Path(data_dir).resolve())
        if key not in self._by_dir:
            self._by_dir[key] = self.fresh()
        return self._by_dir[key]

    def env(self, data_dir: str | Path) -> dict[str, str]:
        """ATTEST_DATABASE_URL for a subprocess working on `data_dir`, when there is one to give."""
        url = self.for_dir(data_dir)
        return {"ATTEST_DATABASE_URL": url} if url else {}

    def fresh(self, empty: bool = False) -> str:
        """A database of its own: on PostgreSQL a new one (migrated unless `empty`), on
        SQLite a new file under the test's temporary directory."""
        if not self.postgresql:
            path = self._tmp_path / f"fresh-{len(self._made)}.db"
            self._made.append(str(path))
            return f"sqlite:///{path}"
        name, url = self._cluster.create(empty=empty)
        self._made.append(name)
        return url

    def close(self) -> None:
        if self.postgresql:
            for name in self._made:
                # WITH (FORCE): an app of the test may still hold pooled connections.
                self._cluster.drop(name)


@pytest.fixture
def db_urls(db_engine, postgres_databases, tmp_path):
    """Fresh database URLs for this test (see the module docstring)."""
    urls = DatabaseUrls(db_engine, postgres_databases, tmp_path)
    yield urls
    urls.close()


@pytest.fixture(scope="module")
def module_database_url(postgres_databases):
    """A database for a module-scoped app (None on SQLite: its data dir's file)."""
    if postgres_databases is None:
        yield None
        return
    name, url = postgres_databases.create()
    yield url
    postgres_databases.drop(name)


@pytest.fixture(autouse=True)
def test_database(db_engine, db_urls, monkeypatch):
    """On PostgreSQL, this test's own database as ATTEST_DATABASE_URL (see the
    module docstring); None on SQLite, where each data dir keeps its file."""
    if db_engine != "postgresql":
        yield None
        return
    url = db_urls.fresh()
    monkeypatch.setenv("ATTEST_DATABASE_URL", url)
    yield url


@pytest.fixture(autouse=True)
def no_sqlite_on_postgresql(request, db_engine):
    """On PostgreSQL, nothing under test may open a SQLite database through
    SQLAlchemy: that would be a test (or a code path) still tied to one machine's
    file. Raw sqlite3 users that are not the database (the embedded job queue's
    file, the embedding cache) are not affected."""
    if db_engine != "postgresql" or request.node.get_closest_marker("sqlite_only"):
        yield
        return
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    opened: list[str] = []

    def on_connect(dbapi_connection, _record) -> None:
        if isinstance(dbapi_connection, sqlite3.Connection):
            opened.append(repr(dbapi_connection))

    event.listen(Engine, "connect", on_connect)
    try:
        yield
    finally:
        event.remove(Engine, "connect", on_connect)
    if opened:
        pytest.fail(f"the PostgreSQL run opened {len(opened)} SQLite database connection(s) through SQLAlchemy: "
                    "give every app and database of the test a URL from `db_urls`", pytrace=False)
