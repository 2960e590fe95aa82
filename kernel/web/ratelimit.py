"""A per-address limit for the hot JSON endpoints, at one storage round trip.

Flask-Limiter keeps the limits of the pages (logins, the verify page, the
holder's pages), but its per-request machinery (resolving limits, filters,
exemption scopes, the before- and after-request hooks, two more round trips
for the X-RateLimit headers) cost about 1.2 ms of CPU a request on Redis,
more than verifying a credential. `fast_limit` does the same fixed-window
count with the `limits` library on Flask-Limiter's own storage (the same
Redis in production, so every worker counts against one limit, and
`limiter.reset()` clears it too): one INCR a request, about 0.1 ms.

An answer carries X-RateLimit-Limit and X-RateLimit-Remaining; a refused
request is a 429 whose Retry-After is the seconds left in the window.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from functools import lru_cache, wraps

from flask import current_app, g, request
from limits import RateLimitItem, parse_many
from limits.strategies import FixedWindowRateLimiter
from werkzeug.exceptions import TooManyRequests

from kernel.web.extensions import limiter


@lru_cache(maxsize=64)
def _items(text: str) -> tuple[RateLimitItem, ...]:
    """"600/minute", or several as Flask-Limiter takes them: "600/minute;10000/day"."""
    return tuple(parse_many(text))


_strategies: dict[int, FixedWindowRateLimiter] = {}


def _strategy() -> FixedWindowRateLimiter:
    storage = limiter.storage
    strategy = _strategies.get(id(storage))
    if strategy is None or strategy.storage is not storage:
        strategy = _strategies[id(storage)] = FixedWindowRateLimiter(storage)
    return strategy


class LimitExceeded(TooManyRequests):
    def __init__(self, item: RateLimitItem, retry_after: int):
        super().__init__(f"too many requests from this address: the limit is {item.amount} per "
                         f"{item.get_expiry()} seconds; try again in {retry_after} s")
        self.retry_after = retry_after


def count(scope: str, limit: str, who: str) -> tuple[int, int]:
    """Count one request from `who` in `scope` against `limit` (e.g. "600/minute",
    or several joined by ";"): (the tightest limit, requests left under it), or
    LimitExceeded. In an app context."""
    storage = _strategy().storage
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


def fast_limit(limit: Callable[[], str], scope: str, key: Callable[[], str] | None = None):
    """Decorate a view: at most `limit()` (e.g. "600/minute") requests per
    client address in `scope`. Off when the app's RATELIMIT_ENABLED is false."""

    def decorate(view):
        @wraps(view)
        def limited(*args, **kwargs):
            if enabled():
                who = key() if key is not None else (request.remote_addr or "127.0.0.1")
                g.fast_limit = count(scope, limit(), who)
            return view(*args, **kwargs)

        return limited

    return decorate


def rate_headers(counted: tuple[int, int]) -> dict[str, str]:
    return {"X-RateLimit-Limit": str(counted[0]), "X-RateLimit-Remaining": str(max(0, counted[1]))}


def limit_headers(response):
    """after_request: the X-RateLimit headers of a request `fast_limit` counted."""
    counted = g.pop("fast_limit", None)
    if counted is not None:
        response.headers.update(rate_headers(counted))
    return response


def spare_blueprints(app, blueprints: tuple[str, ...]) -> None:
    """Run Flask-Limiter's before- and after-request hooks everywhere but in
    `blueprints` (whose limits are fast_limit's): they cost about 0.2 ms a
    request even where none of its limits apply. Call after limiter.init_app."""
    from flask import request

    def outside(hook, passthrough: bool):
        def guarded(*args):
            if request.blueprint in blueprints:
                return args[0] if passthrough else None
            return hook(*args)

        return guarded

    def ours(hook) -> bool:
        owner = getattr(hook, "__self__", None) or (getattr(hook, "args", None) or (None,))[0]
        return owner is limiter

    before = app.before_request_funcs.setdefault(None, [])
    before[:] = [outside(f, False) if ours(f) else f for f in before]
    after = app.after_request_funcs.setdefault(None, [])
    after[:] = [outside(f, True) if ours(f) else f for f in after]
