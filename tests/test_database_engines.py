"""The database on either engine: what is particular to SQLite's file (marked
sqlite_only, skipped on PostgreSQL), and the schema migrations on whichever
engine the session runs (`make test`: SQLite, `make test-postgres`: PostgreSQL)."""

from __future__ import annotations

import stat

import pytest
from sqlalchemy import inspect, text

from app import open_database
from kernel.database import _MIGRATIONS


@pytest.mark.sqlite_only("about the SQLite file under the data dir: its mode and its journal")
def test_the_sqlite_file_is_private_and_in_wal_mode(tmp_path):
    database = open_database(f"sqlite:///{tmp_path / 'data' / 'attest.db'}")
    assert stat.S_IMODE((tmp_path / "data" / "attest.db").stat().st_mode) == 0o600
    with database.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    database.engine.dispose()


def test_every_migration_runs_on_an_empty_database_of_this_engine(db_urls, db_engine):
    database = open_database(db_urls.fresh(empty=True))  # no tables at all (SQLite: a new file)
    with database.engine.connect() as conn:
        applied = {row[0] for row in conn.execute(text("SELECT name FROM schema_migrations"))}
    assert applied == set(_MIGRATIONS)
    assert database.engine.dialect.name == db_engine
    assert database.migrate() == [], "a second run applies nothing"
    columns = {c["name"] for c in inspect(database.engine).get_columns("credentials")}
    assert {"document", "fingerprint", "status"} <= columns
    indexes = {i["name"] for i in inspect(database.engine).get_indexes("credentials")}
    assert "ix_credentials_status" not in indexes and "ix_credentials_batch_id" in indexes
    database.engine.dispose()


def test_the_bulk_friendly_migration_upgrades_an_older_database(db_urls, db_engine):
    """A database from before 1007 (its indexes, default storage) is upgraded in place."""
    database = open_database(db_urls.fresh())
    with database.engine.begin() as conn:
        conn.execute(text("CREATE INDEX ix_credentials_status ON credentials (status)"))
        conn.execute(text("DELETE FROM schema_migrations WHERE name = '1007_credentials_bulk_friendly'"))
    assert database.migrate() == ["1007_credentials_bulk_friendly"]
    assert "ix_credentials_status" not in {i["name"] for i in inspect(database.engine).get_indexes("credentials")}
    if db_engine == "postgresql":
        with database.engine.connect() as conn:
            options = conn.execute(text("SELECT reloptions FROM pg_class WHERE relname = 'credentials'")).scalar()
            storage = conn.execute(text("SELECT attstorage FROM pg_attribute WHERE attrelid = 'credentials'::regclass "
                                        "AND attname = 'document'")).scalar()
        assert "fillfactor=45" in options and storage == "m"
    database.engine.dispose()
