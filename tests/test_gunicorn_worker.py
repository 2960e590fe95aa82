"""kernel.gunicorn_worker.PromptThreadWorker under real gunicorn, started
with the production command on 127.0.0.1 and a free port: a kept-alive
connection is served on in place while its requests come promptly, and
never at the expense of another connection waiting for a thread; the
connections spread over the workers."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import requests

from credentials.node import free_port
from kernel.gunicorn_worker import MAX_IN_PLACE
from kernel.production import gunicorn_command
from kernel.settings import ROOT


@pytest.fixture
def serve():
    started = []

    def start(threads: int, app: str = "tests.wsgi_apps:slow_app", workers: int = 1) -> int:
        port = free_port()
        proc = subprocess.Popen(gunicorn_command(port, workers, threads, app), cwd=ROOT, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started.append(proc)
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"http://127.0.0.1:{port}/", timeout=1)
                return port
            except requests.RequestException:
                assert proc.poll() is None and time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.1)

    yield start
    for proc in started:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


def ask(conn: http.client.HTTPConnection) -> tuple[int, bytes]:
    conn.request("POST", "/api/v1/credentials/verify", body=b"{}", headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    return response.status, response.read()


@contextmanager
def hammering(port: int, connections: int) -> Iterator[list[int]]:
    """`connections` threads, each sending request after request on a
    kept-alive connection of its own until the block ends; yields the list
    of their answers' statuses."""
    stop = threading.Event()
    answers: list[int] = []

    def hammer():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while not stop.is_set():
            answers.append(ask(conn)[0])
        conn.close()

    threads = [threading.Thread(target=hammer) for _ in range(connections)]
    for thread in threads:
        thread.start()
    try:
        yield answers
    finally:
        stop.set()
        for thread in threads:
            thread.join(15)


def test_a_kept_alive_connection_is_served_request_after_request(serve):
    port = serve(threads=2)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    answers = [ask(conn) for _ in range(2 * MAX_IN_PLACE + 10)]  # past the in-place limit, twice
    assert {status for status, _ in answers} == {200}
    assert len({body for _, body in answers}) == 1
    time.sleep(0.3)  # idle past the linger: the connection is back on the poller, and still kept
    assert ask(conn)[0] == 200
    conn.close()


def test_a_busy_connection_does_not_starve_another(serve):
    """One thread, two connections. A sends request after request for two
    seconds; B's requests meanwhile wait at most about one of A's (5 ms),
    not a run of MAX_IN_PLACE of them (half a second): the thread hands A
    back as soon as B waits."""
    port = serve(threads=1)
    with hammering(port, 1) as busy_answers:
        time.sleep(0.3)
        other = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        waits = []
        for _ in range(10):
            started = time.monotonic()
            assert ask(other)[0] == 200
            waits.append(time.monotonic() - started)
            time.sleep(0.05)
        other.close()
    assert len(busy_answers) > 50 and set(busy_answers) == {200}
    assert max(waits) < 0.2, f"the other connection waited up to {max(waits) * 1000:.0f} ms"


def test_keep_alive_connections_spread_over_the_workers(serve):
    """Eight connections opened one after another to two idle workers of four
    threads, as a client's connection pool opens them: each worker answers
    about half. gunicorn's own accept race gave one worker 7 or 8 of them in
    8 of 10 trials (one core answering everything); with the deferral, 28
    of 30 trials split 4/4 and the other two 5/3 and 6/2."""
    port = serve(threads=4, workers=2)
    time.sleep(1)  # both workers up (the first answer came from one of them)
    trials = []
    for _ in range(5):
        conns = []
        for _ in range(8):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conns.append((conn, ask(conn)[1]))  # the body names the worker's pid
        trials.append(Counter(pid for _, pid in conns))
        for conn, _ in conns:
            conn.close()
        time.sleep(0.2)
    busiest = sum(max(t.values()) for t in trials)
    assert busiest <= 26, f"the busier worker took {busiest} of 40 connections: {[sorted(t.values()) for t in trials]}"


def test_fewer_connections_than_threads_spread_over_the_workers(serve):
    """Two connections, then four, to two idle workers of four threads, as a
    client or a proxy with a small pool keeps them: one worker each, then two
    each. The first rule deferred only once a worker held a connection per
    thread, so both (all four) went to the worker that won the first accept,
    and one core answered everything (548-614 verifications/s against
    1,548-1,624/s split, bench/bench_verify.py with --concurrency 2)."""
    port = serve(threads=4, workers=2)
    time.sleep(1)  # both workers up (the first answer came from one of them)

    def trials(sizes) -> tuple[dict, set]:
        splits, pids = {size: [] for size in sizes}, set()
        for size in sizes:
            conns = []
            for _ in range(size):
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conns.append((conn, ask(conn)[1]))  # the body names the worker's pid; the connection stays open
            counts = Counter(pid for _, pid in conns)
            pids |= set(counts)
            splits[size].append(sorted(counts.values()) if len(counts) == 2 else [0, size])
            for conn, _ in conns:
                conn.close()
            time.sleep(0.2)  # the workers see the connections close
        return splits, pids

    def even(splits: dict) -> int:
        return sum(split == [size // 2] * 2 for size in splits for split in splits[size])

    splits, pids = trials((2, 4) * 6)
    # A worker busy elsewhere on a loaded machine may miss the 1 ms it is given: allow two of twelve.
    assert even(splits) >= 10, f"splits of 2 and of 4 connections: {splits}"
    # A worker killed (as a crash or max-requests restart ends one): its replacement takes its slot in the table.
    assert len(pids) == 2
    os.kill(int(min(pids).split()[-1]), signal.SIGKILL)
    deadline = time.monotonic() + 30
    while True:
        _, now = trials((2,) * 2)
        if len(now - pids) == 1 and len(now) == 2:
            break
        assert time.monotonic() < deadline, f"no replacement worker answered: {now} after {pids}"
        time.sleep(0.3)
    splits, _ = trials((2, 4) * 3)
    assert even(splits) >= 5, f"after the restart, splits of 2 and of 4 connections: {splits}"


def test_a_new_connection_to_saturated_workers_is_answered_promptly(serve):
    """Both workers hold their share (two connections each, their threads
    busy with Python work that holds the GIL) when new connections come: a
    deferred connection is taken on the worker's next turn, never deferred
    again however long the worker took to come back to it. (The first
    version, which drained only within 2 ms of the deferral's end, passed
    this too on this machine: it bounds the wait rather than reproducing a
    fault seen.)"""
    port = serve(threads=2, app="tests.wsgi_apps:busy_app", workers=2)
    waits = []
    with hammering(port, 4) as answers:
        time.sleep(0.5)
        for _ in range(20):
            started = time.monotonic()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            assert ask(conn)[0] == 200
            waits.append(time.monotonic() - started)
            conn.close()
            time.sleep(0.02)
    assert set(answers) == {200} and len(answers) > 100
    waits.sort()
    # A request here takes 5 ms of a worker whose 2 threads share one GIL with 2 other connections.
    assert waits[len(waits) // 2] < 0.1 and waits[-1] < 0.5, f"new connections waited {[round(w * 1000) for w in waits]} ms"


def test_the_connection_table_claims_free_slots_and_compares_counts():
    """kernel.gunicorn_worker._Table alone: the lowest slot no living worker
    holds is claimed (a worker that never forked, still named "[booting]" by
    gunicorn, or one whose process is gone, holds none), and "does another
    living worker hold fewer?" counts only living ones."""
    from kernel.gunicorn_worker import _Table

    class Worker:
        def __init__(self, pid):
            self.pid = pid

    gone = subprocess.Popen(["true"])
    gone.wait()
    table = _Table(4)
    never_forked, alive, dead = Worker("[booting]"), Worker(os.getpid()), Worker(gone.pid)
    assert table.claim(never_forked) == 0
    assert table.claim(alive) == 0, "a worker that never forked holds no slot"
    assert table.claim(dead) == 1
    assert table.claim(Worker("[booting]")) == 1, "nor does one whose process is gone"
    table.cells[2 * 1], table.cells[2 * 1 + 1] = os.getpid(), 2  # slot 1: a living worker with 2 connections
    assert table.holds_fewer(0, 3) and not table.holds_fewer(0, 2)
    table.cells[2 * 1] = gone.pid  # the same count, its process gone
    assert not table.holds_fewer(0, 3) and table.cells[2 * 1] == 0, "a dead worker's slot is skipped from then on"
