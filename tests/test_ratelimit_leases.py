"""The verify API's limit counted ahead in leases (kernel.web.ratelimit):
one round trip to the shared store for many requests of a busy client, and
never more admitted than the limit, however many processes count.

Each `Leases` here stands for one web worker; they share one store, as the
workers share Redis. The same with two real gunicorn workers and Redis is in
tests/test_shared_limits.py."""

from __future__ import annotations

import random
import threading
import time

import pytest
from limits import parse
from limits.storage import MemoryStorage

from kernel.web.ratelimit import LEASE_MAX, LEASE_SHARE, Leases

KEY = "LIMITER/api-verify/10.0.0.1"


class CountedStorage:
    """A store that counts its round trips."""

    def __init__(self):
        self.inner = MemoryStorage()
        self.trips = 0

    def incr(self, key, expiry, amount=1):
        self.trips += 1
        return self.inner.incr(key, expiry, amount=amount)

    def get_expiry(self, key):
        self.trips += 1
        return self.inner.get_expiry(key)

    def get(self, key):
        return self.inner.get(key)


def admitted(numbers, item):
    return sum(1 for n in numbers if n <= item.amount)


def test_a_busy_client_costs_one_round_trip_in_many_requests():
    store, leases, item = CountedStorage(), Leases(), parse("100000/minute")
    numbers = [leases.take(store, item, KEY) for _ in range(2000)]
    assert numbers == list(range(1, 2001)), "numbered in turn: X-RateLimit-Remaining falls by one a request"
    # The first is counted alone (nothing is known of the address), then a lease of LEASE_MAX at a time,
    # each lease one INCRBY and one read of the window's end.
    assert store.trips <= 1 + 2 * -(-1999 // LEASE_MAX)
    assert store.trips < 2000 / 20
    assert store.get(KEY) >= 2000  # every admitted request is in the shared count


def test_a_small_limit_is_counted_one_by_one():
    store, leases, item = CountedStorage(), Leases(), parse(f"{LEASE_SHARE - 1}/minute")
    for i in range(1, LEASE_SHARE + 3):
        assert leases.take(store, item, KEY) == i
        assert store.get(KEY) == i, "each request is in the store before it is admitted"
    assert store.trips == LEASE_SHARE + 2


def test_leases_shrink_near_the_limit_so_the_last_requests_are_counted_exactly():
    store, leases, item = CountedStorage(), Leases(), parse("1000/minute")
    numbers = [leases.take(store, item, KEY) for _ in range(1100)]
    assert admitted(numbers, item) == 1000, "one process alone gets the whole limit"
    assert numbers[:1000] == list(range(1, 1001))
    # Past the limit each request is one INCR again, and refused.
    assert all(n > item.amount for n in numbers[1000:])
    before = store.trips
    leases.take(store, item, KEY)
    assert store.trips == before + 1


@pytest.mark.parametrize("workers", [2, 3, 8])
def test_several_workers_never_admit_more_than_the_limit(workers):
    """Requests of one address spread at random over several workers, each
    with its own leases on the one store: the admitted total never passes the
    limit, and falls short of it by at most what the other workers' leases
    had left unused (each at most a sixteenth of what the address had left)."""
    rng = random.Random(workers)
    for limit in (40, 600, 5000):
        store, item = CountedStorage(), parse(f"{limit}/minute")
        pool = [Leases() for _ in range(workers)]
        numbers = [rng.choice(pool).take(store, item, KEY) for _ in range(limit * 2)]
        assert len([n for n in numbers if n <= limit]) == len({n for n in numbers if n <= limit}), \
            "no number is admitted twice"
        total = admitted(numbers, item)
        assert total <= limit
        assert total >= limit - (workers - 1) * max(1, limit // LEASE_SHARE), (limit, total)


def test_threads_of_one_worker_share_its_leases_safely():
    store, leases, item = CountedStorage(), Leases(), parse("3000/minute")
    got: list[int] = []
    lock = threading.Lock()

    def client():
        mine = [leases.take(store, item, KEY) for _ in range(1000)]
        with lock:
            got.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    inside = [n for n in got if n <= item.amount]
    assert len(inside) == len(set(inside)) <= 3000
    assert len(inside) >= 3000 - 4 * LEASE_MAX


def test_a_lease_ends_with_its_window():
    """A number leased in one window is never admitted in the next: the
    window's count there does not include it."""
    store, leases, item = CountedStorage(), Leases(), parse("1000/second")
    first = [leases.take(store, item, KEY) for _ in range(20)]
    assert first == list(range(1, 21)) and store.get(KEY) > 20, "a lease is held"
    time.sleep(1.1)  # the key, and so the window, expires
    trips = store.trips
    assert leases.take(store, item, KEY) == 1, "a new window starts at one"
    assert store.trips > trips and store.get(KEY) >= 1, "counted in the store, not from the old lease"


def test_resetting_the_limiter_drops_the_leases(app):
    """`limiter.reset()` (an operator's or a test's) clears the store; a lease
    held from before would admit requests the new count never saw."""
    from kernel.web.extensions import limiter
    from kernel.web.ratelimit import LEASES, count

    with app.app_context():
        limiter.reset()
        for _ in range(40):
            count("lease-test", "100000/minute", "10.0.0.2")
        assert LEASES._held, "a lease is held"
        limiter.reset()
        assert not LEASES._held
        assert count("lease-test", "100000/minute", "10.0.0.2") == (100000, 99999)
