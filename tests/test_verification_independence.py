"""Independence: a credential verifies from its JSON and an RPC URL alone,
with the issuer's database and keys gone; the same JSON pointed at another
registry deployment or another chain fails `anchor`."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys

import pytest

from app import create_app
from config import ROOT, Settings
from credentials.chain import open_registry
from credentials.reader import ChainReader
from credentials.verification import verify_credential
from tests.fixtures_chain import start_anvil
from tests.helpers_credentials import issue_stored


@pytest.fixture
def issued_then_deleted(tmp_path, anvil_url):
    """Credentials issued by a real Attest instance, whose data dir (database,
    issuer key, owner key, deployment record) is then deleted."""
    data_dir = tmp_path / "issuer-instance"
    app = create_app({"TESTING": True, "data_dir": data_dir, "rpc_url": anvil_url, "SECRET_KEY": "x"})
    docs = issue_stored(app, 3)
    app.extensions.pop("attest.registry").close()
    app.extensions["attest.db"].engine.dispose()
    shutil.rmtree(data_dir)
    assert not data_dir.exists()
    return docs


def test_verifies_with_only_the_rpc_url(issued_then_deleted, anvil_url):
    for doc in issued_then_deleted:
        result = verify_credential(doc, ChainReader(anvil_url))
        assert result.valid, result.as_dict()


def test_cli_in_a_fresh_process_and_empty_data_dir(issued_then_deleted, anvil_url, tmp_path):
    path = tmp_path / "credential.json"
    path.write_text(json.dumps(issued_then_deleted[0]))
    env = {**os.environ, "ATTEST_DATA_DIR": str(tmp_path / "stranger"), "ATTEST_RPC_URL": ""}
    proc = subprocess.run([sys.executable, "-m", "flask", "--app", "app", "credentials", "verify", str(path),
                           "--rpc-url", anvil_url], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["valid"] is True
    # It never started a node or deployed anything of its own.
    assert not (tmp_path / "stranger" / "chain" / "deployments.json").exists()


def test_a_second_registry_deployment_fails_anchor(issued_then_deleted, anvil_url, tmp_path):
    with open_registry(Settings.from_env(data_dir=tmp_path / "second", rpc_url=anvil_url)) as second:
        doc = copy.deepcopy(issued_then_deleted[0])
        doc["proof"]["anchor"]["registry"] = second.address
        doc["proof"]["eip712Domain"]["verifyingContract"] = second.address
        result = verify_credential(doc, ChainReader(anvil_url))
    assert not result.valid
    anchor = result.check("anchor")
    assert anchor.status == "failed"
    assert second.address in anchor.message and "has no record of it" in anchor.message


def test_a_node_of_another_chain_fails_anchor(issued_then_deleted, tmp_path):
    node = start_anvil(tmp_path, "--chain-id", "4242")
    try:
        result = verify_credential(issued_then_deleted[0], ChainReader(node.url))
    finally:
        node.stop()
    anchor = result.check("anchor")
    assert anchor.status == "failed"
    assert "Expected chain id 31337" in anchor.message and "chain 4242" in anchor.message
    assert result.check("revocation").status == "skipped"
