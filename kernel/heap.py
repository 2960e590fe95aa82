"""Keeping Python's cyclic garbage collector off the batch path.

CPython's collector runs whenever enough container objects have been
allocated. A full (oldest-generation) collection walks every tracked object
in the process: after start-up that is the imported modules of web3,
SQLAlchemy, Flask and the app, about 195,000 objects, and one walk took
0.1-0.2 s on the 2-core bench machine. Issuing 10,000 credentials keeps
tens of thousands of new objects alive until the batch is saved (its
requests, the workers' texts, the rows): measured with `gc.callbacks` in
bench/bench_issue.py's batch, about 105 young collections, 10 middle ones
and, in most batches, one full walk, 0.23-0.24 s of a 2.1 s batch.

Two remedies, used together:
- `freeze_startup_heap()` moves what a long-lived process loaded at start-up
  into the collector's permanent generation, where no collection walks it
  (gunicorn's workers, the job worker process, `flask serve`). A short-lived
  command does without: the one collection it needs costs as much as it saves.
- `collector_paused()` keeps automatic collections from running while a
  batch is parsed and signed. The objects a batch allocates are freed by
  reference counting when it ends; the few reference cycles among them (the
  ORM's) wait for the next collection after the block. Nothing is lost by
  pausing: only when garbage in a cycle is reclaimed changes.

The pause counts its holders, so overlapping batches on several threads
(a web process previewing one file while a job worker thread issues
another) keep it until the last of them leaves, and a collector that was
already disabled by someone else is left disabled.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_holders = 0
_restore = False  # whether the first holder found the collector enabled


def freeze_startup_heap() -> None:
    """Collect once, then put every object that survives out of reach of
    later collections (`gc.freeze`). Call it when start-up is over."""
    gc.collect()
    gc.freeze()


@contextmanager
def collector_paused() -> Iterator[None]:
    """No automatic cyclic collection inside the block (see the module doc).
    Usable as a decorator; nests and overlaps across threads."""
    global _holders, _restore
    with _lock:
        if _holders == 0:
            _restore = gc.isenabled()
            gc.disable()
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0 and _restore:
                gc.enable()
