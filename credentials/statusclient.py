"""Fetching Bitstring Status List credentials for the verifier.

A credential's `credentialStatus` names the URL of its issuer's list
credential. The verifier reads it over HTTP (https, or plain http on a
loopback host as development installations and the tests serve), bounded in
size and time, with no redirects, and keeps what it fetched for a TTL so a
busy verifier does not ask the issuer's server per credential. A failure is
remembered briefly and is always "cannot check right now" (`StatusUnavailable`),
never "not revoked". An installation reads its own lists from its database
first (`local`), so they are always current.

Whether the fetched list is genuine (its Data Integrity proof, its issuer) is
the caller's question: see the `status_list` check in `credentials.verification`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

from credentials.httpfetch import LOOPBACK, bounded_get

MAX_LIST_BYTES = 4 * 1024 * 1024


class StatusUnavailable(RuntimeError):
    """The status list cannot be read now; the message says where and why."""


@dataclass
class _Cached:
    document: dict | None
    error: str | None
    until: float


class StatusListClient:
    """url -> the list credential (a JSON object). `fetch(url) -> bytes` may be
    replaced; `local(url) -> dict | None` answers for lists this installation
    publishes itself."""

    def __init__(self, ttl: float = 300.0, failure_ttl: float = 30.0, timeout: float = 5.0,
                 fetch: Callable[[str], bytes] | None = None, local: Callable[[str], dict | None] | None = None):
        self.ttl, self.failure_ttl, self.timeout = ttl, failure_ttl, timeout
        self._fetch = fetch or self._http_get
        self._local = local
        self._cache: dict[str, _Cached] = {}
        self._lock = threading.Lock()

    def _http_get(self, url: str) -> bytes:
        parts = urlsplit(url)
        if parts.scheme != "https" and not (parts.scheme == "http" and parts.hostname in LOOPBACK):
            raise OSError("only https URLs (or http on this machine) are fetched")
        return bounded_get(url, accept="application/vc, application/vc+ld+json, application/json",
                           limit=MAX_LIST_BYTES, what="list", timeout=self.timeout)

    def get(self, url: str) -> dict:
        """The list credential at `url`; StatusUnavailable when it cannot be had now."""
        if self._local is not None:
            document = self._local(url)
            if document is not None:
                return document
        now = time.monotonic()
        cached = self._cache.get(url)
        if cached is None or cached.until < now:
            cached = self._load(url, now)
            with self._lock:
                self._cache[url] = cached
        if cached.document is None:
            raise StatusUnavailable(cached.error)
        return cached.document

    def forget(self, url: str | None = None) -> None:
        """Drop what was fetched (one URL, or all): the next `get` asks again."""
        with self._lock:
            if url is None:
                self._cache.clear()
            else:
                self._cache.pop(url, None)

    def _load(self, url: str, now: float) -> _Cached:
        try:
            document = json.loads(self._fetch(url))
        except (OSError, requests.RequestException) as exc:
            return _Cached(None, f"the status list at {url} cannot be fetched ({exc.__class__.__name__}: "
                                 f"{str(exc)[:160]})", now + self.failure_ttl)
        except ValueError:
            return _Cached(None, f"the status list at {url} is not JSON", now + self.failure_ttl)
        if not isinstance(document, dict):
            return _Cached(None, f"the status list at {url} is not a JSON object", now + self.failure_ttl)
        return _Cached(document, None, now + self.ttl)
