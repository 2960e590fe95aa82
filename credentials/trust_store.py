"""The institutions a registrar added to this installation's trust list
(`flask --app app trust add`, the registrar's trust page), kept in the database
so every web worker and machine shares them. Entries are stored in the
trust-list file format (see `credentials.trust`).

Migrations 1102-1109 belong here.
"""

from __future__ import annotations

import json
from dataclasses import replace

from sqlalchemy import Column, DateTime, String, Text, select
from sqlalchemy.orm import Session

from credentials.identity import domain_of
from credentials.trust import TrustEntry, TrustListError, parse_entry, parse_trust_list, validate_did
from kernel import audit
from kernel.database import Base, create_tables, migration, utcnow


class TrustedIssuer(Base):
    __tablename__ = "trusted_issuers"
    did = Column(String(500), primary_key=True)
    entry = Column(Text, nullable=False)  # JSON, one trust-list entry body
    added_by = Column(String(255), nullable=False)
    added_at = Column(DateTime, nullable=False, default=utcnow)


@migration("1102_trusted_issuers")
def _create(conn) -> None:
    create_tables(conn, TrustedIssuer)


SOURCE = "this installation's trust list"


def managed_entries(session: Session) -> list[TrustEntry]:
    rows = session.scalars(select(TrustedIssuer).order_by(TrustedIssuer.added_at, TrustedIssuer.did)).all()
    entries = []
    for row in rows:
        try:
            entries.append(parse_entry(row.did, json.loads(row.entry), f"trusted_issuers[{row.did!r}]", SOURCE))
        except (TrustListError, ValueError):
            continue  # written by add_entry, which validated it; never trust a damaged row
    return entries


def add_entry(session: Session, entry: TrustEntry, actor: str) -> bool:
    """Add or replace `entry` (the caller commits); True when the DID was new."""
    body = entry.as_entry_json()
    parse_entry(entry.did, body, "entry")  # the stored form must read back
    row = session.get(TrustedIssuer, entry.did)
    new = row is None
    if new:
        row = TrustedIssuer(did=entry.did, added_by=actor)
        session.add(row)
    row.entry, row.added_at = json.dumps(body, ensure_ascii=False), utcnow()
    audit.record(session, actor, "trust_added" if new else "trust_updated", entry.did, name=entry.name,
                 entry=body)
    return new


def remove_entry(session: Session, did: str, actor: str) -> bool:
    row = session.get(TrustedIssuer, did.strip())
    if row is None:
        return False
    session.delete(row)
    audit.record(session, actor, "trust_removed", row.did)
    return True


# ----- what `trust add` and the trust page do ----------------------------------------

def entries_from_upload(data: bytes, name: str | None = None) -> list[TrustEntry]:
    """A trust-list file (one or many entries), or one institution's DID document
    (then `name` is the name it is trusted under). TrustListError otherwise."""
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise TrustListError(f"the file is not JSON ({exc})") from exc
    if isinstance(document, dict) and "entries" in document:
        return parse_trust_list(document, "the file")
    if isinstance(document, dict) and isinstance(document.get("id"), str) and "verificationMethod" in document:
        from credentials.didweb import parse_did_document

        try:
            entry = parse_did_document(document["id"], document, "the uploaded file")
        except ValueError as exc:
            raise TrustListError(str(exc)) from exc
        if entry.pins_nothing:
            raise TrustListError("the DID document lists no Ethereum signing key, registry or Ed25519 key")
        return [replace(entry, name=(name or "").strip() or entry.name, source=SOURCE)]
    raise TrustListError("expected a trust list ({\"entries\": {…}}) or a DID document ({\"id\": \"did:web:…\", "
                         "\"verificationMethod\": […]})")


def did_only_entry(did: str, name: str | None = None) -> TrustEntry:
    """An entry that trusts a did:web and pins nothing: its keys and registries are
    read from its DID document, over HTTPS, when a credential names it."""
    did = validate_did(did)
    return TrustEntry(did=did, name=(name or "").strip() or domain_of(did) or did, domain=domain_of(did),
                      source=SOURCE)
