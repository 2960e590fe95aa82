"""What Attest keeps about the credentials it issued: batches, credentials and
revocations, in the application database (SQLAlchemy; SQLite by default,
PostgreSQL through ATTEST_DATABASE_URL, so no SQLite-only SQL here).

A batch is written `pending`, with every credential and its Merkle root,
*before* its anchoring transaction is sent; that is what lets a crashed or
chain-less issuance be finished later exactly once (see `issuance`). Its
progress lives in its job (`kernel.jobs`), which any web worker can read.

Migrations 1001-1999 belong to the credentials package.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    case,
    func,
    insert,
    inspect,
    literal,
    or_,
    select,
)
from sqlalchemy.orm import Session, column_property, validates

from kernel.database import Base, add_column, create_tables, migration, utcnow

# Batch states: written `pending`; `anchoring` while its transaction is in
# flight; `anchored` once mined (and confirmed); `failed` when the chain
# refused it for a reason a retry will not cure (the error column says which).
PENDING, ANCHORING, ANCHORED, FAILED = "pending", "anchoring", "anchored", "failed"
UNFINISHED_STATES = (PENDING, ANCHORING)

# Credential statuses. Stored on the row is only whether it is revoked; a
# credential not revoked is pending or active as its batch is (see
# CredentialRecord.status).
CREDENTIAL_PENDING, ACTIVE, REVOKED = "pending", "active", "revoked"
CREDENTIAL_STATUSES = (CREDENTIAL_PENDING, ACTIVE, REVOKED)

# A stored credential's anchor proof says `"transactionHash":null`: the rows are
# written before the anchoring transaction exists, and never rewritten after.
# The hash is its batch's, put in where the document is read (`document`, below,
# which the files are written from too). JSON escapes every quote inside a
# string value, so this exact text can only be that member, and replacing it is exact.
TX_PLACEHOLDER = '"transactionHash":null'


class Batch(Base):
    __tablename__ = "credential_batches"
    id = Column(String(64), primary_key=True)
    created_at = Column(DateTime, nullable=False, default=utcnow, index=True)
    created_by = Column(String(255), nullable=False)
    state = Column(String(16), nullable=False, default=PENDING, index=True)
    count = Column(Integer, nullable=False, default=0)
    merkle_root = Column(String(66), nullable=True, index=True)
    tx_hash = Column(String(66), nullable=True)
    block_number = Column(BigInteger, nullable=True)
    gas_used = Column(BigInteger, nullable=True)
    chain_id = Column(BigInteger, nullable=True)
    # The registry contract address ("registry" in the table; `registry` is
    # reserved by SQLAlchemy's declarative base, hence the attribute name).
    registry_address = Column("registry", String(42), nullable=True)
    error = Column(Text, nullable=True)
    anchored_at = Column(DateTime, nullable=True)
    # Progress lives in the batch's job (kernel.jobs, subject "batch:<id>");
    # these two columns are kept only for databases from before jobs.
    stage = Column(String(32), nullable=True)
    done = Column(Integer, nullable=False, default=0)
    # sha256 of the uploaded CSV, where there was one: issuing the same file
    # twice is almost always a mistake (a retry after a crash), see
    # `batches_from_source`.
    source_digest = Column(String(64), nullable=True, index=True)
    # The status-list slots reserved for the batch when its row was written,
    # as JSON [[list id, first slot, count], ...]: a batch signed again after
    # a crash gets the same indexes (see credentials.status_store).
    status_slots = Column(Text, nullable=True)

    @property
    def finished(self) -> bool:
        return self.state in (ANCHORED, FAILED)

    def as_dict(self) -> dict:
        return {
            "batch": self.id, "state": self.state, "count": self.count, "merkle_root": self.merkle_root,
            "tx_hash": self.tx_hash, "block_number": self.block_number, "gas_used": self.gas_used,
            "chain_id": self.chain_id, "registry": self.registry_address, "error": self.error,
            "created_by": self.created_by,
            "source_digest": self.source_digest,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "anchored_at": self.anchored_at.isoformat() if self.anchored_at else None,
        }


class CredentialRecord(Base):
    __tablename__ = "credentials"
    id = Column(String(64), primary_key=True)  # urn:uuid:…
    batch_id = Column(String(64), ForeignKey("credential_batches.id"), nullable=False, index=True)
    recipient_name = Column(String(255), nullable=False)
    recipient_email = Column(String(255), nullable=False)
    achievement_name = Column(String(255), nullable=False)
    achievement_type = Column(String(64), nullable=False)
    awarded_on = Column(Date, nullable=False)
    valid_until = Column(Date, nullable=True)
    grade = Column(String(64), nullable=True)
    fingerprint = Column(String(66), nullable=False, unique=True)
    # The signed credential's JSON as written when its batch was saved: its
    # anchor proof's transaction hash is null (TX_PLACEHOLDER). Read `document`,
    # which has the batch's hash in it once the batch is anchored.
    signed_document = Column("document", Text, nullable=False)
    # REVOKED once revoked, else CREDENTIAL_PENDING (ACTIVE in rows from before
    # migration 1008): read `status`, which says pending or active from the batch.
    stored_status = Column("status", String(16), nullable=False, default=CREDENTIAL_PENDING)
    created_at = Column(DateTime, nullable=False, default=utcnow, index=True)
    # Its BitstringStatusListEntry: which list (credential_status_lists.id) and
    # which bit. Null for credentials issued before status lists.
    status_list = Column(Integer, nullable=True)
    status_index = Column(Integer, nullable=True)

    # The anchoring of a batch of 10,000 writes one batch row, not 10,000
    # credential rows: a credential's transaction hash and its pending/active
    # status are read from its batch, in the same SELECT (these two are SQL
    # expressions, so they work in queries and filters too).
    _batch = select(Batch.tx_hash, Batch.state).where(Batch.id == batch_id).correlate_except(Batch)
    document = column_property(func.replace(
        signed_document, TX_PLACEHOLDER,
        func.coalesce(literal('"transactionHash":"', Text) + _batch.with_only_columns(Batch.tx_hash).scalar_subquery()
                      + literal('"', Text), TX_PLACEHOLDER), type_=Text))
    status = column_property(case(
        (stored_status == REVOKED, REVOKED),
        (_batch.with_only_columns(Batch.state).scalar_subquery() == ANCHORED, ACTIVE),
        else_=CREDENTIAL_PENDING))
    del _batch

    @validates("document", "status")
    def _read_only(self, key, value):
        raise AttributeError(f"CredentialRecord.{key} is read from the batch; write "
                             f"{'signed_document' if key == 'document' else 'stored_status'} instead")

    @property
    def document_dict(self) -> dict:
        return json.loads(self.document)

    @property
    def uuid(self) -> str:
        """The id without its `urn:uuid:` prefix: what URLs and file names use."""
        return self.id.removeprefix("urn:uuid:")


class Revocation(Base):
    __tablename__ = "credential_revocations"
    id = Column(Integer, primary_key=True)
    credential_id = Column(String(64), ForeignKey("credentials.id"), nullable=False, unique=True)
    reason = Column(String(256), nullable=False)
    revoked_by = Column(String(255), nullable=False)
    revoked_at = Column(DateTime, nullable=False, default=utcnow)
    tx_hash = Column(String(66), nullable=True)


class StatusListRecord(Base):
    """One Bitstring Status List the installation publishes at
    `<public URL>/status/<id>`. Slots are handed out in order (`allocated`);
    `secret` keys the permutation that turns a slot into a bit index. The
    signed list credential is kept as generated, rebuilt from the revoked
    credentials on every revocation (and whenever it is missing)."""

    __tablename__ = "credential_status_lists"
    id = Column(Integer, primary_key=True)
    url = Column(String(600), nullable=False)
    issuer_did = Column(String(500), nullable=False)
    length = Column(Integer, nullable=False)
    allocated = Column(Integer, nullable=False, default=0)
    secret = Column(String(64), nullable=False)
    document = Column(Text, nullable=True)
    generated_at = Column(DateTime, nullable=True)
    created_at = Column(DateTime, nullable=False, default=utcnow)


class CsvUpload(Base):
    """A CSV between preview and issuing, and after: the file a batch was issued
    from. In the database, so any web worker (on any machine) can serve the
    confirm, and a batch job can be taken up by any worker."""

    __tablename__ = "credential_uploads"
    id = Column(String(64), primary_key=True)  # a random token: the preview URL
    owner = Column(String(255), nullable=False)
    filename = Column(String(255), nullable=False)
    data = Column(LargeBinary, nullable=False)
    digest = Column(String(64), nullable=False, index=True)
    created_at = Column(DateTime, nullable=False, default=utcnow, index=True)
    batch_id = Column(String(64), nullable=True)  # set once issued


# No index on status or on the searched names: the search is `lower(x) LIKE
# '%q%'`, which no b-tree index serves, and what a search by status filters on
# is mostly the batch's state. Every index is one more write per credential.
# Paging goes by created_at, a batch's credentials by batch_id.
# Two credentials never share a bit (the permutation promises it; this keeps it).
Index("uq_credentials_status_slot", CredentialRecord.status_list, CredentialRecord.status_index, unique=True)


@migration("1001_credential_batches")
def _create_batches(conn) -> None:
    create_tables(conn, Batch)


@migration("1002_credentials")
def _create_credentials(conn) -> None:
    create_tables(conn, CredentialRecord)


@migration("1003_credential_revocations")
def _create_revocations(conn) -> None:
    create_tables(conn, Revocation)


@migration("1005_credential_uploads")
def _create_uploads(conn) -> None:
    create_tables(conn, CsvUpload)


@migration("1004_batch_source_digest")
def _add_source_digest(conn) -> None:
    add_column(conn, Batch.__tablename__, Column("source_digest", String(64), nullable=True))
    for index in Batch.__table__.indexes:
        if index.name == "ix_credential_batches_source_digest":
            index.create(conn, checkfirst=True)


@migration("1006_status_lists")
def _add_status_lists(conn) -> None:
    create_tables(conn, StatusListRecord)
    add_column(conn, CredentialRecord.__tablename__, Column("status_list", Integer, nullable=True))
    add_column(conn, CredentialRecord.__tablename__, Column("status_index", Integer, nullable=True))
    add_column(conn, Batch.__tablename__, Column("status_slots", Text, nullable=True))
    for index in CredentialRecord.__table__.indexes:
        if index.name == "uq_credentials_status_slot":
            index.create(conn, checkfirst=True)


UNSERVED_INDEXES = ("ix_credentials_recipient_name", "ix_credentials_recipient_email",
                    "ix_credentials_achievement_name", "ix_credentials_status", "ix_credentials_batch_status")


@migration("1007_credentials_bulk_friendly")
def _credentials_bulk_friendly(conn) -> None:
    """Indexes no query uses go (see the model). On PostgreSQL a credential's
    JSON (about 3 kB) stays in its row, uncompressed (STORAGE MAIN, a 4 kB
    toast target: no separate TOAST write, no pglz on every write), and pages
    keep room (fillfactor 45) so that the anchoring update is done in place."""
    for name in UNSERVED_INDEXES:
        conn.exec_driver_sql(f"DROP INDEX IF EXISTS {name}")
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("ALTER TABLE credentials SET (toast_tuple_target = 4080, fillfactor = 45)")
        conn.exec_driver_sql("ALTER TABLE credentials ALTER COLUMN document SET STORAGE MAIN")


@migration("1008_credentials_written_once")
def _credentials_written_once(conn) -> None:
    """Rows from before: anchoring rewrote every credential row with its
    batch's transaction hash and `active`. Now a row keeps the text it was
    signed with (the hash null) and the batch supplies both, so older rows are
    put in that form; what is read from them does not change."""
    tx = "(SELECT b.tx_hash FROM credential_batches b WHERE b.id = credentials.batch_id)"
    conn.exec_driver_sql(
        f"UPDATE credentials SET document = replace(document, '\"transactionHash\":\"' || {tx} || '\"', "
        f"'{TX_PLACEHOLDER}') WHERE {tx} IS NOT NULL")
    conn.exec_driver_sql(f"UPDATE credentials SET status = '{CREDENTIAL_PENDING}' WHERE status = '{ACTIVE}'")


@migration("1009_credentials_pages_full")
def _credentials_pages_full(conn) -> None:
    """1007 left room in each PostgreSQL page (fillfactor 45) so that
    anchoring could rewrite every row in place. Since 1008 no row is written
    again, so the room only doubled the pages a batch writes: pages are
    filled again (for pages written from now on)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("ALTER TABLE credentials RESET (fillfactor)")


# PostgreSQL checks a foreign key row by row, with a query per row: for a
# batch's COPY of 10,000 credentials that was 0.13-0.15 s of 0.65-0.7 s. The
# same rule is kept by triggers:
# - after each statement that inserts credentials, or changes their batch or
#   id, one check of the rows it wrote (its transition tables), holding their
#   batches FOR KEY SHARE as the key does;
# - a refusal to delete a batch, change its id or truncate the batches while
#   credentials name them.
# Unlike the key, the checks see the latest commits only at READ COMMITTED,
# PostgreSQL's default and the level Attest runs at: a deletion at
# REPEATABLE READ that waited for a batch being filled would not see it
# filled. The transition tables hold the statement's rows (30 MB for 10,000
# credentials), which spill to a temporary file past work_mem; the batch's
# COPY is still faster by the figure above.
_BATCH_RULE_SQL = (
    """CREATE OR REPLACE FUNCTION attest_credentials_name_batches() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM 1 FROM credential_batches WHERE id IN (SELECT DISTINCT batch_id FROM written) FOR KEY SHARE;
        IF EXISTS (SELECT 1 FROM written w WHERE NOT EXISTS (
                SELECT 1 FROM credential_batches b WHERE b.id = w.batch_id)) THEN
            RAISE foreign_key_violation USING MESSAGE = 'a credential names a batch that does not exist';
        END IF;
        RETURN NULL;
    END $$""",
    """CREATE OR REPLACE FUNCTION attest_credentials_keep_batches() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        -- Only rows whose batch (or id) the statement changed: a revocation
        -- changes neither, and a foreign key would not check it either.
        PERFORM 1 FROM credential_batches WHERE id IN (
            SELECT w.batch_id FROM written w WHERE NOT EXISTS (
                SELECT 1 FROM before b WHERE b.id = w.id AND b.batch_id = w.batch_id)) FOR KEY SHARE;
        IF EXISTS (SELECT 1 FROM written w WHERE NOT EXISTS (
                    SELECT 1 FROM before b WHERE b.id = w.id AND b.batch_id = w.batch_id)
                AND NOT EXISTS (SELECT 1 FROM credential_batches c WHERE c.id = w.batch_id)) THEN
            RAISE foreign_key_violation USING MESSAGE = 'a credential names a batch that does not exist';
        END IF;
        RETURN NULL;
    END $$""",
    """CREATE OR REPLACE FUNCTION attest_batches_keep_credentials() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'TRUNCATE' THEN
            IF EXISTS (SELECT 1 FROM credentials) THEN
                RAISE foreign_key_violation USING MESSAGE = 'the batches have credentials';
            END IF;
            RETURN NULL;
        END IF;
        IF (TG_OP = 'DELETE' OR NEW.id IS DISTINCT FROM OLD.id)
                AND EXISTS (SELECT 1 FROM credentials WHERE batch_id = OLD.id) THEN
            RAISE foreign_key_violation USING MESSAGE = 'batch ' || OLD.id || ' has credentials';
        END IF;
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END $$""",
    "DROP TRIGGER IF EXISTS credentials_name_batches_on_insert ON credentials",
    """CREATE TRIGGER credentials_name_batches_on_insert AFTER INSERT ON credentials
    REFERENCING NEW TABLE AS written FOR EACH STATEMENT EXECUTE FUNCTION attest_credentials_name_batches()""",
    "DROP TRIGGER IF EXISTS credentials_name_batches_on_update ON credentials",
    """CREATE TRIGGER credentials_name_batches_on_update AFTER UPDATE ON credentials
    REFERENCING OLD TABLE AS before NEW TABLE AS written FOR EACH STATEMENT
    EXECUTE FUNCTION attest_credentials_keep_batches()""",
    "DROP TRIGGER IF EXISTS batches_keep_credentials ON credential_batches",
    """CREATE TRIGGER batches_keep_credentials BEFORE DELETE OR UPDATE OF id ON credential_batches
    FOR EACH ROW EXECUTE FUNCTION attest_batches_keep_credentials()""",
    "DROP TRIGGER IF EXISTS batches_keep_credentials_on_truncate ON credential_batches",
    """CREATE TRIGGER batches_keep_credentials_on_truncate BEFORE TRUNCATE ON credential_batches
    FOR EACH STATEMENT EXECUTE FUNCTION attest_batches_keep_credentials()""",
)


@migration("1010_credentials_batch_rule_per_statement")
def _credentials_batch_rule_per_statement(conn) -> None:
    """On PostgreSQL, the credentials' foreign key to their batch becomes a
    check per statement (see _BATCH_RULE_SQL)."""
    if conn.dialect.name != "postgresql":
        return
    names = conn.exec_driver_sql(
        "SELECT conname FROM pg_constraint WHERE conrelid = 'credentials'::regclass AND contype = 'f' "
        "AND confrelid = 'credential_batches'::regclass").scalars().all()
    for name in names:
        conn.exec_driver_sql(f'ALTER TABLE credentials DROP CONSTRAINT "{name}"')
    for statement in _BATCH_RULE_SQL:
        conn.exec_driver_sql(statement)


# ----- bulk writes ---------------------------------------------------------------

# A credential row as insert_credential_lines takes it: its values in the
# table's column order.
LINE_COLUMNS = ("id", "batch_id", "recipient_name", "recipient_email", "achievement_name", "achievement_type",
                "awarded_on", "valid_until", "grade", "fingerprint", "document", "status", "created_at",
                "status_list", "status_index")
DOCUMENT_AT = LINE_COLUMNS.index("document")
if LINE_COLUMNS != tuple(c.name for c in CredentialRecord.__table__.columns):
    raise RuntimeError("storage.LINE_COLUMNS no longer lists the credentials table's columns in order")


def insert_credentials(session: Session, rows: list[dict]) -> None:
    """Insert credential rows given as dicts of column values (see
    insert_credential_lines)."""
    insert_credential_lines(session, [[row.get(c) for c in LINE_COLUMNS] for row in rows])


def insert_credential_lines(session: Session, lines: Iterable[list]) -> None:
    """Insert a batch's credential rows in the session's transaction, each a
    list of its values in LINE_COLUMNS order (what a batch builds as its
    credentials arrive, with no dict per row): one executemany on SQLite;
    a binary COPY on PostgreSQL, which takes 10,000 rows in a fraction of the
    time of even batched INSERTs. `lines` may be an iterator: PostgreSQL
    takes each row as it comes. On SQLite the lists are changed in place (the
    dates as SQLAlchemy binds them)."""
    connection = session.connection()
    names = ", ".join(f'"{c}"' for c in LINE_COLUMNS)
    if connection.dialect.name == "postgresql":
        _postgresql_copy(connection, names, lines)
        return
    lines = list(lines)
    if not lines:
        return
    if connection.dialect.name == "sqlite":
        _sqlite_executemany(connection, names, lines)
    else:
        session.execute(insert(CredentialRecord.__table__),
                        [dict(zip(LINE_COLUMNS, line, strict=True)) for line in lines])


def _postgresql_copy(connection, names: str, lines: Iterable[list]) -> None:
    cursor = connection.connection.driver_connection.cursor()
    try:
        # Binary COPY, with the column types the table really has (one catalog
        # query). The text format costs the server a scan for escapes: on a
        # table like this one without its foreign key, 10,000 rows of 3 kB
        # took 0.47-0.61 s in binary against 0.61-0.99 s in text.
        cursor.execute("SELECT attname, atttypid FROM pg_attribute WHERE attrelid = 'credentials'::regclass "
                       "AND attnum > 0 AND NOT attisdropped")
        oids = dict(cursor.fetchall())
        with cursor.copy(f"COPY credentials ({names}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types([oids[c] for c in LINE_COLUMNS])
            for line in lines:
                copy.write_row(line)
    finally:
        cursor.close()


def forget_derived(session: Session, batch_id: str) -> None:
    """Make the batch's loaded credentials read their status and document
    again: both come from the batch, and this project's sessions keep loaded
    values across commits. Call it after changing a batch's state or
    transaction. (A credential's own change, its stored status, needs
    nothing: SQLAlchemy expires a flushed object's expression attributes.)"""
    for obj in list(session.identity_map.values()):
        # Read what is loaded: an expired object would be loaded again just to be expired.
        if isinstance(obj, CredentialRecord) and inspect(obj).dict.get("batch_id") == batch_id:
            session.expire(obj, ["document", "status"])


def _sqlite_executemany(connection, names: str, lines: list[list]) -> None:
    """The DBAPI's executemany with the values as SQLAlchemy would bind them:
    half the time of `session.execute(insert(...), rows)`, whose per-row
    parameter processing cost as much as SQLite's own insert. Dates go through
    SQLAlchemy's own processors (one call per distinct value: a batch shares a
    handful of dates), so what is stored is exactly what the ORM writes."""
    table = CredentialRecord.__table__
    dialect = connection.dialect
    for i, name in enumerate(LINE_COLUMNS):
        process = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        if process is None:
            continue
        seen: dict = {None: None}
        for line in lines:
            value = line[i]
            done = seen.get(value, seen)
            if done is seen:
                done = seen[value] = process(value)
            line[i] = done
    connection.exec_driver_sql(f"INSERT INTO credentials ({names}) VALUES ({', '.join('?' * len(LINE_COLUMNS))})",
                               list(map(tuple, lines)))  # SQLAlchemy passes on tuples, not lists


# ----- queries the web UI, the CLI and the verifier share ---------------------

def normalize_id(credential_id: str) -> str:
    """Accept an id with or without its `urn:uuid:` prefix (QR links and file
    names carry the bare uuid)."""
    credential_id = credential_id.strip()
    return credential_id if credential_id.startswith("urn:") else f"urn:uuid:{credential_id}"


def get_credential(session: Session, credential_id: str) -> CredentialRecord | None:
    return session.get(CredentialRecord, normalize_id(credential_id))


def get_credential_by_fingerprint(session: Session, fingerprint: str) -> CredentialRecord | None:
    return session.scalar(select(CredentialRecord).where(CredentialRecord.fingerprint == fingerprint.lower()))


def get_revocation(session: Session, credential_id: str) -> Revocation | None:
    return session.scalar(select(Revocation).where(Revocation.credential_id == normalize_id(credential_id)))


def _search_filter(stmt, q: str | None, status: str | None, batch_id: str | None):
    if q and q.strip():
        term = q.strip()
        pattern = f"%{term.lower()}%"
        stmt = stmt.where(or_(
            func.lower(CredentialRecord.recipient_name).like(pattern),
            func.lower(CredentialRecord.recipient_email).like(pattern),
            func.lower(CredentialRecord.achievement_name).like(pattern),
            CredentialRecord.batch_id == term,
            CredentialRecord.id == normalize_id(term),
        ))
    if status:
        stmt = stmt.where(CredentialRecord.status == status)
    if batch_id:
        stmt = stmt.where(CredentialRecord.batch_id == batch_id)
    return stmt


def search_credentials(session: Session, q: str | None = None, status: str | None = None,
                       batch_id: str | None = None, limit: int = 50, offset: int = 0) -> list[CredentialRecord]:
    """Credentials whose recipient name, email or achievement contains `q`
    (case-insensitive), or whose batch id or credential id is `q`; newest first."""
    stmt = _search_filter(select(CredentialRecord), q, status, batch_id)
    stmt = stmt.order_by(CredentialRecord.created_at.desc(), CredentialRecord.id).limit(limit).offset(offset)
    return list(session.scalars(stmt))


def count_credentials(session: Session, q: str | None = None, status: str | None = None,
                      batch_id: str | None = None) -> int:
    """How many `search_credentials` would find without limit (for paging)."""
    stmt = _search_filter(select(func.count()).select_from(CredentialRecord), q, status, batch_id)
    return session.scalar(stmt) or 0


def list_batches(session: Session, limit: int = 100, offset: int = 0) -> list[Batch]:
    stmt = select(Batch).order_by(Batch.created_at.desc(), Batch.id).limit(limit).offset(offset)
    return list(session.scalars(stmt))


def get_batch(session: Session, batch_id: str) -> Batch | None:
    return session.get(Batch, batch_id)


def batches_from_source(session: Session, digest: str) -> list[Batch]:
    """Batches issued from the file with this sha256 (not failed ones), oldest first."""
    stmt = select(Batch).where(Batch.source_digest == digest, Batch.state != FAILED).order_by(Batch.created_at)
    return list(session.scalars(stmt))


def save_upload(session: Session, data: bytes, filename: str, owner: str, ttl_seconds: int = 24 * 3600) -> CsvUpload:
    """Keep an uploaded CSV until it is issued (the caller commits); previews
    nobody confirmed within `ttl_seconds` are swept."""
    import secrets
    from datetime import timedelta

    from sqlalchemy import delete

    session.execute(delete(CsvUpload).where(CsvUpload.batch_id.is_(None),
                                            CsvUpload.created_at < utcnow() - timedelta(seconds=ttl_seconds)))
    upload = CsvUpload(id=secrets.token_urlsafe(24), owner=owner, filename=filename[:255] or "upload.csv",
                       data=data, digest=hashlib.sha256(data).hexdigest(), created_at=utcnow())
    session.add(upload)
    return upload


def get_upload(session: Session, token: str, owner: str | None = None) -> CsvUpload | None:
    """The upload `token` names (if `owner` is given, only theirs)."""
    upload = session.get(CsvUpload, token) if token else None
    if upload is None or (owner is not None and upload.owner != owner):
        return None
    return upload


def unfinished_batches(session: Session, include_failed: bool = False) -> list[Batch]:
    """Batches written but not (known to be) anchored: what `resume` finishes.
    With `include_failed`, also failed batches whose credentials were saved
    (the chain refused them; worth a retry once the cause is fixed)."""
    condition = Batch.state.in_(UNFINISHED_STATES)
    if include_failed:
        condition = condition | ((Batch.state == FAILED) & Batch.merkle_root.is_not(None))
    stmt = select(Batch).where(condition).order_by(Batch.created_at, Batch.id)
    return list(session.scalars(stmt))
