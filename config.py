"""Where Attest keeps things, read once from the environment.

Everything the service keeps lives under ATTEST_DATA_DIR (default `instance/`):
the database, the embedded chain's state, the issuer key and the vector index.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def _path(value) -> Path | None:
    return Path(value).expanduser().resolve() if value else None


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
    # The public address (QR links, did:web, status lists); None: the stored
    # profile's, else http://127.0.0.1:5000. Never the request's Host header.
    public_url: str | None = None
    institution_name: str | None = None
    institution_logo: str | None = None
    # A trust-list file (DCC issuer-registry format, see credentials.trust).
    trusted_issuers: Path | None = None
    # An on-chain accreditation registry ("<chainId>:<address>") whose accredited
    # institutions the verifier trusts, read through this RPC URL (default: the
    # verifier's own chain).
    accreditation_registry: str | None = None
    accreditation_rpc_url: str | None = None
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
            public_url=overrides.pop("public_url", None) or env.get("ATTEST_PUBLIC_URL") or None,
            institution_name=overrides.pop("institution_name", None) or env.get("ATTEST_INSTITUTION_NAME") or None,
            institution_logo=overrides.pop("institution_logo", None) or env.get("ATTEST_INSTITUTION_LOGO") or None,
            trusted_issuers=_path(overrides.pop("trusted_issuers", None) or env.get("ATTEST_TRUSTED_ISSUERS")),
            accreditation_registry=overrides.pop("accreditation_registry", None)
            or env.get("ATTEST_ACCREDITATION_REGISTRY") or None,
            accreditation_rpc_url=overrides.pop("accreditation_rpc_url", None)
            or env.get("ATTEST_ACCREDITATION_RPC_URL") or None,
            extra=overrides,
        )

    @property
    def chain_dir(self) -> Path:
        return _private_dir(self.data_dir / "chain")

    @property
    def keys_dir(self) -> Path:
        return _private_dir(self.data_dir / "keys")

    @property
    def profile_defaults(self):
        from credentials.identity import ProfileDefaults

        return ProfileDefaults(self.institution_name, self.public_url, self.institution_logo)

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        _private_dir(self.data_dir)
        return f"sqlite:///{self.data_dir / 'attest.db'}"
