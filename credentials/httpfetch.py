"""Fetching a public document another party serves (a DID document, a status
list): no redirects, a timeout, and a size bound enforced while reading, so a
hostile server cannot make the verifier read without end."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import requests

T = TypeVar("T")

# Hosts served over plain http in tests and on one machine; everything else is https.
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


def bounded_get(url: str, *, accept: str, limit: int, what: str, timeout: float) -> bytes:
    """The body at `url`, or OSError saying why not (not 200, or more than `limit` bytes)."""
    with requests.get(url, timeout=timeout, stream=True, allow_redirects=False,
                      headers={"Accept": accept}) as response:
        if response.status_code != 200:
            raise OSError(f"HTTP {response.status_code}")
        chunks, size = [], 0
        for chunk in response.iter_content(65536):
            size += len(chunk)
            if size > limit:
                raise OSError(f"the {what} is larger than {limit:,} bytes")
            chunks.append(chunk)
        return b"".join(chunks)


@dataclass
class Fetched(Generic[T]):
    """What one fetch gave: the value, or why there is none; kept until `until`."""

    value: T | None
    error: str | None
    until: float


class FetchCache(Generic[T]):
    """Fetched documents by key, each kept until its own `until`. A failure is
    kept too (its caller gives it a short TTL), so a dead server is not asked
    again for every credential. Thread-safe."""

    def __init__(self):
        self._items: dict[str, Fetched[T]] = {}
        self._lock = threading.Lock()

    def get(self, key: str, load: Callable[[float], Fetched[T]]) -> Fetched[T]:
        """The held answer for `key`, or `load(now)`'s when there is none or it expired."""
        now = time.monotonic()
        held = self._items.get(key)
        if held is None or held.until < now:
            held = load(now)
            with self._lock:
                self._items[key] = held
        return held

    def forget(self, key: str | None = None) -> None:
        with self._lock:
            if key is None:
                self._items.clear()
            else:
                self._items.pop(key, None)
