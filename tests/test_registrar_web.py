"""The registrar web UI through Flask's test client, with CSRF on (as in
production) and a real Anvil chain behind it."""

from __future__ import annotations

import io
import json
import re
import time

import pytest
from pypdf import PdfReader
from sqlalchemy import func, select

from credentials import certificate, storage
from credentials.chain import ChainUnreachable
from tests.helpers_credentials import anchor_of

EMAIL, PASSWORD = "registrar@uni.edu", "registrar-pass-1"
HEADER = "recipient_name,recipient_email,achievement_name,achievement_type,description,awarded_on,valid_until,grade"
GOOD_CSV = "\n".join([
    HEADER,
    "Ada Lovelace,ada@uni.edu,BSc Mathematics,BachelorDegree,Three-year honours programme,2026-06-30,,First Class",
    "Alan Turing,alan@uni.edu,Introduction to Logic,CertificateOfCompletion,Twelve-week course,2026-07-15,2031-07-15,",
    "Grace Hopper,grace@uni.edu,MSc Computer Science,MasterDegree,Two-year programme,2026-06-30,,Distinction",
]) + "\n"
BAD_CSV = "\n".join([
    HEADER,
    ",noname@uni.edu,BSc Physics,BachelorDegree,Honours,2026-06-30,,",           # row 2: missing name
    "Bea Bad,bea@uni.edu,BSc Physics,BachelorDegree,Honours,2026-13-45,,",        # row 3: bad date
    "Carl Kind,carl@uni.edu,BSc Physics,WizardDegree,Honours,2026-06-30,,",      # row 4: unknown type
    "Dora Dup,dora@uni.edu,BSc Physics,BachelorDegree,Honours,2026-06-30,,",     # row 5
    "Dora Dup,dora@uni.edu,BSc Physics,BachelorDegree,Honours,2026-06-30,,",     # row 6: duplicate of 5
]) + "\n"


def token_of(html: str) -> str:
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html) or \
        re.search(r'value="([^"]+)"[^>]*name="csrf_token"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def post_form(client, page_url: str, data: dict, post_url: str | None = None, **kwargs):
    """GET the page, then POST its form with the page's CSRF token."""
    page = client.get(page_url)
    assert page.status_code == 200, page.status_code
    return client.post(post_url or page_url, data={"csrf_token": token_of(page.get_data(as_text=True)), **data},
                       **kwargs)


@pytest.fixture
def csrf_app(app):
    app.config["WTF_CSRF_ENABLED"] = True
    return app


@pytest.fixture
def registrar(csrf_app, runner, worker):
    """A registrar logged in; the app's embedded worker runs the batches."""
    result = runner.invoke(args=["users", "create", "--email", EMAIL, "--password", PASSWORD,
                                 "--role", "registrar"])
    assert result.exit_code == 0, result.output
    client = csrf_app.test_client()
    response = post_form(client, "/login", {"email": EMAIL, "password": PASSWORD})
    assert response.status_code == 302
    return client


def upload_csv(client, text: str, name: str = "class.csv"):
    return post_form(client, "/registrar/upload", {"file": (io.BytesIO(text.encode()), name)},
                     content_type="multipart/form-data")


def wait_for_batch(client, batch_url: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        progress = client.get(batch_url + "/progress").get_json()
        if progress["finished"] or progress["resumable"]:
            return progress
        assert time.monotonic() < deadline, progress
        time.sleep(0.1)


def issue_csv(client, text: str = GOOD_CSV) -> str:
    """Upload, preview and issue a CSV; wait until anchored; the batch URL."""
    preview = upload_csv(client, text)
    assert preview.status_code == 302
    preview_url = preview.headers["Location"]
    issued = post_form(client, preview_url, {}, post_url=preview_url + "/issue")
    assert issued.status_code == 302 and "/registrar/batches/" in issued.headers["Location"]
    batch_url = issued.headers["Location"]
    assert wait_for_batch(client, batch_url)["state"] == "anchored"
    return batch_url


def credential_url(app, name: str) -> str:
    with app.extensions["attest.db"].session() as s:
        record = s.scalar(select(storage.CredentialRecord).where(storage.CredentialRecord.recipient_name == name))
        return f"/registrar/credentials/{record.uuid}"


GET_PAGES = ["/registrar/", "/registrar/issue", "/registrar/upload", "/registrar/template.csv",
             "/registrar/upload/" + "a" * 32, "/registrar/batches/x", "/registrar/batches/x/progress",
             "/registrar/credentials", "/registrar/credentials/x", "/registrar/credentials/x/qr.png",
             "/registrar/credentials/x/credential.json", "/registrar/credentials/x/certificate",
             "/registrar/credentials/x/certificate.pdf", "/registrar/credentials/x/revoke"]
POST_PAGES = ["/registrar/issue", "/registrar/upload", "/registrar/upload/" + "a" * 32 + "/issue",
              "/registrar/batches/resume", "/registrar/credentials/x/revoke"]


def test_every_page_needs_a_registrar_login(csrf_app, runner):
    client = csrf_app.test_client()
    for url in GET_PAGES:
        response = client.get(url)
        assert response.status_code == 302 and "/login" in response.headers["Location"], url
    token = token_of(client.get("/login").get_data(as_text=True))
    for url in POST_PAGES:
        response = client.post(url, data={"csrf_token": token})
        assert response.status_code == 302 and "/login" in response.headers["Location"], url
    # An instructor is logged in, but is not a registrar.
    runner.invoke(args=["users", "create", "--email", "inst@uni.edu", "--password", "instructor-1",
                        "--role", "instructor"])
    post_form(client, "/login", {"email": "inst@uni.edu", "password": "instructor-1"})
    assert client.get("/registrar/").status_code == 403
    assert client.get("/registrar/credentials").status_code == 403


def test_every_post_needs_a_csrf_token(registrar, app):
    for url in POST_PAGES:
        response = registrar.post(url, data={"reason": "x", "recipient_name": "X"})
        assert response.status_code == 400, url
        assert b"CSRF" in response.data, url
    with app.extensions["attest.db"].session() as s:
        assert s.scalar(select(func.count()).select_from(storage.Batch)) == 0


def test_dashboard_empty_state_and_template(registrar):
    page = registrar.get("/registrar/").get_data(as_text=True)
    assert "No credentials issued yet" in page
    template = registrar.get("/registrar/template.csv")
    assert template.status_code == 200
    assert "attachment" in template.headers["Content-Disposition"]
    assert template.get_data(as_text=True).splitlines()[0] == HEADER


def test_csv_preview_shows_each_row_error_and_refuses_to_issue(registrar, app):
    preview = upload_csv(registrar, BAD_CSV)
    assert preview.status_code == 302
    preview_url = preview.headers["Location"]
    html = registrar.get(preview_url).get_data(as_text=True)
    assert "4 errors in 4 rows" in html
    assert "recipient name is missing" in html
    assert "&#39;2026-13-45&#39; is not a real date" in html
    assert "&#39;WizardDegree&#39; is not an Open Badges 3.0 achievement type" in html
    assert "duplicate of row 5" in html
    for row in (2, 3, 4, 6):
        assert re.search(rf'<tr id="row-{row}" class="has-error">', html), row
    assert '<tr id="row-5" class="">' in html
    assert "cell-error" in html and 'id="issue-all"' not in html
    # Posting anyway issues nothing: all or none.
    refused = post_form(registrar, preview_url, {}, post_url=preview_url + "/issue")
    assert refused.status_code == 302 and refused.headers["Location"].endswith(preview_url)
    assert "nothing was issued" in registrar.get(preview_url).get_data(as_text=True)
    with app.extensions["attest.db"].session() as s:
        assert s.scalar(select(func.count()).select_from(storage.Batch)) == 0
    # The upload is kept in the database (any worker can serve the confirm), not in the cookie.
    with app.extensions["attest.db"].session() as s:
        assert s.scalar(select(func.count()).select_from(storage.CsvUpload)) == 1


def test_upload_is_private_to_its_uploader(registrar, csrf_app, runner):
    preview_url = upload_csv(registrar, GOOD_CSV).headers["Location"]
    runner.invoke(args=["users", "create", "--email", "other@uni.edu", "--password", "other-pass-1",
                        "--role", "registrar"])
    other = csrf_app.test_client()
    post_form(other, "/login", {"email": "other@uni.edu", "password": "other-pass-1"})
    assert other.get(preview_url).status_code == 404
    assert registrar.get("/registrar/upload/../../etc").status_code == 404


def test_issue_one_credential_from_the_form(registrar, app):
    form = {"recipient_name": "", "recipient_email": "not-an-email", "achievement_name": "BSc Chemistry",
            "achievement_type": "BachelorDegree", "description": "Honours", "awarded_on": "2026-02-30",
            "valid_until": "", "grade": ""}
    page = post_form(registrar, "/registrar/issue", form).get_data(as_text=True)
    # The same messages as the CSV validation gives.
    assert "recipient name is missing" in page
    assert "&#39;not-an-email&#39; is not an email address" in page
    assert "&#39;2026-02-30&#39; is not a real date" in page
    form.update(recipient_name="Marie Curie", recipient_email="marie@uni.edu", awarded_on="2026-06-30",
                grade="Distinction")
    issued = post_form(registrar, "/registrar/issue", form)
    # The view only enqueues: the batch page follows the worker.
    assert issued.status_code == 302 and "/registrar/batches/" in issued.headers["Location"]
    assert wait_for_batch(registrar, issued.headers["Location"])["state"] == "anchored"
    assert "Marie Curie" in registrar.get(issued.headers["Location"]).get_data(as_text=True)
    page = registrar.get(credential_url(app, "Marie Curie")).get_data(as_text=True)
    assert "Marie Curie" in page and "BSc Chemistry" in page and "Distinction" in page
    assert 'class="badge ok status-active"' in page
    with app.extensions["attest.db"].session() as s:
        record = s.scalar(select(storage.CredentialRecord))
        assert record.status == "active"
        assert s.get(storage.Batch, record.batch_id).state == "anchored"
    # The QR code encodes the absolute /v/<id> link.
    qr = registrar.get(f"/registrar/credentials/{record.uuid}/qr.png")
    assert qr.mimetype == "image/png"
    # It is the institution's public address, whatever Host header the request carried.
    assert qr.data == certificate.qr_png(f"http://127.0.0.1:5000/v/{record.uuid}")
    from credentials.web.registrar import _public_base

    with app.test_request_context("/", headers={"Host": "evil.example"}):
        assert _public_base() == "http://127.0.0.1:5000/"
    assert f"http://127.0.0.1:5000/v/{record.uuid}" in page


def test_csv_batch_search_json_pdf(registrar, app):
    batch_url = issue_csv(registrar)
    batch_id = batch_url.rsplit("/", 1)[1]
    page = registrar.get(batch_url).get_data(as_text=True)
    assert "Ada Lovelace" in page and "Grace Hopper" in page and "Anchored" in page

    def names(**query) -> set[str]:
        html = registrar.get("/registrar/credentials", query_string=query).get_data(as_text=True)
        return {n for n in ("Ada Lovelace", "Alan Turing", "Grace Hopper") if n in html}

    assert names() == {"Ada Lovelace", "Alan Turing", "Grace Hopper"}
    assert names(q="ada") == {"Ada Lovelace"}
    assert names(q="alan@uni.edu") == {"Alan Turing"}
    assert names(q="computer science") == {"Grace Hopper"}
    assert names(batch=batch_id) == {"Ada Lovelace", "Alan Turing", "Grace Hopper"}
    assert names(status="active") == {"Ada Lovelace", "Alan Turing", "Grace Hopper"}
    assert names(status="revoked") == set()
    assert "No credential matches" in registrar.get("/registrar/credentials?q=nobody").get_data(as_text=True)

    url = credential_url(app, "Ada Lovelace")
    download = registrar.get(url + "/credential.json")
    assert download.mimetype == "application/json"
    assert download.headers["Content-Disposition"].startswith("attachment; filename=credential-")
    document = json.loads(download.data)
    assert document["type"] == ["VerifiableCredential", "OpenBadgeCredential"]
    assert anchor_of(document)["anchor"]["transactionHash"].startswith("0x")
    assert document["credentialSubject"]["identifier"][0]["identityHash"] == "Ada Lovelace"

    pdf = registrar.get(url + "/certificate.pdf")
    assert pdf.mimetype == "application/pdf" and pdf.data.startswith(b"%PDF-")
    assert "attachment" in pdf.headers["Content-Disposition"]
    reader = PdfReader(io.BytesIO(pdf.data))
    text = reader.pages[0].extract_text()
    assert "Ada Lovelace" in text and "BSc Mathematics" in text and document["id"] in text
    assert "REVOKED" not in text
    assert len(reader.pages[0].images) == 1  # the QR code

    printable = registrar.get(url + "/certificate").get_data(as_text=True)
    assert "Ada Lovelace" in printable and "qr.png" in printable and "verify at" in printable
    assert "Example University" in printable


def test_paging(registrar, app):
    rows = [HEADER] + [f"Student {i:02d},s{i}@uni.edu,Course,Course,Done,2026-06-30,," for i in range(30)]
    issue_csv(registrar, "\n".join(rows) + "\n")
    first = registrar.get("/registrar/credentials").get_data(as_text=True)
    assert "Page 1 of 2" in first and "30 credentials" in first
    second = registrar.get("/registrar/credentials?page=2").get_data(as_text=True)
    assert "Page 2 of 2" in second and second.count('href="/registrar/credentials/') == 5


def test_revoke_shows_revoked_everywhere(registrar, app):
    issue_csv(registrar)
    url = credential_url(app, "Alan Turing")
    form = registrar.get(url + "/revoke").get_data(as_text=True)
    assert "public and permanent" in form
    empty = post_form(registrar, url + "/revoke", {"reason": ""}).get_data(as_text=True)
    assert "Give the reason" in empty
    done = post_form(registrar, url + "/revoke", {"reason": "Issued in error"})
    assert done.status_code == 302
    page = registrar.get(url).get_data(as_text=True)
    assert "REVOKED" in page and "Issued in error" in page and "Revoke…" not in page
    listing = registrar.get("/registrar/credentials?status=revoked").get_data(as_text=True)
    assert "Alan Turing" in listing and "REVOKED" in listing and "Ada Lovelace" not in listing
    assert "REVOKED" in registrar.get(url + "/certificate").get_data(as_text=True)
    text = PdfReader(io.BytesIO(registrar.get(url + "/certificate.pdf").data)).pages[0].extract_text()
    assert "REVOKED" in text and "Issued in error" in text
    with app.extensions["attest.db"].session() as s:
        record = s.scalar(select(storage.CredentialRecord).where(storage.CredentialRecord.recipient_name ==
                                                                  "Alan Turing"))
        assert record.status == "revoked"
        revocation = storage.get_revocation(s, record.id)
        assert revocation.revoked_by == EMAIL and revocation.tx_hash.startswith("0x")
    registry = app.extensions["attest.registry"]
    assert registry.revocation_of(record.fingerprint).reason == "Issued in error"


def test_chain_down_keeps_the_batch_pending_and_resume_anchors_it(registrar, app, monkeypatch):
    from credentials.runtime import get_registry

    with app.app_context():
        registry = get_registry(app)

    def down(*_args, **_kwargs):
        raise ChainUnreachable("cannot reach the chain at http://127.0.0.1:1 (ConnectionError)")

    monkeypatch.setattr(registry, "anchor_of", down)
    form = {"recipient_name": "Rosalind Franklin", "recipient_email": "rosalind@uni.edu",
            "achievement_name": "PhD Biophysics", "achievement_type": "DoctoralDegree",
            "description": "Thesis", "awarded_on": "2026-06-30", "valid_until": "", "grade": ""}
    response = post_form(registrar, "/registrar/issue", form)
    assert response.status_code == 302 and "/registrar/batches/" in response.headers["Location"]
    batch_url = response.headers["Location"]
    progress = wait_for_batch(registrar, batch_url)
    assert progress["resumable"] and progress["state"] == "pending" and progress["stage"] == "waiting_for_chain"
    page = registrar.get(batch_url).get_data(as_text=True)
    assert "cannot reach the chain" in page and "Pending" in page and "Resume anchoring" in page
    assert "Waiting for the chain" in page
    dashboard = registrar.get("/registrar/").get_data(as_text=True)
    assert "Batches waiting for the chain" in dashboard and 'id="resume-all"' in dashboard
    # Still down: resuming sends it to a worker, which finds the chain down again; still pending.
    post_form(registrar, "/registrar/", {}, post_url="/registrar/batches/resume")
    assert "being anchored again" in registrar.get("/registrar/").get_data(as_text=True)
    assert wait_for_batch(registrar, batch_url)["state"] == "pending"
    monkeypatch.undo()
    resumed = post_form(registrar, batch_url, {"batch_id": batch_url.rsplit("/", 1)[1]},
                        post_url="/registrar/batches/resume")
    assert resumed.headers["Location"].endswith(batch_url)
    assert wait_for_batch(registrar, batch_url)["state"] == "anchored"
    page = registrar.get(batch_url).get_data(as_text=True)
    assert "Rosalind Franklin" in page and "Anchored" in page


def test_revoke_with_the_chain_down_changes_nothing(registrar, app, monkeypatch):
    from credentials.runtime import get_registry

    issue_csv(registrar)
    url = credential_url(app, "Grace Hopper")
    with app.app_context():
        registry = get_registry(app)

    def down(*_args, **_kwargs):
        raise ConnectionError("connection refused")

    monkeypatch.setattr(registry, "revocation_of", down)
    response = post_form(registrar, url + "/revoke", {"reason": "Issued in error"})
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "nothing was revoked" in page and "Issued in error" in page  # the reason is kept in the form
    assert "REVOKED" not in registrar.get(url).get_data(as_text=True)
    with app.extensions["attest.db"].session() as s:
        assert s.scalar(select(func.count()).select_from(storage.Revocation)) == 0


def test_preview_of_a_file_that_is_not_csv_text(registrar):
    response = post_form(registrar, "/registrar/upload",
                         {"file": (io.BytesIO(b"\x89PNG\r\n\x1a\n\xff\xfe binary"), "photo.png")},
                         content_type="multipart/form-data")
    html = registrar.get(response.headers["Location"]).get_data(as_text=True)
    assert "is not UTF-8 text" in html and 'id="issue-all"' not in html
    missing = post_form(registrar, "/registrar/upload", {}, content_type="multipart/form-data")
    assert "Choose a CSV file" in missing.get_data(as_text=True)


def test_the_same_file_twice_needs_a_second_thought(registrar, app):
    issue_csv(registrar)
    preview_url = upload_csv(registrar, GOOD_CSV).headers["Location"]
    html = registrar.get(preview_url).get_data(as_text=True)
    assert "This exact file was issued already" in html and 'name="again"' in html
    refused = post_form(registrar, preview_url, {}, post_url=preview_url + "/issue")
    assert refused.headers["Location"].endswith(preview_url)
    assert "was issued already" in registrar.get(preview_url).get_data(as_text=True)
    with app.extensions["attest.db"].session() as s:
        assert s.scalar(select(func.count()).select_from(storage.Batch)) == 1
    again = post_form(registrar, preview_url, {"again": "1"}, post_url=preview_url + "/issue")
    assert wait_for_batch(registrar, again.headers["Location"])["state"] == "anchored"
    with app.extensions["attest.db"].session() as s:
        assert s.scalar(select(func.count()).select_from(storage.Batch)) == 2
