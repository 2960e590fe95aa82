"""A per-address limit for the hot JSON endpoints, at one storage round trip.

Flask-Limiter keeps the limits of the pages (logins, the verify page, the
holder's pages), but its per-request machinery (resolving limits, filters,
exemption scopes, the before- and after-request hooks, two more round trips
for the X-RateLimit headers) cost about 1.2 ms of CPU a request on Redis,
more than verifying a credential. `count` does the same fixed-window
count on Flask-Limiter's own storage (the same
Redis in production, so every worker counts against one limit, and
`limiter.reset()` clears it too): one INCR a request, about 0.1 ms.

An answer carries X-RateLimit-Limit and X-RateLimit-Remaining; a refused
request is a 429 whose Retry-After is the seconds left in the window.
"""

from __future__ import annotations

import math
import time
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


def count(scope: str, limit: str, who: str) -> tuple[int, int]:
    """Count one request from `who` in `scope` against `limit` (e.g. "600/minute",
    or several joined by ";"): (the tightest limit, requests left under it), or
    LimitExceeded. In an app context."""
    storage = limiter.storage
    tightest = None
    for item in _items(limit):
        key = item.key_for(scope, who)
        used = storage.incr(key, item.get_expiry())
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
