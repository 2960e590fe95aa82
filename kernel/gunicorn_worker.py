"""gunicorn's gthread worker, with a kept-alive connection served on in place
when its next request comes promptly.

In gthread every request of a kept-alive connection takes a round trip
through the worker's main thread: the answering thread hands the connection
back (a future's callback, a queue and a wake-up pipe), the main thread puts
it on its poller (setblocking, epoll_ctl), and when the next request arrives
takes it off again (epoll_ctl, a deque, a new future) for a pool thread.
Measured here under the benchmark's load (bench/bench_verify.py's baseline,
a bare WSGI callable, 2 workers x 4 threads), that round trip was 50-110 us
of the 290-400 us gunicorn spends on a request.

`PromptThreadWorker` keeps the connection on its thread instead, for as long
as each next request has arrived (or arrives within LINGER_SECONDS) and
nothing else waits for a thread. Everything else is gthread's own: the
parser, the WSGI call, keep-alive limits, timeouts, graceful stops. It
gives the connection back to the main thread, as gthread does, when
- the next request is not there within LINGER_SECONDS (an idle client costs
  a thread no longer than that);
- another connection's request waits for a thread (so a busy client never
  starves the others: the pool is shared fairly, a request at a time);
- MAX_IN_PLACE requests were served in a row;
- the worker is stopping (its last answers say "Connection: close", as
  gthread's do).

It also spreads connections over the workers. The workers share one
listening socket and the kernel wakes them all for a new connection; the one
that calls accept() first takes it, and that is mostly the same one: 8
keep-alive connections opened one after another to 2 idle workers went 8/0
or 7/1 in 8 of 10 trials here, so one core answered everything while the
other idled (bench_verify saw a 100%/0% split). So each worker publishes how
many connections it holds in a table the workers share (an anonymous shared
mapping made in the arbiter before it forks them, a slot per worker), and a
worker that holds more than another leaves a new connection in the backlog
for ACCEPT_DEFERRAL (1 ms), for the one with fewer to take; then it takes
whatever is still waiting. New connections to busy workers wait that much
longer, and nothing is ever refused; with one worker nothing is deferred.

The first rule deferred only once a worker held a connection per thread, so
fewer connections than threads all went to one worker: a client (or a proxy)
keeping 2 connections to 2 workers of 4 threads had one core answer
everything, at 548-614 verifications/s against 1,548-1,624/s with one on
each (the first measurement that used only 2 connections).
"""

from __future__ import annotations

import mmap
import os
import select
import time
import weakref

from gunicorn.workers.gthread import ThreadWorker

from kernel.processes import pid_alive

LINGER_SECONDS = 0.001
MAX_IN_PLACE = 100
ACCEPT_DEFERRAL = 0.001
MAX_DRAINED = 64  # connections taken at once after a deferral
SLOTS = 64  # workers one arbiter may run at once, old and new ones during a reload included


class _Table:
    """Each worker's pid and connection count, in memory the arbiter's forked
    workers share: int64 [pid, count] a slot, pid 0 for a free one. Made when
    this module is imported, which is in the arbiter (gunicorn loads the
    worker class before it forks). An aligned 8-byte store is one write on
    the hardware this runs on; a reader may see a count one step old, which
    only makes the spreading approximate for a moment."""

    def __init__(self, slots: int = SLOTS):
        self._memory = mmap.mmap(-1, slots * 16)  # anonymous and shared: children see each other's writes
        self.cells = memoryview(self._memory).cast("q")
        self.slots = slots
        self._owners: dict[int, weakref.ref] = {}  # the arbiter's record: slot -> its worker object

    def claim(self, worker) -> int | None:
        """In the arbiter, as it makes a worker: the lowest slot no living worker holds."""
        for slot in range(self.slots):
            owner = self._owners.get(slot)
            owner = owner() if owner is not None else None
            if owner is None or not _alive(getattr(owner, "pid", 0)):
                self._owners[slot] = weakref.ref(worker)
                self.cells[2 * slot] = 0  # no pid until the worker starts
                self.cells[2 * slot + 1] = 0
                return slot
        return None  # more workers than slots: this one spreads by the old rule

    def holds_fewer(self, slot: int, mine: int) -> bool:
        """Does another living worker hold fewer connections than `mine`?"""
        cells = self.cells
        for other in range(self.slots):
            pid = cells[2 * other]
            if other != slot and pid > 0 and cells[2 * other + 1] < mine:
                if _alive(pid):
                    return True
                cells[2 * other] = 0  # gone without its slot being claimed again: skip it from now on
        return False


def _alive(pid) -> bool:
    """Is there a process `pid`? gunicorn names a worker that has not forked yet "[booting]": not one."""
    return isinstance(pid, int) and pid > 0 and pid_alive(pid)


TABLE = _Table()


class PromptThreadWorker(ThreadWorker):
    def __init__(self, *args, **kwargs):
        self._defer_until = 0.0  # while set and not yet reached, this worker does not listen
        self._draining = False  # the loop's one turn after a deferral: take what waits
        self._nr_conns = 0
        self._slot = TABLE.claim(self)  # in the arbiter, before the fork
        super().__init__(*args, **kwargs)

    @property
    def nr_conns(self) -> int:
        """gthread's count of this worker's connections, published in TABLE as it changes."""
        return self._nr_conns

    @nr_conns.setter
    def nr_conns(self, value: int) -> None:
        self._nr_conns = value
        if self._slot is not None:
            TABLE.cells[2 * self._slot + 1] = value

    def init_process(self):
        if self._slot is not None:  # its count was set (0) in the arbiter, by claim() and __init__
            TABLE.cells[2 * self._slot] = os.getpid()  # from now on the others count this worker
        super().init_process()

    @property
    def worker_connections(self) -> int:
        """gthread's cap on this worker's connections, which its loop reads
        each turn to decide whether to listen: 0 while an accept is deferred.
        When the deferral ends, the next turn drains the backlog."""
        if self._defer_until:
            if time.monotonic() < self._defer_until:
                return 0
            self._defer_until = 0.0
            self._draining = True
        return self._connection_cap

    @worker_connections.setter
    def worker_connections(self, value: int) -> None:
        self._connection_cap = value

    def accept(self, listener):
        if self._draining:
            # Back from a deferral: what the other workers left waiting is this one's
            # (never deferred twice, however long this worker took to come back).
            for _ in range(MAX_DRAINED):
                before = self.nr_conns
                super().accept(listener)
                if self.nr_conns == before or not self.alive or self.nr_conns >= self._connection_cap:
                    break
            return
        # Connections, idle kept-alive ones included, are the unit of a worker's share: an idle one
        # is the next busy one.
        if self._nr_conns and self._leaves_it(self._nr_conns):
            self._defer_until = time.monotonic() + ACCEPT_DEFERRAL  # another worker may take it meanwhile
            return
        super().accept(listener)

    def _leaves_it(self, mine: int) -> bool:
        """Should this worker, holding `mine` connections, leave a new one to another?"""
        if self._slot is None:  # no slot in the table: the first rule, by this worker's threads
            return self.cfg.workers > 1 and mine >= self.cfg.threads
        return TABLE.holds_fewer(self._slot, mine)

    def wait_for_and_dispatch_events(self, timeout):
        if self._draining:
            # One look at what is ready now, the listener among it; then the loop goes on as before.
            try:
                super().wait_for_and_dispatch_events(0)
            finally:
                self._draining = False
            return
        if self._defer_until:
            timeout = min(timeout, max(0.0, self._defer_until - time.monotonic()))
        super().wait_for_and_dispatch_events(timeout)

    def handle(self, conn):
        keep = super().handle(conn)
        served = 1
        while keep is True and self.alive and served < MAX_IN_PLACE and not self._others_waiting():
            if not conn.parser.unreader.buf.getvalue() and not _readable(conn.sock, LINGER_SECONDS):
                break
            keep = super().handle(conn)
            served += 1
        return keep

    def _others_waiting(self) -> bool:
        """Does a request of another connection wait for a pool thread?"""
        work = getattr(self.tpool, "_work_queue", None)  # CPython's ThreadPoolExecutor
        return work is None or not work.empty()


def _readable(sock, timeout: float) -> bool:
    """Has `sock` data (or its end) within `timeout` seconds? poll, not
    select: no limit on the descriptor's number."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(max(1, round(timeout * 1000))))
