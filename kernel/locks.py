"""Locks that hold across processes (and, on PostgreSQL, across machines).

`cross_process_lock(settings, name)` is a context manager: on PostgreSQL a
session-level advisory lock (`pg_advisory_lock`) on a connection of its own,
so every worker of every machine that shares the database waits its turn; on
SQLite (one machine by definition) an `fcntl` lock on a file under the data
dir. The chain client uses it so that one issuer key sends one transaction at
a time, whichever process sends it: nonces never collide.
"""

from __future__ import annotations

import fcntl
import hashlib
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kernel.settings import Settings, private_dir

_local = threading.local()


def _lock_id(name: str) -> int:
    """A signed 64-bit id for pg_advisory_lock, stable across processes."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextmanager
def advisory_lock(dsn: str, name: str) -> Iterator[None]:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_lock_id(name),))
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_lock_id(name),))


def cross_process_lock(settings: Settings, name: str):
    """The lock called `name` for everyone sharing this installation's database."""
    url = settings.database_url or ""
    if url.startswith(("postgresql", "postgres")):
        dsn = re.sub(r"^postgresql\+\w+://", "postgresql://", url)
        return advisory_lock(dsn, name)
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    return file_lock(private_dir(settings.data_dir / "locks") / f"{safe}.lock")
