"""Ethereum keys kept under ATTEST_DATA_DIR/keys with 0600 permissions, or given
in the environment (through Settings). A key is never printed or logged; only
its address is."""

from __future__ import annotations

import secrets
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from kernel.secrets import create_exclusive, read_private


def load_or_create_key(keys_dir: Path, name: str, given: str | None = None) -> LocalAccount:
    """The account for `name`: `given` (a hex key from the environment) if set,
    else `keys_dir/<name>.key`, created (32 random bytes, mode 0600) on first use."""
    if given:
        return Account.from_key(given.strip())
    path = keys_dir / f"{name}.key"
    create_exclusive(path, "0x" + secrets.token_hex(32) + "\n")
    return Account.from_key(read_private(path))
