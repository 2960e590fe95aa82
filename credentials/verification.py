"""Verifying a credential: an ordered registry of small checks whose results are data.

Each check is one function registered with `@check(id, label, depends_on=…)`;
the registry (`CHECKS`, in registration order) is what runs, what the page
labels, and what the OpenAPI enum lists, so adding a check is one function in
this file. The order is `format`, `integrity`, `merkle_proof`, `anchor`,
`signature`, `issuer_identity`, `issuer_authorized`, `revocation`,
`valid_from`, `valid_until`.

A check returns `passed`, `failed`, `skipped` or `unavailable` with a sentence a
person can read; a failed check says what was expected and what was found. A
check whose dependency did not pass is `skipped` and says which. `unavailable`
means a source it needs (the chain, a DID document, the trust list) cannot be
reached now: never "not valid". The page, the API and the CLI render the same
`VerificationResult.as_dict()`, whose `verdict` is one of

- `genuine`: every check passed; the issuer is one this verifier trusts;
- `not_confirmed`: the document is intact and anchored, but its issuer is not
  one this verifier trusts (or not the key/registry that issuer lists);
- `invalid`: a check failed (changed, revoked, expired, not anchored…);
- `unavailable`: nothing failed, but something could not be checked right now.

The outside inputs are a `ChainReader` (an RPC URL) and a `TrustPolicy` (whom
this verifier trusts); everything else comes from the credential itself, so a
credential verifies with its issuer's server gone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache

from eth_utils import is_hex_address

from credentials.canonical import fingerprint as compute_fingerprint
from credentials.canonical import from_hex, to_hex
from credentials.chain import AnchorRecord, ChainError
from credentials.document import PROOF_TYPE, did_pkh_parts, signer_from_verification_method
from credentials.merkle import root_from_path
from credentials.reader import ChainReader, NotARegistry, checksum
from credentials.signing import DOMAIN_NAME, DOMAIN_VERSION, Eip712Domain, SignatureError, recover_signer
from credentials.trust import NOT_TRUSTED, TRUSTED, Claim, Judgement, TrustPolicy
from credentials.validate import Problem, describe, parse_datetime, validate_document

log = logging.getLogger(__name__)

PASSED, FAILED, SKIPPED, UNAVAILABLE = "passed", "failed", "skipped", "unavailable"
STATUSES = (PASSED, FAILED, SKIPPED, UNAVAILABLE)
GENUINE, NOT_CONFIRMED, INVALID, UNKNOWN_NOW = "genuine", "not_confirmed", "invalid", "unavailable"
VERDICTS = (GENUINE, NOT_CONFIRMED, INVALID, UNKNOWN_NOW)
MAX_PATH_STEPS = 64  # 2**64 credentials per batch is more than enough


class Unavailable(RuntimeError):
    """A source a check needs cannot be reached now; the message says which."""


@dataclass(frozen=True)
class CheckResult:
    id: str
    status: str
    message: str
    details: tuple[str, ...] = ()
    # A skip that says "this does not apply" (no validUntil) rather than "could not run".
    not_applicable: bool = False

    def as_dict(self) -> dict:
        out = {"id": self.id, "status": self.status, "message": self.message}
        if self.details:
            out["details"] = list(self.details)
        return out


@dataclass
class VerificationResult:
    valid: bool
    checks: list[CheckResult]
    credential: dict = field(default_factory=dict)
    verdict: str = INVALID
    # Who the verifier confirms issued it (from its trust list, never the
    # document's own words), when issuer_identity passed.
    issuer: dict | None = None

    def check(self, check_id: str) -> CheckResult:
        return next(c for c in self.checks if c.id == check_id)

    def as_dict(self) -> dict:
        return {"valid": self.valid, "verdict": self.verdict, "issuer": self.issuer,
                "checks": [c.as_dict() for c in self.checks], "credential": self.credential}


@dataclass(frozen=True)
class StatedProof:
    """What the proof claims, parsed: the checks test these claims."""

    fingerprint: bytes
    signature: bytes
    method_address: str
    chain_id: int
    registry: str
    root: bytes
    path: list[bytes]
    transaction_hash: str | None
    method_chain_id: int | None = None

    @property
    def domain(self) -> Eip712Domain:
        return _domain(self.chain_id, self.registry)


@lru_cache(maxsize=256)
def _domain(chain_id: int, registry: str) -> Eip712Domain:
    """One domain object per (chain, registry), so its separator is hashed once."""
    return Eip712Domain(chain_id, registry)


def short(value: bytes | str) -> str:
    text = to_hex(value) if isinstance(value, bytes) else value
    return text if len(text) <= 18 else f"{text[:10]}…{text[-6:]}"


def when(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


# ----- reading the proof ----------------------------------------------------------

def _hex_field(obj: dict, key: str, path: str, length: int, problems: list[Problem]) -> bytes | None:
    value = obj.get(key)
    try:
        return from_hex(value, length)
    except ValueError:
        problems.append(Problem(f"{path}.{key}", f"0x and {length * 2} hex digits", describe(value, key not in obj)))
        return None


def read_proof(doc: dict) -> tuple[StatedProof | None, list[Problem]]:
    """The proof's claims, or None with the problems that make it unreadable."""
    problems: list[Problem] = []
    proof = doc.get("proof")
    if isinstance(proof, list):
        ours = [p for p in proof if isinstance(p, dict) and p.get("type") == PROOF_TYPE]
        proof = ours[0] if len(ours) == 1 else proof
    if not isinstance(proof, dict):
        return None, [Problem("$.proof", f"one {PROOF_TYPE} proof object", describe(proof, proof is None))]
    if proof.get("type") != PROOF_TYPE:
        problems.append(Problem("$.proof.type", PROOF_TYPE, describe(proof.get("type"), "type" not in proof)))
    fp = _hex_field(proof, "fingerprint", "$.proof", 32, problems)
    sig = _hex_field(proof, "signature", "$.proof", 65, problems)
    method = proof.get("verificationMethod")
    method_address = signer_from_verification_method(method) if isinstance(method, str) else None
    if method_address is None or not is_hex_address(method_address):
        problems.append(Problem("$.proof.verificationMethod", "did:pkh:eip155:<chain id>:<address>#blockchainAccountId",
                                describe(method, method is None)))
        method_address = None
    anchor = proof.get("anchor")
    if not isinstance(anchor, dict):
        problems.append(Problem("$.proof.anchor", "an object naming chainId, registry, merkleRoot and merklePath",
                                describe(anchor, anchor is None)))
        return None, problems
    chain_id = anchor.get("chainId")
    if not isinstance(chain_id, int) or isinstance(chain_id, bool) or not 0 < chain_id < 2**63:
        problems.append(Problem("$.proof.anchor.chainId", "a positive integer chain id", describe(chain_id, chain_id is None)))
        chain_id = None
    registry = anchor.get("registry")
    if not (isinstance(registry, str) and is_hex_address(registry)):
        problems.append(Problem("$.proof.anchor.registry", "a contract address (0x and 40 hex digits)",
                                describe(registry, registry is None)))
        registry = None
    root = _hex_field(anchor, "merkleRoot", "$.proof.anchor", 32, problems)
    raw_path = anchor.get("merklePath")
    path: list[bytes] | None = None
    if not isinstance(raw_path, list) or len(raw_path) > MAX_PATH_STEPS:
        problems.append(Problem("$.proof.anchor.merklePath", f"an array of at most {MAX_PATH_STEPS} 32-byte hashes",
                                describe(raw_path, raw_path is None)))
    else:
        try:
            path = [from_hex(step, 32) for step in raw_path]
        except ValueError as exc:
            problems.append(Problem("$.proof.anchor.merklePath", "32-byte hashes (0x and 64 hex digits)", str(exc)))
    tx_hash = anchor.get("transactionHash")
    domain = proof.get("eip712Domain")
    if chain_id is not None and registry is not None:
        expected = {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": chain_id,
                    "verifyingContract": checksum(registry)}
        if not isinstance(domain, dict) or {**domain, "verifyingContract": str(domain.get("verifyingContract", "")).lower()} \
                != {**expected, "verifyingContract": expected["verifyingContract"].lower()}:
            problems.append(Problem("$.proof.eip712Domain", f"the anchor's chain and registry {describe(expected)}",
                                    describe(domain, domain is None)))
    if problems or None in (fp, sig, method_address, chain_id, registry, root, path):
        return None, problems
    method_chain = did_pkh_parts(method)[0]
    return StatedProof(fp, sig, checksum(method_address), chain_id, checksum(registry),
                       root, path, tx_hash if isinstance(tx_hash, str) else None,
                       int(method_chain) if method_chain.isdigit() else None), []


def _issuer_did(doc: dict) -> tuple[str, str] | None:
    """(chain id, address) named by the issuer's id, if it is a did:pkh."""
    issuer = doc.get("issuer")
    issuer_id = issuer.get("id") if isinstance(issuer, dict) else issuer
    return did_pkh_parts(issuer_id) if isinstance(issuer_id, str) else None


def issuer_address(doc: dict) -> str | None:
    """The Ethereum address the issuer's id names (did:pkh:eip155:<chain>:<address>)."""
    parts = _issuer_did(doc)
    address = parts[1] if parts else None
    return checksum(address) if address and is_hex_address(address) else None


def issuer_chain_id(doc: dict) -> int | None:
    """The chain id in the issuer's did:pkh:eip155:<chain>:<address>, or None."""
    parts = _issuer_did(doc)
    return int(parts[0]) if parts and parts[0].isdigit() else None


# ----- the check registry ----------------------------------------------------------

@dataclass(frozen=True)
class Check:
    """One verification step: what it is called on the page, which checks must have
    passed first, and what a failure of it means for the checks that need it."""

    id: str
    label: str
    fn: Callable[[Context], CheckResult]
    depends_on: tuple[str, ...] = ()
    needs_proof: bool = True
    # "Skipped: <this> (see <id>)" for the checks that depend on this one.
    failure_means: str = ""


CHECKS: dict[str, Check] = {}


def check(check_id: str, label: str, depends_on: tuple[str, ...] = (), needs_proof: bool = True,
          failure_means: str = ""):
    """Register a check; registration order is the order checks run and are shown."""

    def register(fn: Callable[[Context], CheckResult]) -> Callable[[Context], CheckResult]:
        missing = [d for d in depends_on if d not in CHECKS]
        if missing or check_id in CHECKS:
            raise ValueError(f"check {check_id}: registered twice, or depends on unknown/later {missing}")
        CHECKS[check_id] = Check(check_id, label, fn, depends_on, needs_proof,
                                 failure_means or f"the {label.lower()} check failed")
        return fn

    return register


class Context:
    """One verification's inputs and what earlier checks learned."""

    def __init__(self, doc: dict, reader: ChainReader | None, trust: TrustPolicy | None, now: datetime):
        self.doc = doc
        self.reader = reader
        self.trust = trust
        self.now = now
        self.proof, self.proof_problems = read_proof(doc)
        self.results: dict[str, CheckResult] = {}
        self.fingerprint: bytes | None = None
        self.anchor: AnchorRecord | None = None
        self.signer: str | None = None
        self.judgement: Judgement | None = None

    def registry(self):
        if self.reader is None:
            raise Unavailable("this verifier was given no chain to ask (no RPC URL)")
        return self.reader.registry(self.proof.registry)


def passed(cid: str, message: str) -> CheckResult:
    return CheckResult(cid, PASSED, message)


def failed(cid: str, message: str, details: tuple[str, ...] = ()) -> CheckResult:
    return CheckResult(cid, FAILED, message, details)


def unavailable(cid: str, message: str) -> CheckResult:
    return CheckResult(cid, UNAVAILABLE, message)


# ----- the checks, in order ----------------------------------------------------------

@check("format", "Format", needs_proof=False, failure_means="the document is not a well-formed credential")
def check_format(ctx: Context) -> CheckResult:
    problems = validate_document(ctx.doc) + ctx.proof_problems
    if not problems:
        return passed("format", "The document is a well-formed W3C Verifiable Credential 2.0 and Open Badges 3.0 "
                                "credential, and its proof names a fingerprint, signature, Merkle path and anchor.")
    shown = "; ".join(str(p) for p in problems[:3])
    more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
    return failed("format", f"The document does not meet the credential format: {shown}{more}.",
                  tuple(str(p) for p in problems))


@check("integrity", "Integrity", failure_means="the document is not the one the issuer signed")
def check_integrity(ctx: Context) -> CheckResult:
    try:
        ctx.fingerprint = compute_fingerprint(ctx.doc)
    except (ValueError, TypeError, UnicodeError) as exc:
        return failed("integrity", f"Expected a document that canonical JSON (RFC 8785) can hash; found one it "
                                   f"cannot ({exc}).")
    if ctx.fingerprint != ctx.proof.fingerprint:
        return failed("integrity", f"Expected the document's fingerprint to be the signed {short(ctx.proof.fingerprint)}; "
                                   f"found {short(ctx.fingerprint)}: the document was changed after it was issued.")
    return passed("integrity", f"The document's fingerprint {short(ctx.fingerprint)} is the one the issuer signed: "
                               "nothing in it was changed.")


@check("merkle_proof", "Merkle proof", depends_on=("integrity",),
       failure_means="the Merkle path does not lead to the batch root")
def check_merkle_proof(ctx: Context) -> CheckResult:
    reached = root_from_path(ctx.fingerprint, ctx.proof.path)
    steps = f"{len(ctx.proof.path)} step{'' if len(ctx.proof.path) == 1 else 's'}"
    if reached != ctx.proof.root:
        return failed("merkle_proof", f"Expected the Merkle path ({steps}) to lead from the fingerprint to the "
                                      f"stated batch root {short(ctx.proof.root)}; it leads to {short(reached)}.")
    return passed("merkle_proof", f"The Merkle path ({steps}) leads from the fingerprint to the batch root "
                                  f"{short(ctx.proof.root)}.")


@check("anchor", "Anchored on chain",
       failure_means="the batch root is not anchored in the stated registry on this chain")
def check_anchor(ctx: Context) -> CheckResult:
    proof = ctx.proof
    if ctx.reader is None:
        raise Unavailable("this verifier was given no chain to ask (no RPC URL)")
    node_chain = ctx.reader.chain_id()
    if node_chain != proof.chain_id:
        return failed("anchor", f"Expected chain id {proof.chain_id}, as the credential states; the node at "
                                f"{ctx.reader.public_url} is chain {node_chain}.")
    registry = ctx.registry()
    try:
        registry.require_registry()
    except NotARegistry as exc:
        return failed("anchor", f"Expected a CredentialRegistry at {proof.registry} on chain {proof.chain_id}, "
                                f"as the credential states; but {exc}.")
    record = registry.anchor_of(proof.root)
    if record is None:
        return failed("anchor", f"Expected the batch root {short(proof.root)} to be anchored in registry "
                                f"{proof.registry} on chain {proof.chain_id}; that registry has no record of it.")
    ctx.anchor = record
    return passed("anchor", f"The batch root is anchored in registry {proof.registry} on chain {proof.chain_id}, "
                            f"block {record.block_number} ({when(record.timestamp)}), by {record.issuer}, in a batch "
                            f"of {record.count}.")


@check("signature", "Signature", depends_on=("integrity",),
       failure_means="the signature does not show which key signed it")
def check_signature(ctx: Context) -> CheckResult:
    proof = ctx.proof
    try:
        recovered = recover_signer(proof.fingerprint, proof.signature, proof.domain)
    except SignatureError as exc:
        return failed("signature", f"Expected an EIP-712 signature by {proof.method_address}, as the proof states; "
                                   f"found one that recovers no address: {exc}.")
    if recovered != proof.method_address:
        return failed("signature", f"Expected the EIP-712 signature to recover {proof.method_address}, the key the "
                                   f"proof's verificationMethod names; it recovers {recovered}.")
    if proof.method_chain_id != proof.chain_id:
        return failed("signature", f"Expected the proof's verificationMethod to name the anchoring chain "
                                   f"(did:pkh:eip155:{proof.chain_id}:…); it names chain {proof.method_chain_id}.")
    pkh = _issuer_did(ctx.doc)
    if pkh is not None:
        # Older credentials name the signing key itself as the issuer (did:pkh).
        issuer = issuer_address(ctx.doc)
        if issuer != recovered:
            return failed("signature", f"Expected the EIP-712 signature to recover the issuer's address {issuer}; "
                                       f"it recovers {recovered}.")
        if issuer_chain_id(ctx.doc) != proof.chain_id:
            return failed("signature", f"Expected the issuer's id to name the anchoring chain "
                                       f"(did:pkh:eip155:{proof.chain_id}:…); it names chain {issuer_chain_id(ctx.doc)}.")
    ctx.signer = recovered
    return passed("signature", f"The EIP-712 signature over the fingerprint recovers {recovered}, the key the proof "
                               "names.")


def _issuer_claim(doc: dict) -> tuple[str | None, str | None]:
    issuer = doc.get("issuer")
    issuer_id = issuer.get("id") if isinstance(issuer, dict) else issuer
    name = _text(issuer.get("name")) if isinstance(issuer, dict) else None
    return (issuer_id if isinstance(issuer_id, str) else None), name


@check("issuer_identity", "Issuer identity", depends_on=("signature",),
       failure_means="nothing confirms who issued it")
def check_issuer_identity(ctx: Context) -> CheckResult:
    issuer_did, issuer_name = _issuer_claim(ctx.doc)
    if not issuer_did or not issuer_did.startswith("did:"):
        return failed("issuer_identity", f"Expected the issuer to be named by a DID (did:web:…); found "
                                         f"{describe(ctx.doc.get('issuer'))}, which no trust list can confirm.")
    if ctx.trust is None:
        raise Unavailable("this verifier was given no trust list, so it cannot confirm who issued it")
    ctx.judgement = ctx.trust.judge(Claim(issuer_did, issuer_name, ctx.proof.chain_id, ctx.signer,
                                          ctx.proof.registry))
    if ctx.judgement.status == TRUSTED:
        return passed("issuer_identity", ctx.judgement.message)
    if ctx.judgement.status == NOT_TRUSTED:
        return failed("issuer_identity", ctx.judgement.message)
    return unavailable("issuer_identity", ctx.judgement.message)


@check("issuer_authorized", "Issuer authorised", depends_on=("anchor", "signature"),
       failure_means="the signing key was not authorised by the registry")
def check_issuer_authorized(ctx: Context) -> CheckResult:
    block = ctx.anchor.block_number
    if not ctx.registry().was_authorized_at(ctx.signer, block):
        return failed("issuer_authorized", f"Expected the signing key {ctx.signer} to be authorised by registry "
                                           f"{ctx.proof.registry} in block {block}, when the root was anchored; "
                                           "it was not authorised then.")
    return passed("issuer_authorized", f"The signing key {ctx.signer} was authorised by the registry in block "
                                       f"{block}, when the root was anchored.")


@check("revocation", "Not revoked", depends_on=("integrity", "anchor"))
def check_revocation(ctx: Context) -> CheckResult:
    record = ctx.registry().revocation_of(ctx.fingerprint)
    if record.revoked:
        return failed("revocation", f"Expected no revocation; the registry records one: revoked on "
                                    f"{when(record.timestamp)} by {record.revoker}, reason: {record.reason!r}.")
    as_of = getattr(record, "as_of_block", None)
    if as_of is not None:
        return passed("revocation", f"Not revoked: the registry holds no revocation for this credential, as of "
                                    f"block {as_of}, the latest block (from the registry's revocation events).")
    return passed("revocation", "Not revoked: the registry holds no revocation for this credential (asked just now).")


def _moment(ctx: Context, key: str) -> datetime | None:
    return parse_datetime(ctx.doc.get(key))


@check("valid_from", "Valid from", needs_proof=False)
def check_valid_from(ctx: Context) -> CheckResult:
    start = _moment(ctx, "validFrom")
    if "validFrom" not in ctx.doc:
        return CheckResult("valid_from", SKIPPED, "The credential states no validFrom date.", not_applicable=True)
    if start is None:
        return CheckResult("valid_from", SKIPPED, "Skipped: validFrom is not a date this verifier can read (see format).")
    if ctx.now < start:
        return failed("valid_from", f"Expected validFrom ({ctx.doc['validFrom']}) to have passed; it is now "
                                    f"{ctx.now:%Y-%m-%dT%H:%M:%SZ}: the credential is not valid yet.")
    return passed("valid_from", f"Valid since {ctx.doc['validFrom']}.")


@check("valid_until", "Valid until", needs_proof=False)
def check_valid_until(ctx: Context) -> CheckResult:
    if "validUntil" not in ctx.doc:
        return CheckResult("valid_until", SKIPPED, "The credential states no validUntil date: it does not expire.",
                           not_applicable=True)
    end = _moment(ctx, "validUntil")
    if end is None:
        return CheckResult("valid_until", SKIPPED, "Skipped: validUntil is not a date this verifier can read (see format).")
    if ctx.now > end:
        return failed("valid_until", f"Expected now ({ctx.now:%Y-%m-%dT%H:%M:%SZ}) to be before validUntil "
                                     f"({ctx.doc['validUntil']}); the credential expired.")
    return passed("valid_until", f"Valid until {ctx.doc['validUntil']}.")


CHECK_IDS = tuple(CHECKS)
CHECK_LABELS = {c.id: c.label for c in CHECKS.values()}


# ----- running them --------------------------------------------------------------------

def run_check(ctx: Context, spec: Check) -> CheckResult:
    cid = spec.id
    if spec.needs_proof and ctx.proof is None:
        return CheckResult(cid, SKIPPED, "Skipped: the proof is missing or unreadable (see format).")
    for need in spec.depends_on:
        status = ctx.results[need].status
        if status == FAILED:
            return CheckResult(cid, SKIPPED, f"Skipped: {CHECKS[need].failure_means} (see {need}).")
        if status == UNAVAILABLE:
            return CheckResult(cid, SKIPPED, f"Skipped: it needs the {CHECKS[need].label.lower()} check, which could "
                                             f"not be done right now (see {need}).")
        if status == SKIPPED:
            return CheckResult(cid, SKIPPED, f"Skipped: it needs the {CHECKS[need].label.lower()} check, which could "
                                             f"not run either (see {need}).")
    try:
        return spec.fn(ctx)
    except NotARegistry as exc:
        return failed(cid, f"Expected a CredentialRegistry to answer; {exc}.")
    except (ChainError, Unavailable) as exc:
        # The chain (or another source) did not answer: that says nothing about the credential.
        return unavailable(cid, f"Could not check this right now: {exc}. Try again later.")
    except Exception as exc:  # noqa: BLE001 - one broken check must not hide the others' results
        log.exception("verification check %s crashed", cid)
        return failed(cid, f"The check could not be completed ({exc.__class__.__name__}).")


def verdict_of(checks: list[CheckResult]) -> str:
    """genuine / not_confirmed / invalid / unavailable (see the module doc)."""
    statuses = {c.id: c.status for c in checks}
    if any(s == FAILED for cid, s in statuses.items() if cid != "issuer_identity"):
        return INVALID
    if statuses.get("issuer_identity") == FAILED:
        return NOT_CONFIRMED
    if any(s == UNAVAILABLE for s in statuses.values()):
        return UNKNOWN_NOW
    if all(c.status == PASSED or (c.status == SKIPPED and c.not_applicable) for c in checks):
        return GENUINE
    # A skip that is not "does not apply" has a failed or unavailable check behind it.
    return INVALID


def verify_credential(doc: dict, reader: ChainReader | None, trust: TrustPolicy | None = None,
                      now: datetime | None = None) -> VerificationResult:
    """Run every check in order. `valid` only when the verdict is `genuine`: intact,
    anchored, in force, and issued by an institution `trust` trusts."""
    ctx = Context(doc, reader, trust, now or datetime.now(timezone.utc))
    for spec in CHECKS.values():
        ctx.results[spec.id] = run_check(ctx, spec)
    checks = [ctx.results[cid] for cid in CHECKS]
    verdict = verdict_of(checks)
    issuer = ctx.judgement.confirmed_issuer() if ctx.judgement is not None else None
    return VerificationResult(verdict == GENUINE, checks, summarize(doc), verdict, issuer)


# ----- what the page shows beside the checks ---------------------------------------

def _text(value) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("@value"), str):
        return value["@value"]
    if isinstance(value, list) and value:
        return _text(value[0])
    return None


def summarize(doc: dict) -> dict:
    """Holder, achievement, issuer and dates, read defensively from any object."""
    subject = doc.get("credentialSubject")
    subject = subject[0] if isinstance(subject, list) and subject else subject
    subject = subject if isinstance(subject, dict) else {}
    holder = _text(subject.get("name"))
    for ident in subject.get("identifier") or []:
        if isinstance(ident, dict) and ident.get("identityType") == "name" and not ident.get("hashed"):
            holder = holder or _text(ident.get("identityHash"))
    achievement = subject.get("achievement") if isinstance(subject.get("achievement"), dict) else {}
    issuer = doc.get("issuer")
    issuer_obj = issuer if isinstance(issuer, dict) else {"id": issuer}
    result = subject.get("result")
    grade = result[0].get("value") if isinstance(result, list) and result and isinstance(result[0], dict) else None
    summary = {
        "id": doc.get("id") if isinstance(doc.get("id"), str) else None,
        "holder": holder or _text(subject.get("id")),
        "achievement": _text(achievement.get("name")) or _text(doc.get("name")),
        "achievement_type": _text(achievement.get("achievementType")),
        "issuer": _text(issuer_obj.get("name")),
        "issuer_id": _text(issuer_obj.get("id")),
        "valid_from": _text(doc.get("validFrom")),
        "valid_until": _text(doc.get("validUntil")),
        "awarded": _text(doc.get("awardedDate")),
        "grade": _text(grade),
    }
    return {k: v[:300] for k, v in summary.items() if isinstance(v, str)}
