"""`flask --app app accreditation ...`: the accreditor's scripted face.

- The chain: ATTEST_RPC_URL, or the embedded Anvil, started and stopped around
  the command as `chain status` does.
- The accreditor's key: ATTEST_ACCREDITOR_KEY, or `keys/accreditor.key` (0600)
  under ATTEST_DATA_DIR, made on first use. Only `deploy`, `accredit`,
  `withdraw` and `rename` need it; `list` and `show` read with no key at all.
- The registry: `--address`, else ATTEST_ACCREDITATION_REGISTRY, else the one
  `deploy` recorded for this chain in `chain/accreditation.json`. Written
  `<chainId>:<address>` (the node must then be on that chain) or `<address>`.

Every command prints JSON on stdout; an error is one line on stderr, exit 1.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click
from flask import current_app
from flask.cli import AppGroup
from web3 import Web3

from credentials.accreditation import (
    AccreditationError,
    AccreditationReader,
    AccreditationRegistry,
    RegistryRef,
    code_is_accreditation_registry,
    parse_registry_ref,
)
from credentials.chain import ChainError, DeploymentRecord, chain_url, connect_web3, fund_from_dev_account
from credentials.keys import load_or_create_key
from credentials.reader import ChainReader
from kernel.settings import Settings

KEY_ENV = "ATTEST_ACCREDITOR_KEY"
REGISTRY_ENV = "ATTEST_ACCREDITATION_REGISTRY"

accreditation_cli = AppGroup(
    "accreditation", help="The accreditor's on-chain list of accredited institutions (AccreditationRegistry).")

address_option = click.option(
    "--address", "address", default=None, metavar="[CHAINID:]ADDRESS",
    help=f"The AccreditationRegistry (default: ${REGISTRY_ENV}, else the one `deploy` recorded for this chain).")


def _settings() -> Settings:
    return current_app.extensions["attest.settings"]


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def _echo(value) -> None:
    click.echo(json.dumps(value, indent=2))


def _records(settings: Settings) -> DeploymentRecord:
    return DeploymentRecord(settings.chain_dir / "accreditation.json")


@contextmanager
def _chain(settings: Settings) -> Iterator[tuple[str, Web3]]:
    """The node's URL and a connected Web3, any embedded node stopped afterwards."""
    url, node = chain_url(settings)
    try:
        yield url, connect_web3(url)
    finally:
        if node is not None:
            node.stop()


def _resolve(settings: Settings, w3: Web3, option: str | None) -> RegistryRef:
    """The registry this command acts on, its chain checked against the node's."""
    chain_id = w3.eth.chain_id
    text, source = option, "--address"
    if not text and settings.accreditation_registry:
        text, source = settings.accreditation_registry, REGISTRY_ENV
    if not text:
        entry = _records(settings).get(chain_id)
        if entry is None:
            raise AccreditationError(
                f"no accreditation registry is named: pass --address, set {REGISTRY_ENV}, or run "
                f"`flask --app app accreditation deploy` (none is recorded for chain {chain_id})")
        return RegistryRef(chain_id, entry["address"])
    ref = parse_registry_ref(text, f"accreditation registry ({source})")
    if ref.chain_id is not None and ref.chain_id != chain_id:
        raise AccreditationError(f"{source} names chain {ref.chain_id}, but the node is chain {chain_id}: "
                                 "point ATTEST_RPC_URL at that chain")
    return RegistryRef(chain_id, ref.address)


def _accreditor(settings: Settings, w3: Web3):
    """The accreditor's key, topped up on a dev chain (a real network's must be funded by hand)."""
    account = load_or_create_key(settings.keys_dir, "accreditor", settings.accreditor_key)
    fund_from_dev_account(w3, account.address)
    return account


@contextmanager
def _writer(option: str | None) -> Iterator[AccreditationRegistry]:
    settings = _settings()
    with _chain(settings) as (_, w3):
        ref = _resolve(settings, w3, option)
        yield AccreditationRegistry(w3, ref.address, _accreditor(settings, w3),
                                    confirmations=settings.confirmations)


@contextmanager
def _reader(option: str | None) -> Iterator[AccreditationReader]:
    settings = _settings()
    with _chain(settings) as (url, w3):
        ref = _resolve(settings, w3, option)
        reader = AccreditationReader(ChainReader(url, finality_depth=settings.confirmations), ref.address)
        reader.require_registry()
        yield reader


def _run(body) -> None:
    """Run one command body; a ChainError is one clear line and exit 1."""
    try:
        body()
    except ChainError as exc:
        _fail(str(exc))


@accreditation_cli.command("deploy")
@click.option("--new", is_flag=True, help="Deploy a fresh registry even if one is recorded for this chain.")
def deploy_command(new: bool) -> None:
    """Deploy an AccreditationRegistry (once per chain) whose accreditor is this key.

    Prints JSON: chain_id, address, accreditor, deployed_block, new."""
    def body() -> None:
        settings = _settings()
        with _chain(settings) as (url, w3):
            chain_id = w3.eth.chain_id
            records = _records(settings)
            entry = None if new else records.get(chain_id)
            if entry is not None:
                if not code_is_accreditation_registry(bytes(w3.eth.get_code(entry["address"]))):
                    raise AccreditationError(
                        f"the accreditation registry recorded at {entry['address']} on chain {chain_id} is not "
                        "there (the chain was reset or its state lost): run `flask --app app accreditation "
                        f"deploy --new` (record: {records.path})")
                _echo({"chain_id": chain_id, **entry, "new": False})
                return
            accreditor = _accreditor(settings, w3)
            if w3.eth.get_balance(accreditor.address) == 0:
                raise AccreditationError(f"the accreditor {accreditor.address} has no funds on chain {chain_id} "
                                         "and the node has no funded dev account: send it some ether first")
            registry, block = AccreditationRegistry.deploy(w3, accreditor, settings.confirmations)
            entry = {"address": registry.address, "accreditor": accreditor.address, "deployed_block": block}
            records.put(chain_id, entry)
            _echo({"chain_id": chain_id, **entry, "new": True})
    _run(body)


@accreditation_cli.command("accredit")
@click.argument("did")
@click.option("--name", required=True, help="The institution's name, as the accreditor lists it.")
@click.option("--registry", "registry", required=True, metavar="[CHAINID:]ADDRESS",
              help="The institution's CredentialRegistry (chain id defaults to this chain's).")
@address_option
def accredit_command(did: str, name: str, registry: str, address: str | None) -> None:
    """Accredit DID (e.g. did:web:uni.example.edu) with its CredentialRegistry, from this block on."""
    def body() -> None:
        ref = parse_registry_ref(registry, "--registry")
        with _writer(address) as accreditation:
            chain_id = accreditation.chain_id if ref.chain_id is None else ref.chain_id
            tx = accreditation.accredit(did, name, ref.address, chain_id)
            _echo({"did": did, "name": name, "chain_id": chain_id, "registry": ref.address,
                   "since_block": tx.block_number, "tx_hash": tx.tx_hash, "gas_used": tx.gas_used})
    _run(body)


@accreditation_cli.command("withdraw")
@click.argument("did")
@click.option("--registry", "registry", default=None, metavar="[CHAINID:]ADDRESS",
              help="Withdraw only this registry's accreditation (default: all of DID's: de-accreditation).")
@address_option
def withdraw_command(did: str, registry: str | None, address: str | None) -> None:
    """Withdraw DID's accreditation from this block on; its history stays on chain."""
    def body() -> None:
        ref = parse_registry_ref(registry, "--registry") if registry else None
        with _writer(address) as accreditation:
            if ref is None:
                tx = accreditation.withdraw(did)
            else:
                tx = accreditation.withdraw_registry(did, ref.address, ref.chain_id)
            closed = [{"chain_id": e["chainId"], "registry": e["registry"], "until_block": e["untilBlock"]}
                      for e in accreditation.events(tx) if e["event"] == "AccreditationWithdrawn"]
            _echo({"did": did, "withdrawn": closed, "tx_hash": tx.tx_hash, "gas_used": tx.gas_used})
    _run(body)


@accreditation_cli.command("rename")
@click.argument("did")
@click.option("--name", required=True, help="The institution's new name.")
@address_option
def rename_command(did: str, name: str, address: str | None) -> None:
    """Change the name DID is listed under; its accreditation windows are untouched."""
    def body() -> None:
        with _writer(address) as accreditation:
            tx = accreditation.rename(did, name)
            _echo({"did": did, "name": name, "tx_hash": tx.tx_hash, "gas_used": tx.gas_used})
    _run(body)


@accreditation_cli.command("list")
@address_option
def list_command(address: str | None) -> None:
    """Every institution ever accredited (withdrawn ones too), as a JSON list."""
    def body() -> None:
        with _reader(address) as reader:
            _echo([institution.to_json() for institution in reader.institutions()])
    _run(body)


@accreditation_cli.command("show")
@click.argument("did")
@address_option
def show_command(did: str, address: str | None) -> None:
    """DID's listing: name, registries, and every accreditation window."""
    def body() -> None:
        with _reader(address) as reader:
            institution = reader.institution(did)
            if institution is None:
                raise AccreditationError(f"{did} is not listed in the accreditation registry {reader.address} "
                                         f"on chain {reader.chain.chain_id()}")
            _echo(institution.to_json())
    _run(body)
