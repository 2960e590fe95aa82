"""Compile the contracts with py-solc-x over solc-js.

py-solc-x cannot download a native solc here, so `bin/solc` (a small Node
script around the npm `solc` package) stands in for the binary; py-solc-x's
`compile_standard` only needs `--version` and `--standard-json` from it.

Run `python -m contracts.compile` to rewrite every committed artifact
(contracts/<Name>.json for each name in CONTRACT_NAMES). All contracts go
through one compiler run with the same settings; each is a self-contained
source unit, so its bytecode is what it would be compiled alone.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterable
from pathlib import Path

import solcx

from contracts.artifact import CONTRACT_NAME, CONTRACT_NAMES, HERE, artifact_path, source_path, source_sha256

ROOT = HERE.parent
SOLC_BINARY = ROOT / "bin" / "solc"
SOLC_JS = ROOT / "node_modules" / "solc"

# Shanghai runs on both Anvil and Ganache 7.9 (Ganache knows no Cancun);
# solc 0.8.28 would default to Cancun, so it is set explicitly.
EVM_VERSION = "shanghai"
OPTIMIZER_RUNS = 200


class CompilerMissing(RuntimeError):
    pass


def standard_input(sources: dict[str, str]) -> dict:
    """solc's standard JSON input for {file name: source text}."""
    return {
        "language": "Solidity",
        "sources": {file: {"content": text} for file, text in sources.items()},
        "settings": {
            "evmVersion": EVM_VERSION,
            "optimizer": {"enabled": True, "runs": OPTIMIZER_RUNS},
            "metadata": {"bytecodeHash": "none"},
            "outputSelection": {
                "*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}
            },
        },
    }


def compile_contracts(names: Iterable[str] = CONTRACT_NAMES,
                      sources: dict[str, str] | None = None) -> dict[str, dict]:
    """Compile the named contracts in one compiler run and return their
    artifacts by name (not written anywhere). `sources` may give a contract's
    source text instead of its file's."""
    if not SOLC_JS.is_dir():
        raise CompilerMissing("node_modules/solc is missing: run `make setup` (it runs npm ci)")
    if shutil.which("node") is None:
        raise CompilerMissing("node is not on PATH: install Node.js 20 (see README)")
    names = list(names)
    sources = dict(sources or {})
    texts = {name: sources.get(name) or source_path(name).read_text(encoding="utf-8") for name in names}
    output = solcx.compile_standard(standard_input({source_path(n).name: t for n, t in texts.items()}),
                                    solc_binary=str(SOLC_BINARY))
    version = str(solcx.wrapper.get_solc_version(SOLC_BINARY, with_commit_hash=True))
    artifacts = {}
    for name in names:
        contract = output["contracts"][source_path(name).name][name]
        artifacts[name] = {
            "contractName": name,
            "sourceSha256": source_sha256(texts[name], name),
            "compiler": {"name": "solc-js", "version": version},
            "evmVersion": EVM_VERSION,
            "optimizer": {"enabled": True, "runs": OPTIMIZER_RUNS},
            "abi": contract["abi"],
            "bytecode": "0x" + contract["evm"]["bytecode"]["object"],
            "deployedBytecode": "0x" + contract["evm"]["deployedBytecode"]["object"],
        }
    return artifacts


def compile_registry(source: str | None = None) -> dict:
    """Compile the CredentialRegistry alone and return its artifact."""
    sources = {CONTRACT_NAME: source} if source is not None else None
    return compile_contracts([CONTRACT_NAME], sources)[CONTRACT_NAME]


def write_artifact(artifact: dict, path: Path | None = None) -> None:
    path = path or artifact_path(artifact["contractName"])
    path.write_text(json.dumps(artifact, indent=2) + "\n", encoding="utf-8")


def main() -> int:
    try:
        artifacts = compile_contracts()
    except (CompilerMissing, solcx.exceptions.SolcError) as exc:
        print(f"compile failed: {exc}", file=sys.stderr)
        return 1
    for name, artifact in artifacts.items():
        write_artifact(artifact)
        size = (len(artifact["deployedBytecode"]) - 2) // 2
        print(f"wrote {artifact_path(name).relative_to(ROOT)} ({size} bytes of runtime code, "
              f"solc {artifact['compiler']['version']}, evm {EVM_VERSION})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
