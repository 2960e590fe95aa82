"""The committed compiled artifacts of the contracts.

Each contract `<Name>` is one self-contained `<Name>.sol` beside its artifact
`<Name>.json`. `load_artifact()` with no name is the CredentialRegistry, as it
always was; `load_artifact("AccreditationRegistry")` is the accreditor's registry.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONTRACT_NAME = "CredentialRegistry"
# Every contract the compile step builds, in the order it writes them.
CONTRACT_NAMES = ("CredentialRegistry", "AccreditationRegistry")


def _known(name: str) -> str:
    if name not in CONTRACT_NAMES:
        raise ValueError(f"unknown contract {name!r}: expected one of {', '.join(CONTRACT_NAMES)}")
    return name


def source_path(name: str = CONTRACT_NAME) -> Path:
    return HERE / f"{_known(name)}.sol"


def artifact_path(name: str = CONTRACT_NAME) -> Path:
    return HERE / f"{_known(name)}.json"


SOURCE_PATH = source_path()
ARTIFACT_PATH = artifact_path()


def source_sha256(source: str | None = None, name: str = CONTRACT_NAME) -> str:
    text = source_path(name).read_text(encoding="utf-8") if source is None else source
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@lru_cache(maxsize=len(CONTRACT_NAMES))
def load_artifact(name: str = CONTRACT_NAME) -> dict:
    """ABI, bytecode and build facts of contract `name`, as committed."""
    path = artifact_path(name)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise RuntimeError(
            f"{path} is missing: run `make compile` to build the contract artifacts"
        ) from exc
