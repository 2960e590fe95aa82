"""The holder's pages (`holder_bp`): the public share page `/s/<slug>`, the
holder's secret page `/h/<token>` (sharing on/off, LinkedIn, wallet offer),
and the registrar's two actions that start them (make the holder's link, make
a wallet offer), which sit on the registrar's credential page.

Thin views over `credentials.sharing` and `credentials.oid4vci`. Every form
carries a CSRF token (the holder has no login, but the token still ties a
post to a page this server rendered). Public routes are rate-limited like the
verify API. Holder pages are never cached and never send a Referer, so the
secret in their URL does not leak to LinkedIn or a wallet's site.
"""

from __future__ import annotations

import base64

from flask import Blueprint, Response, abort, current_app, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import BooleanField

from credentials import certificate, oid4vci, sharing, storage
from credentials.runtime import get_chain_reader, get_trust_policy
from credentials.validate import load_document
from credentials.verification import CHECK_LABELS, verify_credential
from credentials.web.api import rate_limit
from credentials.web.identity import institution
from kernel import audit
from kernel.web.auth import db_session, role_required
from kernel.web.extensions import limiter

holder_bp = Blueprint("holder", __name__)

HOLDER = "holder"  # the audit log's actor for what the holder does on the holder's page


class ActionForm(FlaskForm):
    """A button that posts: only the CSRF token."""


class OfferForm(FlaskForm):
    tx_code = BooleanField("Ask for a PIN (tell the graduate the PIN another way, e.g. by phone)")


# ----- helpers -------------------------------------------------------------------------

def _public_base() -> str:
    """The institution's public address, never the request's Host header."""
    return institution().public_url.rstrip("/")


def _secret() -> bytes:
    return current_app.config["SECRET_KEY"].encode()


def _private(response: Response | str, status: int = 200) -> Response:
    """A holder page: never cached, no Referer (its URL is the secret), not indexed."""
    if not isinstance(response, Response):
        response = current_app.make_response((response, status))
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    return response


def _record(credential_id: str) -> storage.CredentialRecord:
    return storage.get_credential(db_session(), credential_id) or abort(404)


def _share_by_token(token: str) -> sharing.CredentialShare:
    """The share a holder's token opens; 404 for a wrong or replaced token."""
    share = sharing.share_for_token(db_session(), token)
    if share is None:
        abort(404, description="holder")
    return share


def linkedin_url(record: storage.CredentialRecord, share: sharing.CredentialShare) -> str:
    """The LinkedIn add-to-profile link of this credential, its certUrl the share page."""
    document = record.document_dict
    return sharing.linkedin_add_url(sharing.LinkedInCertification(
        name=record.achievement_name, organization_name=(document.get("issuer") or {}).get("name")
        or institution().name, issued=record.awarded_on, expires=record.valid_until,
        cert_url=sharing.share_url(_public_base(), share.slug), cert_id=record.id))


def _offer_page(record: storage.CredentialRecord, made: oid4vci.NewOffer, back_url: str) -> Response:
    """The QR of a fresh offer (shown once: only hashes of its secrets are kept)."""
    base = _public_base()
    offer_uri = f"{base}{url_for('oid4vci.offer', uri_token=made.uri_token)}"
    by_reference = oid4vci.offer_by_reference(offer_uri)
    by_value = oid4vci.offer_by_value(oid4vci.offer_object(base, made.code, made.tx_code is not None))
    qr = base64.b64encode(certificate.qr_png(by_reference, box_size=6)).decode()
    layout = "holder/_layout.html" if made.offer.created_by == HOLDER else "registrar/_layout.html"
    html = render_template("holder/offer.html", record=record, offer=made.offer, tx_code=made.tx_code,
                           qr_data=qr, by_reference=by_reference, by_value=by_value, back_url=back_url,
                           layout=layout)
    return _private(html)


def _can_offer(record: storage.CredentialRecord) -> bool:
    return record.status == storage.ACTIVE


# ----- the registrar's credential page: what it shows of the holder's side -------------------

@holder_bp.app_template_global("holder_share")
def holder_share(record: storage.CredentialRecord) -> dict:
    """For templates/registrar/credential.html: the share page's state and links."""
    share = sharing.get_share(db_session(), record.id)
    if share is None:
        return {"share": None, "can_offer": _can_offer(record), "offer_form": OfferForm(), "form": ActionForm()}
    return {"share": share, "share_url": sharing.share_url(_public_base(), share.slug),
            "linkedin_url": linkedin_url(record, share), "can_offer": _can_offer(record),
            "offer_form": OfferForm(), "form": ActionForm()}


@holder_bp.post("/registrar/credentials/<cid>/holder-link")
@role_required("registrar")
def make_holder_link(cid: str):
    """A new holder's link for the graduate (any earlier one stops working)."""
    if not ActionForm().validate_on_submit():
        abort(400)
    record = _record(cid)
    session = db_session()
    share, token = sharing.make_holder_link(session, record.id, current_user.email)
    audit.record(session, current_user.email, "holder_link_made", record.id, share_slug=share.slug)
    session.commit()
    return _private(render_template("holder/link_made.html", record=record,
                                    holder_url=sharing.holder_url(_public_base(), token),
                                    share_url=sharing.share_url(_public_base(), share.slug)))


@holder_bp.post("/registrar/credentials/<cid>/wallet-offer")
@role_required("registrar")
def registrar_offer(cid: str):
    """A wallet offer (QR code) the registrar shows or sends the graduate."""
    form = OfferForm()
    if not form.validate_on_submit():
        abort(400)
    record = _record(cid)
    if not _can_offer(record):
        abort(409, description="Only an active, anchored credential can be offered to a wallet.")
    session = db_session()
    made = oid4vci.new_offer(session, record.id, current_user.email, _secret(), with_tx_code=form.tx_code.data)
    audit.record(session, current_user.email, "wallet_offer_made", record.id, offer=made.offer.id,
                 tx_code=made.tx_code is not None)
    session.commit()
    return _offer_page(record, made, url_for("registrar.credential", cid=record.uuid))


# ----- the holder's page ------------------------------------------------------------------

@holder_bp.get("/h/<token>")
@limiter.limit(rate_limit)
def holder_page(token: str):
    share = _share_by_token(token)
    record = _record(share.credential_id)
    return _private(render_template(
        "holder/holder.html", record=record, share=share, token=token, form=ActionForm(),
        share_url=sharing.share_url(_public_base(), share.slug), linkedin_url=linkedin_url(record, share),
        can_offer=_can_offer(record), document=record.document_dict))


@holder_bp.post("/h/<token>/sharing")
@limiter.limit(rate_limit)
def set_sharing(token: str):
    share = _share_by_token(token)
    if not ActionForm().validate_on_submit():
        abort(400)
    on = request.form.get("sharing") == "on"
    session = db_session()
    if sharing.set_sharing(share, on):
        audit.record(session, HOLDER, "sharing_on" if on else "sharing_off", share.credential_id)
        session.commit()
    return _private(current_app.redirect(url_for(".holder_page", token=token), 303))


@holder_bp.post("/h/<token>/wallet-offer")
@limiter.limit(rate_limit)
def holder_offer(token: str):
    share = _share_by_token(token)
    if not ActionForm().validate_on_submit():
        abort(400)
    record = _record(share.credential_id)
    if not _can_offer(record):
        abort(409, description="This credential is not active, so it cannot be added to a wallet.")
    session = db_session()
    # The holder is the one scanning: no PIN (it would travel on the same screen).
    made = oid4vci.new_offer(session, record.id, HOLDER, _secret())
    audit.record(session, HOLDER, "wallet_offer_made", record.id, offer=made.offer.id, tx_code=False)
    session.commit()
    return _offer_page(record, made, url_for(".holder_page", token=token))


@holder_bp.get("/h/<token>/credential.json")
@limiter.limit(rate_limit)
def holder_download(token: str):
    """The holder's own copy, whether sharing is on or off."""
    record = _record(_share_by_token(token).credential_id)
    response = Response(record.document, mimetype="application/json", headers={
        "Content-Disposition": f"attachment; filename=credential-{record.uuid}.json"})
    return _private(response)


# ----- the public share page ------------------------------------------------------------

def _shared(slug: str) -> tuple[sharing.CredentialShare, storage.CredentialRecord]:
    """The share page's credential; 404 (with a sentence) when unknown or turned off."""
    share = sharing.share_for_slug(db_session(), slug)
    if share is None:
        abort(404, description="share-unknown")
    if not share.sharing:
        abort(404, description="share-off")
    return share, _record(share.credential_id)


@holder_bp.get("/s/<slug>")
@limiter.limit(rate_limit)
def share_page(slug: str):
    share, record = _shared(slug)
    document = load_document(record.document)
    result = verify_credential(document, get_chain_reader(), get_trust_policy())
    response = current_app.make_response(render_template(
        "holder/share.html", record=record, share=share, result=result.as_dict(), check_labels=CHECK_LABELS,
        share_url=sharing.share_url(_public_base(), share.slug), stored_status=record.status))
    # Meant for the people the holder gives the link to, not for search engines.
    response.headers["X-Robots-Tag"] = "noindex"
    response.headers["Cache-Control"] = "no-cache"
    return response


@holder_bp.get("/s/<slug>/credential.json")
@limiter.limit(rate_limit)
def share_download(slug: str):
    _share, record = _shared(slug)
    return Response(record.document, mimetype="application/json", headers={
        "Content-Disposition": f"attachment; filename=credential-{record.uuid}.json",
        "Access-Control-Allow-Origin": "*", "Cache-Control": "no-cache"})


@holder_bp.get("/s/<slug>/qr.png")
@limiter.limit(rate_limit)
def share_qr(slug: str):
    share, _record_ = _shared(slug)
    png = certificate.qr_png(sharing.share_url(_public_base(), share.slug))
    return Response(png, mimetype="image/png", headers={"Cache-Control": "no-cache"})


_NOT_FOUND = {
    "share-off": ("Sharing is turned off",
                  "The holder of this credential has turned its share page off. Ask them for the credential "
                  "itself, or for the link again once they turn sharing back on."),
    "share-unknown": ("No such share page", "This share link is not one this service made. Check that it was "
                                            "copied in full."),
    "holder": ("This link does not work", "This holder's link is wrong or has been replaced by a newer one. "
                                          "Ask the registrar for a new link."),
}


@holder_bp.errorhandler(404)
def _not_found(exc):
    """Say which link did not work, in a sentence."""
    title, message = _NOT_FOUND.get(getattr(exc, "description", None),
                                    ("Not found", "There is no credential at this address."))
    return _private(render_template("error.html", title=title, message=message), 404)


@holder_bp.errorhandler(409)
def _conflict(exc):
    return render_template("error.html", title="Not possible now", message=exc.description), 409
