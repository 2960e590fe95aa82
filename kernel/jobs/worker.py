"""Workers: the Huey consumer running `run_job`, plus a reaper that re-sends
jobs whose worker died.

- `EmbeddedWorker(app)`: threads inside the web process (`make run`, the SQLite
  queue), started by `flask serve`.
- `flask --app app jobs worker`: a worker process for production (`make
  serve-prod` starts several). SIGTERM, SIGINT and SIGHUP (a deploy) stop it
  gracefully: each running job hands back at its next durable step (or
  finishes it), then the process exits; another worker takes the job up.
"""

from __future__ import annotations

import logging
import signal
import threading

from flask import Flask
from huey.consumer import Consumer

from kernel.heap import freeze_startup_heap
from kernel.jobs.runner import reap

log = logging.getLogger(__name__)
REAP_EVERY = 5.0


class _Consumer(Consumer):
    """Huey's consumer, without its signal handlers: the process that hosts it
    (the web server, the test runner, `jobs worker`) owns its signals."""

    def _set_signal_handlers(self) -> None:
        pass


class EmbeddedWorker:
    def __init__(self, app: Flask, workers: int | None = None, reap_every: float = REAP_EVERY,
                 shutdown_timeout: float = 120.0):
        self.app = app
        self.queue = app.extensions["attest.queue"]
        self.workers = workers or app.extensions["attest.settings"].workers
        self.reap_every = reap_every
        # Polls every 0.1 s at most when idle (SQLite has no blocking read):
        # the page that waits for a job sees it start at once.
        self.consumer = _Consumer(self.queue.huey, workers=self.workers, worker_type="thread",
                                  initial_delay=0.05, backoff=1.15, max_delay=0.25, periodic=False,
                                  check_worker_health=True, shutdown_timeout=shutdown_timeout)
        self._stop = threading.Event()
        self._reaper = threading.Thread(target=self._reap_loop, name="attest-reaper", daemon=True)

    def describe(self) -> str:
        return f"{self.workers} worker thread(s) on the {self.queue.kind} queue"

    def _reap_loop(self) -> None:
        while not self._stop.wait(self.reap_every):
            try:
                reap(self.app)
            except Exception:  # noqa: BLE001 - the next pass tries again
                log.exception("reaping jobs failed")

    def start(self) -> EmbeddedWorker:
        self.queue.stopping.clear()
        self.consumer.start()
        self._reaper.start()
        reap(self.app)  # what an earlier process left behind
        return self

    def stop(self) -> None:
        """Jobs hand back at their next durable step; then the threads end."""
        self._stop.set()
        self.queue.stopping.set()
        self.consumer.stop(graceful=True)
        self._reaper.join(timeout=5)

    def __enter__(self) -> EmbeddedWorker:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def run_worker_process(app: Flask, workers: int) -> None:
    """The body of `flask jobs worker`: run until a stop signal, then stop gracefully."""
    freeze_startup_heap()  # the app is loaded: keep it out of every later collection (kernel.heap)
    worker = EmbeddedWorker(app, workers=workers)
    stop = threading.Event()

    def on_signal(signum, _frame):
        log.warning("worker got %s: handing back running jobs at their next step", signal.Signals(signum).name)
        stop.set()

    worker.start()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        worker.stop()
