"""The public verification pages: `/verify` (drop a file, paste JSON or type an
id) and `/v/<id>` (the QR link printed on a certificate). No login.

Thin, like the API: read the form, load the credential (or the stored one),
call `verify_credential`, render the checks beside what the credential says.
"""

from __future__ import annotations

from flask import Blueprint, current_app, render_template, request

from credentials import storage
from credentials.runtime import get_chain_reader, get_status_lists, get_trust_policy
from credentials.validate import MAX_DOCUMENT_BYTES, NotACredential, load_document, text_digest
from credentials.verification import CHECK_LABELS, verify_credential
from credentials.web.api import rate_limit
from kernel.web.extensions import limiter

verify_bp = Blueprint("verify", __name__)


def find_stored(credential_id: str) -> tuple[dict, str, bytes] | None:
    """(document, status, the digest of its text) of a credential this
    service issued, or None. The verifier never trusts the stored status: it
    verifies the document."""
    credential_id = credential_id.strip()
    if "/v/" in credential_id:  # the QR link itself, pasted into the id box
        credential_id = credential_id.rsplit("/v/", 1)[1].split("?", 1)[0].strip("/")
    if not credential_id or len(credential_id) > 100:
        return None
    with current_app.extensions["attest.db"].session() as session:
        record = storage.get_credential(session, credential_id)
        if record is None:
            return None
        return load_document(record.document), record.status, text_digest(record.document)


def render_result(document: dict, digest: bytes | None = None, status_code: int = 200, **extra):
    """The page with the checks of `document`; `digest`: that of the text it
    was read from, so the same credential verified again (a QR link opened
    by several people) repeats only what can change."""
    result = verify_credential(document, get_chain_reader(), get_trust_policy(), status_lists=get_status_lists(),
                               digest=digest)
    return render_template("verify/page.html", result=result.as_dict(), check_labels=CHECK_LABELS,
                           **extra), status_code


def form_input() -> tuple[str, bytes | str | None]:
    """Which of the three inputs was used, and its content: file, then paste, then id."""
    upload = request.files.get("credential_file")
    if upload is not None and upload.filename:
        return "file", upload.stream.read(MAX_DOCUMENT_BYTES + 1)
    pasted = request.form.get("credential_json", "")
    if pasted.strip():
        return "paste", pasted
    typed = request.form.get("credential_id", "")
    if typed.strip():
        return "id", typed
    return "none", None


@verify_bp.route("/verify", methods=["GET", "POST"])
@limiter.limit(rate_limit, methods=["POST"])
def page():
    if request.method == "GET":
        return render_template("verify/page.html", result=None)
    kind, content = form_input()
    if kind == "none":
        return render_template("verify/page.html", result=None,
                               error="Choose a credential file, paste its JSON, or type its id."), 400
    if kind == "id":
        stored = find_stored(content)
        if stored is None:
            return render_template("verify/page.html", result=None, typed_id=content,
                                   error=f"No credential with the id {content.strip()[:100]!r} was issued here. "
                                         "Check the id, or verify the credential's file instead."), 404
        return render_result(stored[0], stored[2], stored_status=stored[1], typed_id=content)
    try:
        document = load_document(content, wrapped_ok=True)
    except NotACredential as exc:
        return render_template("verify/page.html", result=None, pasted=content if kind == "paste" else "",
                               error=f"This is not a credential: {exc}."), 400
    return render_result(document, text_digest(content), pasted=content if kind == "paste" else "")


@verify_bp.get("/v/<path:credential_id>")
@limiter.limit(rate_limit)
def qr_link(credential_id: str):
    stored = find_stored(credential_id)
    if stored is None:
        return render_template("verify/not_found.html", credential_id=credential_id[:100]), 404
    return render_result(stored[0], stored[2], stored_status=stored[1], qr=True)


@verify_bp.errorhandler(413)
def too_large(_exc):
    """Beyond the app's MAX_CONTENT_LENGTH (smaller uploads get load_document's own sentence)."""
    return render_template("verify/page.html", result=None,
                           error="This is not a credential: the upload is far larger than a credential "
                                 "(a few kilobytes)."), 413
