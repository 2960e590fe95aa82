"""The on-chain accreditation registry: an accreditor's list of institutions.

An accreditor (a national agency, say) runs one AccreditationRegistry contract
and lists in it the institutions it accredits: each one's DID, its name and the
CredentialRegistry contracts (chain id + address) it anchors credentials in,
each with windows of block numbers. A verifier that trusts the accreditor then
trusts whoever it accredits, with nothing but an RPC URL and the contract's
address (see `open_accreditation_reader`).

Two sides, as for the CredentialRegistry:
- `AccreditationRegistry` (web3, the accreditor's key): deploy, accredit,
  withdraw, rename; sends through chain.Transactor, as Registry does.
- `AccreditationReader` (raw JSON-RPC on a reader.ChainReader, no key): the
  verifier's reads, decoded with eth_abi.

What withdrawal means. `withdraw(did)` is de-accreditation: the accreditor no
longer vouches for the institution, and a verifier that trusts the accreditor
stops trusting it for every credential, old ones included (Policy.CURRENT,
the default). A verifier cannot tell a closed college from a diploma mill or a
stolen key, and the accreditor withdraws precisely when its word should stop
counting; keeping earlier credentials trusted would need a statement the
accreditor did not make. The windows stay on chain, so a page can show "was
accredited from block S until block U", and a verifier that follows the
"accredited when awarded" rule of academic recognition can ask for
Policy.WHEN_ANCHORED instead.

Caching follows reader.py: what can still change (anything "now") is asked
every time; a window's answer for a block already mined (and final) never
changes, because accrediting opens a window at the current block and
withdrawing closes it at the current block, so it is kept.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from eth_abi import decode, encode
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.logs import DISCARD

from contracts import load_artifact
from credentials.canonical import keccak256
from credentials.chain import ChainError, Transactor, TxResult, deploy_contract
from credentials.document import to_checksum_address as checksum
from credentials.reader import ChainReader

CONTRACT = "AccreditationRegistry"
HEAD_TTL = 1.0


class AccreditationError(ChainError):
    """Something about the accreditation registry a person must act on."""


class NotAnAccreditationRegistry(AccreditationError):
    """The stated address holds no AccreditationRegistry on this chain."""


class NotTheAccreditor(AccreditationError):
    """The key at hand is not the registry's accreditor."""


# ----- what the registry says ---------------------------------------------


@dataclass(frozen=True)
class Window:
    """Accredited for blocks `since_block <= b < until_block`; until_block is None while open."""

    since_block: int
    until_block: int | None

    def covers(self, block_number: int) -> bool:
        return self.since_block <= block_number and (self.until_block is None or block_number < self.until_block)


@dataclass(frozen=True)
class Accreditation:
    """An institution's accreditation with one CredentialRegistry. since_block and
    until_block are those of the latest window; `accredited` is "now"."""

    did: str
    name: str
    chain_id: int
    registry: str
    since_block: int
    until_block: int | None
    accredited: bool
    windows: tuple[Window, ...]

    def was_accredited_at(self, block_number: int) -> bool:
        return any(w.covers(block_number) for w in self.windows)

    def to_json(self) -> dict:
        return {"chain_id": self.chain_id, "registry": self.registry, "accredited": self.accredited,
                "since_block": self.since_block, "until_block": self.until_block,
                "windows": [{"since_block": w.since_block, "until_block": w.until_block} for w in self.windows]}


@dataclass(frozen=True)
class Institution:
    """Everything the accreditor lists for one DID."""

    did: str
    name: str
    accreditations: tuple[Accreditation, ...]

    @property
    def accredited(self) -> bool:
        """Accredited now with at least one registry."""
        return any(a.accredited for a in self.accreditations)

    def accreditation_for(self, chain_id: int, registry: str) -> Accreditation | None:
        registry = checksum(registry)
        return next((a for a in self.accreditations if a.chain_id == chain_id and a.registry == registry), None)

    def to_json(self) -> dict:
        return {"did": self.did, "name": self.name, "accredited": self.accredited,
                "registries": [a.to_json() for a in self.accreditations]}


class Policy(StrEnum):
    """How a verifier reads the windows (see the module doc)."""

    CURRENT = "current"  # accredited with the registry now (the default)
    CURRENT_AND_WHEN_ANCHORED = "current-and-when-anchored"  # now, and when the root was anchored
    WHEN_ANCHORED = "when-anchored"  # when the root was anchored; a later withdrawal does not reach back


@dataclass(frozen=True)
class Verdict:
    """The answer for one credential: trusted or not, a sentence saying why, and
    the accreditation it rests on (None when the DID or registry is not listed)."""

    trusted: bool
    message: str
    accreditation: Accreditation | None


# ----- addresses ----------------------------------------------------------


@dataclass(frozen=True)
class RegistryRef:
    """A contract named as `<chainId>:<address>` or just `<address>` (chain id None)."""

    chain_id: int | None
    address: str

    def __str__(self) -> str:
        return self.address if self.chain_id is None else f"{self.chain_id}:{self.address}"


def parse_registry_ref(text: str, what: str = "registry") -> RegistryRef:
    """`<chainId>:<address>` or `<address>`; AccreditationError with a sentence otherwise."""
    value = text.strip()
    chain_part, sep, address = value.rpartition(":")
    chain_id = None
    if sep:
        if not chain_part.isdigit() or int(chain_part) <= 0:
            raise AccreditationError(f"the {what} {text!r} is not <chainId>:<address>: "
                                     f"{chain_part!r} is not a chain id (a positive whole number)")
        chain_id = int(chain_part)
    if not Web3.is_address(address):
        raise AccreditationError(f"the {what} {text!r} does not name an address "
                                 "(expected 0x and 40 hex digits, optionally after <chainId>:)")
    return RegistryRef(chain_id, checksum(address))


# ----- the accreditor's side (web3, with a key) -----------------------------


def code_is_accreditation_registry(code: bytes) -> bool:
    return keccak256(code) == keccak256(bytes.fromhex(load_artifact(CONTRACT)["deployedBytecode"][2:]))


class AccreditationRegistry:
    """A deployed AccreditationRegistry and the accreditor's key that acts on it."""

    def __init__(self, w3: Web3, address: str, accreditor: LocalAccount | None = None,
                 confirmations: int = 0):
        self.w3 = w3
        self.address = checksum(address)
        self.chain_id = w3.eth.chain_id
        code = bytes(w3.eth.get_code(self.address))
        if not code:
            raise NotAnAccreditationRegistry(f"there is no contract at {self.address} on chain {self.chain_id}")
        if not code_is_accreditation_registry(code):
            raise NotAnAccreditationRegistry(
                f"the contract at {self.address} on chain {self.chain_id} is not an AccreditationRegistry "
                "(its code differs from contracts/AccreditationRegistry.json)")
        self.contract = w3.eth.contract(address=self.address, abi=load_artifact(CONTRACT)["abi"])
        self.accreditor = accreditor
        self.transactor = Transactor(w3, self.chain_id, confirmations)

    @classmethod
    def deploy(cls, w3: Web3, accreditor: LocalAccount, confirmations: int = 0) -> tuple[AccreditationRegistry, int]:
        """Deploy a fresh registry whose accreditor is `accreditor`; returns it and its block."""
        address, block = deploy_contract(w3, accreditor, CONTRACT)
        return cls(w3, address, accreditor, confirmations), block

    def owner(self) -> str:
        return self.contract.functions.owner().call()

    def _key(self) -> LocalAccount:
        """The accreditor's key, checked against the contract before anything is
        sent, so a wrong key is a sentence and not a revert."""
        if self.accreditor is None:
            raise NotTheAccreditor("no accreditor key is available here: set ATTEST_ACCREDITOR_KEY")
        owner = self.owner()
        if owner != self.accreditor.address:
            raise NotTheAccreditor(
                f"the key at hand ({self.accreditor.address}) is not the accreditor of the registry at "
                f"{self.address} on chain {self.chain_id}, which is {owner}: set ATTEST_ACCREDITOR_KEY "
                "(or keys/accreditor.key) to the accreditor's key")
        return self.accreditor

    def accredit(self, did: str, name: str, registry: str, chain_id: int | None = None) -> TxResult:
        """Accredit `did` under `name` with the CredentialRegistry `registry` on
        `chain_id` (by default this registry's own chain)."""
        chain_id = self.chain_id if chain_id is None else chain_id
        fn = self.contract.functions.accredit(did, name, chain_id, checksum(registry))
        return self.transactor.send(self._key(), fn)

    def withdraw(self, did: str) -> TxResult:
        """De-accredit `did`: close the window of every registry it has."""
        return self.transactor.send(self._key(), self.contract.functions.withdraw(did))

    def withdraw_registry(self, did: str, registry: str, chain_id: int | None = None) -> TxResult:
        """Close one registry's window, leaving the institution's others open."""
        chain_id = self.chain_id if chain_id is None else chain_id
        fn = self.contract.functions.withdrawRegistry(did, chain_id, checksum(registry))
        return self.transactor.send(self._key(), fn)

    def rename(self, did: str, name: str) -> TxResult:
        return self.transactor.send(self._key(), self.contract.functions.rename(did, name))

    def transfer_accreditor(self, new_accreditor: str) -> TxResult:
        return self.transactor.send(self._key(), self.contract.functions.transferOwnership(checksum(new_accreditor)))

    def events(self, tx: TxResult) -> list[dict]:
        """This registry's events in transaction `tx`, in log order, each as
        {"event": name, **its arguments}."""
        receipt = self.w3.eth.get_transaction_receipt(tx.tx_hash)
        found = []
        for entry in self.contract.abi:
            if entry["type"] != "event":
                continue
            event = getattr(self.contract.events, entry["name"])()
            for log in event.process_receipt(receipt, errors=DISCARD):
                found.append((log["logIndex"], {"event": entry["name"], **log["args"]}))
        return [event for _, event in sorted(found, key=lambda pair: pair[0])]


# ----- the verifier's side (raw JSON-RPC, no key) ---------------------------


def _selector(signature: str) -> bytes:
    return keccak256(signature.encode())[:4]


_ACCREDITATION_OF = _selector("accreditationOf(string)")
_WAS_ACCREDITED_AT = _selector("wasAccreditedAt(string,uint64,address,uint256)")
_INSTITUTION_COUNT = _selector("institutionCount()")
_INSTITUTION_AT = _selector("institutionAt(uint256)")
_INSTITUTION_TYPE = "(string,string,(uint64,address,(uint64,uint64)[])[])"


class AccreditationReader:
    """Read-only view of one AccreditationRegistry over a ChainReader's transport;
    safe to share between threads."""

    def __init__(self, chain: ChainReader, address: str):
        self.chain = chain
        self.address = checksum(address)
        self._head: tuple[int, float] | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"AccreditationReader({self.chain.public_url}, {self.address})"

    # ----- plumbing ----------------------------------------------------------

    def require_registry(self) -> None:
        """NotAnAccreditationRegistry unless this verifier's AccreditationRegistry lives here.
        Code, once there, stays (the contract cannot self-destruct): the answer is kept."""
        chain_id = self.chain.chain_id()
        key = ("accreditation-code", chain_id, self.address)
        if self.chain._facts.get(key):
            return
        code = bytes.fromhex((self.chain.rpc("eth_getCode", [self.address, "latest"]) or "0x")[2:])
        if not code:
            raise NotAnAccreditationRegistry(f"there is no contract at {self.address} on chain {chain_id} "
                                             f"(node {self.chain.public_url})")
        if not code_is_accreditation_registry(code):
            raise NotAnAccreditationRegistry(
                f"the contract at {self.address} on chain {chain_id} is not an AccreditationRegistry "
                "(its code differs from contracts/AccreditationRegistry.json)")
        self.chain._facts.put(key, True)

    def _call(self, selector: bytes, types: list[str], args: list, out: list[str]) -> tuple:
        self.require_registry()
        raw = self.chain.call(self.address, selector + encode(types, args))
        try:
            return decode(out, raw)
        except Exception as exc:  # noqa: BLE001 - eth_abi raises several unrelated types
            raise NotAnAccreditationRegistry(
                f"the contract at {self.address} did not answer as an AccreditationRegistry") from exc

    def _settled(self, block_number: int) -> bool:
        """Is `block_number` mined and final, so that no later change can alter
        an answer about it? (A head read a second ago only errs on the safe side.)"""
        with self._lock:
            cached = self._head
            if cached is None or time.monotonic() - cached[1] > HEAD_TTL:
                cached = self._head = (int(self.chain.rpc("eth_blockNumber", []), 16), time.monotonic())
        return block_number <= cached[0] - max(self.chain.finality_depth, 0)

    # ----- reads -------------------------------------------------------------

    def institution(self, did: str) -> Institution | None:
        """All the registry lists for `did`, or None when it was never accredited.
        Asked every time: a withdrawal may come at any block."""
        self.require_registry()
        raw = self.chain.call(self.address, _ACCREDITATION_OF + encode(["string"], [did]))
        try:
            return _parse_institution(raw)
        except Exception as exc:  # noqa: BLE001 - eth_abi raises several unrelated types
            raise NotAnAccreditationRegistry(
                f"the contract at {self.address} did not answer as an AccreditationRegistry") from exc

    def accreditation(self, did: str, chain_id: int, registry: str) -> Accreditation | None:
        """`did`'s accreditation with the CredentialRegistry `registry` on
        `chain_id` (current or withdrawn), or None when never accredited with it."""
        institution = self.institution(did)
        return None if institution is None else institution.accreditation_for(chain_id, registry)

    def is_accredited(self, did: str, chain_id: int, registry: str) -> bool:
        """Accredited with that registry now."""
        found = self.accreditation(did, chain_id, registry)
        return found is not None and found.accredited

    def was_accredited_at(self, did: str, chain_id: int, registry: str, block_number: int) -> bool:
        """Accredited with that registry in block `block_number` of the accreditation
        registry's own chain; kept once that block is settled."""
        key = ("accredited-at", self.chain.chain_id(), self.address, did, chain_id, checksum(registry), block_number)
        cached = self.chain._facts.get(key)
        if cached is not None:
            return cached
        (answer,) = self._call(_WAS_ACCREDITED_AT, ["string", "uint64", "address", "uint256"],
                               [did, chain_id, checksum(registry), block_number], ["bool"])
        if self._settled(block_number):
            self.chain._facts.put(key, bool(answer))
        return bool(answer)

    def institution_count(self) -> int:
        (count,) = self._call(_INSTITUTION_COUNT, [], [], ["uint256"])
        return count

    def institutions(self) -> list[Institution]:
        """Every institution ever accredited (withdrawn ones too), in order of
        first accreditation: count, then each by index (no log scan, which many
        public RPC endpoints limit to a few thousand blocks)."""
        listed = []
        for index in range(self.institution_count()):
            (did,) = self._call(_INSTITUTION_AT, ["uint256"], [index], ["string"])
            institution = self.institution(did)
            if institution is not None:
                listed.append(institution)
        return listed

    def judge(self, did: str, chain_id: int, registry: str, anchored_block: int,
              policy: Policy = Policy.CURRENT) -> Verdict:
        """Does this registry vouch for a credential issued by `did`, anchored in
        `registry` on `chain_id` at block `anchored_block` (that chain's block)?
        One eth_call. Windows count blocks of the accreditation registry's own
        chain, so for a registry on another chain only Policy.CURRENT can be judged."""
        policy = Policy(policy)
        registry = checksum(registry)
        where = f"the accreditation registry {self.address} on chain {self.chain.chain_id()}"
        institution = self.institution(did)
        if institution is None:
            return Verdict(False, f"{did} is not listed in {where}", None)
        found = institution.accreditation_for(chain_id, registry)
        if found is None:
            listed = ", ".join(f"{a.registry} on chain {a.chain_id}" for a in institution.accreditations)
            return Verdict(False, f"{did} ({institution.name}) is listed in {where}, but not with registry "
                                  f"{registry} on chain {chain_id} (listed: {listed})", None)
        if found.accredited:
            now = f"is accredited by {where} with registry {registry} on chain {chain_id} since block {found.since_block}"
        else:
            now = (f"was accredited by {where} with registry {registry} on chain {chain_id} until block "
                   f"{found.until_block}, when the accreditation was withdrawn")
        here = self.chain.chain_id()
        if chain_id != here:
            # Windows count this chain's blocks; the anchoring block is another chain's.
            if policy is Policy.CURRENT:
                return Verdict(found.accredited, f"{did} ({found.name}) {now}", found)
            return Verdict(False, f"{did} ({found.name}) {now}; its windows count blocks of chain {here}, "
                                  f"but the root was anchored on chain {chain_id}, so whether it was accredited "
                                  f"then cannot be told (only policy {Policy.CURRENT.value!r} can be checked)",
                           found)
        window = next((w for w in found.windows if w.covers(anchored_block)), None)
        if window is not None:
            then = f"the root was anchored at block {anchored_block}, while accredited"
        else:
            then = (f"the root was anchored at block {anchored_block}, when it was not accredited "
                    f"(accredited {_windows_text(found.windows)})")
        if policy is Policy.CURRENT:
            trusted = found.accredited
        elif policy is Policy.WHEN_ANCHORED:
            trusted = window is not None
        else:
            trusted = found.accredited and window is not None
        return Verdict(trusted, f"{did} ({found.name}) {now}; {then}", found)


@lru_cache(maxsize=4096)
def _parse_institution(raw: bytes) -> Institution | None:
    """Decode accreditationOf's answer. Kept by the answer's bytes, not by DID:
    the chain is asked every time, only the decoding (a third of a verifier's
    read, for eth_abi's nested types) is spared when the answer is the same."""
    ((listed_did, name, registries),) = decode([_INSTITUTION_TYPE], raw)
    if not listed_did:
        return None
    accreditations = []
    for chain_id, registry, windows in registries:
        ws = tuple(Window(since, until or None) for since, until in windows)
        last = ws[-1]
        accreditations.append(Accreditation(
            did=listed_did, name=name, chain_id=chain_id, registry=checksum(registry),
            since_block=last.since_block, until_block=last.until_block,
            accredited=last.until_block is None, windows=ws))
    return Institution(listed_did, name, tuple(accreditations))


def _windows_text(windows: tuple[Window, ...]) -> str:
    return ", ".join(f"from block {w.since_block} " + ("on" if w.until_block is None else f"until block {w.until_block}")
                     for w in windows)


def open_accreditation_reader(rpc_url: str, registry: str, finality_depth: int = 0,
                              chain: ChainReader | None = None) -> AccreditationReader:
    """The verifier's entry point: `registry` is `<chainId>:<address>` (or just the
    address). When a chain id is given, the node at `rpc_url` must be on it.
    Pass `chain` to share an existing ChainReader (its connection and cache)."""
    ref = parse_registry_ref(registry, "accreditation registry")
    chain = chain or ChainReader(rpc_url, finality_depth=finality_depth)
    if ref.chain_id is not None and chain.chain_id() != ref.chain_id:
        raise AccreditationError(
            f"the accreditation registry {ref} is on chain {ref.chain_id}, but the node at "
            f"{chain.public_url} is chain {chain.chain_id()}: point the RPC URL at chain {ref.chain_id}")
    reader = AccreditationReader(chain, ref.address)
    reader.require_registry()
    return reader


# ----- as a source of the verifier's trust list --------------------------------------

class AccreditationSource:
    """The verifier's trust-list source backed by an accreditation registry: a DID
    is trusted with the CredentialRegistries it is accredited with now (the
    default policy, see the module doc); the registry vouches for the signing
    keys (`issuer_authorized`). Opened on first use, so an accreditation node that
    is down at start-up only makes its DIDs unknown for now."""

    def __init__(self, rpc_url: str, registry: str, finality_depth: int = 0):
        self.rpc_url, self.ref, self.finality_depth = rpc_url, registry, finality_depth
        self.name = f"the accreditation registry {registry}"
        self._reader: AccreditationReader | None = None
        self._lock = threading.Lock()

    def _open(self) -> AccreditationReader:
        from credentials.trust import TrustUnavailable

        if self._reader is None:
            with self._lock:
                if self._reader is None:
                    try:
                        self._reader = open_accreditation_reader(self.rpc_url, self.ref, self.finality_depth)
                    except ChainError as exc:
                        raise TrustUnavailable(f"{self.name} cannot be read right now ({exc})") from exc
        return self._reader

    def _entry(self, institution: Institution):
        from credentials.identity import ChainAccount, domain_of
        from credentials.trust import TrustEntry

        reader = self._reader
        where = f"the accreditation registry {reader.address} on chain {reader.chain.chain_id()}"
        live = tuple(ChainAccount(a.chain_id, a.registry) for a in institution.accreditations if a.accredited)
        note = None
        if not live:
            ended = max((a.until_block or 0) for a in institution.accreditations) if institution.accreditations else 0
            note = f"{where} withdrew its accreditation of {institution.name} at block {ended}"
        return TrustEntry(did=institution.did, name=institution.name, domain=domain_of(institution.did),
                          registries=live, source=f"accreditation by {where}", keys_from_registry=True,
                          withdrawn=note)

    def lookup(self, did: str):
        from credentials.trust import TrustUnavailable

        reader = self._open()
        try:
            institution = reader.institution(did)
        except ChainError as exc:
            raise TrustUnavailable(f"{self.name} cannot be read right now ({exc})") from exc
        return None if institution is None else self._entry(institution)

    def entries(self) -> list:
        from credentials.trust import TrustUnavailable

        reader = self._open()
        try:
            return [self._entry(i) for i in reader.institutions() if i.accredited]
        except ChainError as exc:
            raise TrustUnavailable(f"{self.name} cannot be read right now ({exc})") from exc
