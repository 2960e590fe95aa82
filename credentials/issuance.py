"""Issuing credentials: one batch = many signed documents, one Merkle root,
one anchoring transaction. The same steps run inline (`issue_batch`, the CLI
and the tests) or as the `issue_batch` job in a worker (`credentials.jobs`).

Never lose, never double. The order of events is what makes that true:

1. the batch row is committed `pending` with its count (and, for a job, the
   job that will issue it);
2. every credential is built (with its status-list entry), fingerprinted and
   given both proofs (EIP-712 here, Data Integrity on worker processes), the
   Merkle tree built, and the batch's root and all its credentials are written
   and COMMITTED in one transaction — from here on nothing the registrar asked
   for can be lost; a process killed before this commit leaves no credential
   at all, and the step simply runs again (`sign_and_save` is a no-op once the
   root is set). Only the batch's status-list slots are reserved (and
   committed) before: run again, it gets the same ones;
3. the root is anchored (one transaction; the chain is asked first);
4. the batch becomes `anchored` with its transaction, and the JSON files are
   written. No credential row is written again: each one's transaction hash
   and pending/active status are read from its batch (`CredentialRecord`).

A crash or a dead chain between 2 and 4 leaves the batch `pending` (or
`anchoring`). `resume_pending` — run by `credentials resume`, and by a worker
taking up a job whose worker died — asks the registry whether the root is
already anchored *before* sending anything: if it is (the crash came after the
transaction), it finds that transaction in the `RootAnchored` log and only
completes step 4. The contract itself refuses a root twice, so even two racing
resumers cannot anchor a batch twice.

Test-only crash hook: with ATTEST_TEST_CRASH_AT=during_signing, after_pending
(after step 2) or after_anchor (after step 3) the process sends itself SIGKILL
on the spot: the kernel ends it there, no clean-up, as a power cut would. The crash tests use it in a
subprocess; nothing else may set it.
"""

from __future__ import annotations

import hashlib
import os
import signal
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from credentials import identity, status_store, storage
from credentials.canonical import keccak256, to_hex
from credentials.chain import ChainError, Registry, TransactionReverted, TxResult
from credentials.document import CredentialRequest, IssuerProfile, document_json, rfc3339  # noqa: F401 - document_json re-exported
from credentials.ed25519 import KeyRing
from credentials.issuing_pool import BatchTerms, IssuingPool, assemble, issue_one, shared_issuing_pool
from credentials.merkle import MerkleBuilder
from credentials.signing import Signer
from credentials.storage import Batch, CredentialRecord, Revocation
from kernel import audit
from kernel.database import bulk_transaction, utcnow
from kernel.heap import collector_paused
from kernel.jobs.model import Stage
from kernel.settings import Settings

CRASH_ENV = "ATTEST_TEST_CRASH_AT"
MAX_BATCH = 2**32 - 1  # the contract records the count as uint32
PROGRESS_STEP = 500   # credentials between two progress reports while signing
# From this many credentials on, Data Integrity proofs are signed on worker
# processes: below it, starting (or waking) a pool costs more than it saves.
POOL_FROM = 400

# What every long step reports: the stage, how many of how many are done.
Progress = Callable[[Stage, int, int], None]

ROOT_ANCHORED_TOPIC = to_hex(keccak256(b"RootAnchored(bytes32,address,uint256)"))
CREDENTIAL_REVOKED_TOPIC = to_hex(keccak256(b"CredentialRevoked(bytes32,address,string)"))


class IssuanceError(RuntimeError):
    """Issuing cannot go on; the message says why and what to do."""


class BatchLeftPending(ChainError):
    """The chain could not anchor the batch now; it is saved as `pending` and
    `credentials resume` (or a worker, soon) will anchor it."""

    def __init__(self, batch_id: str, reason: str):
        super().__init__(f"batch {batch_id} is saved but not anchored: {reason}. It stays pending; "
                         "`flask --app app credentials resume` (or the next start) anchors it")
        self.batch_id = batch_id
        self.reason = reason


class CredentialNotFound(LookupError):
    pass


class RevocationError(ValueError):
    pass


@dataclass
class BatchResult:
    batch_id: str
    count: int
    merkle_root: str
    tx_hash: str | None
    gas_used: int | None
    block_number: int | None = None
    files: list[Path] = field(default_factory=list)

    def summary(self) -> dict:
        """What `credentials issue` prints (DESIGN.md)."""
        return {"batch": self.batch_id, "count": self.count, "merkle_root": self.merkle_root,
                "tx_hash": self.tx_hash, "gas_used": self.gas_used}


def source_digest(data: bytes) -> str:
    """The sha256 a batch records of the file it came from."""
    return hashlib.sha256(data).hexdigest()


def issuer_profile(session: Session, registry: Registry, settings: Settings | None = None) -> IssuerProfile:
    """The institution as credentials name it: its did:web (from the public URL),
    name, address and logo (the stored profile, else ATTEST_INSTITUTION_NAME /
    ATTEST_PUBLIC_URL / ATTEST_INSTITUTION_LOGO), signing with the registry's
    issuer key on the registry's chain."""
    defaults = settings.profile_defaults if settings is not None else identity.ProfileDefaults()
    inst = identity.load_institution(session, defaults)
    return IssuerProfile(name=inst.name, address=registry.issuer.address, chain_id=registry.chain_id,
                         url=inst.public_url, did_web=inst.did, image=inst.logo_url)


def _crash_point(name: str) -> None:
    """Test-only: die here, without clean-up, when ATTEST_TEST_CRASH_AT names this point."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def _quiet(stage: Stage, done: int, total: int) -> None:
    pass


# ----- step 1: the batch row -------------------------------------------------------

def create_batch(session: Session, registry: Registry, count: int, actor: str, batch_id: str | None = None,
                 source: str | None = None) -> Batch:
    """The batch row, `pending` (the caller commits, with the job that issues it)."""
    if count == 0:
        raise IssuanceError("a batch needs at least one credential")
    if count > MAX_BATCH:
        raise IssuanceError(f"a batch holds at most {MAX_BATCH} credentials")
    batch = Batch(id=batch_id or str(uuid.uuid4()), created_by=actor, state=storage.PENDING, count=count,
                  chain_id=registry.chain_id, registry_address=registry.address, source_digest=source,
                  created_at=utcnow())
    session.add(batch)
    return batch


# ----- step 2: sign and save --------------------------------------------------------

@collector_paused()  # a full collection would walk the whole heap: see kernel.heap
def sign_and_save(session: Session, registry: Registry, profile: IssuerProfile,
                  requests: Sequence[CredentialRequest], batch: Batch, actor: str, hash_emails: bool = False,
                  progress: Progress = _quiet, keyring: KeyRing | None = None,
                  pool: IssuingPool | None = None) -> None:
    """Documents, fingerprints, both proofs, the tree; then the root and every
    credential in ONE committed transaction. Does nothing once the batch has
    its root (a resumed job), so it can run again after any crash.

    With `keyring`, each credential gets a Data Integrity proof (eddsa-rdfc-2022)
    beside the anchor proof. Without it (the bench's "anchor proof only"
    figure) only the anchor proof is made. The per-credential work (document,
    fingerprint, EIP-712 signature, Data Integrity proof, JSON text) runs on
    worker processes (`pool`, else this process's shared pool for batches of
    POOL_FROM or more, see credentials.issuing_pool) while this process builds
    the Merkle tree as the credentials stream in; small batches run here.

    The one thing committed before the final commit is the batch's reservation
    of status-list slots (done once, kept on the batch row), so a batch signed
    again gets the same indexes; a reservation whose batch never commits is a
    hole in a list, which loses nothing."""
    if batch.merkle_root is not None:
        return
    if len(requests) != batch.count:
        raise IssuanceError(f"batch {batch.id} was created for {batch.count} credentials, got {len(requests)}")
    if registry.issuer.address != profile.address:
        raise IssuanceError(f"the issuer profile names {profile.address} but the key signs as "
                            f"{registry.issuer.address}")
    if profile.url is None:
        raise IssuanceError("the issuer profile has no public URL: status lists and the Attest context live there")
    if batch.status_slots is None:
        slots = status_store.reserve_slots(session, profile.did, profile.url, batch.count)
        batch.status_slots = status_store.slots_json(slots)
        session.commit()
    assigned = status_store.assign(session, status_store.slots_from_json(batch.status_slots))
    statuses = [(record.url, index) for record, index in assigned]
    total = len(requests)
    terms = BatchTerms(profile=profile, chain_id=registry.chain_id, registry=registry.address,
                       created=rfc3339(datetime.now(UTC)), batch_id=batch.id, hash_emails=hash_emails,
                       verification_method=keyring.verification_method(profile.did) if keyring else None)
    ed_key = keyring.signing_key if keyring is not None else None
    eth_key = bytes(registry.issuer.key)
    if pool is None and total >= POOL_FROM:
        pool = shared_issuing_pool(eth_key, ed_key)
    # A pool with an Ed25519 key issues anchor-only batches too (it leaves the key unused).
    if pool is not None and (pool.address != registry.issuer.address
                             or (keyring is not None and pool.ed_public != keyring.current.public_key_multibase)):
        raise IssuanceError("the issuing pool holds other keys than this batch's issuer")
    progress(Stage.SIGNING, 0, total)
    if pool is not None:
        chunks = pool.issue(requests, statuses, terms)
    else:
        signer = Signer(eth_key)
        chunks = ([issue_one(r, st, terms, signer, ed_key)]
                  for r, st in zip(requests, statuses, strict=True))
    # Each credential's row is built as it arrives (its values in
    # storage.LINE_COLUMNS order), while the workers sign the next ones; its
    # document slot holds the worker's pieces until the tree is complete.
    lines: list[list] = []
    builder = MerkleBuilder()
    reported = 0
    crash_at = min(PROGRESS_STEP, (total + 1) // 2)  # mid-batch, even for a small one
    now, pending, batch_id = utcnow(), storage.CREDENTIAL_PENDING, batch.id
    for chunk in chunks:
        for k, item in enumerate(chunk, len(lines)):
            builder.add(item.leaf)
            r = requests[k]
            lines.append([item.id, batch_id, r.recipient_name, r.recipient_email, r.achievement_name,
                          r.achievement_type, r.awarded_on, r.valid_until, r.grade, to_hex(item.leaf), item,
                          pending, now, assigned[k][0].id, statuses[k][1]])
        if len(lines) - reported >= PROGRESS_STEP or len(lines) == total:
            reported = len(lines)
            progress(Stage.SIGNING, reported, total)
        if len(lines) >= crash_at > len(lines) - len(chunk):
            _crash_point("during_signing")
    if len(lines) != total:
        raise IssuanceError(f"the signing gave {len(lines)} credentials for a batch of {total}")
    tree = builder.tree()
    root = to_hex(tree.root)

    progress(Stage.SAVING, total, total)
    at, paths = storage.DOCUMENT_AT, tree.path_texts()

    def assembled() -> Iterator[list]:
        # Lazily: PostgreSQL's server takes each row as the next is assembled.
        for line, path in zip(lines, paths, strict=True):
            line[at] = assemble(line[at], root, path)
            yield line

    with bulk_transaction(session):  # committed at its end
        # The DID document and the verifier's own trust entry list every key and
        # registry the institution has issued with, from the first batch on.
        identity.record_issuing_identity(session, profile.did, registry.chain_id, registry.issuer.address,
                                         registry.address)
        if keyring is not None:
            identity.record_ed25519_keys(session, profile.did, [r.public_key_multibase for r in keyring.records])
        storage.insert_credential_lines(session, assembled())  # COPY on PostgreSQL
        session.execute(update(Batch).where(Batch.id == batch.id).values(merkle_root=root, error=None))
        audit.record(session, actor, "batch_created", batch.id, count=total, merkle_root=root)
    session.refresh(batch)
    _crash_point("after_pending")


# ----- step 3: anchor ---------------------------------------------------------------

def anchor_batch(session: Session, registry: Registry, batch: Batch, progress: Progress = _quiet) -> TxResult | None:
    """Anchor the batch's root exactly once: if the chain already has it, find
    the transaction that put it there instead of sending another. Raises
    BatchLeftPending (the batch saved, pending) when the chain cannot take it now."""
    _check_same_registry(batch, registry)
    if batch.state == storage.ANCHORED:
        return None
    try:
        record = registry.anchor_of(batch.merkle_root)
        if record is not None:
            return find_anchor_tx(registry, batch.merkle_root, record.block_number)
    except Exception as exc:  # noqa: BLE001 - any failure to ask means "not now"
        _leave_pending(session, batch, exc)
    batch.state, batch.error = storage.ANCHORING, None
    session.commit()
    progress(Stage.ANCHORING, 0, batch.count)
    try:
        tx = registry.anchor(batch.merkle_root, batch.count)
    except TransactionReverted as exc:
        # A racing resumer may have anchored it between our check and our send.
        record = _anchor_or_none(registry, batch.merkle_root)
        if record is not None:
            return find_anchor_tx(registry, batch.merkle_root, record.block_number)
        batch.state = storage.FAILED
        batch.error = (f"the registry refused the batch: {exc}. Its credentials are saved: fix the cause "
                       "(e.g. authorise the issuer) and run `credentials resume --retry-failed`")
        session.commit()
        raise IssuanceError(f"batch {batch.id}: {batch.error}") from exc
    except Exception as exc:  # noqa: BLE001 - unreachable node, timeout, refused send: retry later
        _leave_pending(session, batch, exc)
    _crash_point("after_anchor")
    return tx


def _anchor_or_none(registry: Registry, root: str):
    try:
        return registry.anchor_of(root)
    except Exception:  # noqa: BLE001
        return None


def _leave_pending(session: Session, batch: Batch, exc: Exception):
    session.rollback()
    batch = session.get(Batch, batch.id)
    reason = str(exc) or exc.__class__.__name__
    batch.state, batch.error = storage.PENDING, reason
    session.commit()
    raise BatchLeftPending(batch.id, reason) from exc


def _check_same_registry(batch: Batch, registry: Registry) -> None:
    """A batch's signatures name its registry and chain; anchoring it in
    another registry would make every credential in it fail verification."""
    if batch.chain_id != registry.chain_id or (batch.registry_address or "").lower() != registry.address.lower():
        raise IssuanceError(
            f"batch {batch.id} was signed for registry {batch.registry_address} on chain {batch.chain_id}, "
            f"but this is {registry.address} on chain {registry.chain_id}; it can only be anchored there")


def find_anchor_tx(registry: Registry, root: str, block_number: int) -> TxResult | None:
    """The transaction that anchored `root`, from its RootAnchored log."""
    logs = registry.w3.eth.get_logs({
        "address": registry.address, "fromBlock": block_number, "toBlock": block_number,
        "topics": [ROOT_ANCHORED_TOPIC, root.lower()],
    })
    if not logs:
        return None
    tx_hash = logs[0]["transactionHash"]
    receipt = registry.w3.eth.get_transaction_receipt(tx_hash)
    registry.wait_confirmations(receipt["blockNumber"])
    return TxResult(tx_hash.to_0x_hex(), receipt["blockNumber"], receipt["gasUsed"])


# ----- step 4: complete ------------------------------------------------------------

@collector_paused()  # with --out, every document is read back
def complete_batch(session: Session, batch: Batch, tx: TxResult | None, actor: str,
                   out_dir: Path | str | None = None, progress: Progress = _quiet) -> BatchResult:
    """The batch `anchored` with its transaction, the files. No credential row
    is written: each reads its transaction hash and its status from the batch
    (CredentialRecord.document and .status), so this is one row whatever the
    batch size, and the files are those documents as read."""
    progress(Stage.FINISHING, 0, batch.count)
    tx_hash = tx.tx_hash if tx else batch.tx_hash
    anchoring = batch.state != storage.ANCHORED
    if anchoring:
        batch.state, batch.error, batch.anchored_at = storage.ANCHORED, None, utcnow()
        if tx is not None:
            batch.tx_hash, batch.block_number, batch.gas_used = tx.tx_hash, tx.block_number, tx.gas_used
        audit.record(session, actor, "batch_anchored", batch.id, count=batch.count,
                     merkle_root=batch.merkle_root, tx_hash=tx_hash)
        session.flush()  # the documents read below have the batch's hash in them
    with ThreadPoolExecutor(1, thread_name_prefix="attest-files") as pool:
        # The files are written while the batch row is committed. Files before
        # the commit are harmless: the root is on chain, so they are valid
        # credentials.
        writing = None
        if out_dir is not None:
            rows = session.execute(select(CredentialRecord.id, CredentialRecord.document)
                                   .where(CredentialRecord.batch_id == batch.id)).all()
            writing = pool.submit(write_files, out_dir, [r.document for r in rows], [r.id for r in rows])
        if anchoring:
            session.commit()
            storage.forget_derived(session, batch_id=batch.id)
        files = writing.result() if writing is not None else []
    progress(Stage.DONE, batch.count, batch.count)
    return BatchResult(batch.id, batch.count, batch.merkle_root, batch.tx_hash, batch.gas_used, batch.block_number,
                       files)


def finish_batch(session: Session, registry: Registry, batch: Batch, actor: str,
                 out_dir: Path | str | None = None, progress: Progress = _quiet) -> BatchResult:
    """Steps 3 and 4 for a saved batch: what a resumed job does."""
    tx = anchor_batch(session, registry, batch, progress)
    return complete_batch(session, session.get(Batch, batch.id), tx, actor, out_dir, progress)


def credential_filename(credential_id: str) -> str:
    return credential_id.removeprefix("urn:uuid:") + ".json"


def write_files(out_dir: Path | str, documents: list[str], ids: list[str]) -> list[Path]:
    """One `<uuid>.json` per credential, exactly the stored document (0600: they
    name people)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for credential_id, document in zip(ids, documents, strict=True):
        path = out / credential_filename(credential_id)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            data = memoryview(document.encode("utf-8"))
            while data:
                data = data[os.write(fd, data):]
        finally:
            os.close(fd)
        paths.append(path)
    return paths


def export_batch(session: Session, batch_id: str, out_dir: Path | str) -> list[Path]:
    """Write a stored batch's credentials as files again (e.g. after a resume)."""
    rows = session.execute(select(CredentialRecord.id, CredentialRecord.document)
                           .where(CredentialRecord.batch_id == batch_id).order_by(CredentialRecord.id)).all()
    return write_files(out_dir, [r.document for r in rows], [r.id for r in rows])


# ----- all at once, in this process --------------------------------------------------

def issue_batch(db_session: Session, registry: Registry, profile: IssuerProfile,
                requests: Sequence[CredentialRequest], actor: str, progress: Progress | None = None,
                out_dir: Path | str | None = None, batch_id: str | None = None,
                hash_emails: bool = False, source_digest: str | None = None,
                keyring: KeyRing | None = None, pool: IssuingPool | None = None) -> BatchResult:
    """Issue `requests` as one anchored batch, in this process (see the module
    doc for the order of events), with both proofs when `keyring` is given.
    Raises BatchLeftPending if the chain cannot take the transaction now; the
    batch is then saved and `resume_pending` finishes it."""
    progress = progress or _quiet
    batch = create_batch(db_session, registry, len(requests), actor, batch_id, source_digest)
    db_session.commit()
    try:
        sign_and_save(db_session, registry, profile, requests, batch, actor, hash_emails, progress,
                      keyring=keyring, pool=pool)
    except BaseException as exc:
        # Nothing was saved but the batch row: say so on it, for the page that watches it.
        db_session.rollback()
        db_session.execute(update(Batch).where(Batch.id == batch.id).values(
            state=storage.FAILED, error=f"failed before anchoring, nothing was issued: {exc!r}"))
        db_session.commit()
        raise
    return finish_batch(db_session, registry, db_session.get(Batch, batch.id), actor, out_dir, progress)


def check_repeat(session: Session, digest: str, again: bool) -> str | None:
    """Why this file must not be issued now, or None. The same file twice is
    nearly always a retry that would give everyone a second credential."""
    earlier = storage.batches_from_source(session, digest)
    unfinished = [b for b in earlier if b.state in storage.UNFINISHED_STATES]
    if unfinished:
        return (f"this file is already batch {unfinished[0].id}, saved and being anchored: resume it "
                "(`credentials resume`, or Resume on the registrar page) instead of issuing it again")
    if earlier and not again:
        return (f"this file was issued already as batch {earlier[-1].id} ({earlier[-1].count} credentials); "
                "issue it again only on purpose (--again, or tick “issue it again”)")
    return None


# ----- resuming -------------------------------------------------------------------

def resume_pending(db_session: Session, registry: Registry, out_dir: Path | str | None = None,
                   actor: str = "system", progress: Progress | None = None,
                   retry_failed: bool = False) -> list[BatchResult]:
    """Finish every saved batch left `pending`/`anchoring`, each exactly once
    (with `retry_failed`, also saved batches the chain refused before, e.g.
    while the issuer was not authorised).

    Returns the batches it finished. A batch signed for another registry is
    left alone (its error says why); if the chain is down, raises
    BatchLeftPending at the first batch, leaving it and the rest pending. A
    batch not saved yet (no root) belongs to its job, which signs it again."""
    finished = []
    for batch in storage.unfinished_batches(db_session, include_failed=retry_failed):
        if batch.merkle_root is None:
            continue
        try:
            _check_same_registry(batch, registry)
        except IssuanceError as exc:
            batch.error = str(exc)
            db_session.commit()
            continue
        finished.append(finish_batch(db_session, registry, batch, actor, out_dir, progress or _quiet))
    return finished


# ----- revoking -------------------------------------------------------------------

def revoke_credential(db_session: Session, registry: Registry, credential_id: str, reason: str,
                      actor: str, keyring: KeyRing | None = None) -> Revocation:
    """Revoke on chain (by fingerprint; the reason is public, so it must hold no
    personal data), then record it and republish the credential's status list
    with its bit set, in one commit (without `keyring` the list is marked for
    rebuilding and rebuilt when next served). If the chain already has the
    revocation (a crash after the transaction), it is recorded without
    sending again."""
    record = storage.get_credential(db_session, credential_id)
    if record is None:
        raise CredentialNotFound(f"no credential {credential_id}")
    reason = (reason or "").strip()
    if not reason:
        raise RevocationError("a reason is required")
    if len(reason.encode("utf-8")) > 256:
        raise RevocationError("the reason is longer than 256 bytes (it is written on chain, keep it short)")
    if record.status == storage.REVOKED:
        raise RevocationError(f"credential {record.id} is already revoked")
    batch = db_session.get(Batch, record.batch_id)
    _check_same_registry(batch, registry)
    try:
        on_chain = registry.revocation_of(record.fingerprint)
        if on_chain.revoked:
            tx_hash = find_revocation_tx(registry, record.fingerprint)
            reason = on_chain.reason
        else:
            tx_hash = registry.revoke(record.fingerprint, reason).tx_hash
    except ChainError:
        raise
    except Exception as exc:  # noqa: BLE001 - the node went away mid-call
        raise ChainError(f"cannot revoke {record.id} now, the chain did not answer "
                         f"({exc.__class__.__name__}); nothing was recorded, try again") from exc
    revocation = Revocation(credential_id=record.id, reason=reason, revoked_by=actor, revoked_at=utcnow(),
                            tx_hash=tx_hash)
    db_session.add(revocation)
    record.stored_status = storage.REVOKED
    if record.status_list is not None:
        db_session.flush()
        status_list = db_session.get(storage.StatusListRecord, record.status_list)
        if keyring is not None:
            status_store.publish(db_session, status_list, keyring)
        else:
            status_list.document = None
    audit.record(db_session, actor, "credential_revoked", record.id, reason=reason, tx_hash=tx_hash,
                 fingerprint=record.fingerprint)
    db_session.commit()
    return revocation


def find_revocation_tx(registry: Registry, fingerprint: str) -> str | None:
    logs = registry.w3.eth.get_logs({
        "address": registry.address, "fromBlock": registry.deployed_block or 0, "toBlock": "latest",
        "topics": [CREDENTIAL_REVOKED_TOPIC, fingerprint.lower()],
    })
    return logs[-1]["transactionHash"].to_0x_hex() if logs else None
