"""Verifying a credential: an ordered registry of small checks whose results are data.

Each check is one function registered with `@check(id, label, depends_on=…)`;
the registry (`CHECKS`, in registration order) is what runs, what the page
labels, and what the OpenAPI enum lists, so adding a check is one function in
this file. The order is `format`, `integrity`, `merkle_proof`, `anchor`,
`signature`, `data_integrity`, `issuer_identity`, `issuer_authorized`,
`revocation`, `status_list`, `valid_from`, `valid_until`.

Two proofs, two kinds of credential. An Attest credential carries a proof
set: a W3C Data Integrity proof (`data_integrity`: eddsa-rdfc-2022, checked
with the Ed25519 key its verificationMethod names) and Attest's anchor proof
(the chain checks). Older Attest credentials have the anchor proof alone
(`data_integrity` does not apply). Another issuer's VC 2.0 credential signed
with eddsa-rdfc-2022 has no anchor proof: the chain checks are skipped as not
applicable, and `issuer_identity` judges the Ed25519 key against the trust
list. `status_list` reads the credential's Bitstring Status List entry (the
list credential fetched by URL, its own proof checked); for Attest
credentials it mirrors the on-chain `revocation`, and says so when the two
disagree. The chain is the source of truth: when it answered, a list that
cannot be fetched right now leaves the verdict as the chain made it (the
check itself says `unavailable`); without a chain answer, an unreadable list
makes the verdict `unavailable`, never "not revoked".

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
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache

from eth_utils import is_hex_address

from credentials import dataintegrity, statuslist
from credentials.canonical import fingerprint as compute_fingerprint
from credentials.canonical import from_hex, to_hex
from credentials.chain import AnchorRecord, ChainError
from credentials.document import PROOF_TYPE, did_pkh_parts, signer_from_verification_method
from credentials.ed25519 import Ed25519KeyError, decode_public_key_multibase
from credentials.merkle import root_from_path
from credentials.reader import ChainReader, NotARegistry, checksum
from credentials.signing import DOMAIN_NAME, DOMAIN_VERSION, Eip712Domain, SignatureError, recover_signer
from credentials.statusclient import StatusListClient, StatusUnavailable
from credentials.trust import NOT_TRUSTED, TRUSTED, Claim, Judgement, TrustPolicy, TrustUnavailable
from credentials.validate import Problem, describe, is_open_badge, parse_datetime, validate_document

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

    def __init__(self, doc: dict, reader: ChainReader | None, trust: TrustPolicy | None, now: datetime,
                 status_lists: StatusListClient | None = None, digest: bytes | None = None):
        self.doc = doc
        self.reader = reader
        self.trust = trust
        self.now = now
        self.status_lists = status_lists
        self.di_proofs = dataintegrity.find_proofs(doc)
        has_anchor = any(isinstance(p, dict) and p.get("type") == PROOF_TYPE for p in dataintegrity.proof_set(doc))
        # Secured by Data Integrity alone (another issuer's credential): no anchor proof to read.
        self.di_only = bool(self.di_proofs) and not has_anchor
        self.results: dict[str, CheckResult] = {}
        self.anchor: AnchorRecord | None = None
        self.judgement: Judgement | None = None
        self.di_key: str | None = None
        # This document, byte for byte, passed every check of its own before (see PROVEN).
        self.proven = PROVEN.get(digest) if digest is not None else None
        if self.proven is not None:
            self.proof, self.proof_problems = self.proven.proof, []
            self.fingerprint, self.signer = self.proven.fingerprint, self.proven.signer
        else:
            self.proof, self.proof_problems = (None, []) if self.di_only else read_proof(doc)
            self.fingerprint: bytes | None = None
            self.signer: str | None = None

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
        model = "W3C Verifiable Credential 2.0 and Open Badges 3.0 credential" if is_open_badge(ctx.doc) \
            else "W3C Verifiable Credential 2.0"
        proofs = ("its anchor proof names a fingerprint, signature, Merkle path and anchor" if ctx.proof is not None
                  else "it carries an eddsa-rdfc-2022 Data Integrity proof")
        return passed("format", f"The document is a well-formed {model}, and {proofs}.")
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


def _named_key(did: str, method: str) -> str | None:
    """The key a verification method carries in its own name: a did:key, or
    a fragment that is a Multikey (`<did>#z6Mk…`, as Attest names its keys)."""
    fragment = method.split("#", 1)[1] if "#" in method else ""
    for candidate in (did.removeprefix("did:key:") if did.startswith("did:key:") else "", fragment):
        try:
            decode_public_key_multibase(candidate)
        except Ed25519KeyError:
            continue
        return candidate
    return None


def _ed25519_key(ctx: Context, did: str, method: str) -> str | None:
    """The publicKeyMultibase of `method`: named by the method itself, else
    given by the issuer's trusted entry (pinned, or its resolved DID
    document); None when neither knows it. Whether the key is the issuer's is
    `issuer_identity`'s question."""
    key = _named_key(did, method)
    if key is not None or ctx.trust is None:
        return key
    try:
        return ctx.trust.ed25519_key(did, method)
    except TrustUnavailable as exc:
        raise Unavailable(f"the key {method} cannot be looked up right now: {exc}") from exc


@check("data_integrity", "Data Integrity proof", needs_proof=False,
       failure_means="the Data Integrity proof does not verify")
def check_data_integrity(ctx: Context) -> CheckResult:
    if not ctx.di_proofs:
        return CheckResult("data_integrity", SKIPPED, "The credential carries no Data Integrity proof (Attest "
                           "credentials issued before they had one are secured by the anchor proof alone).",
                           not_applicable=True)
    if len(ctx.di_proofs) > 1:
        return failed("data_integrity", f"Expected one eddsa-rdfc-2022 DataIntegrityProof; found {len(ctx.di_proofs)}.")
    proof = ctx.di_proofs[0]
    issuer_did, _ = _issuer_claim(ctx.doc)
    method = proof.get("verificationMethod")
    if not isinstance(method, str) or not issuer_did or method.split("#", 1)[0] != issuer_did:
        return failed("data_integrity", f"Expected the Data Integrity proof to name a key of the issuer "
                                        f"({issuer_did}); its verificationMethod is {describe(method, method is None)}.")
    if proof.get("proofPurpose") != dataintegrity.ASSERTION:
        return failed("data_integrity", f"Expected the proof's purpose to be {dataintegrity.ASSERTION}; found "
                                        f"{describe(proof.get('proofPurpose'), 'proofPurpose' not in proof)}.")
    key = _ed25519_key(ctx, issuer_did, method)
    if key is None:
        return CheckResult("data_integrity", SKIPPED, f"Skipped: no key is known for {method}: the method does not "
                                                      "carry its key, and no trust list of this verifier gives it.")
    if ctx.proven is not None and ctx.proven.di_key == key:
        # The same document verified with this same key before: the signature has not changed.
        ctx.di_key = key
        return ctx.proven.results["data_integrity"]
    outcome = dataintegrity.verify_eddsa_rdfc_2022(ctx.doc, proof, key)
    if not outcome:
        return failed("data_integrity", f"Expected the eddsa-rdfc-2022 proof to verify with the key {short(key)}; "
                                        f"{outcome.reason}.")
    ctx.di_key = key
    return passed("data_integrity", f"The eddsa-rdfc-2022 Data Integrity proof verifies with the key {short(key)} "
                                    "the proof names: nothing in the document was changed since it was signed.")


def _issuer_claim(doc: dict) -> tuple[str | None, str | None]:
    issuer = doc.get("issuer")
    issuer_id = issuer.get("id") if isinstance(issuer, dict) else issuer
    name = _text(issuer.get("name")) if isinstance(issuer, dict) else None
    return (issuer_id if isinstance(issuer_id, str) else None), name


@check("issuer_identity", "Issuer identity", needs_proof=False, failure_means="nothing confirms who issued it")
def check_issuer_identity(ctx: Context) -> CheckResult:
    # Judged by the anchor proof's signing key when there is one, else by the
    # Data Integrity key. A Data Integrity proof whose key is unknown (skipped)
    # still lets the trust list say whether the issuer is trusted at all.
    if ctx.proof is not None:
        blocked = dependency_skip(ctx, "issuer_identity", "signature")
    elif ctx.di_only:
        blocked = dependency_skip(ctx, "issuer_identity", "data_integrity", allow_skipped=True)
    else:
        blocked = CheckResult("issuer_identity", SKIPPED, "Skipped: the proof is missing or unreadable (see format).")
    if blocked is not None:
        return blocked
    issuer_did, issuer_name = _issuer_claim(ctx.doc)
    if not issuer_did or not issuer_did.startswith("did:"):
        return failed("issuer_identity", f"Expected the issuer to be named by a DID (did:web:…); found "
                                         f"{describe(ctx.doc.get('issuer'))}, which no trust list can confirm.")
    if ctx.trust is None:
        raise Unavailable("this verifier was given no trust list, so it cannot confirm who issued it")
    anchor = ctx.proof
    ctx.judgement = ctx.trust.judge(Claim(issuer_did, issuer_name, anchor.chain_id if anchor else None, ctx.signer,
                                          anchor.registry if anchor else None, ctx.di_key))
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


class _ListRefused(Exception):
    """The fetched status list is not one to rely on; the message says why."""


def _list_proof_problem(document: dict, key: str) -> str | None:
    """Why the list credential's eddsa-rdfc-2022 proof does not verify with
    `key`, or None."""
    proofs = dataintegrity.find_proofs(document)
    if len(proofs) != 1:
        return f"it carries {len(proofs)} eddsa-rdfc-2022 proofs, not one"
    outcome = dataintegrity.verify_eddsa_rdfc_2022(document, proofs[0], key)
    return None if outcome else outcome.reason


def _read_list(ctx: Context, entry: statuslist.StatusEntry, fresh: bool = False) -> statuslist.StatusList:
    """The verified status list an entry names (Unavailable when it cannot be
    fetched now; _ListRefused when it is not the issuer's list). The decoded
    bits and the proof's verdict are kept with the copy of the list: one list
    serves every credential of its issuer."""
    if ctx.status_lists is None:
        raise Unavailable("this verifier was given no way to read status lists")
    try:
        copy = ctx.status_lists.get_copy(entry.list_credential, fresh=fresh)
    except StatusUnavailable as exc:
        raise Unavailable(str(exc)) from exc
    document = copy.document
    try:
        encoded = statuslist.encoded_list_for(document, entry, ctx.doc.get("issuer"))
        bits = copy.derived("bits", lambda: statuslist.StatusList.decode(encoded))
    except statuslist.StatusListError as exc:
        raise _ListRefused(str(exc)) from exc
    until = parse_datetime(document.get("validUntil"))
    if until is not None and until < ctx.now:
        raise Unavailable(f"the status list at {entry.list_credential} expired on {document['validUntil']}; "
                          "its issuer has not published a current one")
    proofs = dataintegrity.find_proofs(document)
    method = proofs[0].get("verificationMethod") if len(proofs) == 1 else None
    issuer_did, _ = _issuer_claim(ctx.doc)
    if not isinstance(method, str) or method.split("#", 1)[0] != issuer_did:
        raise _ListRefused(f"it is not signed with a Data Integrity proof by a key of the issuer {issuer_did}")
    key = _ed25519_key(ctx, issuer_did, method)
    entry_trusted = ctx.judgement.entry if ctx.judgement and ctx.judgement.status == TRUSTED else None
    if key is None or not (key == ctx.di_key or (entry_trusted is not None and entry_trusted.lists_ed25519(key))):
        raise _ListRefused(f"it is signed by {method}, which is not a key the trusted issuer lists")
    problem = copy.derived(("proof", key), lambda: _list_proof_problem(document, key))
    if problem is not None:
        raise _ListRefused(f"its proof does not verify: {problem}")
    return bits


@check("status_list", "Status list", needs_proof=False,
       failure_means="the issuer's status list shows it revoked")
def check_status_list(ctx: Context) -> CheckResult:
    cid = "status_list"
    try:
        entry = statuslist.read_entry(ctx.doc)
    except statuslist.StatusListError as exc:
        return failed(cid, f"Expected a readable BitstringStatusListEntry; {exc}.")
    if entry is None:
        return CheckResult(cid, SKIPPED, "The credential has no Bitstring Status List entry for revocation"
                           + (" (its revocation is read from the chain)." if ctx.proof is not None else "."),
                           not_applicable=True)
    # The entry counts only when a verified proof covers it, and the list only
    # when the issuer is known (its key signs the list).
    covering = "data_integrity" if ctx.di_proofs else "integrity"
    blocked = dependency_skip(ctx, cid, covering) or dependency_skip(ctx, cid, "issuer_identity")
    if blocked is not None:
        return blocked
    chain = ctx.results["revocation"].status if ctx.proof is not None else None
    try:
        revoked = _read_list(ctx, entry).get(entry.index)
        if (revoked and chain == PASSED) or (not revoked and chain == FAILED):
            # They disagree: this installation's own list may have changed a
            # moment ago, so read it again before saying so.
            revoked = _read_list(ctx, entry, fresh=True).get(entry.index)
    except (_ListRefused, statuslist.StatusListError) as exc:
        return failed(cid, f"Expected the issuer's signed status list at {entry.list_credential}; it cannot be "
                           f"relied on: {exc}.")
    where = f"bit {entry.index} of the issuer's status list {entry.list_credential}"
    if revoked and chain == FAILED:
        return failed(cid, f"Revoked: {where} is set, as the chain records.")
    if revoked and chain == PASSED:
        return failed(cid, f"The status list and the chain disagree: {where} is set (revoked), but the registry "
                           "holds no revocation. The list is signed by the issuer: do not rely on this credential "
                           "until they agree.")
    if revoked:
        return failed(cid, f"Revoked: {where} is set.")
    if chain == FAILED:
        return failed(cid, f"The status list and the chain disagree: the registry records a revocation, but {where} "
                           "is clear (the list is out of date). The chain is the source of truth: it is revoked.")
    agrees = ", as the chain says" if chain == PASSED else ""
    return passed(cid, f"Not revoked: {where} is clear{agrees}.")


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


# ----- what a document shows of itself, remembered ---------------------------------------

# The checks whose result depends on the document's bytes alone: never on
# the chain, the trust list, a status list or the time. (data_integrity
# also depends on the key it was checked with, which the trust list may
# give: it is replayed only for the same key.)
OWN_CHECKS = ("format", "integrity", "merkle_proof", "signature", "data_integrity")
REPLAYED = frozenset(OWN_CHECKS) - {"data_integrity"}


@dataclass(frozen=True)
class Proven:
    """What one document showed of itself when all its own checks passed
    (or did not apply)."""

    proof: StatedProof | None
    fingerprint: bytes | None
    signer: str | None
    di_key: str | None
    results: dict[str, CheckResult]


class ProvenDocuments:
    """The documents, by the SHA-256 of their JSON text, whose own checks
    (OWN_CHECKS) all passed in this process: verifying one again (an
    employer's system re-checking for revocation, a QR link opened by
    several people) skips the parsing of the proof, the format rules, the
    fingerprint, the Merkle path, the EIP-712 recovery and the Data
    Integrity proof, most of a verification's own work. Only documents that
    passed are kept. Anyone can make one that does (a key of their own signs
    it), so what is kept says nothing about trust, which is asked every time;
    the oldest entry goes when `max_entries` are held (an entry is 2-5 KB, so
    at most about 16 MB). Reads take no lock (one dict lookup); writes do."""

    def __init__(self, max_entries: int = 4096):
        self.max_entries = max_entries
        self._entries: dict[bytes, Proven] = {}
        self._lock = threading.Lock()

    def get(self, digest: bytes) -> Proven | None:
        return self._entries.get(digest)

    def keep_if_proven(self, digest: bytes, ctx: Context) -> None:
        results = {cid: ctx.results[cid] for cid in OWN_CHECKS}
        if not all(r.status == PASSED or (r.status == SKIPPED and r.not_applicable) for r in results.values()):
            return
        if ctx.di_proofs and ctx.di_key is None:
            return
        proven = Proven(ctx.proof, ctx.fingerprint, ctx.signer, ctx.di_key, results)
        with self._lock:
            while len(self._entries) >= self.max_entries:
                del self._entries[next(iter(self._entries))]  # dicts keep insertion order: the oldest
            self._entries[digest] = proven

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


PROVEN = ProvenDocuments()


# ----- running them --------------------------------------------------------------------

def dependency_skip(ctx: Context, cid: str, need: str, allow_skipped: bool = False) -> CheckResult | None:
    """The `skipped` result of check `cid` when the check `need` did not pass, else None."""
    status = ctx.results[need].status
    if status == FAILED:
        return CheckResult(cid, SKIPPED, f"Skipped: {CHECKS[need].failure_means} (see {need}).")
    if status == UNAVAILABLE:
        return CheckResult(cid, SKIPPED, f"Skipped: it needs the {CHECKS[need].label.lower()} check, which could "
                                         f"not be done right now (see {need}).")
    if status == SKIPPED and not allow_skipped:
        return CheckResult(cid, SKIPPED, f"Skipped: it needs the {CHECKS[need].label.lower()} check, which could "
                                         f"not run either (see {need}).")
    return None


def run_check(ctx: Context, spec: Check) -> CheckResult:
    cid = spec.id
    if spec.needs_proof and ctx.proof is None:
        if ctx.di_only:
            return CheckResult(cid, SKIPPED, "Not applicable: the credential has no Attest anchor proof (it is "
                                             "secured by its Data Integrity proof alone, as other issuers' "
                                             "credentials are), so there is nothing on a chain to check.",
                               not_applicable=True)
        return CheckResult(cid, SKIPPED, "Skipped: the proof is missing or unreadable (see format).")
    for need in spec.depends_on:
        blocked = dependency_skip(ctx, cid, need)
        if blocked is not None:
            return blocked
    if ctx.proven is not None and cid in REPLAYED:
        return ctx.proven.results[cid]
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
    if statuses.get("status_list") == UNAVAILABLE and statuses.get("revocation") == PASSED:
        # The chain, the source of truth, answered: the mirror being out of
        # reach now changes nothing (the check itself still says so).
        checks = [c for c in checks if c.id != "status_list"]
        statuses.pop("status_list")
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


# Status lists are fetched over HTTP (with a cache) unless the caller gives its own client.
DEFAULT_STATUS_LISTS = StatusListClient()


def verify_credential(doc: dict, reader: ChainReader | None, trust: TrustPolicy | None = None,
                      now: datetime | None = None, status_lists: StatusListClient | None = None,
                      digest: bytes | None = None) -> VerificationResult:
    """Run every check in order. `valid` only when the verdict is `genuine`: intact,
    anchored (or, for another issuer's credential, signed with Data Integrity),
    not revoked, in force, and issued by an institution `trust` trusts.

    `digest`: the SHA-256 of the exact JSON text `doc` was strictly parsed
    from (`validate.load_document`), given by a caller that has that text. A
    document whose own checks all passed is then remembered (PROVEN), and
    verifying those bytes again repeats only what can change: the chain, the
    trust list, the status list and the dates."""
    ctx = Context(doc, reader, trust, now or datetime.now(timezone.utc), status_lists or DEFAULT_STATUS_LISTS,
                  digest)
    for spec in CHECKS.values():
        ctx.results[spec.id] = run_check(ctx, spec)
    if digest is not None and ctx.proven is None:
        PROVEN.keep_if_proven(digest, ctx)
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
