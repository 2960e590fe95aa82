"""What the database says was anchored or revoked, checked against the chain.

Run at every start (`flask serve`, `serve-prod`'s prepare step) and by
`credentials resume`. A chain can lose its last moments: the embedded node
after a power cut (before its state reached the disk), a development chain
reset, a network reorganisation deeper than the confirmations waited. Then the
registrar's page would say "Active" while verification says "that registry has
no record of it". So:

- an anchored batch whose root the registry no longer has goes back to
  `pending` (its credentials too, their proofs back to "no transaction yet"),
  with an error that tells the operator what happened; its job then anchors it
  again, exactly once (the chain is asked first, as always);
- a recorded revocation the registry no longer has is sent again.

Nothing is reconciled against a registry other than the one this installation
anchors in now (a batch of an older registry is left as it is).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from credentials import storage
from credentials.chain import ChainError, Registry
from credentials.storage import Batch, CredentialRecord, Revocation
from kernel import audit

log = logging.getLogger(__name__)

LOST = ("the chain lost this batch's anchor (its node stopped before it saved its state, or the chain was "
        "reset): it is being anchored again. Its credentials are unchanged; they verify once it is")


@dataclass
class Reconciled:
    lost_batches: list[str] = field(default_factory=list)
    resent_revocations: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"warning: batch {b} was anchored but the chain has lost it; anchoring it again"
               for b in self.lost_batches]
        out += [f"warning: the revocation of {c} was lost by the chain; sent again" for c in self.resent_revocations]
        return out


def _reopen(session: Session, batch: Batch) -> None:
    """The batch as it was before its anchoring transaction: pending, proofs
    without a transaction (its credentials read both from the batch)."""
    audit.record(session, "system", "batch_anchor_lost", batch.id, merkle_root=batch.merkle_root,
                 tx_hash=batch.tx_hash, block=batch.block_number)
    batch.state, batch.error = storage.PENDING, LOST
    batch.tx_hash = batch.block_number = batch.gas_used = batch.anchored_at = None
    session.flush()
    storage.forget_derived(session, batch_id=batch.id)


def reconcile(session: Session, registry: Registry, actor: str = "system") -> Reconciled:
    """Check every anchored batch and every revocation of this registry against the chain."""
    done = Reconciled()
    batches = session.scalars(select(Batch).where(Batch.state == storage.ANCHORED,
                                                  Batch.chain_id == registry.chain_id,
                                                  func.lower(Batch.registry_address) == registry.address.lower()))
    for batch in list(batches):
        if registry.anchor_of(batch.merkle_root) is None:
            log.warning("batch %s: root %s is not on chain any more", batch.id, batch.merkle_root)
            _reopen(session, batch)
            done.lost_batches.append(batch.id)
    session.commit()
    rows = session.execute(select(Revocation, CredentialRecord).join(
        CredentialRecord, CredentialRecord.id == Revocation.credential_id).join(
        Batch, Batch.id == CredentialRecord.batch_id).where(
        Batch.chain_id == registry.chain_id, func.lower(Batch.registry_address) == registry.address.lower())).all()
    for revocation, record in rows:
        if not registry.revocation_of(record.fingerprint).revoked:
            try:
                revocation.tx_hash = registry.revoke(record.fingerprint, revocation.reason).tx_hash
            except ChainError as exc:
                log.error("could not send the lost revocation of %s again: %s", record.id, exc)
                continue
            audit.record(session, actor, "revocation_resent", record.id, tx_hash=revocation.tx_hash)
            session.commit()
            done.resent_revocations.append(record.id)
    return done
