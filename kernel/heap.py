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
  reference counting as before; what waits is garbage in reference cycles
  (the ORM's, exception tracebacks), until the next collection. The pause is
  process-wide (`gc.disable`), so other threads go without cyclic collection
  meanwhile too. When overlapping batches keep it for more than
  `LONG_PAUSE` seconds, a holder that leaves then collects the young
  generations (which walks only what was made since the last collection),
  so overlapping batches cannot keep collection off from one batch to the
  next indefinitely. One batch keeps it off for as long as it runs.

The pause counts its holders, so overlapping batches on several threads
(a web process previewing one file while a job worker thread issues
another) keep it until the last of them leaves. A collector that was
disabled when the first holder came is left disabled; one disabled by other
code during the pause is enabled again when it ends.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_holders = 0
_restore = False  # whether the first holder found the collector enabled
_since = 0.0  # when collection last ran or the pause began (time.monotonic)
LONG_PAUSE = 5.0


def freeze_startup_heap() -> None:
    """Collect once, then put every object that survives out of reach of
    later collections (`gc.freeze`). Call it when start-up is over."""
    gc.collect()
    gc.freeze()


@contextmanager
def collector_paused() -> Iterator[None]:
    """No automatic cyclic collection inside the block (see the module doc).
    Usable as a decorator; nests and overlaps across threads."""
    global _holders, _restore, _since
    with _lock:
        if _holders == 0:
            _restore = gc.isenabled()
            _since = time.monotonic()
            gc.disable()
        _holders += 1
    try:
        yield
    finally:
        collect = False
        with _lock:
            _holders -= 1
            if _holders == 0:
                if _restore:
                    gc.enable()
            elif time.monotonic() - _since > LONG_PAUSE:
                collect, _since = True, time.monotonic()
        if collect:
            gc.collect(1)
