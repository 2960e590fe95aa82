"""The committed compiled artifact of the registry contract."""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE_PATH = HERE / "CredentialRegistry.sol"
ARTIFACT_PATH = HERE / "CredentialRegistry.json"
CONTRACT_NAME = "CredentialRegistry"


def source_sha256(source: str | None = None) -> str:
    text = SOURCE_PATH.read_text(encoding="utf-8") if source is None else source
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@lru_cache(maxsize=1)
def load_artifact() -> dict:
    """ABI, bytecode and build facts of the registry, as committed."""
    try:
        return json.loads(ARTIFACT_PATH.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise RuntimeError(
            f"{ARTIFACT_PATH} is missing: run `make compile` to build the contract artifact"
        ) from exc
