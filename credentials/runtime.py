"""Long-lived things the credentials faces share within one process, each made
on first use under one lock: the chain client (closed at exit), the verifier's
read-only chain reader and its trust list; and what `flask serve` runs at
start-up and shutdown for this domain."""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable
from typing import TypeVar

from flask import Flask, current_app

from credentials import identity, trust_store
from credentials.chain import Registry, open_registry
from credentials.didweb import DidWebResolver
from credentials.identity import load_institution
from credentials.reader import ChainReader
from credentials.trust import CachedSource, FileSource, TrustEntry, TrustPolicy, entry_for_institution

_lock = threading.RLock()  # re-entrant: making the reader may open the registry
T = TypeVar("T")


def _shared(app: Flask | None, key: str, make: Callable[[Flask], T]) -> T:
    app = app or current_app._get_current_object()
    value = app.extensions.get(key)
    if value is None:
        with _lock:
            value = app.extensions.get(key)
            if value is None:
                value = app.extensions[key] = make(app)
    return value


def _open_registry(app: Flask) -> Registry:
    registry = open_registry(app.extensions["attest.settings"])
    atexit.register(registry.close)
    return registry


def get_registry(app: Flask | None = None) -> Registry:
    return _shared(app, "attest.registry", _open_registry)


def _open_reader(app: Flask) -> ChainReader:
    settings = app.extensions["attest.settings"]
    # Without a URL of its own, it reads the node the app's registry uses
    # (the embedded node's, when ATTEST_RPC_URL is unset).
    url = app.config.get("VERIFY_RPC_URL") or settings.rpc_url or get_registry(app).rpc_url
    # A web process verifies many credentials: it follows each registry's
    # revocation events instead of asking the contract every time.
    return ChainReader(url, finality_depth=settings.confirmations, follow_revocations=True)


def get_chain_reader(app: Flask | None = None) -> ChainReader:
    """The process's read-only chain client. Shared: it caches only facts that
    cannot change, so every request and thread may use it."""
    return _shared(app, "attest.chain_reader", _open_reader)


def _ring_stamp(path) -> tuple | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_ino, st.st_size


def get_keyring(app: Flask | None = None):
    """The institution's Ed25519 key ring (ATTEST_ED25519_KEY, else keys/ed25519-keyring.json,
    made on first use), for Data Integrity proofs and status lists. Read again
    when the ring file changes, so a rotation in one process (the registrar's
    button, `institution rotate-key`) reaches every worker at once."""
    from credentials.ed25519 import KEYRING_FILE, load_or_create_keyring

    app = app or current_app._get_current_object()
    settings = app.extensions["attest.settings"]
    path = settings.keys_dir / KEYRING_FILE
    cached = app.extensions.get("attest.keyring")
    stamp = _ring_stamp(path)
    if cached is None or cached[1] != stamp:
        with _lock:
            ring = load_or_create_keyring(settings.keys_dir, settings.ed25519_key)
            cached = app.extensions["attest.keyring"] = (ring, _ring_stamp(path))
    return cached[0]


def get_status_lists(app: Flask | None = None):
    """The verifier's status-list client: this installation's own lists are
    read from its database (at most OWN_STATUS_LIST_RECHECK, 0.5 s, old, and
    read again whenever one disagrees with the chain), other URLs fetched
    over HTTP with a cache."""
    return _shared(app, "attest.status_lists", _make_status_client)


def _make_status_client(app: Flask):
    from credentials.statusclient import StatusListClient

    def own(url: str) -> str | None:
        from credentials import status_store

        with app.extensions["attest.db"].session() as session:
            return status_store.document_text_at(session, url, lambda: get_keyring(app))

    return StatusListClient(ttl=float(app.config.get("STATUS_LIST_TTL", 300)), local=own,
                            local_recheck=float(app.config.get("OWN_STATUS_LIST_RECHECK", 0.5)))


# ----- who this installation is, and whom it trusts -----------------------------------

def current_institution(app: Flask, session=None):
    """The institution with every key and registry it has recorded, plus the key
    and registry this process has open (listed before the first batch records them)."""
    from dataclasses import replace

    from credentials.identity import ChainAccount

    settings = app.extensions["attest.settings"]
    if session is None:
        with app.extensions["attest.db"].session() as own_session:
            inst = load_institution(own_session, settings.profile_defaults)
    else:
        inst = load_institution(session, settings.profile_defaults)
    registry = app.extensions.get("attest.registry")
    if registry is not None:
        key = ChainAccount(registry.chain_id, registry.issuer.address)
        contract = ChainAccount(registry.chain_id, registry.address)
        if key.key() not in {a.key() for a in inst.issuers}:
            inst = replace(inst, issuers=(*inst.issuers, key))
        if contract.key() not in {r.key() for r in inst.registries}:
            inst = replace(inst, registries=(*inst.registries, contract))
    return inst


# ----- whom this installation trusts ------------------------------------------------

def _build_trust(app: Flask) -> TrustPolicy:
    settings = app.extensions["attest.settings"]
    database = app.extensions["attest.db"]

    def own() -> list[TrustEntry]:
        return entry_for_institution(current_institution(app))

    def managed() -> list[TrustEntry]:
        with database.session() as session:
            return trust_store.managed_entries(session)

    sources: list = [CachedSource("this installation", own), CachedSource(trust_store.SOURCE, managed)]
    if settings.trusted_issuers is not None:
        sources.append(FileSource(settings.trusted_issuers))
    if settings.accreditation_registry:
        from credentials.accreditation import AccreditationSource

        url = settings.accreditation_rpc_url or app.config.get("VERIFY_RPC_URL") or settings.rpc_url \
            or get_registry(app).rpc_url
        sources.append(AccreditationSource(url, settings.accreditation_registry, settings.confirmations))
    resolver = app.extensions.get("attest.did_resolver") or DidWebResolver(
        ttl=float(app.config.get("DID_CACHE_TTL", 3600)))
    return TrustPolicy(sources=sources, resolve=resolver)


def get_trust_policy(app: Flask | None = None) -> TrustPolicy:
    """The process's trust list (own institution, registrar-added entries, the
    ATTEST_TRUSTED_ISSUERS file, did:web resolution), shared by every request."""
    return _shared(app, "attest.trust", _build_trust)


def trust_changed(app: Flask | None = None) -> None:
    """The profile or the trust list changed in this process: read them again now."""
    policy = (app or current_app._get_current_object()).extensions.get("attest.trust")
    for source in policy.sources if policy else ():
        if isinstance(source, CachedSource):
            source.invalidate()


# ----- start-up and shutdown (kernel.serve hooks) -------------------------------------

def startup(app: Flask) -> list[str]:
    """Start or find the chain, deploy the registry if needed, say who issues, check
    what the database says was anchored against the chain (credentials.reconcile),
    and hand batches left unfinished to the job system."""
    from credentials.chain import ChainError
    from kernel.serve import StartupError

    try:
        registry = get_registry(app)
    except ChainError as exc:
        raise StartupError(str(exc)) from exc
    status = registry.status()
    lines = [f"chain    {status['rpc_url']} (chain id {status['chain_id']}, block {status['block']})",
             f"registry {status['registry']}"]
    with app.extensions["attest.db"].session() as session:
        inst = load_institution(session, app.extensions["attest.settings"].profile_defaults)
        # The DID document lists the signing key and registry before the first batch.
        identity.record_issuing_identity(session, inst.did, registry.chain_id, registry.issuer.address,
                                         registry.address)
        identity.record_ed25519_keys(session, inst.did, [r.public_key_multibase for r in get_keyring(app).records])
        session.commit()
    lines.append(f"issuer   {inst.name} as {inst.did} (set it on /registrar/institution)")
    for source in get_trust_policy(app).sources:
        if getattr(source, "error", None):
            lines.append(f"warning: {source.error}")
    from credentials.jobs import adopt_orphans
    from credentials.reconcile import reconcile

    with app.extensions["attest.db"].session() as session:
        lines += reconcile(session, registry).lines()
    for batch_id in adopt_orphans(app):
        lines.append(f"resuming batch {batch_id} (left unfinished)")
    return lines


def shutdown(app: Flask) -> None:
    registry = app.extensions.pop("attest.registry", None)
    if registry is not None:
        registry.close()
    reader = app.extensions.pop("attest.chain_reader", None)
    if reader is not None:
        reader.close()


def embedded_chain_service(settings, env: dict):
    """For `serve-prod`: start the embedded Anvil once, owned by the launcher, and
    hand its URL to every web and job worker (unless ATTEST_RPC_URL names a node)."""
    if env.get("ATTEST_RPC_URL"):
        return {}, lambda: None
    from credentials.chain import open_registry

    registry = open_registry(settings)  # starts the node and deploys the registry once
    return {"ATTEST_RPC_URL": registry.rpc_url}, registry.close
