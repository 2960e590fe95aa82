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


def test_the_bulk_friendly_migrations_upgrade_an_older_database(db_urls, db_engine):
    """A database from before 1007 (its indexes, default storage) is upgraded
    in place; on PostgreSQL its credentials keep their JSON in the row (no
    TOAST), and after 1009 pages are filled (no row is rewritten any more)."""
    database = open_database(db_urls.fresh())
    with database.engine.begin() as conn:
        conn.execute(text("CREATE INDEX ix_credentials_status ON credentials (status)"))
        conn.execute(text("DELETE FROM schema_migrations WHERE name IN ('1007_credentials_bulk_friendly', "
                          "'1009_credentials_pages_full')"))
    assert database.migrate() == ["1007_credentials_bulk_friendly", "1009_credentials_pages_full"]
    assert "ix_credentials_status" not in {i["name"] for i in inspect(database.engine).get_indexes("credentials")}
    if db_engine == "postgresql":
        with database.engine.connect() as conn:
            options = conn.execute(text("SELECT reloptions FROM pg_class WHERE relname = 'credentials'")).scalar()
            storage = conn.execute(text("SELECT attstorage FROM pg_attribute WHERE attrelid = 'credentials'::regclass "
                                        "AND attname = 'document'")).scalar()
        assert options == ["toast_tuple_target=4080"] and storage == "m"
    database.engine.dispose()


def test_credentials_from_before_1008_read_the_same_after_it(db_urls, db_engine):
    """Before 1008 anchoring rewrote every credential row (the transaction hash
    into its text, `active`). The migration puts such rows in today's form, the
    hash null and the status not revoked, and nothing read from them changes."""
    from datetime import date, datetime

    from credentials import storage

    database = open_database(db_urls.fresh())
    tx = "0x" + "ab" * 32
    legacy = '{"id":"urn:uuid:%s","proof":{"anchor":{"transactionHash":%s}},"name":"say \\"transactionHash\\":null"}'
    rows = [  # (id, batch, stored text, stored status, what is read: status)
        ("1", "anchored", legacy % ("1", f'"{tx}"'), "active", storage.ACTIVE),
        ("2", "anchored", legacy % ("2", f'"{tx}"'), "revoked", storage.REVOKED),
        ("3", "waiting", legacy % ("3", "null"), "pending", storage.CREDENTIAL_PENDING),
    ]
    with database.session() as session:
        now = datetime(2026, 1, 1)
        session.add_all([
            storage.Batch(id="anchored", created_by="t", state=storage.ANCHORED, count=2, tx_hash=tx, created_at=now),
            storage.Batch(id="waiting", created_by="t", state=storage.PENDING, count=1, created_at=now)])
        session.flush()
        storage.insert_credentials(session, [{
            "id": f"urn:uuid:{i}", "batch_id": batch, "recipient_name": "n", "recipient_email": "e",
            "achievement_name": "a", "achievement_type": "Degree", "awarded_on": date(2025, 1, 1),
            "valid_until": None, "grade": None, "fingerprint": f"0x{i}", "document": text_, "status": status,
            "created_at": now, "status_list": None, "status_index": None} for i, batch, text_, status, _ in rows])
        session.execute(text("DELETE FROM schema_migrations WHERE name = '1008_credentials_written_once'"))
        session.commit()
    assert database.migrate() == ["1008_credentials_written_once"]
    with database.session() as session:
        for i, _, text_, _, status in rows:
            record = storage.get_credential(session, f"urn:uuid:{i}")
            assert (record.document, record.status) == (text_, status)
            assert record.signed_document == legacy % (i, "null"), "stored as signed: the hash comes from the batch"
            assert record.stored_status == (storage.REVOKED if status == storage.REVOKED
                                            else storage.CREDENTIAL_PENDING)
        assert storage.count_credentials(session, status=storage.ACTIVE) == 1
    database.engine.dispose()


def _orm_fields(row: dict) -> dict:
    """A row's column values as CredentialRecord's attributes (the document
    and status columns are mapped as signed_document and stored_status)."""
    return {{"document": "signed_document", "status": "stored_status"}.get(k, k): v for k, v in row.items()}


def test_the_bulk_insert_stores_what_the_orm_stores(db_urls):
    """insert_credentials bypasses SQLAlchemy's parameter handling (executemany
    on SQLite, COPY on PostgreSQL): the stored values must be the ORM's own
    (a whole second is where the DBAPI's own datetime adapter would differ)."""
    from datetime import date, datetime

    from credentials import storage

    database = open_database(db_urls.fresh())
    values = {"batch_id": "b", "recipient_name": "Zoë “Q” O'Brien", "recipient_email": "z@example.edu",
              "achievement_name": "BSc", "achievement_type": "BachelorDegree", "awarded_on": date(2025, 6, 30),
              "valid_until": date(2030, 1, 2), "grade": None, "document": '{"a":"\\u0000é"}', "status": "pending",
              "created_at": datetime(2026, 12, 1, 22, 5, 7), "status_list": 3, "status_index": 17}
    with database.session() as session:
        session.add(storage.Batch(id="b", created_by="t", state=storage.PENDING, count=2,
                                  created_at=datetime(2026, 1, 1)))
        session.flush()
        storage.insert_credentials(session, [{**values, "id": "urn:uuid:bulk", "fingerprint": "0x1"}])
        session.add(storage.CredentialRecord(
            id="urn:uuid:orm", fingerprint="0x2", status_index=18,
            **_orm_fields({k: v for k, v in values.items() if k != "status_index"})))
        session.commit()
        raw = {row[0]: row[1:] for row in session.execute(text(
            "SELECT id, batch_id, recipient_name, awarded_on, valid_until, grade, document, status, created_at, "
            "status_list FROM credentials"))}
        assert raw["urn:uuid:bulk"] == raw["urn:uuid:orm"]
        bulk = storage.get_credential(session, "bulk")
        assert (bulk.awarded_on, bulk.valid_until, bulk.created_at) == (
            values["awarded_on"], values["valid_until"], values["created_at"])
    database.engine.dispose()


_BULK_THEN_KILL = r"""
import os, signal, sys
from sqlalchemy import text
from app import open_database
from kernel.database import bulk_transaction
database = open_database(sys.argv[1])
with database.session() as session:
    session.execute(text("CREATE TABLE bulk (n INTEGER PRIMARY KEY, body TEXT)"))
    session.commit()
    with bulk_transaction(session):
        session.execute(text("INSERT INTO bulk VALUES (:n, :body)"),
                        [{"n": n, "body": "x" * 3000} for n in range(5000)])
    print("committed", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # before the background checkpoint can finish
"""


@pytest.mark.sqlite_only("about SQLite's WAL checkpoint")
def test_a_bulk_commit_survives_a_kill_before_its_checkpoint(tmp_path):
    """bulk_transaction leaves the WAL checkpoint to a background thread: a
    process killed right after the commit (kill -9) loses nothing, and the
    pooled connection gets SQLite's defaults back (also when the block fails)."""
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'bulk.db'}"
    done = subprocess.run([sys.executable, "-c", _BULK_THEN_KILL, url], capture_output=True, text=True, timeout=120)
    assert done.returncode == -9 and "committed" in done.stdout, done.stderr
    assert (tmp_path / "bulk.db-wal").stat().st_size > 5000 * 3000, "the transaction went through the WAL"
    database = open_database(url)
    with database.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*), sum(length(body)) FROM bulk").one() == (5000, 5000 * 3000)
    from kernel.database import bulk_transaction
    with database.session() as session:
        with bulk_transaction(session):
            session.execute(text("INSERT INTO bulk VALUES (5000, 'y')"))
            inside = session.connection().exec_driver_sql("PRAGMA cache_size").scalar()
        with pytest.raises(RuntimeError, match="the block fails"), bulk_transaction(session):
            session.execute(text("INSERT INTO bulk VALUES (5001, 'z')"))
            raise RuntimeError("the block fails")
        session.rollback()
    with database.engine.connect() as conn:
        assert inside == -65536
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000
        assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == -2000
        assert conn.exec_driver_sql("SELECT max(n) FROM bulk").scalar() == 5000, "the failed block left nothing"
    database.engine.dispose()


def test_a_credential_s_derived_columns_refuse_a_write():
    """`document` and `status` are read from the batch: writing them would be
    kept in memory and never stored, so it is refused with the column to use."""
    from credentials.storage import CredentialRecord

    record = CredentialRecord(signed_document="{}", stored_status="pending")
    with pytest.raises(AttributeError, match="stored_status"):
        record.status = "revoked"
    with pytest.raises(AttributeError, match="signed_document"):
        CredentialRecord(document="{}")



@pytest.mark.sqlite_only("about SQLite's WAL checkpoint")
def test_the_wal_restart_gives_way_to_a_long_reader(tmp_path):
    """The restart takes SQLite's write lock while it looks for readers of
    the old WAL, and would hold it for as long as it waited for them. Behind
    a reader that keeps its transaction open it gives up at once: with the
    connection's own 30 s busy timeout the checkpoint thread sat 30 s on a
    pooled connection (tried). A writer meanwhile is not kept waiting, the
    reader keeps its snapshot, and the connection gets its timeout back."""
    import sqlite3
    import threading
    import time

    from kernel.database import _checkpoint

    path = tmp_path / "wal.db"
    database = open_database(f"sqlite:///{path}")
    with database.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (n INTEGER PRIMARY KEY, body TEXT)")
        conn.exec_driver_sql("PRAGMA wal_autocheckpoint=0")
        conn.exec_driver_sql("INSERT INTO t (body) SELECT zeroblob(3000) FROM (SELECT 1) JOIN "
                             "(WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 500) "
                             "SELECT i FROM c)")
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    assert reader.execute("SELECT count(*) FROM t").fetchone() == (500,)  # reads the WAL, and stays
    waited = {}

    def write():
        time.sleep(0.02)  # while the restart waits
        writer = sqlite3.connect(path, isolation_level=None, timeout=30)
        start = time.perf_counter()
        writer.execute("INSERT INTO t (body) VALUES ('after')")
        waited["writer"] = time.perf_counter() - start
        writer.close()

    thread = threading.Thread(target=write)
    start = time.perf_counter()
    thread.start()
    _checkpoint(database.engine)
    took = time.perf_counter() - start
    thread.join(60)
    assert took < 1 and waited["writer"] < 1, (took, waited)
    assert reader.execute("SELECT count(*) FROM t").fetchone() == (500,), "the reader kept its snapshot"
    reader.execute("COMMIT")
    reader.close()
    with database.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 501
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    database.engine.dispose()


def _credential_row(i: str, batch: str) -> dict:
    from datetime import date, datetime

    return {"id": f"urn:uuid:{i}", "batch_id": batch, "recipient_name": "n", "recipient_email": "e",
            "achievement_name": "a", "achievement_type": "Degree", "awarded_on": date(2025, 1, 1),
            "valid_until": None, "grade": None, "fingerprint": f"0x{i}", "document": "{}", "status": "pending",
            "created_at": datetime(2026, 1, 1), "status_list": None, "status_index": None}


def _is_key_violation(exc: BaseException) -> bool:
    """A foreign-key refusal, by SQLSTATE on PostgreSQL (23503, what the key
    and migration 1010's triggers raise) and by message on SQLite."""
    cause = getattr(exc, "orig", None) or exc
    return getattr(cause, "sqlstate", None) == "23503" or "FOREIGN KEY constraint failed" in str(cause)


def test_a_credential_must_name_a_batch_that_exists_on_this_engine(db_urls, db_engine):
    """The credentials' rule that their batch exists, on either engine: SQLite
    by its foreign key; PostgreSQL (migration 1010) by a check per statement,
    which spared a batch's COPY a query per row. A bulk insert, an ORM
    insert and moving a credential to a missing batch are refused; a batch
    with credentials cannot be deleted, renamed or (PostgreSQL) truncated;
    moving a credential to a batch that exists, changing anything else, and
    deleting a batch with no credentials go through."""
    from datetime import datetime

    from credentials import storage

    database = open_database(db_urls.fresh())
    now = datetime(2026, 1, 1)
    with database.session() as session:
        session.add_all([storage.Batch(id=b, created_by="t", state=storage.PENDING, count=1, created_at=now)
                         for b in ("kept", "other", "empty")])
        session.commit()
        storage.insert_credentials(session, [_credential_row("1", "kept"), _credential_row("2", "kept")])
        session.commit()
        attempts = {
            "bulk insert": lambda: storage.insert_credentials(session, [_credential_row("3", "kept"),
                                                                        _credential_row("4", "missing")]),
            "orm insert": lambda: (session.add(storage.CredentialRecord(**_orm_fields(_credential_row("5", "missing")))),
                                   session.flush()),
            "move": lambda: session.execute(text("UPDATE credentials SET batch_id = 'missing' WHERE id = 'urn:uuid:1'")),
            "delete the batch": lambda: session.execute(text("DELETE FROM credential_batches WHERE id = 'kept'")),
            "rename the batch": lambda: session.execute(text("UPDATE credential_batches SET id = 'renamed' "
                                                             "WHERE id = 'kept'")),
        }
        if db_engine == "postgresql":
            attempts["truncate the batches"] = lambda: session.execute(text("TRUNCATE credential_batches"))
        refused = {}
        for what, attempt in attempts.items():
            try:
                attempt()
                session.flush()
                session.commit()
                refused[what] = False
            except Exception as exc:  # noqa: BLE001 - which error it is is the assertion
                refused[what] = _is_key_violation(exc)
                session.rollback()
        assert refused == dict.fromkeys(attempts, True)
        session.execute(text("UPDATE credentials SET batch_id = 'other' WHERE id = 'urn:uuid:1'"))
        session.execute(text("UPDATE credentials SET grade = 'A'"))
        session.execute(text("DELETE FROM credential_batches WHERE id = 'empty'"))
        session.commit()
        assert session.execute(text("SELECT id, batch_id FROM credentials ORDER BY id")).all() == [
            ("urn:uuid:1", "other"), ("urn:uuid:2", "kept")]
        assert sorted(session.execute(text("SELECT id FROM credential_batches")).scalars()) == ["kept", "other"]
    if db_engine == "postgresql":
        with database.engine.connect() as conn:
            keys = conn.exec_driver_sql("SELECT count(*) FROM pg_constraint WHERE conrelid = 'credentials'::regclass "
                                        "AND contype = 'f'").scalar()
        assert keys == 0, "the per-row key is gone on PostgreSQL"
    database.engine.dispose()


def test_a_batch_cannot_be_deleted_while_its_credentials_are_being_inserted(db_urls):
    """The race a foreign key settles, on either engine: one transaction
    inserts a batch's credentials (PostgreSQL: by COPY, so the per-statement
    check of migration 1010 holds the batch FOR KEY SHARE), another deletes the
    batch before the first commits. The deletion waits, then is refused."""
    import threading
    import time
    from datetime import datetime

    from credentials import storage

    database = open_database(db_urls.fresh())
    with database.session() as session:
        session.add(storage.Batch(id="kept", created_by="t", state=storage.PENDING, count=1,
                                  created_at=datetime(2026, 1, 1)))
        session.commit()
    outcome = {}

    def delete_the_batch():
        try:
            with database.engine.begin() as conn:
                conn.execute(text("DELETE FROM credential_batches WHERE id = 'kept'"))
            outcome["deleted"] = True
        except Exception as exc:  # noqa: BLE001 - which error it is is the assertion
            outcome["refused" if _is_key_violation(exc) else "failed"] = repr(exc)

    inserting = database.session()
    try:
        storage.insert_credentials(inserting, [_credential_row("1", "kept")])
        inserting.flush()
        deleter = threading.Thread(target=delete_the_batch)
        deleter.start()
        time.sleep(0.5)
        assert deleter.is_alive(), "the deletion waits for the inserting transaction"
        inserting.commit()
    finally:
        inserting.close()
    deleter.join(60)
    assert "refused" in outcome and "deleted" not in outcome, outcome
    with database.engine.connect() as conn:
        assert conn.execute(text("SELECT batch_id FROM credentials")).scalars().all() == ["kept"]
        assert conn.execute(text("SELECT count(*) FROM credential_batches")).scalar() == 1
    database.engine.dispose()
