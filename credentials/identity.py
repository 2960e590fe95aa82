"""Who the institution is: its profile, its did:web identifier and its DID document.

An institution is configured once: a name, its public URL (what people type,
and what QR codes print), an optional logo. Its identifier is the `did:web`
derived from the public URL (did:web method, W3C CCG): `https://uni.example.edu`
is `did:web:uni.example.edu`, served at `/.well-known/did.json`;
`https://example.edu/registry` is `did:web:example.edu:registry`, served at
`/registry/did.json`; a port is written `%3A`.

The DID document lists what a verifier needs to tie a credential to the
institution: every Ethereum address that signs for it (as
`EcdsaSecp256k1RecoveryMethod2020` methods with a CAIP-10 `blockchainAccountId`),
every CredentialRegistry it anchors in (a service entry whose endpoint is the
contract's CAIP-10 account id), and its Ed25519 keys (Multikey, id
`<did>#<publicKeyMultibase>`) for Data Integrity proofs. Addresses,
registries and keys are never dropped from it when replaced: credentials
signed with an old key still name it. Its contexts are DID 1.0, Multikey and
Attest's own (which defines the Ethereum method, the registry service and
`LinkedDomains`), all shipped, so the whole document expands in JSON-LD safe
mode.

What the installation has used is recorded in `institution_methods` as it is
used (a registry opened, a batch signed), so the DID document, the trust list
export and the verifier's own trust entry all read one table.

Migrations 1101-1199 belong here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

from sqlalchemy import BigInteger, Column, DateTime, Integer, String, Text, UniqueConstraint, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from kernel.database import Base, create_tables, migration, utcnow

DEFAULT_NAME = "Example University"
DEFAULT_PUBLIC_URL = "http://127.0.0.1:5000"
DID_CONTEXTS = ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"]
REGISTRY_SERVICE = "AttestCredentialRegistry"
ETHEREUM_METHOD = "EcdsaSecp256k1RecoveryMethod2020"

# Kinds of recorded method.
DID, ETHEREUM, REGISTRY, ED25519 = "did", "ethereum", "registry", "ed25519"
_KINDS = (DID, ETHEREUM, REGISTRY, ED25519)
_HOST = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")


class IdentityError(ValueError):
    """A profile or identifier that cannot be used; the message says why."""


# ----- did:web <-> URL -------------------------------------------------------------

def normalize_public_url(url: str) -> str:
    """`https://Uni.Example.edu/` -> `https://uni.example.edu`; IdentityError for
    anything that is not an http(s) URL with a host and no query or fragment."""
    url = (url or "").strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise IdentityError(f"the public URL must be an http(s) address such as https://uni.example.edu, "
                            f"not {url!r}")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise IdentityError(f"the public URL must have no query, fragment or user part: {url!r}")
    host = parts.hostname.lower()
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise IdentityError(f"the public URL's host {parts.hostname!r} is not a valid domain name") from exc
    if not _HOST.match(host):
        raise IdentityError(f"the public URL's host {host!r} is not a domain name or address")
    port = f":{parts.port}" if parts.port else ""
    path = parts.path.rstrip("/")
    return f"{parts.scheme}://{host}{port}{path}"


def did_web_from_url(public_url: str) -> str:
    """The did:web identifier of an institution reachable at `public_url`."""
    parts = urlsplit(normalize_public_url(public_url))
    ident = parts.hostname + (f"%3A{parts.port}" if parts.port else "")
    segments = [quote(unquote(s), safe="") for s in parts.path.split("/") if s]
    return ":".join(["did:web", ident, *segments])


def did_web_parts(did: str) -> tuple[str, list[str]] | None:
    """(host with optional :port, path segments) of a did:web, or None."""
    did = did.split("#", 1)[0]
    if not did.startswith("did:web:"):
        return None
    pieces = did[len("did:web:"):].split(":")
    host = unquote(pieces[0])
    if not host or not _HOST.match(host.split(":", 1)[0].lower()):
        return None
    return host.lower(), [unquote(p) for p in pieces[1:]]


def did_web_document_url(did: str, scheme: str = "https") -> str:
    """Where a did:web's DID document lives (did:web spec, "Read")."""
    parts = did_web_parts(did)
    if parts is None:
        raise IdentityError(f"{did!r} is not a did:web identifier")
    host, segments = parts
    path = "/" + "/".join(quote(s, safe="") for s in segments) + "/did.json" if segments else "/.well-known/did.json"
    return f"{scheme}://{host}{path}"


def domain_of(did: str) -> str | None:
    """The web domain a did:web is bound to (what a verifier shows), without port."""
    parts = did_web_parts(did)
    return parts[0].split(":", 1)[0] if parts else None


def caip10(chain_id: int, address: str) -> str:
    """`eip155:<chain id>:<address>` (CAIP-10), as DID documents name accounts."""
    return f"eip155:{int(chain_id)}:{address}"


def parse_caip10(value: str) -> tuple[int, str] | None:
    parts = value.split(":") if isinstance(value, str) else []
    if len(parts) == 3 and parts[0] == "eip155" and parts[1].isdigit() and re.fullmatch(r"0x[0-9a-fA-F]{40}", parts[2]):
        return int(parts[1]), parts[2]
    return None


# ----- the profile -----------------------------------------------------------------

@dataclass(frozen=True)
class ChainAccount:
    """An address on one chain: an issuer key or a registry contract."""

    chain_id: int
    address: str

    @property
    def caip10(self) -> str:
        return caip10(self.chain_id, self.address)

    def key(self) -> tuple[int, str]:
        return self.chain_id, self.address.lower()


@dataclass(frozen=True)
class Ed25519Key:
    id: str  # the verification method id, did:web:…#key-1
    public_key_multibase: str


@dataclass(frozen=True)
class Institution:
    """The institution as this installation knows itself."""

    name: str
    public_url: str
    logo_url: str | None = None
    # Every DID this installation has issued under (the current one first).
    dids: tuple[str, ...] = ()
    issuers: tuple[ChainAccount, ...] = ()
    registries: tuple[ChainAccount, ...] = ()
    ed25519_keys: tuple[Ed25519Key, ...] = ()
    public_url_from_env: bool = False

    @property
    def did(self) -> str:
        return did_web_from_url(self.public_url)

    @property
    def domain(self) -> str:
        return urlsplit(self.public_url).hostname or ""

    def did_document(self) -> dict:
        return did_document(self)


def did_document(inst: Institution) -> dict:
    """The institution's DID document (DID Core 1.0), as served at its did:web location."""
    did = inst.did
    methods, assertion = [], []
    for account in inst.issuers:
        method_id = f"{did}#{ethereum_method_fragment(account)}"
        methods.append({"id": method_id, "type": ETHEREUM_METHOD, "controller": did,
                        "blockchainAccountId": account.caip10})
        assertion.append(method_id)
    for key in inst.ed25519_keys:
        # Named under the current DID whatever DID it was recorded under: a
        # DID document lists only methods of its own DID.
        method_id = f"{did}#{key.public_key_multibase}"
        methods.append({"id": method_id, "type": "Multikey", "controller": did,
                        "publicKeyMultibase": key.public_key_multibase})
        assertion.append(method_id)
    services = [{"id": f"{did}#website", "type": "LinkedDomains", "serviceEndpoint": inst.public_url + "/"}]
    for registry in inst.registries:
        services.append({"id": f"{did}#registry-{registry.chain_id}-{registry.address.lower()}",
                         "type": REGISTRY_SERVICE, "serviceEndpoint": registry.caip10})
    from credentials.jsonld import attest_context_url

    document = {"@context": [*DID_CONTEXTS, attest_context_url(inst.public_url)], "id": did}
    also = [d for d in inst.dids if d != did]
    if also:
        document["alsoKnownAs"] = also
    document.update({"verificationMethod": methods, "assertionMethod": assertion, "service": services})
    return document


def ethereum_method_fragment(account: ChainAccount) -> str:
    return f"eip155-{account.chain_id}-{account.address.lower()}"


# ----- stored profile and methods ---------------------------------------------------

class InstitutionRecord(Base):
    """The profile as set on the registrar page or with `institution set` (one row)."""

    __tablename__ = "institution"
    id = Column(Integer, primary_key=True)
    name = Column(String(255), nullable=False)
    public_url = Column(String(500), nullable=True)
    logo_url = Column(String(500), nullable=True)
    updated_at = Column(DateTime, nullable=False, default=utcnow)
    updated_by = Column(String(255), nullable=True)


class InstitutionMethod(Base):
    """A DID, signing address, registry or key the institution has used; never deleted."""

    __tablename__ = "institution_methods"
    __table_args__ = (UniqueConstraint("kind", "chain_id", "value", name="uq_institution_method"),)
    id = Column(Integer, primary_key=True)
    kind = Column(String(16), nullable=False)
    chain_id = Column(BigInteger, nullable=False, default=0)  # 0 where no chain applies
    value = Column(Text, nullable=False)
    label = Column(String(200), nullable=True)
    added_at = Column(DateTime, nullable=False, default=utcnow)


@migration("1101_institution")
def _create_institution(conn) -> None:
    create_tables(conn, InstitutionRecord, InstitutionMethod)


@dataclass(frozen=True)
class ProfileDefaults:
    """What the environment says, used where nothing is stored (ATTEST_INSTITUTION_NAME,
    ATTEST_PUBLIC_URL, ATTEST_INSTITUTION_LOGO). ATTEST_PUBLIC_URL, when set, wins over
    the stored URL: it is how the deployment is reached."""

    name: str | None = None
    public_url: str | None = None
    logo_url: str | None = None
    # Where this process serves, used when no public URL is set or stored.
    fallback_url: str | None = None


def load_institution(session: Session, defaults: ProfileDefaults = ProfileDefaults()) -> Institution:
    record = session.get(InstitutionRecord, 1)
    name = (record.name if record else None) or defaults.name or DEFAULT_NAME
    if defaults.public_url:
        public_url, from_env = normalize_public_url(defaults.public_url), True
    else:
        public_url = normalize_public_url((record.public_url if record else None) or defaults.fallback_url
                                          or DEFAULT_PUBLIC_URL)
        from_env = False
    logo = (record.logo_url if record else None) or defaults.logo_url
    rows = session.scalars(select(InstitutionMethod).order_by(InstitutionMethod.id)).all()
    current = did_web_from_url(public_url)
    dids = [current] + [r.value for r in rows if r.kind == DID and r.value != current]
    issuers = tuple(ChainAccount(r.chain_id, r.value) for r in rows if r.kind == ETHEREUM)
    registries = tuple(ChainAccount(r.chain_id, r.value) for r in rows if r.kind == REGISTRY)
    keys = tuple(Ed25519Key(r.label or "", r.value) for r in rows if r.kind == ED25519)
    return Institution(name=name, public_url=public_url, logo_url=logo, dids=tuple(dids), issuers=issuers,
                       registries=registries, ed25519_keys=keys, public_url_from_env=from_env)


def save_profile(session: Session, actor: str, *, name: str | None = None, public_url: str | None = None,
                 logo_url: str | None = None) -> InstitutionRecord:
    """Set the stored profile (the caller commits). Values are checked first."""
    record = session.get(InstitutionRecord, 1) or InstitutionRecord(id=1, name=DEFAULT_NAME)
    if name is not None:
        name = " ".join(name.split())
        if not 2 <= len(name) <= 200:
            raise IdentityError("the institution's name must have 2 to 200 characters")
        record.name = name
    if public_url is not None:
        record.public_url = normalize_public_url(public_url) if public_url.strip() else None
    if logo_url is not None:
        logo_url = logo_url.strip()
        if logo_url and urlsplit(logo_url).scheme not in ("https", "http"):
            raise IdentityError(f"the logo must be an http(s) URL, not {logo_url!r}")
        record.logo_url = logo_url or None
    record.updated_at, record.updated_by = utcnow(), actor
    session.add(record)
    from kernel import audit

    audit.record(session, actor, "institution_updated", "institution", name=record.name,
                 public_url=record.public_url, logo_url=record.logo_url)
    return record


# INSERT ... ON CONFLICT DO NOTHING, in each engine's own dialect.
_UPSERTS = {"sqlite": sqlite_insert, "postgresql": postgresql_insert}


def record_method(session: Session, kind: str, value: str, chain_id: int = 0, label: str | None = None) -> bool:
    """Remember a DID, address, registry or key the institution uses (the caller
    commits). Idempotent; True when it was new."""
    if kind not in _KINDS:
        raise ValueError(f"unknown method kind {kind!r}")
    exists = session.scalar(select(InstitutionMethod.id).where(
        InstitutionMethod.kind == kind, InstitutionMethod.chain_id == chain_id, InstitutionMethod.value == value))
    if exists is not None:
        return False
    # Two first batches at once (two `credentials issue` processes, two job
    # workers) both find the method missing: the insert itself must tolerate
    # the other's row, or the second batch fails on the unique constraint.
    values = {"kind": kind, "chain_id": chain_id, "value": value, "label": label, "added_at": utcnow()}
    dialect = session.get_bind().dialect.name
    if dialect not in _UPSERTS:
        session.add(InstitutionMethod(**values))
        return True
    statement = _UPSERTS[dialect](InstitutionMethod.__table__).values(**values).on_conflict_do_nothing(
        index_elements=["kind", "chain_id", "value"]).returning(InstitutionMethod.id)
    return session.execute(statement).scalar() is not None  # no row back: the other's row stands


def record_issuing_identity(session: Session, did: str, chain_id: int, issuer_address: str,
                            registry_address: str) -> None:
    """What one batch is issued under: its DID, signing address and registry (the
    caller commits, with the batch)."""
    record_method(session, DID, did)
    record_method(session, ETHEREUM, issuer_address, chain_id)
    record_method(session, REGISTRY, registry_address, chain_id)


def rotate_ed25519_key(session: Session, keys_dir, did: str, actor: str, env_secret: str | None = None):
    """Retire the institution's current Ed25519 key and make a fresh one current
    (credentials.ed25519.rotate): the new key is recorded, so the DID document
    lists it beside the retired ones (whose credentials keep verifying), and
    every status list is signed again with it. The caller commits. A key given
    in ATTEST_ED25519_KEY is rotated by changing the setting instead."""
    from credentials import ed25519, status_store
    from kernel import audit

    if env_secret:
        raise IdentityError("the Ed25519 key is given by ATTEST_ED25519_KEY: rotate it by setting a new key there "
                            "(the old one stays listed in the DID document, for the credentials it signed)")
    before = ed25519.load_or_create_keyring(keys_dir)
    ring = ed25519.rotate(keys_dir)
    record_ed25519_keys(session, did, [r.public_key_multibase for r in ring.records])
    status_store.republish_all(session, ring)
    audit.record(session, actor, "ed25519_key_rotated", "institution", retired=before.current.public_key_multibase,
                 current=ring.current.public_key_multibase)
    return ring


def record_ed25519_keys(session: Session, did: str, public_keys: list[str]) -> None:
    """Remember every Ed25519 key of the ring (current and retired), so the DID
    document and trust exports list them (the caller commits)."""
    for public in public_keys:
        record_method(session, ED25519, public, label=f"{did}#{public}")
