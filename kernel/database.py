"""The database: SQLAlchemy, so ATTEST_DATABASE_URL can name PostgreSQL; SQLite
under ATTEST_DATA_DIR by default.

Schema changes are migrations, applied in order and recorded in
`schema_migrations`, never drop-and-create. A package registers its steps with
`@migration("0003_name")`; steps must be safe to re-run (the helpers below skip
what already exists), so a crash half-way through a step is recoverable.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Column, Connection, DateTime, Engine, String, create_engine, event, inspect
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

log = logging.getLogger(__name__)

# SQLite's own defaults, restored after a bulk transaction: the automatic WAL
# checkpoint's threshold (pages) and the page cache (negative: KiB); and the
# cache a bulk transaction gets.
_AUTOCHECKPOINT = 1000
_DEFAULT_CACHE = -2000
_BULK_CACHE = -65536
# How long a connection waits for SQLite's write lock, and how many times the
# background checkpoint tries to restart the WAL (see _checkpoint).
_BUSY_TIMEOUT_MS = 30000
_RESTART_TRIES = 5


class Base(DeclarativeBase):
    pass


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


_MIGRATIONS: dict[str, Callable[[Connection], None]] = {}


def migration(name: str):
    """Register a schema step; names sort into the order they run in."""

    def register(fn: Callable[[Connection], None]):
        if name in _MIGRATIONS and _MIGRATIONS[name] is not fn:
            raise ValueError(f"migration {name} is registered twice")
        _MIGRATIONS[name] = fn
        return fn

    return register


def create_tables(conn: Connection, *models) -> None:
    """Create the tables of `models` that do not exist yet (as the model is now;
    later columns are added by later steps through `add_column`)."""
    Base.metadata.create_all(conn, tables=[m.__table__ for m in models], checkfirst=True)


def add_column(conn: Connection, table: str, column: Column) -> None:
    if column.name in {c["name"] for c in inspect(conn).get_columns(table)}:
        return
    ddl = column.type.compile(dialect=conn.dialect)
    if column.server_default is not None:
        # Existing rows get the default; only then can the column be NOT NULL.
        ddl += f" DEFAULT {column.server_default.arg}" + ("" if column.nullable else " NOT NULL")
    conn.exec_driver_sql(f'ALTER TABLE {table} ADD COLUMN "{column.name}" {ddl}')


class SchemaMigration(Base):
    __tablename__ = "schema_migrations"
    name = Column(String(200), primary_key=True)
    applied_at = Column(DateTime, nullable=False, default=utcnow)


def _private_file(path: Path) -> None:
    """The SQLite file holds personal data: 0600 from its first byte (SQLite
    gives its -wal and -shm files the database file's permissions)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)


def make_engine(url: str) -> Engine:
    engine = create_engine(url, future=True)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            # 8 kB pages, for a new file (an existing one keeps its size): a
            # credential row is 2.4-3.2 kB, so 4 kB pages held one row each
            # with the rest unused, and a batch wrote 40 % more pages than it
            # filled (10,000 rows commit in 0.09 s instead of 0.15 s).
            cur.execute("PRAGMA page_size=8192")
            # WAL lets the web server read while a batch is being written.
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

    return engine


@contextmanager
def bulk_transaction(session: Session) -> Iterator[None]:
    """Write a large transaction (a batch of credentials) in the block, and
    commit it at its end, without making the committing thread copy it from
    SQLite's WAL into the database file.

    On SQLite, for the block only, the connection's page cache is 64 MB (the
    default 2 MB spilled a 24 MB batch to the WAL while its indexes were still
    being written: the insert took a third longer), and the automatic
    checkpoint is off. A commit that leaves the WAL over 1,000 pages otherwise
    runs SQLite's checkpoint inside the commit: for 10,000 credentials that
    was 0.09 s of a 0.1 s commit, on the path every batch waits on. Instead a
    background thread runs the same (passive) checkpoint on its own
    connection while the caller goes on to anchor the batch. What is
    committed is the same either way: a checkpoint only moves committed pages,
    and a process killed before it finishes leaves them in the WAL, where the
    next connection reads them (a test kills one). On PostgreSQL the block is
    a plain transaction, committed at its end. If the block raises, nothing is
    committed (the caller rolls back) and the connection's settings are
    restored all the same."""
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        yield
        session.commit()
        return
    engine = connection.engine
    raw = connection.connection.driver_connection
    raw.execute(f"PRAGMA cache_size={_BULK_CACHE}")
    raw.execute("PRAGMA wal_autocheckpoint=0")
    try:
        yield
        session.commit()
    finally:
        # After a commit the connection is back in the pool; a pragma on it is
        # atomic. A failed commit may have closed it: its own error is the one to see.
        try:
            raw.execute(f"PRAGMA cache_size={_DEFAULT_CACHE}")
            raw.execute(f"PRAGMA wal_autocheckpoint={_AUTOCHECKPOINT}")
        except Exception as exc:  # noqa: BLE001
            log.debug("could not restore the connection's settings: %s", exc)
    threading.Thread(target=_checkpoint, args=(engine,), name="attest-wal-checkpoint", daemon=True).start()


def _checkpoint(engine: Engine) -> None:
    path = engine.url.database
    if not path or not Path(path).exists():  # disposed and deleted meanwhile: connecting would make it again
        return
    try:
        raw = engine.raw_connection()
        try:
            driver = raw.driver_connection
            busy, frames, copied = driver.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if not busy and frames == copied:
                # Everything is in the database file: make the next writer
                # start the WAL from its beginning. In the issuing bench's
                # order (a batch in one session, the next row in another)
                # SQLite did not restart it by itself: the next one-row
                # commit went to the end of a WAL still over 1,000 pages and
                # ran a checkpoint of its own, which synced the database
                # file, 95-150 ms for one row (seen with strace). RESTART has
                # nothing left to copy, but it takes the write lock while it
                # looks for readers of the old WAL, and it would hold the lock
                # for as long as it waited for them. So it never waits: with
                # no busy timeout it gives up at once when a reader or a
                # writer is there, and it is tried a few times, 10 ms apart,
                # with no lock held in between. If every try finds someone,
                # the next commit checkpoints, as before.
                driver.execute("PRAGMA busy_timeout=0")
                try:
                    for attempt in range(_RESTART_TRIES):
                        if attempt:
                            time.sleep(0.01)
                        if driver.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()[0] == 0:
                            break
                finally:
                    driver.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        finally:
            raw.close()
    except Exception as exc:  # noqa: BLE001 - the next commit's own checkpoint will do it
        log.debug("background WAL checkpoint skipped: %s", exc)


def migrate(engine: Engine) -> list[str]:
    """Apply every registered step not yet applied; returns the names applied.
    The modules that declare tables must be imported first (`Database(url, models)`)."""
    applied: list[str] = []
    with engine.begin() as conn:
        SchemaMigration.__table__.create(conn, checkfirst=True)
        done = {row[0] for row in conn.execute(SchemaMigration.__table__.select().with_only_columns(
            SchemaMigration.__table__.c.name))}
    for name in sorted(_MIGRATIONS):
        if name in done:
            continue
        with engine.begin() as conn:
            _MIGRATIONS[name](conn)
            conn.execute(SchemaMigration.__table__.insert().values(name=name, applied_at=utcnow()))
        applied.append(name)
    return applied


class Database:
    """An engine and its session factory, made once per process. `models` names
    the modules that declare tables (each registers its migrations on import)."""

    def __init__(self, url: str, models: Sequence[str] = ()):
        for module in models:
            importlib.import_module(module)
        self.url = url
        if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
            _private_file(Path(url.removeprefix("sqlite:///")))
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False, future=True)

    def migrate(self) -> list[str]:
        return migrate(self.engine)

    def session(self) -> Session:
        return self.sessions()
