"""Secrets kept in 0600 files under ATTEST_DATA_DIR/keys (or given in the
environment, through Settings). A secret is never printed or logged."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def create_exclusive(path: Path, content: str) -> bool:
    """Write `content` to a new 0600 file; a file already there (perhaps made by
    another process a moment ago) is kept as it is. True when this call made it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as fh:
        fh.write(content)
    return True


def read_private(path: Path) -> str:
    """A secret file's text; its mode is tightened to 0600 if someone loosened it."""
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)
    return path.read_text().strip()


def load_or_create_secret(path: Path, nbytes: int = 32) -> str:
    """A random secret (the session key, say) kept in a 0600 file."""
    create_exclusive(path, secrets.token_hex(nbytes) + "\n")
    return read_private(path)
