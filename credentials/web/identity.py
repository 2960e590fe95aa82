"""The institution's identity on the web: its DID document (public, at the
did:web location), Attest's JSON-LD context and the status lists (public,
under the public URL), and the registrar's pages for the profile, the
Ed25519 key and the trust list.

Thin views: parse the form, call `credentials.identity` / `trust_store`, render.
"""

from __future__ import annotations

import json

from flask import Blueprint, Response, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import StringField
from wtforms.validators import Length

from credentials import identity, jsonld, status_store, trust_store
from credentials.identity import IdentityError
from credentials.runtime import current_institution, get_keyring, get_trust_policy, trust_changed
from credentials.trust import TrustListError, trust_list_json
from kernel.web.auth import db_session, role_required

identity_bp = Blueprint("identity", __name__)
MAX_TRUST_UPLOAD = 8 * 1024 * 1024


def institution() -> identity.Institution:
    return current_institution(current_app._get_current_object(), db_session())


def _json(body: dict, mimetype: str = "application/json") -> Response:
    response = current_app.response_class(json.dumps(body, indent=2, ensure_ascii=False), mimetype=mimetype)
    # Wallets and verifiers in browsers read DID documents from other origins.
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


@identity_bp.get("/.well-known/did.json")
@identity_bp.get("/did.json")
def did_document():
    """The did:web document: `/.well-known/did.json` for a bare domain, `<path>/did.json`
    when the public URL has a path (the app is then mounted under that path)."""
    return _json(institution().did_document(), "application/did+json")


@identity_bp.get(jsonld.ATTEST_CONTEXT_PATH)
def attest_context():
    """Attest's JSON-LD context, the pinned file itself (verifiers never need
    to fetch it: every Attest verifier ships it)."""
    response = current_app.response_class(jsonld.ATTEST_CONTEXT_FILE.read_bytes(), mimetype="application/ld+json")
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Cache-Control"] = "public, max-age=86400"
    return response


@identity_bp.get(f"{status_store.STATUS_PATH}<int:list_id>")
def status_list(list_id: int):
    """A Bitstring Status List credential, signed with Data Integrity, as last
    published (rebuilt from the database if it is missing)."""
    document = status_store.list_document(db_session(), list_id, get_keyring)
    if document is None:
        return _json({"error": f"no status list {list_id}"}), 404
    response = _json(document, "application/vc")
    # Revocations must reach verifiers soon; the list is small.
    response.headers["Cache-Control"] = "public, max-age=60"
    return response


# ----- registrar pages ---------------------------------------------------------------

class ProfileForm(FlaskForm):
    name = StringField("Institution name", validators=[Length(min=2, max=200)])
    public_url = StringField("Public address (web domain or URL)", validators=[Length(max=500)])
    logo_url = StringField("Logo URL (optional)", validators=[Length(max=500)])


class TrustFileForm(FlaskForm):
    file = FileField("Trust-list file or DID document (.json)")
    name = StringField("Name to trust it under (for a DID document)", validators=[Length(max=200)])


class TrustDidForm(FlaskForm):
    did = StringField("did:web identifier", validators=[Length(min=9, max=500)])
    name = StringField("Name (as you know the institution)", validators=[Length(max=200)])


class ActionForm(FlaskForm):
    """A button that posts: only the CSRF token."""


@identity_bp.route("/registrar/institution", methods=["GET", "POST"])
@role_required("registrar")
def institution_page():
    inst = institution()
    form = ProfileForm(data={"name": inst.name, "public_url": inst.public_url, "logo_url": inst.logo_url or ""})
    if form.validate_on_submit():
        session = db_session()
        try:
            identity.save_profile(session, current_user.email, name=form.name.data,
                                  public_url=None if inst.public_url_from_env else form.public_url.data,
                                  logo_url=form.logo_url.data)
        except IdentityError as exc:
            session.rollback()
            flash(f"Nothing was changed: {exc}.", "error")
        else:
            session.commit()
            trust_changed()
            flash("The institution's profile is saved. New credentials carry it; the DID document shows it now.",
                  "success")
            return redirect(url_for(".institution_page"))
    ring = get_keyring()
    return render_template("registrar/institution.html", form=form, inst=inst,
                           did_document=json.dumps(inst.did_document(), indent=2),
                           current_key=ring.current.public_key_multibase,
                           key_from_env=bool(current_app.extensions["attest.settings"].ed25519_key),
                           action_form=ActionForm())


@identity_bp.post("/registrar/institution/rotate-key")
@role_required("registrar")
def rotate_key():
    if not ActionForm().validate_on_submit():
        return redirect(url_for(".institution_page"))
    settings = current_app.extensions["attest.settings"]
    session = db_session()
    try:
        ring = identity.rotate_ed25519_key(session, settings.keys_dir, institution().did, current_user.email,
                                           settings.ed25519_key)
    except IdentityError as exc:
        session.rollback()
        flash(f"The key was not changed: {exc}.", "error")
    else:
        session.commit()
        trust_changed()
        flash(f"New credentials are signed with the key {ring.current.public_key_multibase[:16]}…; the old key stays "
              "in the DID document, so what it signed keeps verifying.", "success")
    return redirect(url_for(".institution_page"))


@identity_bp.get("/registrar/trust")
@role_required("registrar")
def trust_page():
    policy = get_trust_policy()
    managed = {e.did for e in trust_store.managed_entries(db_session())}
    file_errors = [s.error for s in policy.sources if getattr(s, "error", None)]
    return render_template("registrar/trust.html", entries=policy.entries(), managed=managed,
                           file_form=TrustFileForm(), did_form=TrustDidForm(), action_form=ActionForm(),
                           file_errors=file_errors, own_did=institution().did)


@identity_bp.get("/registrar/trust.json")
@role_required("registrar")
def trust_export():
    """This installation's trust list, in the file format (for another verifier)."""
    body = trust_list_json(get_trust_policy().entries(), publisher=institution().name)
    response = _json(body)
    response.headers["Content-Disposition"] = "attachment; filename=attest-trust-list.json"
    return response


@identity_bp.get("/registrar/trust/own.json")
@role_required("registrar")
def trust_export_own():
    """Only this institution's own entry: what another installation imports to trust it."""
    inst = institution()
    from credentials.trust import entry_for_institution

    response = _json(trust_list_json(entry_for_institution(inst), publisher=inst.name))
    response.headers["Content-Disposition"] = "attachment; filename=attest-trust-entry.json"
    return response


def _add(entries, what: str):
    session = db_session()
    own = institution().did
    added = 0
    for entry in entries:
        if entry.did == own:
            flash(f"{entry.did} is this installation's own DID; it is always trusted.", "info")
            continue
        added += trust_store.add_entry(session, entry, current_user.email)
    session.commit()
    trust_changed()
    names = ", ".join(e.name for e in entries if e.did != own)
    if names:
        flash(f"Trusted now ({what}): {names}.", "success")


@identity_bp.post("/registrar/trust/add-file")
@role_required("registrar")
def trust_add_file():
    form = TrustFileForm()
    if not form.validate_on_submit() or not form.file.data:
        flash("Choose a trust-list file or a DID document to add.", "error")
        return redirect(url_for(".trust_page"))
    data = form.file.data.stream.read(MAX_TRUST_UPLOAD + 1)
    try:
        if len(data) > MAX_TRUST_UPLOAD:
            raise TrustListError(f"the file is larger than {MAX_TRUST_UPLOAD:,} bytes")
        entries = trust_store.entries_from_upload(data, form.name.data)
    except TrustListError as exc:
        flash(f"Nothing was added: {exc}.", "error")
        return redirect(url_for(".trust_page"))
    _add(entries, "from the file")
    return redirect(url_for(".trust_page"))


@identity_bp.post("/registrar/trust/add-did")
@role_required("registrar")
def trust_add_did():
    form = TrustDidForm()
    if not form.validate_on_submit():
        flash("Type the institution's did:web identifier (did:web:domain).", "error")
        return redirect(url_for(".trust_page"))
    try:
        entry = trust_store.did_only_entry(form.did.data, form.name.data)
    except IdentityError as exc:
        flash(f"Nothing was added: {exc}.", "error")
        return redirect(url_for(".trust_page"))
    _add([entry], "its keys read from its DID document when needed")
    return redirect(url_for(".trust_page"))


@identity_bp.post("/registrar/trust/remove")
@role_required("registrar")
def trust_remove():
    if not ActionForm().validate_on_submit():
        return redirect(url_for(".trust_page"))
    did = request.form.get("did", "")
    session = db_session()
    if trust_store.remove_entry(session, did, current_user.email):
        session.commit()
        trust_changed()
        flash(f"{did} is no longer trusted: its credentials now read “Not confirmed”.", "success")
    else:
        flash("That entry is not one added here (entries from the trust-list file are changed in the file).",
              "error")
    return redirect(url_for(".trust_page"))
