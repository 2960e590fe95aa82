"""Independence: a credential verifies from its JSON, an RPC URL and the
verifier's own trust list, with the issuer's server, database and keys gone;
without a trust entry for the issuer it is intact but "not confirmed"; the same
JSON pointed at another registry deployment or another chain fails `anchor`."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys

import pytest

from app import create_app
from credentials.chain import open_registry
from credentials.reader import ChainReader
from credentials.trust import FileSource, TrustPolicy
from credentials.verification import verify_credential
from kernel.settings import ROOT, Settings
from tests.fixtures_chain import start_anvil
from tests.helpers_credentials import anchor_of, issue_stored


@pytest.fixture
def issued_then_deleted(tmp_path, anvil_url, db_urls):
    """Credentials issued by a real Attest instance, whose data dir (database,
    issuer key, owner key, deployment record) is then deleted. Before that, the
    instance exported its trust entry (`trust export --own`) into trust.json."""
    data_dir = tmp_path / "issuer-instance"
    app = create_app({"TESTING": True, "data_dir": data_dir, "rpc_url": anvil_url, "SECRET_KEY": "x",
                      "database_url": db_urls.for_dir(data_dir),
                      "public_url": "https://registry.uni.example.edu"})
    docs = issue_stored(app, 3)
    exported = app.test_cli_runner().invoke(args=["trust", "export", "--own"])
    assert exported.exit_code == 0, exported.output
    (tmp_path / "trust.json").write_text(exported.stdout)
    app.extensions.pop("attest.registry").close()
    app.extensions["attest.db"].engine.dispose()
    shutil.rmtree(data_dir)
    assert not data_dir.exists()
    return docs


def test_verifies_with_the_rpc_url_and_a_pinned_trust_entry(issued_then_deleted, anvil_url, tmp_path):
    trust = TrustPolicy([FileSource(tmp_path / "trust.json")])
    for doc in issued_then_deleted:
        result = verify_credential(doc, ChainReader(anvil_url), trust)
        assert result.valid and result.verdict == "genuine", result.as_dict()
        assert result.issuer["domain"] == "registry.uni.example.edu"
        assert result.issuer["did"] == doc["issuer"]["id"] == "did:web:registry.uni.example.edu"


def test_without_a_trust_entry_it_is_intact_but_not_confirmed(issued_then_deleted, anvil_url):
    result = verify_credential(issued_then_deleted[0], ChainReader(anvil_url), TrustPolicy([]))
    assert not result.valid and result.verdict == "not_confirmed"
    statuses = {c.id: c.status for c in result.checks}
    assert statuses.pop("issuer_identity") == "failed"
    assert set(statuses.values()) == {"passed", "skipped"}  # valid_until: no expiry
    assert "an issuer this verifier does not trust" in result.check("issuer_identity").message


def verify_in_a_stranger_process(path, anvil_url, tmp_path, **env):
    env = {**os.environ, "ATTEST_DATA_DIR": str(tmp_path / "stranger"), "ATTEST_RPC_URL": "", **env}
    return subprocess.run([sys.executable, "-m", "flask", "--app", "app", "credentials", "verify", str(path),
                           "--rpc-url", anvil_url], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_cli_in_a_fresh_process_and_empty_data_dir(issued_then_deleted, anvil_url, tmp_path):
    path = tmp_path / "credential.json"
    path.write_text(json.dumps(issued_then_deleted[0]))
    proc = verify_in_a_stranger_process(path, anvil_url, tmp_path, ATTEST_TRUSTED_ISSUERS=str(tmp_path / "trust.json"))
    assert proc.returncode == 0, proc.stderr
    body = json.loads(proc.stdout)
    assert body["valid"] is True and body["issuer"]["name"] == "Example University"
    # It never started a node or deployed anything of its own.
    assert not (tmp_path / "stranger" / "chain" / "deployments.json").exists()
    # The same stranger without the trust list: intact, but not confirmed (exit 1).
    proc = verify_in_a_stranger_process(path, anvil_url, tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert json.loads(proc.stdout)["verdict"] == "not_confirmed"


def test_a_second_registry_deployment_fails_anchor(issued_then_deleted, anvil_url, tmp_path):
    with open_registry(Settings.from_env(data_dir=tmp_path / "second", rpc_url=anvil_url)) as second:
        doc = copy.deepcopy(issued_then_deleted[0])
        anchor_of(doc)["anchor"]["registry"] = second.address
        anchor_of(doc)["eip712Domain"]["verifyingContract"] = second.address
        result = verify_credential(doc, ChainReader(anvil_url), TrustPolicy([]))
    assert not result.valid
    anchor = result.check("anchor")
    assert anchor.status == "failed"
    assert second.address in anchor.message and "has no record of it" in anchor.message


def test_a_node_of_another_chain_fails_anchor(issued_then_deleted, tmp_path):
    node = start_anvil(tmp_path, "--chain-id", "4242")
    try:
        result = verify_credential(issued_then_deleted[0], ChainReader(node.url), TrustPolicy([]))
    finally:
        node.stop()
    anchor = result.check("anchor")
    assert anchor.status == "failed"
    assert "Expected chain id 31337" in anchor.message and "chain 4242" in anchor.message
    assert result.check("revocation").status == "skipped"
