"""Fetching Bitstring Status List credentials for the verifier.

A credential's `credentialStatus` names the URL of its issuer's list
credential. The verifier reads it over HTTP (https, or plain http on a
loopback host as development installations and the tests serve), bounded in
size and time, with no redirects, and keeps what it fetched for a TTL so a
busy verifier does not ask the issuer's server per credential. A failure is
remembered briefly and is always "cannot check right now" (`StatusUnavailable`),
never "not revoked".

An installation reads its own lists from its database (`local`, which gives
the stored JSON text), at most once every `local_recheck` seconds (0.5), or
at once when asked for a `fresh` copy: the verifier asks for one whenever the
list and the chain disagree, so a revocation recorded a moment ago is never
shown as a disagreement. Between reads a busy verifier answers from memory.

Each list is held as a `ListCopy`: the document and what was worked out from
it (the decoded bits, whether its proof verifies with a key), so that work is
done once per copy rather than once per credential.

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

from credentials.httpfetch import LOOPBACK, FetchCache, Fetched, bounded_get

MAX_LIST_BYTES = 4 * 1024 * 1024


class StatusUnavailable(RuntimeError):
    """The status list cannot be read now; the message says where and why."""


class ListCopy:
    """One list credential as read, and what was derived from it."""

    def __init__(self, document: dict, text: str | None = None):
        self.document = document
        self.text = text
        self._derived: dict = {}

    def derived(self, key, make: Callable[[], object]):
        """`make()` once per copy (an exception is not kept: the next call tries again)."""
        try:
            return self._derived[key]
        except KeyError:
            value = self._derived[key] = make()
            return value


@dataclass
class _Own:
    copy: ListCopy | None  # None: not one of this installation's lists
    read_at: float


class StatusListClient:
    """url -> the list credential (a JSON object). `fetch(url) -> bytes` may be
    replaced; `local(url) -> dict | None` answers for lists this installation
    publishes itself, as the stored JSON text."""

    def __init__(self, ttl: float = 300.0, failure_ttl: float = 30.0, timeout: float = 5.0,
                 fetch: Callable[[str], bytes] | None = None, local: Callable[[str], str | None] | None = None,
                 local_recheck: float = 0.5):
        self.ttl, self.failure_ttl, self.timeout = ttl, failure_ttl, timeout
        self.local_recheck = local_recheck
        self._fetch = fetch or self._http_get
        self._local = local
        self._cache: FetchCache[ListCopy] = FetchCache()
        self._own: dict[str, _Own] = {}
        self._lock = threading.Lock()

    def _http_get(self, url: str) -> bytes:
        parts = urlsplit(url)
        if parts.scheme != "https" and not (parts.scheme == "http" and parts.hostname in LOOPBACK):
            raise OSError("only https URLs (or http on this machine) are fetched")
        return bounded_get(url, accept="application/vc, application/vc+ld+json, application/json",
                           limit=MAX_LIST_BYTES, what="list", timeout=self.timeout)

    def get(self, url: str) -> dict:
        """The list credential at `url`; StatusUnavailable when it cannot be had now."""
        return self.get_copy(url).document

    def get_copy(self, url: str, fresh: bool = False) -> ListCopy:
        """The list at `url` as a ListCopy. `fresh`: read this installation's
        own list again now (a fetched list keeps its TTL: the issuer's server
        is not asked per credential)."""
        if self._local is not None:
            own = self._own_copy(url, fresh)
            if own is not None:
                return own
        cached = self._cache.get(url, lambda now: self._load(url, now))
        if cached.value is None:
            raise StatusUnavailable(cached.error)
        return cached.value

    def _own_copy(self, url: str, fresh: bool) -> ListCopy | None:
        now = time.monotonic()
        held = self._own.get(url)
        if held is not None and not fresh and now - held.read_at < self.local_recheck:
            return held.copy
        text = self._local(url)
        if text is None:
            copy = None
        elif held is not None and held.copy is not None and held.copy.text == text:
            copy = held.copy  # unchanged: keep what was derived from it
        else:
            copy = ListCopy(json.loads(text), text)
        with self._lock:
            self._own[url] = _Own(copy, now)
        return copy

    def forget(self, url: str | None = None) -> None:
        """Drop what was fetched or read (one URL, or all): the next `get` asks again."""
        self._cache.forget(url)
        with self._lock:
            if url is None:
                self._own.clear()
            else:
                self._own.pop(url, None)

    def _load(self, url: str, now: float) -> Fetched[ListCopy]:
        try:
            document = json.loads(self._fetch(url))
        except (OSError, requests.RequestException) as exc:
            return Fetched(None, f"the status list at {url} cannot be fetched ({exc.__class__.__name__}: "
                                 f"{str(exc)[:160]})", now + self.failure_ttl)
        except ValueError:
            return Fetched(None, f"the status list at {url} is not JSON", now + self.failure_ttl)
        if not isinstance(document, dict):
            return Fetched(None, f"the status list at {url} is not a JSON object", now + self.failure_ttl)
        return Fetched(ListCopy(document), None, now + self.ttl)
