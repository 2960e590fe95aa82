"""The QR link `/v/<id>` and the page's id box: they verify the credential
this service stored, and say so kindly when there is none."""

from __future__ import annotations

import io
import re

import pytest

from credentials.issuance import revoke_credential
from credentials.runtime import get_registry
from kernel.web.extensions import limiter
from tests.helpers_credentials import issue_stored, revocation_view_caught_up

CHECK_ROW = re.compile(r'data-check="(\w+)" data-status="(\w+)"')


@pytest.fixture
def stored(app):
    limiter.reset()
    return issue_stored(app, 2)


def checks(html: str) -> dict[str, str]:
    return dict(CHECK_ROW.findall(html))


def token(client) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get("/verify").get_data(as_text=True)).group(1)


@pytest.mark.parametrize("form", ["bare uuid", "urn"])
def test_qr_link_verifies_the_stored_credential(client, stored, form):
    cid = stored[0]["id"] if form == "urn" else stored[0]["id"].removeprefix("urn:uuid:")
    response = client.get(f"/v/{cid}")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'data-valid="true"' in html
    assert set(checks(html).values()) == {"passed", "skipped"} and checks(html)["valid_until"] == "skipped"
    assert "Ada Lovelace" in html


def test_unknown_qr_link_is_a_friendly_404(client, stored):
    response = client.get("/v/00000000-0000-4000-8000-000000000000")
    assert response.status_code == 404
    html = response.get_data(as_text=True)
    assert "No credential with this id" in html and "Traceback" not in html
    assert client.get("/v/" + "x" * 5000).status_code == 404


def test_id_box_verifies_and_unknown_id_says_so(client, stored):
    found = client.post("/verify", data={"credential_id": stored[1]["id"], "csrf_token": token(client)})
    assert found.status_code == 200 and "Grace Hopper" in found.get_data(as_text=True)
    link = f"https://attest.example.edu/v/{stored[1]['id'].removeprefix('urn:uuid:')}"
    by_link = client.post("/verify", data={"credential_id": link, "csrf_token": token(client)})
    assert by_link.status_code == 200 and "Grace Hopper" in by_link.get_data(as_text=True)
    missing = client.post("/verify", data={"credential_id": "urn:uuid:nope", "csrf_token": token(client)})
    assert missing.status_code == 404
    assert "No credential with the id" in missing.get_data(as_text=True)


def test_revoked_credential_shows_the_reason_on_its_qr_link(app, client, stored):
    with app.extensions["attest.db"].session() as session:
        revoke_credential(session, get_registry(app), stored[0]["id"], "degree rescinded by senate", "test")
    revocation_view_caught_up(app)
    html = client.get(f"/v/{stored[0]['id']}").get_data(as_text=True)
    assert 'data-valid="false"' in html
    assert checks(html)["revocation"] == "failed"
    assert "degree rescinded by senate" in html


def test_empty_form_asks_for_input(client):
    response = client.post("/verify", data={"csrf_token": token(client)})
    assert response.status_code == 400
    assert "Choose a credential file, paste its JSON, or type its id" in response.get_data(as_text=True)


def test_pasted_junk_is_a_message_not_an_error(client):
    response = client.post("/verify", data={"credential_json": "[[[", "csrf_token": token(client)})
    assert response.status_code == 400
    assert "This is not a credential" in response.get_data(as_text=True)


def test_a_huge_upload_is_refused_kindly(client):
    big = io.BytesIO(b'{"a": "' + b"x" * (5 * 1024 * 1024) + b'"}')
    response = client.post("/verify", data={"csrf_token": token(client), "credential_file": (big, "big.json")},
                           content_type="multipart/form-data")
    assert response.status_code == 400
    assert "a credential is at most 1,048,576 bytes" in response.get_data(as_text=True)
