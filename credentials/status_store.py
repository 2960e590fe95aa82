"""The installation's Bitstring Status Lists in the database: slots reserved
for a batch, the indexes those slots become, and the signed list credential
each list publishes at `<public URL>/status/<list id>`.

Allocation. A list has `length` bits (131,072, the Recommendation's minimum,
so fetching it says nothing about which credential a verifier holds). A batch
reserves a run of slots when its row is written (`reserve_slots`, in the
batch's own short transaction), so a batch signed again after a crash gets the
very same indexes; slot n of a list is bit `statuslist.slot_index(secret, n)`,
a keyed permutation, so indexes are unique by construction and random-looking
(the Recommendation's privacy advice). Reserved slots of a batch that never
commits stay unused: a hole in a list loses nothing.

The list credential is rebuilt from the credentials the database records as
revoked (`publish`), signed with the institution's current Ed25519 key:
`issuance.revoke_credential` does it in the transaction that records the
revocation, and `list_document` rebuilds a list whose document is missing, so
it can be regenerated from the database at any time. The chain stays the
source of truth; revocations are recorded only after the chain has them.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from credentials import dataintegrity, statuslist
from credentials.ed25519 import KeyRing
from credentials.storage import REVOKED, CredentialRecord, StatusListRecord
from kernel.database import utcnow

STATUS_PATH = "/status/"
Slots = list[tuple[int, int, int]]  # (list id, first slot, count)


def list_url(public_url: str, list_id: int) -> str:
    return f"{public_url.rstrip('/')}{STATUS_PATH}{list_id}"


def _open_list(session: Session, issuer_did: str, public_url: str, length: int) -> StatusListRecord:
    record = StatusListRecord(url="", issuer_did=issuer_did, length=length, allocated=0,
                              secret=secrets.token_hex(32), created_at=utcnow())
    session.add(record)
    session.flush()  # the id is the URL's last segment
    record.url = list_url(public_url, record.id)
    return record


def reserve_slots(session: Session, issuer_did: str, public_url: str, count: int,
                  length: int = statuslist.MIN_ENTRIES) -> Slots:
    """Reserve `count` slots in the issuer's open lists (opening new ones as
    they fill); the caller commits, with the batch row. Safe against
    concurrent batches: each run is taken by one atomic UPDATE guarded by the
    list's length, so two batches never get the same slot."""
    reserved: Slots = []
    remaining = count
    while remaining:
        record = session.scalar(select(StatusListRecord)
                                .where(StatusListRecord.issuer_did == issuer_did,
                                       StatusListRecord.allocated < StatusListRecord.length)
                                .order_by(StatusListRecord.id.desc()).limit(1))
        if record is None:
            record = _open_list(session, issuer_did, public_url, length)
        take = min(remaining, record.length - record.allocated)
        done = session.execute(update(StatusListRecord)
                               .where(StatusListRecord.id == record.id,
                                      StatusListRecord.allocated + take <= StatusListRecord.length)
                               .values(allocated=StatusListRecord.allocated + take)
                               .execution_options(synchronize_session=False))
        if done.rowcount != 1:
            session.expire(record)  # another batch took part of it first: look again
            continue
        session.expire(record)
        end = session.scalar(select(StatusListRecord.allocated).where(StatusListRecord.id == record.id))
        reserved.append((record.id, end - take, take))
        remaining -= take
    return reserved


def slots_json(slots: Slots) -> str:
    return json.dumps([list(s) for s in slots])


def slots_from_json(text: str | None) -> Slots:
    return [tuple(s) for s in json.loads(text)] if text else []


def assign(session: Session, slots: Slots) -> list[tuple[StatusListRecord, int]]:
    """(list, bit index) for each credential of a batch, in order."""
    ids = {list_id for list_id, _, _ in slots}
    lists = {r.id: r for r in session.scalars(select(StatusListRecord).where(StatusListRecord.id.in_(ids)))}
    out = []
    for list_id, first, count in slots:
        record = lists[list_id]
        key = bytes.fromhex(record.secret)
        out += [(record, statuslist.slot_index(key, slot, record.length)) for slot in range(first, first + count)]
    return out


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def revoked_indexes(session: Session, list_id: int) -> Sequence[int]:
    return session.scalars(select(CredentialRecord.status_index).where(
        CredentialRecord.status_list == list_id, CredentialRecord.stored_status == REVOKED)).all()


def publish(session: Session, record: StatusListRecord, keyring: KeyRing) -> dict:
    """Rebuild the list credential from the revoked credentials, sign it with
    Data Integrity, and keep it on the row (the caller commits)."""
    bits = statuslist.StatusList.from_indexes(revoked_indexes(session, record.id), record.length)
    now = _now()
    unsigned = statuslist.status_list_credential(record.url, record.issuer_did, bits, now)
    proof = dataintegrity.sign_eddsa_rdfc_2022(unsigned, keyring.signing_key,
                                               keyring.verification_method(record.issuer_did), now)
    document = dataintegrity.add_proof(unsigned, proof)
    record.document = json.dumps(document, separators=(",", ":"))
    record.generated_at = utcnow()
    return document


def list_document(session: Session, list_id: int, keyring: Callable[[], KeyRing]) -> dict | None:
    """The signed list credential as published now (rebuilt, and committed,
    if it is missing), or None for a list this installation does not have.
    `keyring` is asked for only when the list must be signed."""
    return _current(session, session.get(StatusListRecord, list_id), keyring)


def document_at(session: Session, url: str, keyring: Callable[[], KeyRing]) -> dict | None:
    """The same by the list's URL (what a credential's entry names)."""
    text = document_text_at(session, url, keyring)
    return None if text is None else json.loads(text)


def document_text_at(session: Session, url: str, keyring: Callable[[], KeyRing]) -> str | None:
    """The stored JSON text of the list at `url`: what the verifier compares
    with the copy it holds."""
    return _current_text(session, session.scalar(select(StatusListRecord).where(StatusListRecord.url == url)),
                         keyring)


def _current(session: Session, record: StatusListRecord | None, keyring: Callable[[], KeyRing]) -> dict | None:
    text = _current_text(session, record, keyring)
    return None if text is None else json.loads(text)


def _current_text(session: Session, record: StatusListRecord | None, keyring: Callable[[], KeyRing]) -> str | None:
    """The record's list text, published (and committed) first if it is missing."""
    if record is None:
        return None
    if record.document is None:
        publish(session, record, keyring())
        session.commit()
    return record.document


def republish_all(session: Session, keyring: KeyRing) -> int:
    """Rebuild every list (after a restore, or a key rotation); the caller commits."""
    records = session.scalars(select(StatusListRecord).order_by(StatusListRecord.id)).all()
    for record in records:
        publish(session, record, keyring)
    return len(records)
