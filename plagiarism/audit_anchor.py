"""The audit trail of a similarity report: its fingerprint, anchored on chain.

A report is stored as the RFC 8785 canonical JSON of its body; its
fingerprint is keccak256 of those bytes, exactly as a credential's is. One
`anchor(fingerprint, 1)` transaction records it in the registry contract, so
anyone holding the report (a misconduct panel, the student) can recompute the
hash and look it up on chain: a report changed by one character no longer
matches. No personal data goes on chain, only the hash.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from credentials.canonical import canonical_json, keccak256, to_hex


def canonical_body(body: dict) -> str:
    """The text a report is stored as: canonical JSON, so hashing is stable."""
    return canonical_json(body).decode("utf-8")


def fingerprint_of(body_text: str) -> str:
    """keccak256 of the canonical form of a stored report body (0x-hex).

    The stored text is parsed and re-canonicalised rather than hashed as is,
    so a body that was reformatted but not changed still matches, while any
    change of content does not.
    """
    return to_hex(keccak256(canonical_json(json.loads(body_text))))


@dataclass(frozen=True)
class Check:
    id: str
    status: str  # "passed", "failed" or "skipped"
    message: str

    def as_dict(self) -> dict:
        return {"id": self.id, "status": self.status, "message": self.message}


def verify(body_text: str, recorded_fingerprint: str, recorded_block: int | None, registry,
           trust=None, institution=None) -> dict:
    """Recompute the fingerprint, look it up on chain and, given the verifier's
    `trust` policy and the `institution` (its did and name) that claims the
    report, confirm the key that anchored it and the registry are that
    institution's own.

    Returns {"valid", "fingerprint", "checks": [...]} in the shape the
    credential verifier uses, so the page and the CLI read both alike.
    """
    checks: list[Check] = []
    try:
        actual = fingerprint_of(body_text)
    except (ValueError, TypeError) as exc:
        checks.append(Check("integrity", "failed", f"the stored report is not valid JSON ({exc})"))
        return {"valid": False, "fingerprint": None, "checks": [c.as_dict() for c in checks]}
    if actual == recorded_fingerprint:
        checks.append(Check("integrity", "passed", "the report's content hashes to its recorded fingerprint"))
    else:
        checks.append(Check("integrity", "failed",
                            "the report's content has changed since it was made: it hashes to "
                            f"{actual}, not to the recorded {recorded_fingerprint}"))
    record = None
    if registry is None:
        checks.append(Check("anchor", "unavailable", "no chain connection to check the anchor"))
    else:
        try:
            record = registry.anchor_of(actual)
        except Exception as exc:  # noqa: BLE001 - any chain failure is "could not check"
            checks.append(Check("anchor", "unavailable",
                                f"could not check right now: the chain could not be reached ({type(exc).__name__})"))
        else:
            if record is None:
                checks.append(Check("anchor", "failed", "this report's fingerprint is not anchored on chain"))
            elif recorded_block is not None and record.block_number != recorded_block:
                checks.append(Check("anchor", "failed",
                                    f"anchored in block {record.block_number}, not in the recorded "
                                    f"block {recorded_block}"))
            else:
                checks.append(Check("anchor", "passed",
                                    f"the fingerprint is anchored on chain {registry.chain_id} in block "
                                    f"{record.block_number} by {record.issuer}"))
    if trust is not None and institution is not None:
        checks.append(_identity(trust, institution, record, registry))
    valid = all(c.status == "passed" for c in checks)
    return {"valid": valid, "fingerprint": actual, "checks": [c.as_dict() for c in checks]}


def _identity(trust, institution, record, registry) -> Check:
    """Who anchored it: the institution's own key, in its own registry?"""
    from credentials.trust import TRUSTED, UNKNOWN_NOW, Claim

    if record is None:
        return Check("issuer_identity", "skipped", "skipped: nothing anchored to attribute")
    judgement = trust.judge(Claim(institution.did, institution.name, registry.chain_id, record.issuer,
                                  registry.address))
    if judgement.status == TRUSTED:
        where = f" ({judgement.entry.shown_domain})" if judgement.entry.shown_domain else ""
        return Check("issuer_identity", "passed", f"anchored by {judgement.entry.name}{where}: the key and the "
                                                  "registry are ones it lists")
    return Check("issuer_identity", "unavailable" if judgement.status == UNKNOWN_NOW else "failed",
                 judgement.message)
