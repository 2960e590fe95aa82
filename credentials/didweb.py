"""Resolving a did:web to what a verifier pins: signing addresses, registries, keys.

Used only for trust-list entries that name a did:web and pin nothing else: the
DID document is fetched over HTTPS from the DID's domain (did:web spec, "Read"),
bounded in size and time, and cached for a TTL so a busy verifier does not ask
the issuer's server per credential. A failure is remembered briefly and read as
"cannot be confirmed right now", never as trusted or as refused.

Plain http is accepted only for loopback hosts (127.0.0.1, localhost, ::1),
which is what a development installation and the tests serve.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import requests

from credentials.httpfetch import LOOPBACK, FetchCache, Fetched, bounded_get
from credentials.identity import (
    ETHEREUM_METHOD,
    REGISTRY_SERVICE,
    ChainAccount,
    Ed25519Key,
    IdentityError,
    did_web_document_url,
    did_web_parts,
    domain_of,
    parse_caip10,
)
from credentials.trust import TrustEntry, TrustUnavailable

MAX_DID_DOCUMENT_BYTES = 256 * 1024


def parse_did_document(did: str, document: dict, source: str) -> TrustEntry:
    """The pins a DID document states for `did`; ValueError when it is not that DID's document."""
    if not isinstance(document, dict) or document.get("id") != did:
        found = document.get("id") if isinstance(document, dict) else type(document).__name__
        raise ValueError(f"the DID document at {source} is for {found!r}, not {did!r}")
    methods = {m.get("id"): m for m in document.get("verificationMethod") or [] if isinstance(m, dict)}
    asserting = []
    for ref in document.get("assertionMethod") or []:
        if isinstance(ref, str):
            method = methods.get(ref) or methods.get(did + ref if ref.startswith("#") else ref)
        else:
            method = ref if isinstance(ref, dict) else None
        if method:
            asserting.append(method)
    issuers, keys = [], []
    for method in asserting:
        if method.get("type") == ETHEREUM_METHOD:
            parsed = parse_caip10(method.get("blockchainAccountId", ""))
            if parsed:
                issuers.append(ChainAccount(*parsed))
        elif method.get("type") == "Multikey" and str(method.get("publicKeyMultibase", "")).startswith("z"):
            keys.append(Ed25519Key(method["id"], method["publicKeyMultibase"]))
    registries = []
    for service in document.get("service") or []:
        if isinstance(service, dict) and service.get("type") == REGISTRY_SERVICE:
            parsed = parse_caip10(service.get("serviceEndpoint", ""))
            if parsed:
                registries.append(ChainAccount(*parsed))
    return TrustEntry(did=did, name=domain_of(did) or did, domain=domain_of(did), issuers=tuple(issuers),
                      registries=tuple(registries), ed25519_keys=tuple(keys), source=f"its DID document at {source}")


class DidWebResolver:
    """did:web -> TrustEntry, cached. `fetch(url) -> bytes` may be replaced (the
    default uses requests with a timeout and a size bound)."""

    def __init__(self, ttl: float = 3600.0, failure_ttl: float = 30.0, timeout: float = 5.0,
                 fetch: Callable[[str], bytes] | None = None):
        self.ttl, self.failure_ttl, self.timeout = ttl, failure_ttl, timeout
        self._fetch = fetch or self._http_get
        self._cache: FetchCache[TrustEntry] = FetchCache()

    def document_url(self, did: str) -> str:
        parts = did_web_parts(did)
        if parts is None:
            raise IdentityError(f"{did!r} is not a did:web identifier")
        host = parts[0].rsplit(":", 1)[0] if not parts[0].startswith("[") else parts[0]
        return did_web_document_url(did, scheme="http" if host in LOOPBACK else "https")

    def _http_get(self, url: str) -> bytes:
        return bounded_get(url, accept="application/did+json, application/json", limit=MAX_DID_DOCUMENT_BYTES,
                           what="document", timeout=self.timeout)

    def __call__(self, did: str) -> TrustEntry:
        cached = self._cache.get(did, lambda now: self._resolve(did, now))
        if cached.value is None:
            raise TrustUnavailable(cached.error)
        return cached.value

    def _resolve(self, did: str, now: float) -> Fetched[TrustEntry]:
        try:
            url = self.document_url(did)
        except IdentityError as exc:
            return Fetched(None, str(exc), now + self.failure_ttl)
        try:
            raw = self._fetch(url)
            entry = parse_did_document(did, json.loads(raw), url)
        except (OSError, requests.RequestException) as exc:
            return Fetched(None, f"its DID document at {url} cannot be fetched ({exc.__class__.__name__}: {exc})",
                           now + self.failure_ttl)
        except ValueError as exc:
            return Fetched(None, f"its DID document at {url} is not usable ({exc})", now + self.failure_ttl)
        return Fetched(entry, None, now + self.ttl)
