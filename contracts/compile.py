"""Compile CredentialRegistry.sol with py-solc-x over solc-js.

py-solc-x cannot download a native solc here, so `bin/solc` (a small Node
script around the npm `solc` package) stands in for the binary; py-solc-x's
`compile_standard` only needs `--version` and `--standard-json` from it.

Run `python -m contracts.compile` to rewrite the committed artifact.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import solcx

from contracts.artifact import ARTIFACT_PATH, CONTRACT_NAME, SOURCE_PATH, source_sha256

ROOT = SOURCE_PATH.parent.parent
SOLC_BINARY = ROOT / "bin" / "solc"
SOLC_JS = ROOT / "node_modules" / "solc"

# Shanghai runs on both Anvil and Ganache 7.9 (Ganache knows no Cancun);
# solc 0.8.28 would default to Cancun, so it is set explicitly.
EVM_VERSION = "shanghai"
OPTIMIZER_RUNS = 200


class CompilerMissing(RuntimeError):
    pass


def standard_input(source: str) -> dict:
    return {
        "language": "Solidity",
        "sources": {SOURCE_PATH.name: {"content": source}},
        "settings": {
            "evmVersion": EVM_VERSION,
            "optimizer": {"enabled": True, "runs": OPTIMIZER_RUNS},
            "metadata": {"bytecodeHash": "none"},
            "outputSelection": {
                "*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}
            },
        },
    }


def compile_registry(source: str | None = None) -> dict:
    """Compile the registry and return the artifact (not written anywhere)."""
    if not SOLC_JS.is_dir():
        raise CompilerMissing("node_modules/solc is missing: run `make setup` (it runs npm ci)")
    if shutil.which("node") is None:
        raise CompilerMissing("node is not on PATH: install Node.js 20 (see README)")
    text = SOURCE_PATH.read_text(encoding="utf-8") if source is None else source
    output = solcx.compile_standard(standard_input(text), solc_binary=str(SOLC_BINARY))
    contract = output["contracts"][SOURCE_PATH.name][CONTRACT_NAME]
    version = str(solcx.wrapper.get_solc_version(SOLC_BINARY, with_commit_hash=True))
    return {
        "contractName": CONTRACT_NAME,
        "sourceSha256": source_sha256(text),
        "compiler": {"name": "solc-js", "version": version},
        "evmVersion": EVM_VERSION,
        "optimizer": {"enabled": True, "runs": OPTIMIZER_RUNS},
        "abi": contract["abi"],
        "bytecode": "0x" + contract["evm"]["bytecode"]["object"],
        "deployedBytecode": "0x" + contract["evm"]["deployedBytecode"]["object"],
    }


def write_artifact(artifact: dict, path: Path = ARTIFACT_PATH) -> None:
    path.write_text(json.dumps(artifact, indent=2) + "\n", encoding="utf-8")


def main() -> int:
    try:
        artifact = compile_registry()
    except (CompilerMissing, solcx.exceptions.SolcError) as exc:
        print(f"compile failed: {exc}", file=sys.stderr)
        return 1
    write_artifact(artifact)
    size = (len(artifact["deployedBytecode"]) - 2) // 2
    print(f"wrote {ARTIFACT_PATH.relative_to(ROOT)} ({size} bytes of runtime code, "
          f"solc {artifact['compiler']['version']}, evm {EVM_VERSION})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
