"""Issuing batches on a real Anvil: the documents and their proofs, storage and
search, progress, a dead chain leaving the batch pending, resume, revocation."""

from __future__ import annotations

import json
from datetime import date

import pytest
from sqlalchemy import event, text

from app import open_database
from credentials import identity, storage
from credentials.canonical import fingerprint, from_hex
from credentials.chain import open_registry
from credentials.document import CredentialRequest
from credentials.issuance import (
    ROOT_ANCHORED_TOPIC,
    BatchLeftPending,
    CredentialNotFound,
    IssuanceError,
    RevocationError,
    issue_batch,
    issuer_profile,
    resume_pending,
    revoke_credential,
)
from credentials.merkle import verify_path
from credentials.signing import Eip712Domain, recover_signer
from kernel.jobs import Stage
from kernel.settings import Settings
from tests.helpers_credentials import anchor_of


def make_requests(n: int, **overrides) -> list[CredentialRequest]:
    return [CredentialRequest(
        recipient_name=f"Student {i}", recipient_email=f"student{i}@example.edu",
        achievement_name=overrides.get("achievement_name", "BSc Physics"), achievement_type="BachelorDegree",
        description="Three-year honours programme.", awarded_on=date(2025, 6, 30),
        valid_until=None, grade="2:1" if i % 2 else None) for i in range(n)]


def anchor_events(registry, root: str) -> list:
    return registry.w3.eth.get_logs({"address": registry.address, "fromBlock": 0, "toBlock": "latest",
                                     "topics": [ROOT_ANCHORED_TOPIC, root]})


def test_issue_batch_anchors_signed_credentials(session, registry, chain_settings, tmp_path):
    seen = []
    result = issue_batch(session, registry, issuer_profile(session, registry, chain_settings), make_requests(5), "tester",
                         progress=lambda stage, done, total: seen.append((stage, done, total)),
                         out_dir=tmp_path / "out")
    assert result.count == 5 and len(result.files) == 5
    assert result.tx_hash.startswith("0x") and 0 < result.gas_used < 100_000
    record = registry.anchor_of(result.merkle_root)
    assert record is not None and record.count == 5 and record.issuer == registry.issuer.address
    assert len(anchor_events(registry, result.merkle_root)) == 1
    domain = Eip712Domain(registry.chain_id, registry.address)
    for path in result.files:
        doc = json.loads(path.read_text())
        proof = anchor_of(doc)
        fp = fingerprint(doc)
        assert proof["fingerprint"] == "0x" + fp.hex()
        assert recover_signer(fp, from_hex(proof["signature"]), domain) == registry.issuer.address
        anchor = proof["anchor"]
        assert anchor["merkleRoot"] == result.merkle_root
        assert anchor["transactionHash"] == result.tx_hash
        assert anchor["chainId"] == registry.chain_id and anchor["registry"] == registry.address
        path_bytes = [from_hex(p) for p in anchor["merklePath"]]
        assert verify_path(fp, path_bytes, from_hex(result.merkle_root))
        assert registry.verify_proof(fp, path_bytes, result.merkle_root)
        assert doc["issuer"]["name"] == "Example University"
        stored = storage.get_credential(session, doc["id"])
        assert stored.document == path.read_text(encoding="utf-8")
        assert stored.status == storage.ACTIVE and stored.fingerprint == proof["fingerprint"]
    batch = storage.get_batch(session, result.batch_id)
    assert batch.state == storage.ANCHORED and batch.tx_hash == result.tx_hash
    assert batch.anchored_at is not None
    stages = [s for s, _, _ in seen]
    assert stages.index(Stage.SIGNING) < stages.index(Stage.SAVING) < stages.index(Stage.ANCHORING) \
        < stages.index(Stage.FINISHING) < stages.index(Stage.DONE)


def test_anchoring_writes_the_batch_row_and_no_credential_row(session, registry):
    """Each credential row is written once, when the batch is saved: its
    transaction hash and its active status are read from the batch."""
    statements = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        statements.append(" ".join(statement.split()).lower())

    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", seen)
    try:
        result = issue_batch(session, registry, issuer_profile(session, registry), make_requests(3), "tester")
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert any(s.startswith("update credential_batches ") for s in statements), "the listener sees the updates"
    assert not [s for s in statements if s.startswith("update credentials ")]
    stored = session.execute(text("SELECT document, status FROM credentials WHERE batch_id = :b"),
                             {"b": result.batch_id}).all()
    assert len(stored) == 3
    for record in storage.search_credentials(session, batch_id=result.batch_id):
        assert record.status == storage.ACTIVE
        assert anchor_of(record.document_dict)["anchor"]["transactionHash"] == result.tx_hash
        assert (record.signed_document, record.stored_status) in stored
        assert record.document == record.signed_document.replace(
            '"transactionHash":null', f'"transactionHash":"{result.tx_hash}"')
    assert {status for _, status in stored} == {storage.CREDENTIAL_PENDING}


def test_institution_comes_from_the_environment_then_the_stored_profile(monkeypatch, session, registry, tmp_path):
    monkeypatch.setenv("ATTEST_INSTITUTION_NAME", "University of Testing")
    monkeypatch.setenv("ATTEST_PUBLIC_URL", "https://Uni.Example.edu/")
    settings = Settings.from_env(data_dir=tmp_path / "d", rpc_url=registry.rpc_url)
    profile = issuer_profile(session, registry, settings)
    assert profile.name == "University of Testing"
    assert profile.did == "did:web:uni.example.edu"
    assert profile.url == "https://uni.example.edu"
    # A stored name wins over the environment's default; the environment's URL wins over a stored one.
    identity.save_profile(session, "tester", name="Testing University", public_url="https://elsewhere.example")
    session.commit()
    profile = issuer_profile(session, registry, settings)
    assert (profile.name, profile.did) == ("Testing University", "did:web:uni.example.edu")
    monkeypatch.delenv("ATTEST_PUBLIC_URL")
    profile = issuer_profile(session, registry, Settings.from_env(data_dir=tmp_path / "d", rpc_url=registry.rpc_url))
    assert profile.did == "did:web:elsewhere.example"


def test_search_and_lookup(session, registry):
    first = issue_batch(session, registry, issuer_profile(session, registry), make_requests(3), "tester")
    second = issue_batch(session, registry, issuer_profile(session, registry),
                         make_requests(2, achievement_name="Data Science Certificate"), "tester")
    assert {r.recipient_name for r in storage.search_credentials(session, q="student 1")} == {"Student 1"}
    assert len(storage.search_credentials(session, q="STUDENT2@example")) == 1
    assert len(storage.search_credentials(session, q="data science")) == 2
    assert len(storage.search_credentials(session, q=first.batch_id)) == 3
    assert len(storage.search_credentials(session, batch_id=second.batch_id)) == 2
    assert storage.count_credentials(session, status=storage.ACTIVE) == 5
    assert len(storage.search_credentials(session, limit=2, offset=4)) == 1
    some = storage.search_credentials(session, batch_id=first.batch_id)[0]
    assert storage.get_credential(session, some.uuid).id == some.id
    assert storage.get_credential(session, "urn:uuid:00000000-0000-0000-0000-000000000000") is None
    assert [b.id for b in storage.list_batches(session)][:2] in ([second.batch_id, first.batch_id],
                                                                 [first.batch_id, second.batch_id])


def test_dead_chain_leaves_the_batch_pending_and_resume_anchors_it_once(tmp_path, database):
    """The embedded node is stopped right after the batch is saved (as if the
    chain went away); the batch stays pending; the next start resumes it."""
    settings = Settings.from_env(data_dir=tmp_path / "embedded", rpc_url="")
    assert settings.rpc_url is None
    with database.session() as session:
        registry = open_registry(settings)
        try:
            def stop_the_chain(stage, done, total):
                if stage == Stage.ANCHORING:
                    registry.close()

            with pytest.raises(BatchLeftPending, match="pending") as raised:
                issue_batch(session, registry, issuer_profile(session, registry, settings), make_requests(4), "tester",
                            progress=stop_the_chain)
        finally:
            registry.close()
        batch = storage.get_batch(session, raised.value.batch_id)
        assert batch.state == storage.PENDING and batch.error and batch.merkle_root
        assert storage.count_credentials(session, batch_id=batch.id, status=storage.CREDENTIAL_PENDING) == 4

        loaded = storage.search_credentials(session, batch_id=batch.id)[0]
        assert loaded.status == storage.CREDENTIAL_PENDING
        assert anchor_of(loaded.document_dict)["anchor"]["transactionHash"] is None
        with open_registry(settings) as registry:
            assert registry.anchor_of(batch.merkle_root) is None
            finished = resume_pending(session, registry, out_dir=tmp_path / "out")
            assert [r.batch_id for r in finished] == [batch.id]
            assert len(list((tmp_path / "out").glob("*.json"))) == 4
            assert resume_pending(session, registry) == [], "nothing left to resume"
            assert len(anchor_events(registry, batch.merkle_root)) == 1
        session.refresh(batch)
        assert batch.state == storage.ANCHORED and batch.error is None
        assert storage.count_credentials(session, batch_id=batch.id, status=storage.ACTIVE) == 4
        # A credential loaded while pending says so no longer (sessions keep loaded values across commits).
        assert loaded.status == storage.ACTIVE
        assert anchor_of(loaded.document_dict)["anchor"]["transactionHash"] == finished[0].tx_hash


def test_resume_finds_an_anchor_already_on_chain_instead_of_resending(session, registry):
    """Simulates a crash after the transaction: the root is on chain but the
    database still says anchoring."""
    result = issue_batch(session, registry, issuer_profile(session, registry), make_requests(3), "tester")
    batch = storage.get_batch(session, result.batch_id)
    batch.state, batch.tx_hash = storage.ANCHORING, None
    session.commit()
    [finished] = resume_pending(session, registry)
    assert finished.tx_hash == result.tx_hash
    assert len(anchor_events(registry, result.merkle_root)) == 1
    doc = storage.get_credential(session, storage.search_credentials(session)[0].id).document_dict
    assert anchor_of(doc)["anchor"]["transactionHash"] == result.tx_hash


def test_a_batch_signed_for_another_registry_is_not_anchored_here(session, registry):
    result = issue_batch(session, registry, issuer_profile(session, registry), make_requests(1), "tester")
    batch = storage.get_batch(session, result.batch_id)
    batch.state, batch.registry_address = storage.PENDING, "0x" + "11" * 20
    session.commit()
    assert resume_pending(session, registry) == []
    session.refresh(batch)
    assert batch.state == storage.PENDING and "signed for registry" in batch.error


def test_revocation_goes_on_chain_and_into_the_record(session, registry):
    result = issue_batch(session, registry, issuer_profile(session, registry), make_requests(2), "registrar@x.edu")
    target = storage.search_credentials(session, batch_id=result.batch_id)[0]
    revocation = revoke_credential(session, registry, target.uuid, "issued in error", "registrar@x.edu")
    assert revocation.tx_hash.startswith("0x")
    on_chain = registry.revocation_of(target.fingerprint)
    assert on_chain.revoked and on_chain.reason == "issued in error"
    assert target.status == storage.REVOKED, "the record loaded before says so, without a refresh"
    assert storage.get_revocation(session, target.id).revoked_by == "registrar@x.edu"
    from kernel.audit import AuditEntry

    entry = session.query(AuditEntry).filter_by(action="credential_revoked", subject=target.id).one()
    assert entry.detail_dict["reason"] == "issued in error"
    with pytest.raises(RevocationError, match="already revoked"):
        revoke_credential(session, registry, target.id, "again", "registrar@x.edu")
    with pytest.raises(RevocationError, match="reason"):
        revoke_credential(session, registry, storage.search_credentials(session, status="active")[0].id, " ", "r")
    with pytest.raises(CredentialNotFound):
        revoke_credential(session, registry, "urn:uuid:nope", "x", "r")


def test_revocation_already_on_chain_is_recorded_without_resending(session, registry):
    result = issue_batch(session, registry, issuer_profile(session, registry), make_requests(1), "tester")
    target = storage.search_credentials(session, batch_id=result.batch_id)[0]
    tx = registry.revoke(target.fingerprint, "withdrawn")  # as if we crashed before the DB write
    revocation = revoke_credential(session, registry, target.id, "withdrawn", "tester")
    assert revocation.tx_hash == tx.tx_hash


def test_an_empty_batch_is_refused(session, registry):
    with pytest.raises(IssuanceError):
        issue_batch(session, registry, issuer_profile(session, registry), [], "tester")


def test_hashed_emails_publish_only_a_salted_hash(session, registry, tmp_path):
    import hashlib

    result = issue_batch(session, registry, issuer_profile(session, registry), make_requests(2), "tester",
                         out_dir=tmp_path, hash_emails=True)
    for path in result.files:
        doc = json.loads(path.read_text())
        assert "@example.edu" not in path.read_text()
        email = next(i for i in doc["credentialSubject"]["identifier"] if i["identityType"] == "emailAddress")
        stored = storage.get_credential(session, doc["id"])
        expected = hashlib.sha256((stored.recipient_email + email["salt"]).encode()).hexdigest()
        assert email["hashed"] is True and email["identityHash"] == f"sha256${expected}"


def test_a_failure_before_anchoring_marks_the_batch_failed_and_saves_nothing(session, registry):
    bad = [make_requests(1)[0], CredentialRequest("X", "x@example.edu", "A", "Diploma", "D", "not a date")]
    with pytest.raises(AttributeError):
        issue_batch(session, registry, issuer_profile(session, registry), bad, "tester", batch_id="doomed")
    batch = storage.get_batch(session, "doomed")
    assert batch.state == storage.FAILED and "nothing was issued" in batch.error
    assert storage.count_credentials(session, batch_id="doomed") == 0
    assert resume_pending(session, registry) == []


@pytest.mark.ganache
def test_issue_and_resume_on_ganache_too(tmp_path, ganache_url, db_urls):
    """The same issuance and the log look-up resume relies on, on a second EVM."""
    settings = Settings.from_env(data_dir=tmp_path / "data", rpc_url=ganache_url)
    database = open_database(db_urls.fresh())
    with open_registry(settings) as registry, database.session() as session:
        result = issue_batch(session, registry, issuer_profile(session, registry, settings), make_requests(3), "tester")
        batch = storage.get_batch(session, result.batch_id)
        batch.state = storage.ANCHORING  # as if it crashed after the transaction
        session.commit()
        [finished] = resume_pending(session, registry)
        assert finished.tx_hash == result.tx_hash
        assert len(anchor_events(registry, result.merkle_root)) == 1


def test_migrations_add_the_source_digest_to_an_older_database(db_urls):
    """On the session's engine (SQLite or PostgreSQL): a later step upgrades an
    older database in place."""
    from sqlalchemy import inspect, text

    database = open_database(db_urls.fresh())
    with database.engine.begin() as conn:  # make it look like a database from before 1004
        conn.execute(text("DROP INDEX ix_credential_batches_source_digest"))
        conn.execute(text("ALTER TABLE credential_batches DROP COLUMN source_digest"))
        conn.execute(text("DELETE FROM schema_migrations WHERE name = '1004_batch_source_digest'"))
    assert database.migrate() == ["1004_batch_source_digest"]
    inspector = inspect(database.engine)
    assert "source_digest" in {c["name"] for c in inspector.get_columns("credential_batches")}
    assert "ix_credential_batches_source_digest" in {i["name"] for i in inspector.get_indexes("credential_batches")}
    assert database.migrate() == []


def test_a_refused_batch_is_failed_and_can_be_retried_once_the_cause_is_fixed(session, registry):
    registry.deauthorize_issuer(registry.issuer.address)
    with pytest.raises(IssuanceError, match="not an authorised issuer"):
        issue_batch(session, registry, issuer_profile(session, registry), make_requests(2), "tester",
                    batch_id="refused")
    batch = storage.get_batch(session, "refused")
    assert batch.state == storage.FAILED and "--retry-failed" in batch.error
    assert resume_pending(session, registry) == [], "failed batches wait for an explicit retry"
    registry.authorize_issuer(registry.issuer.address)
    [finished] = resume_pending(session, registry, retry_failed=True)
    assert finished.batch_id == "refused" and registry.anchor_of(finished.merkle_root).count == 2
    assert storage.count_credentials(session, batch_id="refused", status=storage.ACTIVE) == 2


@pytest.mark.sqlite_only("about SQLite's WAL")
def test_the_first_commit_after_a_large_batch_starts_the_wal_again(database, registry, chain_settings):
    """Found with strace in the issuing bench: after a batch, the next
    one-row commit (the next batch's row) went to the end of the batch's
    WAL, over SQLite's 1,000-page threshold, and ran a checkpoint that synced
    the database file: 95-150 ms for one row. The batch's background
    checkpoint now restarts the WAL once everything is copied."""
    import threading

    with database.session() as session:
        issue_batch(session, registry, issuer_profile(session, registry, chain_settings), make_requests(3000),
                    "tester")
    for thread in threading.enumerate():
        if thread.name == "attest-wal-checkpoint":
            thread.join(30)
    with database.session() as session:
        issuer_profile(session, registry, chain_settings)
        session.execute(text("INSERT INTO audit_log (at, actor, action, subject, detail) "
                             "VALUES (CURRENT_TIMESTAMP, 'tester', 'probe', 'wal', '{}')"))
        session.commit()
    with database.engine.connect() as conn:
        frames = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()[1]
    # Without the restart: about 1,880 pages (the batch's). With it, the
    # anchoring's and this row's few pages.
    assert frames < 100, f"the one-row commit was appended to a WAL of {frames} pages"
