"""Secret keys kept under ATTEST_DATA_DIR/keys with 0600 permissions, or given
in the environment. A key is never printed or logged; only its address is."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount


def load_or_create_key(keys_dir: Path, name: str, env_var: str | None = None) -> LocalAccount:
    """The account for `name`: from `env_var` if set, else `keys_dir/<name>.key`,
    created (32 random bytes, mode 0600) on first use."""
    if env_var and os.environ.get(env_var):
        return Account.from_key(os.environ[env_var].strip())
    path = keys_dir / f"{name}.key"
    _create_exclusive(path, "0x" + secrets.token_hex(32) + "\n")
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        # Someone loosened it; tighten rather than refuse, and keep going.
        os.chmod(path, 0o600)
    return Account.from_key(path.read_text().strip())


def load_or_create_secret(path: Path, nbytes: int = 32) -> str:
    """A random secret (for example the session key) kept in a 0600 file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _create_exclusive(path, secrets.token_hex(nbytes) + "\n")
    return path.read_text().strip()


def _create_exclusive(path: Path, content: str) -> None:
    """Write `content` to a new 0600 file; a file already there (perhaps made by
    another process a moment ago) is kept as it is."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "w") as fh:
        fh.write(content)
