"""`flask --app app credentials verify FILE` and `credentials validate FILE`.

verify: prints the JSON of every check; exit 0 valid, 1 not valid (or its
issuer not confirmed), 2 when the input is not a credential at all (then the
JSON carries an `error`, and the sentence goes to stderr too), 3 when it could
not be checked right now (an unreachable chain or trust source). validate: the data-model check alone, no chain;
exit 0 conforming, 1 not (one reason a line), 2 not a credential at all.
`-` reads standard input. Input is read bounded, so a 50 MB file costs a
megabyte, never a traceback.
"""

from __future__ import annotations

import atexit
import json
import sys
from typing import BinaryIO

import click
from flask import current_app

from credentials.cli.groups import credentials_cli
from credentials.node import EmbeddedAnvil, NodeError
from credentials.reader import ChainReader
from credentials.runtime import get_status_lists, get_trust_policy
from credentials.validate import (
    MAX_DOCUMENT_BYTES,
    OB3,
    NotACredential,
    is_open_badge,
    load_document,
    validate_document,
)
from credentials.verification import GENUINE, INVALID, NOT_CONFIRMED, UNKNOWN_NOW, verify_credential

EXIT_VALID, EXIT_INVALID, EXIT_NOT_A_CREDENTIAL, EXIT_UNAVAILABLE = 0, 1, 2, 3
EXIT_CODES = {GENUINE: EXIT_VALID, NOT_CONFIRMED: EXIT_INVALID, INVALID: EXIT_INVALID, UNKNOWN_NOW: EXIT_UNAVAILABLE}


def read_document(source: BinaryIO) -> dict:
    """The credential in `source`; NotACredential (with a sentence) otherwise."""
    try:
        raw = source.read(MAX_DOCUMENT_BYTES + 1)
    except (OSError, ValueError) as exc:
        raise NotACredential(f"the input cannot be read ({exc})") from exc
    return load_document(raw)


def not_a_credential(exc: NotACredential, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"valid": False, "error": f"not a credential: {exc}", "checks": []}))
    click.echo(f"error: not a credential: {exc}", err=True)
    sys.exit(EXIT_NOT_A_CREDENTIAL)


def default_rpc_url() -> str:
    """ATTEST_RPC_URL, else the embedded node's: started if need be (and stopped
    at exit if this process started it), but nothing is deployed and no key is
    made, since verifying needs only a node to ask."""
    settings = current_app.extensions["attest.settings"]
    if settings.rpc_url:
        return settings.rpc_url
    node = EmbeddedAnvil(settings.chain_dir, state_interval=settings.anvil_state_interval)
    try:
        url = node.start()
    except NodeError as exc:
        not_a_chain(f"cannot start the embedded Anvil node: {exc}")
    atexit.register(node.stop)
    return url


def not_a_chain(message: str) -> None:
    click.echo(f"error: {message}; pass --rpc-url or set ATTEST_RPC_URL", err=True)
    sys.exit(EXIT_UNAVAILABLE)


@credentials_cli.command("verify")
@click.argument("file", type=click.File("rb"))
@click.option("--rpc-url", envvar="ATTEST_VERIFY_RPC_URL", default=None,
              help="The EVM node to ask (default: ATTEST_RPC_URL, else the embedded node).")
def verify_command(file: BinaryIO, rpc_url: str | None) -> None:
    """Verify a credential JSON file against the chain its proof names and print every check as JSON.

    Exit 0 genuine (valid, from an issuer this installation trusts), 1 not valid or issuer not
    confirmed, 2 not a credential at all, 3 could not check now (the chain or a trust source did not
    answer: never read that as "not valid"). FILE may be - for standard input."""
    try:
        document = read_document(file)
    except NotACredential as exc:
        not_a_credential(exc, as_json=True)
    result = verify_credential(document, ChainReader(rpc_url or default_rpc_url()), get_trust_policy(current_app),
                               status_lists=get_status_lists(current_app))
    click.echo(printable_json(result.as_dict()))
    sys.exit(EXIT_CODES[result.verdict])


def printable_json(value) -> str:
    """Indented JSON in UTF-8 text; with \\u escapes instead when it quotes
    a lone surrogate from the document, which UTF-8 cannot carry."""
    text = json.dumps(value, indent=2, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, indent=2)
    return text


@credentials_cli.command("validate")
@click.argument("file", type=click.File("rb"))
@click.option("--json", "as_json", is_flag=True, help="Print {\"conforming\", \"profiles\", \"problems\"} as JSON.")
@click.option("--profile", type=click.Choice([OB3]), default=None,
              help="Also check the Open Badges 3.0 profile (added anyway for credentials typed as Open Badges).")
def validate_command(file: BinaryIO, as_json: bool, profile: str | None) -> None:
    """Check a credential against the W3C VC 2.0 data model on the document alone, plus the Open Badges 3.0
    profile for credentials typed as Open Badges or with --profile ob3.

    Exit 0 conforming, 1 not (one reason a line, each naming its JSON path), 2 not a credential at all.
    FILE may be - for standard input."""
    try:
        document = read_document(file)
    except NotACredential as exc:
        not_a_credential(exc, as_json=as_json)
    problems = validate_document(document, profile)
    profiles = ["vc2"] + ([OB3] if profile == OB3 or is_open_badge(document) else [])
    if as_json:
        click.echo(json.dumps({"conforming": not problems, "profiles": profiles,
                               "problems": [str(p) for p in problems]}, indent=2))
    elif problems:
        click.echo(f"not conforming: {len(problems)} problem{'s' if len(problems) != 1 else ''}")
        for problem in problems:
            click.echo(f"  - {problem}")
    else:
        model = "the W3C VC Data Model 2.0" + (" and the Open Badges 3.0 profile" if OB3 in profiles else "")
        click.echo(f"conforming: the document meets {model}")
    sys.exit(EXIT_INVALID if problems else EXIT_VALID)
