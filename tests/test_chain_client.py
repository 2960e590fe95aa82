"""The chain client and the embedded node: deployment once, persistence,
clear messages when the chain is unreachable, reset or not installed."""

from __future__ import annotations

import json
import os
import stat

import pytest

from contracts.artifact import CONTRACT_NAMES, load_artifact
from contracts.compile import CompilerMissing, compile_contracts, compile_registry
from credentials.chain import ChainUnreachable, RegistryMissing, open_registry
from credentials.node import EmbeddedAnvil, NodeError, free_port, rpc_chain_id
from kernel.settings import Settings
from tests.fixtures_chain import start_anvil


def test_committed_artifact_is_current():
    """Recompile every source with solc-js through py-solc-x: each committed
    artifact must be exactly what the compiler makes of today's source."""
    fresh = compile_contracts()
    assert set(fresh) == set(CONTRACT_NAMES) == {"CredentialRegistry", "AccreditationRegistry"}
    for name, artifact in fresh.items():
        committed = load_artifact(name)
        assert artifact["sourceSha256"] == committed["sourceSha256"], f"{name}.sol changed: run `make compile`"
        assert artifact == committed, f"contracts/{name}.json is stale: run `make compile`"
        assert committed["evmVersion"] == "shanghai"
    # Compiled alone, the registry is the same as compiled beside the other contract.
    assert compile_registry() == load_artifact() == load_artifact("CredentialRegistry")


def test_compiler_missing_says_to_run_setup(monkeypatch, tmp_path):
    import contracts.compile as compile_module

    monkeypatch.setattr(compile_module, "SOLC_JS", tmp_path / "no-solc")
    with pytest.raises(CompilerMissing, match="make setup"):
        compile_registry()


def test_missing_anvil_binary_says_to_run_setup(tmp_path):
    node = EmbeddedAnvil(tmp_path, binary=tmp_path / "node_modules" / "anvil")
    with pytest.raises(NodeError, match="make setup"):
        node.start()


def test_keys_are_private(registry, chain_settings):
    for name in ("issuer.key", "owner.key"):
        path = chain_settings.keys_dir / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(chain_settings.keys_dir.stat().st_mode) == 0o700


def test_open_twice_keeps_the_same_registry(chain_settings):
    with open_registry(chain_settings) as first:
        address, issuer = first.address, first.issuer.address
    with open_registry(chain_settings) as second:
        assert second.address == address
        assert second.issuer.address == issuer
        assert second.is_authorized(issuer)


def test_a_deauthorised_issuer_stays_deauthorised_on_reopen(chain_settings):
    with open_registry(chain_settings) as reg:
        reg.deauthorize_issuer(reg.issuer.address)
    with open_registry(chain_settings) as reg:
        assert not reg.is_authorized(reg.issuer.address)


def test_unreachable_rpc_names_the_url(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    settings = Settings.from_env(data_dir=tmp_path, rpc_url=url)
    with pytest.raises(ChainUnreachable, match=url.replace(".", r"\.")):
        open_registry(settings)


def test_reset_chain_is_reported_clearly(tmp_path):
    node = start_anvil(tmp_path)
    settings = Settings.from_env(data_dir=tmp_path / "data", rpc_url=node.url)
    try:
        with open_registry(settings) as reg:
            address = reg.address
    finally:
        node.stop()
    # Same chain id, a brand-new chain: the recorded registry is not there.
    fresh = start_anvil(tmp_path)
    try:
        settings = Settings.from_env(data_dir=tmp_path / "data", rpc_url=fresh.url)
        with pytest.raises(RegistryMissing, match=f"{address}.*has no code.*chain deploy --new"):
            open_registry(settings)
        with open_registry(settings, new=True) as reg:
            assert reg.address != address or reg.w3.eth.get_code(reg.address)
    finally:
        fresh.stop()


def test_embedded_node_persists_state_across_restarts(tmp_path):
    settings = Settings.from_env(data_dir=tmp_path / "data")
    assert settings.rpc_url is None
    root = os.urandom(32)
    with open_registry(settings) as reg:
        assert reg.node is not None and reg.node.owned
        url, address = reg.rpc_url, reg.address
        reg.anchor(root, 3)
    assert rpc_chain_id(url) is None, "the node must be stopped by close()"
    assert (settings.chain_dir / "anvil-state.json").exists()
    with open_registry(settings) as reg:
        assert reg.address == address
        record = reg.anchor_of(root)
        assert record is not None and record.count == 3


def test_second_process_reuses_a_running_embedded_node(tmp_path):
    settings = Settings.from_env(data_dir=tmp_path / "data")
    with open_registry(settings) as owner_side:
        with open_registry(settings) as guest_side:
            assert guest_side.rpc_url == owner_side.rpc_url
            assert guest_side.node is not None and not guest_side.node.owned
        # The guest closing must not stop the owner's node.
        assert rpc_chain_id(owner_side.rpc_url) == 31337


def test_cli_chain_status_twice(tmp_path, monkeypatch):
    from app import create_app

    monkeypatch.delenv("ATTEST_RPC_URL", raising=False)
    app = create_app({"TESTING": True, "data_dir": tmp_path / "cli", "SECRET_KEY": "x"})
    runner = app.test_cli_runner()
    first = runner.invoke(args=["chain", "status"])
    assert first.exit_code == 0, first.output
    status = json.loads(first.output)
    for key in ("rpc_url", "chain_id", "registry", "block"):
        assert key in status
    assert status["chain_id"] == 31337 and status["embedded"] is True
    # The command stopped the node it started ...
    assert rpc_chain_id(status["rpc_url"]) is None
    # ... and the state it left holds the same registry.
    second = json.loads(runner.invoke(args=["chain", "status"]).output)
    assert second["registry"] == status["registry"]
    assert second["block"] >= status["block"]


def test_cli_unreachable_rpc_is_one_clear_line(tmp_path):
    from app import create_app

    url = f"http://127.0.0.1:{free_port()}"
    app = create_app({"TESTING": True, "data_dir": tmp_path / "cli", "rpc_url": url, "SECRET_KEY": "x"})
    result = app.test_cli_runner().invoke(args=["chain", "status"])
    assert result.exit_code == 1
    assert url in result.output and "Traceback" not in result.output
