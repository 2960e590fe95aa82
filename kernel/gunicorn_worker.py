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
"""

from __future__ import annotations

import select

from gunicorn.workers.gthread import ThreadWorker

LINGER_SECONDS = 0.001
MAX_IN_PLACE = 100


class PromptThreadWorker(ThreadWorker):
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
