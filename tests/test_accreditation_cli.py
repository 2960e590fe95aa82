"""`flask --app app accreditation ...` end to end on a real Anvil node, through
Flask's CLI runner: deploy, accredit, show, list, rename, withdraw; the key and
registry from the environment; errors as one line a person can act on."""

from __future__ import annotations

import json
import stat

import pytest
from eth_account import Account

UNI = "did:web:uni.example.edu"


def ok(runner, *args: str):
    result = runner.invoke(args=["accreditation", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def fails(runner, *args: str) -> str:
    result = runner.invoke(args=["accreditation", *args])
    assert result.exit_code == 1, result.output
    assert result.stdout == "" and "Traceback" not in result.output
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    return result.stderr


@pytest.fixture
def restarted(app, monkeypatch):
    """The CLI of the same installation (same data dir), started anew with the
    environment as it is now: settings are read once, when the app starts."""
    from app import create_app

    settings = app.extensions["attest.settings"]

    def runner():
        again = create_app({"TESTING": True, "data_dir": settings.data_dir, "rpc_url": settings.rpc_url,
                            "SECRET_KEY": "x"})
        return again.test_cli_runner()

    return runner


@pytest.fixture
def credential_registry(runner) -> str:
    """The app's own CredentialRegistry on the test Anvil node (deployed by `chain status`)."""
    result = runner.invoke(args=["chain", "status"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["registry"]


@pytest.fixture
def deployed(runner, monkeypatch) -> dict:
    monkeypatch.delenv("ATTEST_ACCREDITATION_REGISTRY", raising=False)
    monkeypatch.delenv("ATTEST_ACCREDITOR_KEY", raising=False)
    return ok(runner, "deploy")


def test_deploy_once_per_chain_with_a_private_key(runner, app, deployed):
    assert deployed["new"] is True and deployed["chain_id"] == 31337
    assert set(deployed) == {"chain_id", "address", "accreditor", "deployed_block", "new"}
    key_file = app.extensions["attest.settings"].keys_dir / "accreditor.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert Account.from_key(key_file.read_text().strip()).address == deployed["accreditor"]
    again = ok(runner, "deploy")
    assert again == {**deployed, "new": False}
    fresh = ok(runner, "deploy", "--new")
    assert fresh["new"] is True and fresh["address"] != deployed["address"]
    assert fresh["accreditor"] == deployed["accreditor"]


def test_accredit_show_list_rename_withdraw(runner, deployed, credential_registry):
    assert ok(runner, "list") == []
    accredited = ok(runner, "accredit", UNI, "--name", "University of Example", "--registry", credential_registry)
    assert accredited["registry"] == credential_registry and accredited["chain_id"] == 31337
    assert accredited["gas_used"] > 0
    shown = ok(runner, "show", UNI)
    assert shown["accredited"] is True and shown["name"] == "University of Example"
    (entry,) = shown["registries"]
    assert entry == {"chain_id": 31337, "registry": credential_registry, "accredited": True,
                     "since_block": accredited["since_block"], "until_block": None,
                     "windows": [{"since_block": accredited["since_block"], "until_block": None}]}
    assert ok(runner, "list") == [shown]

    assert ok(runner, "rename", UNI, "--name", "Example University")["name"] == "Example University"
    withdrawn = ok(runner, "withdraw", UNI)
    (closed,) = withdrawn["withdrawn"]
    assert closed["registry"] == credential_registry and closed["until_block"] > accredited["since_block"]
    shown = ok(runner, "show", UNI)
    assert shown["accredited"] is False and shown["name"] == "Example University"
    assert shown["registries"][0]["windows"] == [
        {"since_block": accredited["since_block"], "until_block": closed["until_block"]}]
    assert "institution is not accredited" in fails(runner, "withdraw", UNI)


def test_withdraw_one_registry_of_several(runner, deployed, credential_registry):
    elsewhere = "10:" + Account.create().address  # a registry on another chain, taken on trust
    ok(runner, "accredit", UNI, "--name", "U", "--registry", credential_registry)
    ok(runner, "accredit", UNI, "--name", "U", "--registry", elsewhere)
    withdrawn = ok(runner, "withdraw", UNI, "--registry", elsewhere)
    assert [(w["chain_id"], w["registry"]) for w in withdrawn["withdrawn"]] == [(10, elsewhere[3:])]
    shown = ok(runner, "show", UNI)
    assert shown["accredited"] is True
    assert [r["accredited"] for r in shown["registries"]] == [True, False]


def test_the_registry_from_the_environment_or_the_option(runner, restarted, deployed, credential_registry,
                                                         monkeypatch):
    other = ok(runner, "deploy", "--new")["address"]  # now recorded; the first one is named explicitly
    monkeypatch.setenv("ATTEST_ACCREDITATION_REGISTRY", f"31337:{deployed['address']}")
    ok(restarted(), "accredit", UNI, "--name", "U", "--registry", credential_registry)
    assert [i["did"] for i in ok(restarted(), "list")] == [UNI]
    assert ok(restarted(), "list", "--address", other) == []  # the option wins over the variable
    monkeypatch.setenv("ATTEST_ACCREDITATION_REGISTRY", deployed["address"])  # without a chain id
    assert ok(restarted(), "show", UNI)["did"] == UNI
    monkeypatch.setenv("ATTEST_ACCREDITATION_REGISTRY", f"1:{deployed['address']}")
    message = fails(restarted(), "list")
    assert "ATTEST_ACCREDITATION_REGISTRY names chain 1, but the node is chain 31337" in message
    monkeypatch.setenv("ATTEST_ACCREDITATION_REGISTRY", "not-an-address")
    assert "does not name an address" in fails(restarted(), "list")
    monkeypatch.delenv("ATTEST_ACCREDITATION_REGISTRY")
    assert ok(restarted(), "list") == []  # the recorded one: the last deployed


def test_a_key_that_is_not_the_accreditor_is_told_so(runner, restarted, deployed, credential_registry,
                                                     monkeypatch):
    stranger = Account.create()
    monkeypatch.setenv("ATTEST_ACCREDITOR_KEY", stranger.key.hex())
    message = fails(restarted(), "accredit", UNI, "--name", "U", "--registry", credential_registry)
    assert f"({stranger.address}) is not the accreditor" in message
    assert deployed["accreditor"] in message and "ATTEST_ACCREDITOR_KEY" in message
    monkeypatch.delenv("ATTEST_ACCREDITOR_KEY")
    assert ok(runner, "list") == []


def test_errors_are_one_clear_line(runner, monkeypatch, credential_registry):
    monkeypatch.delenv("ATTEST_ACCREDITATION_REGISTRY", raising=False)
    assert "run `flask --app app accreditation deploy`" in fails(runner, "list")
    assert "is not an AccreditationRegistry" in fails(runner, "list", "--address", credential_registry)
    ok(runner, "deploy")
    assert f"{UNI} is not listed in the accreditation registry" in fails(runner, "show", UNI)
    assert "a DID starts with did:" in fails(runner, "accredit", "uni.example.edu", "--name", "U",
                                             "--registry", credential_registry)
    assert "no contract at the registry address" in fails(
        runner, "accredit", UNI, "--name", "U", "--registry", Account.create().address)
    assert "is not a chain id" in fails(runner, "accredit", UNI, "--name", "U", "--registry", "x:0x12")
