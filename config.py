"""Where Attest keeps things, read once from the environment.

Everything the service keeps lives under ATTEST_DATA_DIR (default `instance/`):
the database, the embedded chain's state, the issuer key and the vector index.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    rpc_url: str | None = None
    database_url: str | None = None
    # Blocks to wait after the anchoring block before a batch counts as anchored.
    confirmations: int = 0
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls, **overrides) -> Settings:
        env = os.environ
        data_dir = Path(overrides.pop("data_dir", None) or env.get("ATTEST_DATA_DIR") or ROOT / "instance")
        return cls(
            data_dir=data_dir.resolve(),
            rpc_url=overrides.pop("rpc_url", None) or env.get("ATTEST_RPC_URL") or None,
            database_url=overrides.pop("database_url", None) or env.get("ATTEST_DATABASE_URL") or None,
            confirmations=int(overrides.pop("confirmations", None) or env.get("ATTEST_CONFIRMATIONS") or 0),
            extra=overrides,
        )

    @property
    def chain_dir(self) -> Path:
        return _private_dir(self.data_dir / "chain")

    @property
    def keys_dir(self) -> Path:
        return _private_dir(self.data_dir / "keys")

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        _private_dir(self.data_dir)
        return f"sqlite:///{self.data_dir / 'attest.db'}"
