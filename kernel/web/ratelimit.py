"""A per-address limit for the hot JSON endpoints, at one storage round trip
per request, or far fewer for a busy client.

Flask-Limiter keeps the limits of the pages (logins, the verify page, the
holder's pages), but its per-request machinery (resolving limits, filters,
exemption scopes, the before- and after-request hooks, two more round trips
for the X-RateLimit headers) cost about 1.2 ms of CPU a request on Redis,
more than verifying a credential. `count` does the same fixed-window
count on Flask-Limiter's own storage (the same
Redis in production, so every worker counts against one limit, and
`limiter.reset()` clears it too): one INCR a request, about 0.1 ms.

Even one INCR (about 0.15 ms of a worker's CPU under gunicorn, a tenth of
a verification) is too much for a client that sends thousands a minute. So
a process that sees an address come back takes a *lease* of its next
requests: one INCRBY of k counts k requests at once, and the next k-1 are
admitted here with no round trip. k is at most a sixteenth of what the
address had left at its last count (and at most LEASE_MAX), so a client far
from its limit costs one round trip in LEASE_MAX requests and one near it
is counted one by one, exactly as before. A lease never outlives the
storage's window (it ends when the window's key expires, read once per
lease). What this keeps, whatever the number of processes or machines:
- no address is ever admitted more than the limit in a window: every
  admitted request was counted in the shared store before it was admitted;
- an address whose requests land on several workers may be refused a few
  requests early, at most the unused part of the other workers' leases,
  each at most a sixteenth of what it had left.
A limit of 15 or fewer a window is always counted one by one.

An answer carries X-RateLimit-Limit and X-RateLimit-Remaining (what would be
left if this process were the only one counting); a refused request is a 429
whose Retry-After is the seconds left in the window.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from functools import lru_cache

from flask import current_app
from limits import RateLimitItem, parse_many
from werkzeug.exceptions import TooManyRequests

from kernel.web.extensions import limiter


@lru_cache(maxsize=64)
def _items(text: str) -> tuple[RateLimitItem, ...]:
    """"600/minute", or several as Flask-Limiter takes them: "600/minute;10000/day"."""
    return tuple(parse_many(text))


class LimitExceeded(TooManyRequests):
    def __init__(self, item: RateLimitItem, retry_after: int):
        super().__init__(f"too many requests from this address: the limit is {item.amount} per "
                         f"{item.get_expiry()} seconds; try again in {retry_after} s")
        self.retry_after = retry_after


LEASE_SHARE = 16   # a lease takes at most 1/LEASE_SHARE of what the address had left
LEASE_MAX = 64     # and never more than this many requests
LEASES_KEPT = 10_000  # addresses remembered per process; past this, ended windows are forgotten


@dataclass
class _Lease:
    """Requests of one address counted ahead in the shared store: numbers
    `next`..`last` of its window are this process's to admit until `ends`."""

    next: int = 1
    last: int = 0
    ends: float = 0.0
    left: int = 0  # what the address had left at its last count (sizes the next lease)


class Leases:
    """One process's leases, by storage key (the module keeps one: LEASES)."""

    def __init__(self):
        self._held: dict[str, _Lease] = {}
        self._lock = threading.Lock()

    def take(self, storage, item: RateLimitItem, key: str) -> int:
        """The number within its window of one more request to `key`: from a
        lease this process holds, else counted in the storage (with a new
        lease when the address has room for one). Above item.amount: refuse."""
        now = time.time()
        with self._lock:
            lease = self._held.get(key)
            if lease is not None and lease.next <= lease.last and now < lease.ends:
                number = lease.next
                lease.next += 1
                return number
            size = max(1, min(LEASE_MAX, lease.left // LEASE_SHARE)) if lease is not None else 1
        used = storage.incr(key, item.get_expiry(), amount=size)
        first = used - size + 1
        ends = storage.get_expiry(key) if size > 1 and first < item.amount else 0.0
        with self._lock:
            if key not in self._held and len(self._held) >= LEASES_KEPT:
                self._forget_ended(now)
            # Numbers above the limit are never admitted: the window is spent for everyone.
            self._held[key] = _Lease(next=first + 1, last=min(used, item.amount), ends=ends,
                                     left=max(0, item.amount - used))
        return first

    def _forget_ended(self, now: float) -> None:
        for key in [k for k, lease in self._held.items() if lease.ends <= now or lease.next > lease.last]:
            del self._held[key]
        if len(self._held) >= LEASES_KEPT:  # all current: start again rather than grow
            self._held.clear()

    def clear(self) -> None:
        with self._lock:
            self._held.clear()


LEASES = Leases()


def count(scope: str, limit: str, who: str) -> tuple[int, int]:
    """Count one request from `who` in `scope` against `limit` (e.g. "600/minute",
    or several joined by ";"): (the tightest limit, requests left under it), or
    LimitExceeded. In an app context."""
    storage = limiter.storage
    tightest = None
    for item in _items(limit):
        key = item.key_for(scope, who)
        used = LEASES.take(storage, item, key)
        if used > item.amount:
            reset = storage.get_expiry(key)
            raise LimitExceeded(item, max(1, math.ceil(reset - time.time())))
        if tightest is None or item.amount - used < tightest[1]:
            tightest = (item.amount, item.amount - used)
    return tightest or (0, 0)


def enabled() -> bool:
    return bool(current_app.config.get("RATELIMIT_ENABLED", True))


def rate_headers(counted: tuple[int, int]) -> dict[str, str]:
    return {"X-RateLimit-Limit": str(counted[0]), "X-RateLimit-Remaining": str(max(0, counted[1]))}
