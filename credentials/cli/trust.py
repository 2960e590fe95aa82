"""`flask --app app institution ...` and `trust ...`: identity and trust, scripted.

    institution show              the profile, DID, keys, registries and DID document (JSON)
    institution set --name …      set the name, public URL or logo
    institution rotate-key        retire the Ed25519 key, make a new one current
    trust list                    every trusted institution and what pins it (JSON)
    trust add FILE|DID [--name]   a trust list, a DID document, another installation's
                                  exported entry, or a did:web to resolve when needed
    trust remove DID
    trust export [--own]          the trust list (or only this institution's entry) as JSON
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup

from credentials import identity, trust_store
from credentials.identity import IdentityError
from credentials.runtime import get_trust_policy, trust_changed
from credentials.trust import TrustListError, entry_for_institution, trust_list_json

CLI_ACTOR = "cli"
institution_cli = AppGroup("institution", help="The institution's profile and its did:web identity.")
trust_cli = AppGroup("trust", help="Whom this installation's verifier trusts.")


def _session():
    return current_app.extensions["attest.db"].session()


def _institution(session) -> identity.Institution:
    return identity.load_institution(session, current_app.extensions["attest.settings"].profile_defaults)


def _fail(message: str, code: int = 1):
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _print(obj) -> None:
    click.echo(json.dumps(obj, indent=2, ensure_ascii=False))


@institution_cli.command("show")
def show_command():
    """Print the institution's profile, DID and DID document as JSON."""
    with _session() as session:
        inst = _institution(session)
    _print({"name": inst.name, "public_url": inst.public_url, "logo_url": inst.logo_url, "did": inst.did,
            "domain": inst.domain, "issuers": [a.caip10 for a in inst.issuers],
            "registries": [r.caip10 for r in inst.registries],
            "ed25519_keys": [k.public_key_multibase for k in inst.ed25519_keys], "did_document": inst.did_document()})


@institution_cli.command("rotate-key")
def rotate_key_command():
    """Retire the institution's Ed25519 key (its public key stays in the DID document, so the
    credentials it signed keep verifying) and make a fresh one current. Prints JSON."""
    settings = current_app.extensions["attest.settings"]
    with _session() as session:
        inst = _institution(session)
        try:
            ring = identity.rotate_ed25519_key(session, settings.keys_dir, inst.did, CLI_ACTOR, settings.ed25519_key)
        except IdentityError as exc:
            _fail(str(exc))
        session.commit()
    trust_changed()
    _print({"current": ring.verification_method(inst.did),
            "retired": [r.public_key_multibase for r in ring.records[1:]]})


@institution_cli.command("set")
@click.option("--name", help="The institution's name, as credentials and certificates print it.")
@click.option("--url", "public_url", help="Its public address (https://uni.example.edu): QR links and the did:web.")
@click.option("--logo", "logo_url", help="An https URL of its logo (empty to remove).")
def set_command(name: str | None, public_url: str | None, logo_url: str | None):
    """Set the institution's profile (only the options given change)."""
    if name is None and public_url is None and logo_url is None:
        _fail("give --name, --url or --logo")
    with _session() as session:
        if public_url is not None and _institution(session).public_url_from_env:
            _fail("ATTEST_PUBLIC_URL is set for this deployment; change it there")
        try:
            identity.save_profile(session, CLI_ACTOR, name=name, public_url=public_url, logo_url=logo_url)
        except IdentityError as exc:
            _fail(str(exc))
        session.commit()
        inst = _institution(session)
    trust_changed(current_app)
    _print({"name": inst.name, "public_url": inst.public_url, "did": inst.did})


def _entry_json(entry) -> dict:
    return {"did": entry.did, "name": entry.name, "domain": entry.shown_domain, "source": entry.source,
            **entry.as_entry_json().get("attest", {})}


@trust_cli.command("list")
def list_command():
    """Every institution this verifier trusts, with what pins it, as JSON."""
    policy = get_trust_policy(current_app)
    for source in policy.sources:
        if getattr(source, "error", None):
            click.echo(f"warning: {source.error}", err=True)
    _print([_entry_json(e) for e in policy.entries()])


@trust_cli.command("add")
@click.argument("what", metavar="FILE|DID")
@click.option("--name", help="The name to trust it under (for a DID document or a did:web).")
def add_command(what: str, name: str | None):
    """Trust an institution: from a trust-list file, another installation's exported
    entry or a DID document (pinned: no server needed later), or a did:web (its DID
    document is read over HTTPS when a credential names it)."""
    path = Path(what)
    try:
        if path.is_file():
            if path.stat().st_size > 8 * 1024 * 1024:
                _fail(f"{path} is too large for a trust list")
            entries = trust_store.entries_from_upload(path.read_bytes(), name)
        elif what.startswith("did:"):
            entries = [trust_store.did_only_entry(what, name)]
        else:
            _fail(f"{what} is neither a file nor a did:web identifier")
    except (TrustListError, IdentityError) as exc:
        _fail(str(exc))
    with _session() as session:
        own = _institution(session).did
        added = [e for e in entries if e.did != own]
        for entry in added:
            trust_store.add_entry(session, entry, CLI_ACTOR)
        session.commit()
    trust_changed(current_app)
    _print({"added": [_entry_json(e) for e in added],
            "skipped": [{"did": e.did, "why": "this installation's own DID is always trusted"}
                        for e in entries if e.did == own]})


@trust_cli.command("remove")
@click.argument("did")
def remove_command(did: str):
    """Stop trusting an institution added with `trust add`."""
    with _session() as session:
        if not trust_store.remove_entry(session, did, CLI_ACTOR):
            _fail(f"{did} was not added with `trust add` (entries of ATTEST_TRUSTED_ISSUERS are edited in that file)")
        session.commit()
    trust_changed(current_app)
    _print({"removed": did})


@trust_cli.command("export")
@click.option("--own", is_flag=True, help="Only this institution's own entry (for another installation to import).")
def export_command(own: bool):
    """Print the trust list in its file format (DCC issuer registry, with Attest's pins)."""
    with _session() as session:
        inst = _institution(session)
    entries = entry_for_institution(inst) if own else get_trust_policy(current_app).entries()
    _print(trust_list_json(entries, publisher=inst.name))
