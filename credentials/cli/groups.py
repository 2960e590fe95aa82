"""The `chain` group and its commands, and the `credentials` group the other
modules of this package attach their commands to."""

from __future__ import annotations

import json
import signal
import sys
import threading

import click
from flask import current_app
from flask.cli import AppGroup

from credentials.chain import ChainError, open_registry

chain_cli = AppGroup("chain", help="The EVM chain and the CredentialRegistry contract.")


def settings():
    return current_app.extensions["attest.settings"]


def fail(message: str, code: int = 1):
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


@chain_cli.command("status")
def status_command():
    """Print the chain, the registry address and the current block as JSON.

    Starts the embedded node (and deploys the registry) if needed, and stops a
    node it started before it exits."""
    try:
        with open_registry(settings()) as registry:
            click.echo(json.dumps(registry.status(), indent=2))
    except ChainError as exc:
        fail(str(exc))


@chain_cli.command("deploy")
@click.option("--new", is_flag=True, help="Deploy a fresh registry even if one is recorded.")
def deploy_command(new: bool):
    """Deploy the registry (once) and authorise the issuer key."""
    try:
        with open_registry(settings(), new=new) as registry:
            click.echo(json.dumps(registry.status(), indent=2))
    except ChainError as exc:
        fail(str(exc))


@chain_cli.command("up")
def up_command():
    """Run the embedded node in the foreground until Ctrl-C (for development)."""
    try:
        registry = open_registry(settings())
    except ChainError as exc:
        fail(str(exc))
    click.echo(json.dumps(registry.status(), indent=2))
    if registry.node is None or not registry.node.owned:
        click.echo("(the node is run by another process or ATTEST_RPC_URL; nothing to keep up)")
        registry.close()
        return
    click.echo(f"Anvil is serving {registry.rpc_url}; press Ctrl-C to stop it (state is saved).")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.is_set() and registry.node and registry.node.proc.poll() is None:
        stop.wait(0.5)
    registry.close()
    click.echo("stopped; state saved.")


credentials_cli = AppGroup("credentials", help="Issue, verify, validate and revoke credentials.")
