"""Every setting, read once from the environment (`Settings.from_env`).

Nothing else in Attest reads `os.environ` for configuration: the app factory
reads the environment here, once, and hands the `Settings` on. Everything the
service keeps lives under ATTEST_DATA_DIR (default `instance/`): the database,
the embedded chain's state, the keys and the vector index. Secrets either come
from the environment or live in `keys/` (0600).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class SettingsError(ValueError):
    """A setting with a value Attest cannot use; the message names the variable."""


def private_dir(path: Path) -> Path:
    """A directory only this user can enter (0700): it holds personal data or keys."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def _text(_name: str, value: str) -> str:
    return value.strip()


def _int(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError as exc:
        raise SettingsError(f"{name} must be a whole number, not {value!r}") from exc


def _float(name: str, value: str) -> float:
    try:
        return float(value)
    except ValueError as exc:
        raise SettingsError(f"{name} must be a number, not {value!r}") from exc


def _bool(_name: str, value: str) -> bool:
    return _flag(value)


def _pathvalue(_name: str, value: str) -> Path:
    return Path(value).expanduser().resolve()


# (field, environment variable, parser). Secrets are marked: never printed.
_ENV = {
    "data_dir": "ATTEST_DATA_DIR",
    "rpc_url": "ATTEST_RPC_URL",
    "database_url": "ATTEST_DATABASE_URL",
    "queue_url": "ATTEST_QUEUE_URL",
    "confirmations": "ATTEST_CONFIRMATIONS",
    "anvil_state_interval": "ATTEST_ANVIL_STATE_INTERVAL",
    "public_url": "ATTEST_PUBLIC_URL",
    "serve_url": "ATTEST_SERVE_URL",
    "institution_name": "ATTEST_INSTITUTION_NAME",
    "institution_logo": "ATTEST_INSTITUTION_LOGO",
    "trusted_issuers": "ATTEST_TRUSTED_ISSUERS",
    "accreditation_registry": "ATTEST_ACCREDITATION_REGISTRY",
    "accreditation_rpc_url": "ATTEST_ACCREDITATION_RPC_URL",
    "verify_rpc_url": "ATTEST_VERIFY_RPC_URL",
    "verify_rate_limit": "ATTEST_VERIFY_RATE_LIMIT",
    "login_rate_limit": "ATTEST_LOGIN_RATE_LIMIT",
    "rate_limit_storage": "ATTEST_RATE_LIMIT_STORAGE",
    "did_cache_ttl": "ATTEST_DID_CACHE_TTL",
    "hash_recipient_emails": "ATTEST_HASH_RECIPIENT_EMAILS",
    "embed_threads": "ATTEST_EMBED_THREADS",
    "embedding_backend": "ATTEST_EMBEDDING_BACKEND",
    "model_cache": "ATTEST_MODEL_CACHE",
    "workers": "ATTEST_WORKERS",
    "secret_key": "ATTEST_SECRET_KEY",
    "issuer_key": "ATTEST_ISSUER_KEY",
    "owner_key": "ATTEST_OWNER_KEY",
    "accreditor_key": "ATTEST_ACCREDITOR_KEY",
    "ed25519_key": "ATTEST_ED25519_KEY",
}


_PARSE = {"confirmations": _int, "anvil_state_interval": _int, "embed_threads": _int, "workers": _int, "did_cache_ttl": _float,
          "hash_recipient_emails": _bool, "trusted_issuers": _pathvalue, "model_cache": _pathvalue,
          "data_dir": _pathvalue}


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    rpc_url: str | None = None
    database_url: str | None = None
    # Where jobs are queued: None for the embedded SQLite queue under the data
    # dir (an in-process worker), or redis://… for separate worker processes.
    queue_url: str | None = None
    # Blocks to wait after the anchoring block before a batch counts as anchored.
    confirmations: int = 0
    # Seconds between the embedded Anvil's own state saves (credentials.node makes
    # every transaction durable itself before reporting it; this is its backstop).
    anvil_state_interval: int = 1
    # The public address (QR links, did:web, status lists); None: the stored
    # profile's, else http://127.0.0.1:5000. Never the request's Host header.
    public_url: str | None = None
    # Where `flask serve` / `serve-prod` listen: the public address when none is
    # set or stored (a development machine on another port).
    serve_url: str | None = None
    institution_name: str | None = None
    institution_logo: str | None = None
    # A trust-list file (DCC issuer-registry format, see credentials.trust).
    trusted_issuers: Path | None = None
    # An on-chain accreditation registry ("<chainId>:<address>") whose accredited
    # institutions the verifier trusts, read through this RPC URL (default: the
    # verifier's own chain).
    accreditation_registry: str | None = None
    accreditation_rpc_url: str | None = None
    # The node the verifier asks (default: rpc_url, else the embedded node).
    verify_rpc_url: str | None = None
    verify_rate_limit: str = "600/minute"
    login_rate_limit: str = "10 per minute"
    # Where rate-limit counters live, shared by every worker: redis://… or
    # memory:// (one process); None follows queue_url, else memory.
    rate_limit_storage: str | None = None
    did_cache_ttl: float = 3600.0
    hash_recipient_emails: bool = False
    embed_threads: int | None = None
    embedding_backend: str | None = None
    model_cache: Path | None = None
    # Job worker threads in an embedded (in-process) worker.
    workers: int = 2
    secret_key: str | None = field(default=None, repr=False)
    issuer_key: str | None = field(default=None, repr=False)
    owner_key: str | None = field(default=None, repr=False)
    accreditor_key: str | None = field(default=None, repr=False)
    ed25519_key: str | None = field(default=None, repr=False)
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: dict | None = None, **overrides) -> Settings:
        """The settings from `environ` (default os.environ), with keyword overrides
        (tests and the app factory's test_config) winning. Unknown overrides are
        kept in `extra`."""
        env = os.environ if environ is None else environ
        known = {f.name: f for f in fields(cls)}
        values: dict = {}
        for name, var in _ENV.items():
            text = env.get(var)
            values[name] = _PARSE.get(name, _text)(var, text) if text not in (None, "") else None
        for name, value in overrides.items():
            if name in known and value is not None:
                # An empty string unsets the setting, whatever the environment says.
                values[name] = None if value == "" else (
                    _PARSE.get(name, _text)(name, value) if isinstance(value, str) else value)
        values = {k: v for k, v in values.items() if v is not None}
        values["data_dir"] = Path(values.get("data_dir") or ROOT / "instance").expanduser().resolve()
        return cls(**values, extra={k: v for k, v in overrides.items() if k not in known})

    @property
    def chain_dir(self) -> Path:
        return private_dir(self.data_dir / "chain")

    @property
    def keys_dir(self) -> Path:
        return private_dir(self.data_dir / "keys")

    @property
    def index_dir(self) -> Path:
        return private_dir(self.data_dir / "index")

    @property
    def sqlite_path(self) -> Path | None:
        return None if self.database_url else self.data_dir / "attest.db"

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        private_dir(self.data_dir)
        return f"sqlite:///{self.sqlite_path}"

    @property
    def limiter_storage_uri(self) -> str:
        if self.rate_limit_storage:
            return self.rate_limit_storage
        if self.queue_url and self.queue_url.startswith(("redis://", "rediss://", "unix://")):
            return self.queue_url
        return "memory://"

    @property
    def profile_defaults(self):
        from credentials.identity import ProfileDefaults

        return ProfileDefaults(self.institution_name, self.public_url, self.institution_logo, self.serve_url)
