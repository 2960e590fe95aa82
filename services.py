"""Long-lived things the web layer shares within one process, each made on
first use under one lock: the chain client (closed at exit), the verifier's
read-only chain reader and its trust list."""

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
    settings = app.extensions["attest.settings"]
    registry = open_registry(settings)
    atexit.register(registry.close)
    # The DID document lists the signing key and registry before the first batch.
    with app.extensions["attest.db"].session() as session:
        inst = load_institution(session, settings.profile_defaults)
        identity.record_issuing_identity(session, inst.did, registry.chain_id, registry.issuer.address,
                                         registry.address)
        session.commit()
    return registry


def get_registry(app: Flask | None = None) -> Registry:
    return _shared(app, "attest.registry", _open_registry)


def _open_reader(app: Flask) -> ChainReader:
    settings = app.extensions["attest.settings"]
    # Without a URL of its own, it reads the node the app's registry uses
    # (the embedded node's, when ATTEST_RPC_URL is unset).
    url = app.config.get("VERIFY_RPC_URL") or settings.rpc_url or get_registry(app).rpc_url
    return ChainReader(url, finality_depth=settings.confirmations)


def get_chain_reader(app: Flask | None = None) -> ChainReader:
    """The process's read-only chain client. Shared: it caches only facts that
    cannot change, so every request and thread may use it."""
    return _shared(app, "attest.chain_reader", _open_reader)


# ----- whom this installation trusts ------------------------------------------------

def _build_trust(app: Flask) -> TrustPolicy:
    settings = app.extensions["attest.settings"]
    database = app.extensions["attest.db"]

    def own() -> list[TrustEntry]:
        with database.session() as session:
            return entry_for_institution(load_institution(session, settings.profile_defaults))

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
