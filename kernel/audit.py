"""The audit log: who did what, when. Append-only from the application."""

from __future__ import annotations

import json

from sqlalchemy import Column, DateTime, Integer, String, Text
from sqlalchemy.orm import Session

from kernel.database import Base, create_tables, migration, utcnow


class AuditEntry(Base):
    __tablename__ = "audit_log"
    id = Column(Integer, primary_key=True)
    at = Column(DateTime, nullable=False, default=utcnow, index=True)
    actor = Column(String(255), nullable=False)  # a user's email, or "cli", or "system"
    action = Column(String(64), nullable=False, index=True)
    subject = Column(String(255), nullable=True, index=True)
    detail = Column(Text, nullable=True)  # JSON

    @property
    def detail_dict(self) -> dict:
        return json.loads(self.detail) if self.detail else {}


@migration("0001_audit_log")
def _create(conn):
    create_tables(conn, AuditEntry)


def record(session: Session, actor: str, action: str, subject: str | None = None, **detail) -> AuditEntry:
    """Add an entry to the session (the caller commits with its own change)."""
    entry = AuditEntry(actor=actor, action=action, subject=subject,
                       detail=json.dumps(detail, default=str) if detail else None)
    session.add(entry)
    return entry
