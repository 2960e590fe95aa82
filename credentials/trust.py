"""Whom a verifier trusts, and whether a credential's issuer is one of them.

Integrity is not identity: anyone can deploy a copy of the registry, authorise
their own key and sign a document that calls itself "Example University". So the
verifier keeps a trust list, and `TrustPolicy.judge()` answers the second
question: is the issuer DID trusted, and does the trusted entry list the key
that signed and the registry that anchored? A credential with an anchor proof
is judged by its Ethereum signing key and registry (and, where the entry pins
Ed25519 keys, by its Data Integrity key too); one secured by a Data Integrity
proof alone (another issuer's VC) by the Ed25519 key that signed it.

Sources, asked in order (the first that knows the DID answers):
1. the installation's own institution, pinned by its own keys and registries;
2. entries the registrar added (`trust add`, the registrar's trust page), kept
   in the database, and the file named by ATTEST_TRUSTED_ISSUERS;
3. optionally an on-chain accreditation registry (see `credentials.accreditation`);
an entry that pins nothing but a did:web is resolved over HTTPS (cached, with
a TTL) by `credentials.didweb`.

The file format follows the Digital Credentials Consortium's issuer registry
(`{"meta": {...}, "entries": {"<did>": {"name", "url", "location"}}}`, as read
by the Learner Credential Wallet and VerifierPlus), so a DCC registry file is a
valid trust list; each entry may add an `attest` object with what Attest pins:

    "attest": {"domain": "uni.example.edu",
               "ethereumAccounts": ["eip155:31337:0xAbc…"],        # CAIP-10 signing addresses
               "credentialRegistries": ["eip155:31337:0xDef…"],    # CAIP-10 registry contracts
               "ed25519Keys": [{"id": "did:web:…#key-1", "publicKeyMultibase": "z6Mk…"}]}

An entry with no pins at all is resolved through its did:web (DCC entries are
all of this kind). Pinned entries need no issuer server: verification goes on
when the issuer's website is gone.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from credentials.identity import (
    ChainAccount,
    Ed25519Key,
    IdentityError,
    Institution,
    caip10,
    did_web_parts,
    domain_of,
    parse_caip10,
)

FORMAT = "https://github.com/digitalcredentials/issuer-registry#attest-1"
MAX_TRUST_FILE_BYTES = 8 * 1024 * 1024

# What a judgement can be.
TRUSTED, NOT_TRUSTED, UNKNOWN_NOW = "trusted", "not_trusted", "unknown_now"


class TrustListError(ValueError):
    """A trust list that cannot be read; the message names the path and the problem."""


class TrustUnavailable(RuntimeError):
    """Whether the issuer is trusted cannot be known right now (a DID document that
    does not answer, an accreditation registry out of reach)."""


@dataclass(frozen=True)
class TrustEntry:
    """One trusted institution and what it is pinned by."""

    did: str
    name: str
    domain: str | None = None
    url: str | None = None
    location: str | None = None
    issuers: tuple[ChainAccount, ...] = ()
    registries: tuple[ChainAccount, ...] = ()
    ed25519_keys: tuple[Ed25519Key, ...] = ()
    # Where the entry came from, in words for the page: "this installation",
    # "the trust list", "accredited by …", "its DID document at https://…".
    source: str = "the trust list"
    # An accreditation binds DID <-> registry only; the registry itself vouches
    # for the signing key (`issuer_authorized`), so no address is pinned.
    keys_from_registry: bool = False
    # Why an entry that still names the DID vouches for nothing now (an
    # accreditation withdrawn); shown instead of "registry not listed".
    withdrawn: str | None = None
    # Never resolved through did:web, even when it lists nothing yet (the
    # installation's own entry: it knows its own keys).
    pinned: bool = False

    @property
    def pins_nothing(self) -> bool:
        """Trusted by its did:web alone: keys and registries are read from its DID document."""
        return not (self.issuers or self.registries or self.ed25519_keys or self.keys_from_registry or self.pinned)

    @property
    def shown_domain(self) -> str | None:
        return self.domain or domain_of(self.did)

    def lists_issuer(self, chain_id: int, address: str) -> bool:
        return (chain_id, address.lower()) in {a.key() for a in self.issuers}

    def lists_registry(self, chain_id: int, address: str) -> bool:
        return (chain_id, address.lower()) in {r.key() for r in self.registries}

    def lists_ed25519(self, public_key_multibase: str) -> bool:
        return any(k.public_key_multibase == public_key_multibase for k in self.ed25519_keys)

    def ed25519_key_for(self, method: str) -> str | None:
        """The publicKeyMultibase of the verification method `method`
        (`<did>#<fragment>`), if this entry lists it."""
        for key in self.ed25519_keys:
            if method in (key.id, f"{self.did}#{key.public_key_multibase}"):
                return key.public_key_multibase
        return None

    def as_entry_json(self) -> dict:
        """This entry in the trust-list file format."""
        body: dict = {"name": self.name}
        if self.url:
            body["url"] = self.url
        if self.location:
            body["location"] = self.location
        pins: dict = {}
        if self.domain:
            pins["domain"] = self.domain
        if self.issuers:
            pins["ethereumAccounts"] = [a.caip10 for a in self.issuers]
        if self.registries:
            pins["credentialRegistries"] = [r.caip10 for r in self.registries]
        if self.ed25519_keys:
            pins["ed25519Keys"] = [{"id": k.id, "publicKeyMultibase": k.public_key_multibase}
                                   for k in self.ed25519_keys]
        if pins:
            body["attest"] = pins
        return body


def entry_for_institution(inst: Institution) -> list[TrustEntry]:
    """The installation's own entries: one per DID it has issued under, each pinned
    by every key and registry it has used."""
    return [TrustEntry(did=did, name=inst.name, domain=inst.domain, url=inst.public_url,
                       issuers=inst.issuers, registries=inst.registries, ed25519_keys=inst.ed25519_keys,
                       source="this installation", pinned=True) for did in inst.dids]


# ----- the file format ---------------------------------------------------------------

def _accounts(values, where: str) -> tuple[ChainAccount, ...]:
    if values is None:
        return ()
    if not isinstance(values, list):
        raise TrustListError(f"{where}: expected a list of CAIP-10 ids such as eip155:1:0x…, found {values!r:.60}")
    out = []
    for i, value in enumerate(values):
        parsed = parse_caip10(value)
        if parsed is None:
            raise TrustListError(f"{where}[{i}]: expected a CAIP-10 id such as eip155:1:0xAbc… (40 hex digits), "
                                 f"found {value!r:.60}")
        out.append(ChainAccount(*parsed))
    return tuple(out)


def _keys(values, where: str) -> tuple[Ed25519Key, ...]:
    if values is None:
        return ()
    if not isinstance(values, list):
        raise TrustListError(f"{where}: expected a list of {{id, publicKeyMultibase}}, found {values!r:.60}")
    out = []
    for i, value in enumerate(values):
        if not (isinstance(value, dict) and isinstance(value.get("id"), str)
                and isinstance(value.get("publicKeyMultibase"), str) and value["publicKeyMultibase"].startswith("z")):
            raise TrustListError(f"{where}[{i}]: expected {{\"id\": \"did:…#…\", \"publicKeyMultibase\": \"z…\"}}, "
                                 f"found {value!r:.60}")
        out.append(Ed25519Key(value["id"], value["publicKeyMultibase"]))
    return tuple(out)


def parse_entry(did: str, body, where: str, source: str = "the trust list") -> TrustEntry:
    if not isinstance(did, str) or not did.startswith("did:"):
        raise TrustListError(f"{where}: each key of entries must be a DID, found {did!r:.60}")
    if not isinstance(body, dict):
        raise TrustListError(f"{where}: expected an object with at least a name, found {body!r:.60}")
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise TrustListError(f"{where}.name: expected the institution's name, found {name!r:.60}")
    pins = body.get("attest") or {}
    if not isinstance(pins, dict):
        raise TrustListError(f"{where}.attest: expected an object, found {pins!r:.60}")
    unknown = set(pins) - {"domain", "ethereumAccounts", "credentialRegistries", "ed25519Keys"}
    if unknown:
        raise TrustListError(f"{where}.attest: unknown member(s) {', '.join(sorted(unknown))}")
    domain = pins.get("domain")
    if domain is not None and not isinstance(domain, str):
        raise TrustListError(f"{where}.attest.domain: expected a domain name, found {domain!r:.60}")
    entry = TrustEntry(
        did=did, name=" ".join(name.split()), domain=domain or domain_of(did),
        url=body.get("url") if isinstance(body.get("url"), str) else None,
        location=body.get("location") if isinstance(body.get("location"), str) else None,
        issuers=_accounts(pins.get("ethereumAccounts"), f"{where}.attest.ethereumAccounts"),
        registries=_accounts(pins.get("credentialRegistries"), f"{where}.attest.credentialRegistries"),
        ed25519_keys=_keys(pins.get("ed25519Keys"), f"{where}.attest.ed25519Keys"),
        source=source)
    if entry.pins_nothing and did_web_parts(did) is None:
        raise TrustListError(f"{where}: an entry that pins no key or registry must be a did:web (it is resolved "
                             f"over HTTPS), found {did!r:.60}")
    return entry


def parse_trust_list(data: bytes | str | dict, where: str = "trust list",
                     source: str = "the trust list") -> list[TrustEntry]:
    """Entries of a trust list document; TrustListError naming the path of the first problem."""
    if isinstance(data, (bytes, str)):
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise TrustListError(f"{where}: not JSON ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("entries"), dict):
        raise TrustListError(f"{where}: expected an object with \"entries\": {{\"<did>\": {{\"name\": …}}}} "
                             "(the DCC issuer-registry format)")
    return [parse_entry(did, body, f"{where}: entries[{did!r}]", source) for did, body in data["entries"].items()]


def trust_list_json(entries: Iterable[TrustEntry], publisher: str | None = None) -> dict:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    meta = {"created": now, "updated": now, "format": FORMAT}
    if publisher:
        meta["publisher"] = publisher
    out: dict[str, dict] = {}
    for entry in entries:
        out.setdefault(entry.did, entry.as_entry_json())
    return {"meta": meta, "entries": out}


def read_trust_file(path: Path) -> list[TrustEntry]:
    try:
        size = path.stat().st_size
        if size > MAX_TRUST_FILE_BYTES:
            raise TrustListError(f"{path}: {size:,} bytes is too large for a trust list")
        return parse_trust_list(path.read_bytes(), str(path), source=f"the trust list {path.name}")
    except OSError as exc:
        raise TrustListError(f"{path}: cannot be read ({exc.strerror or exc})") from exc


# ----- sources -----------------------------------------------------------------------

class TrustSource(Protocol):
    """Somewhere that may know a DID. `lookup` returns None when it does not know
    it, and raises TrustUnavailable when it cannot tell right now."""

    name: str

    def lookup(self, did: str) -> TrustEntry | None: ...

    def entries(self) -> list[TrustEntry]: ...


class StaticSource:
    """Entries given at once (the own institution, a file, the database)."""

    def __init__(self, name: str, entries: Sequence[TrustEntry]):
        self.name = name
        self._entries = list(entries)
        self._by_did = {}
        for entry in self._entries:
            self._by_did.setdefault(entry.did, entry)

    def lookup(self, did: str) -> TrustEntry | None:
        return self._by_did.get(did)

    def entries(self) -> list[TrustEntry]:
        return list(self._entries)


class CachedSource:
    """Entries read by `load()` (the database: the own institution, the registrar's
    additions), kept for `ttl` seconds so a verification costs no query; a change
    made in this process calls `invalidate()`, other processes see it within the TTL."""

    def __init__(self, name: str, load: Callable[[], list[TrustEntry]], ttl: float = 5.0):
        self.name, self._load, self.ttl = name, load, ttl
        self._lock = threading.Lock()
        self._source: StaticSource | None = None
        self._until = 0.0

    def invalidate(self) -> None:
        self._until = 0.0

    def _current(self) -> StaticSource:
        now = time.monotonic()
        if self._source is None or now >= self._until:
            with self._lock:
                if self._source is None or now >= self._until:
                    self._source = StaticSource(self.name, self._load())
                    self._until = now + self.ttl
        return self._source

    def lookup(self, did: str) -> TrustEntry | None:
        return self._current().lookup(did)

    def entries(self) -> list[TrustEntry]:
        return self._current().entries()


class FileSource:
    """ATTEST_TRUSTED_ISSUERS: re-read when the file changes; a broken file makes
    every DID it might hold unknown for now (never silently trusted or refused)."""

    def __init__(self, path: Path, recheck_after: float = 5.0):
        self.path = path
        self.name = f"the trust list {path}"
        self.recheck_after = recheck_after
        self._lock = threading.Lock()
        self._stamp: tuple | None = None
        self._checked = 0.0
        self._source = StaticSource(self.name, [])
        self._error: str | None = None

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked < self.recheck_after and self._stamp is not None:
            return
        with self._lock:
            self._checked = now
            try:
                st = self.path.stat()
                stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
            except OSError as exc:
                stamp = ("missing", str(exc))
            if stamp == self._stamp:
                return
            self._stamp = stamp
            try:
                self._source, self._error = StaticSource(self.name, read_trust_file(self.path)), None
            except TrustListError as exc:
                self._source, self._error = StaticSource(self.name, []), str(exc)

    @property
    def error(self) -> str | None:
        self._refresh()
        return self._error

    def lookup(self, did: str) -> TrustEntry | None:
        self._refresh()
        entry = self._source.lookup(did)
        if entry is None and self._error:
            raise TrustUnavailable(f"the trust list file cannot be read right now ({self._error})")
        return entry

    def entries(self) -> list[TrustEntry]:
        self._refresh()
        return self._source.entries()


# ----- the judgement -----------------------------------------------------------------

@dataclass(frozen=True)
class Claim:
    """What a credential says about who issued it, and what its proofs show.
    `signer`, `chain_id` and `registry` come from the anchor proof (None when
    there is none); `ed25519_key` is the publicKeyMultibase that verified its
    Data Integrity proof (None when there is none)."""

    issuer_did: str
    issuer_name: str | None  # the document's own word: shown only as "calls itself …"
    chain_id: int | None
    signer: str | None       # the address the EIP-712 signature recovers
    registry: str | None     # the registry the anchor proof names
    ed25519_key: str | None = None


@dataclass(frozen=True)
class Judgement:
    status: str              # TRUSTED, NOT_TRUSTED or UNKNOWN_NOW
    message: str
    entry: TrustEntry | None = None

    def confirmed_issuer(self) -> dict | None:
        """Who the verifier confirms issued it: the trusted entry's words, never the document's."""
        if self.status != TRUSTED or self.entry is None:
            return None
        return {"did": self.entry.did, "name": self.entry.name, "domain": self.entry.shown_domain,
                "source": self.entry.source}


def _calls_itself(claim: Claim) -> str:
    name = (claim.issuer_name or "").strip()[:120]
    return f"calls itself {name} ({claim.issuer_did})" if name else f"names its issuer {claim.issuer_did}"


def _judge_data_integrity(claim: Claim, entry: TrustEntry) -> Judgement:
    """A credential with no anchor proof: its Ed25519 key must be one the entry lists."""
    who = entry.name
    where = f" ({entry.shown_domain})" if entry.shown_domain else ""
    if entry.keys_from_registry or entry.withdrawn:
        why = entry.withdrawn or (f"{who} is trusted through a credential registry, and this credential has no "
                                  "anchor proof in one")
        return Judgement(NOT_TRUSTED, f"The credential {_calls_itself(claim)}, but {why}; do not rely on this "
                                      "credential.", entry)
    if not entry.lists_ed25519(claim.ed25519_key):
        return Judgement(NOT_TRUSTED, f"The credential {_calls_itself(claim)}, but the Ed25519 key that signed its "
                                      f"Data Integrity proof ({claim.ed25519_key}) is not one {who} lists; do not "
                                      "rely on this credential.", entry)
    return Judgement(TRUSTED, f"Issued by {who}{where}, confirmed by {entry.source}: the Ed25519 key that signed its "
                              f"Data Integrity proof is one {who} lists.", entry)


def _judge_entry(claim: Claim, entry: TrustEntry) -> Judgement:
    if claim.signer is None:
        return _judge_data_integrity(claim, entry)
    who = entry.name
    where = f" ({entry.shown_domain})" if entry.shown_domain else ""
    if not entry.keys_from_registry and not entry.lists_issuer(claim.chain_id, claim.signer):
        return Judgement(NOT_TRUSTED, f"The credential {_calls_itself(claim)}, but the key that signed it "
                                      f"({claim.signer}) is not one {who} lists; do not rely on this credential.",
                         entry)
    if entry.withdrawn and not entry.lists_registry(claim.chain_id, claim.registry):
        return Judgement(NOT_TRUSTED, f"The credential {_calls_itself(claim)}, but {entry.withdrawn}; do not rely "
                                      "on this credential.", entry)
    if not entry.lists_registry(claim.chain_id, claim.registry):
        return Judgement(NOT_TRUSTED, f"The credential {_calls_itself(claim)}, but it is anchored in registry "
                                      f"{claim.registry} on chain {claim.chain_id}, which is not one {who} lists; "
                                      "do not rely on this credential.", entry)
    # An entry that pins Ed25519 keys vouches for the Data Integrity proof too;
    # older entries (exported before those keys existed) pin Ethereum keys only.
    if claim.ed25519_key and entry.ed25519_keys and not entry.keys_from_registry \
            and not entry.lists_ed25519(claim.ed25519_key):
        return Judgement(NOT_TRUSTED, f"The credential {_calls_itself(claim)}, but the Ed25519 key that signed its "
                                      f"Data Integrity proof ({claim.ed25519_key}) is not one {who} lists; do not "
                                      "rely on this credential.", entry)
    keys = ("the registry it is anchored in is the one " + who + " is accredited with (the registry vouches for "
            "the signing key, see issuer_authorized)") if entry.keys_from_registry else \
        f"the key that signed it ({claim.signer}) and the registry it is anchored in are ones {who} lists"
    return Judgement(TRUSTED, f"Issued by {who}{where}, confirmed by {entry.source}: {keys}.", entry)


@dataclass
class TrustPolicy:
    """The verifier's trust list: its sources in order, plus a did:web resolver for
    entries that pin nothing."""

    sources: list[TrustSource] = field(default_factory=list)
    resolve: Callable[[str], TrustEntry] | None = None

    def lookup(self, did: str) -> TrustEntry | None:
        """The first source's entry for `did` (resolved through did:web if it pins
        nothing), None if no source trusts it; TrustUnavailable when a source that
        might cannot answer now and none other does."""
        unavailable: list[str] = []
        for source in self.sources:
            try:
                entry = source.lookup(did)
            except TrustUnavailable as exc:
                unavailable.append(str(exc))
                continue
            if entry is None:
                continue
            if entry.pins_nothing:
                if self.resolve is None:
                    raise TrustUnavailable(f"{entry.name} is trusted by its did:web, but this verifier cannot "
                                           "resolve DID documents")
                resolved = self.resolve(did)  # raises TrustUnavailable
                entry = replace(resolved, name=entry.name, url=entry.url or resolved.url,
                                location=entry.location, source=f"{entry.source}, keys from {resolved.source}")
            return entry
        if unavailable:
            raise TrustUnavailable("; ".join(unavailable))
        return None

    def ed25519_key(self, did: str, method: str) -> str | None:
        """The publicKeyMultibase the trusted entry for `did` (pinned, or its
        resolved DID document) gives the verification method `method`; None
        when no source trusts `did` or the entry does not list it.
        TrustUnavailable when that cannot be told now."""
        entry = self.lookup(did)
        return entry.ed25519_key_for(method) if entry is not None else None

    def judge(self, claim: Claim) -> Judgement:
        if claim.issuer_did.startswith("did:pkh:") and claim.signer is not None:
            return self._judge_by_address(claim)
        try:
            entry = self.lookup(claim.issuer_did)
        except TrustUnavailable as exc:
            return Judgement(UNKNOWN_NOW, f"Who issued this credential cannot be confirmed right now: {exc}. "
                                          "Try again later; until then, do not rely on its issuer.")
        if entry is None:
            return Judgement(NOT_TRUSTED, f"The credential {_calls_itself(claim)}, an issuer this verifier does not "
                                          "trust: it is on none of its trust lists. The document may be intact, but "
                                          "nothing confirms who issued it; do not rely on this credential.")
        return _judge_entry(claim, entry)

    def _judge_by_address(self, claim: Claim) -> Judgement:
        """Older credentials name the signing key itself (did:pkh) as the issuer: trusted
        when a trusted entry lists that key and the registry."""
        candidates: list[TrustEntry] = []
        for source in self.sources:
            try:
                candidates += [e for e in source.entries() if e.lists_issuer(claim.chain_id, claim.signer)]
            except TrustUnavailable:
                continue
        for entry in candidates:
            judgement = _judge_entry(claim, entry)
            if judgement.status == TRUSTED:
                return Judgement(TRUSTED, judgement.message[:-1] + " (the credential names its issuer by that "
                                          "key, an older form).", entry)
        return Judgement(NOT_TRUSTED, f"The credential {_calls_itself(claim)}, but no institution this verifier "
                                      f"trusts lists the key {claim.signer} and registry {claim.registry}; do not "
                                      "rely on this credential.")

    def entries(self) -> list[TrustEntry]:
        """Every entry of every source that can list its entries now, first source first."""
        out, seen = [], set()
        for source in self.sources:
            try:
                listed = source.entries()
            except TrustUnavailable:
                continue
            for entry in listed:
                if entry.did not in seen:
                    seen.add(entry.did)
                    out.append(entry)
        return out


def own_source(inst: Institution) -> StaticSource:
    return StaticSource("this installation", entry_for_institution(inst))


def validate_did(did: str) -> str:
    did = did.strip()
    if did_web_parts(did) is None:
        raise IdentityError(f"{did!r} is not a did:web identifier (did:web:domain[:path])")
    return did


__all__ = ["Claim", "FileSource", "Judgement", "StaticSource", "TrustEntry", "TrustListError", "TrustPolicy",
           "TrustUnavailable", "caip10", "entry_for_institution", "parse_trust_list", "read_trust_file",
           "trust_list_json"]
