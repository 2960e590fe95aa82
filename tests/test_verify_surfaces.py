"""The same checks through the three faces: the CLI, the JSON API and the
page. Every check passes for a fresh credential and each failure case fails
its own check, whichever face is asked."""

from __future__ import annotations

import json
import re

import pytest

from credentials.verification import CHECK_IDS
from kernel.web.extensions import limiter
from tests.helpers_credentials import CASES, open_world, trust_world


@pytest.fixture(scope="module")
def world(tmp_path_factory, anvil_url):
    yield from open_world(tmp_path_factory, anvil_url)

SURFACES = ["cli", "api", "page"]
CHECK_ROW = re.compile(r'data-check="(\w+)" data-status="(\w+)"')


def csrf_token(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


@pytest.fixture
def verify_app(app, world):
    app.config["VERIFY_RPC_URL"] = world.rpc_url
    trust_world(app, world)
    limiter.reset()
    return app


def statuses_via(surface: str, app, doc: dict, tmp_path) -> tuple[bool, dict[str, str], str]:
    """(valid, {check id: status}, everything a person would read)."""
    if surface == "cli":
        path = tmp_path / "credential.json"
        path.write_text(json.dumps(doc))
        result = app.test_cli_runner().invoke(args=["credentials", "verify", str(path),
                                                    "--rpc-url", app.config["VERIFY_RPC_URL"]])
        assert result.exit_code in (0, 1), result.output
        body = json.loads(result.stdout)
        assert result.exit_code == (0 if body["valid"] else 1)
        return body["valid"], {c["id"]: c["status"] for c in body["checks"]}, result.stdout
    if surface == "api":
        response = app.test_client().post("/api/v1/credentials/verify", json=doc)
        assert response.status_code == 200, response.data
        body = response.get_json()
        return body["valid"], {c["id"]: c["status"] for c in body["checks"]}, response.get_data(as_text=True)
    client = app.test_client()
    token = csrf_token(client.get("/verify").get_data(as_text=True))
    response = client.post("/verify", data={"credential_json": json.dumps(doc), "csrf_token": token})
    assert response.status_code == 200, response.data
    html = response.get_data(as_text=True)
    valid = 'data-valid="true"' in html
    return valid, dict(CHECK_ROW.findall(html)), html


@pytest.mark.parametrize("surface", SURFACES)
def test_fresh_credential_passes_everywhere(verify_app, world, surface, tmp_path):
    valid, statuses, text = statuses_via(surface, verify_app, world.good_with_expiry, tmp_path)
    assert valid
    assert list(statuses) == list(CHECK_IDS)
    # The world's credentials carry the anchor proof alone (as Attest issued before Data Integrity and
    # status lists): those two checks do not apply; every other one passes.
    assert {statuses.pop("data_integrity"), statuses.pop("status_list")} == {"skipped"}
    assert set(statuses.values()) == {"passed"}
    assert "Ada Lovelace" in text or surface != "page"


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("surface", SURFACES)
def test_each_case_fails_its_check_everywhere(verify_app, world, surface, case, tmp_path):
    doc, check_id = world.cases[case]
    valid, statuses, text = statuses_via(surface, verify_app, doc, tmp_path)
    assert not valid
    assert statuses[check_id] == "failed", statuses
    assert "Expected" in text


def test_page_shows_holder_achievement_issuer_and_dates(verify_app, world):
    client = verify_app.test_client()
    token = csrf_token(client.get("/verify").get_data(as_text=True))
    html = client.post("/verify", data={"credential_json": json.dumps(world.good_with_expiry),
                                        "csrf_token": token}).get_data(as_text=True)
    for text in ("Ada Lovelace", "BSc Computer Science", "University of Testing", "Valid until",
                 world.good_with_expiry["validUntil"][:10], "✓"):
        assert text in html


def test_a_lone_surrogate_is_not_a_credential_on_every_face(verify_app, world, tmp_path):
    """JSON text may spell a lone surrogate (\\ud800), which UTF-8 cannot
    carry (the page once answered 500, and the API too when a message quoted
    it): every face says it is not a credential, in its own form."""
    doc = json.loads(json.dumps(world.good))
    doc["credentialSubject"]["name"] = "x\ud800y"
    text = json.dumps(doc)
    assert "\\ud800" in text
    path = tmp_path / "credential.json"
    path.write_text(text)
    result = verify_app.test_cli_runner().invoke(args=["credentials", "verify", str(path),
                                                       "--rpc-url", verify_app.config["VERIFY_RPC_URL"]])
    assert result.exit_code == 2 and "lone surrogate" in json.loads(result.stdout)["error"]
    response = verify_app.test_client().post("/api/v1/credentials/verify", data=text,
                                              content_type="application/json")
    assert response.status_code == 400 and "lone surrogate" in response.get_json()["error"]
    client = verify_app.test_client()
    token = csrf_token(client.get("/verify").get_data(as_text=True))
    page = client.post("/verify", data={"credential_json": text, "csrf_token": token})
    assert page.status_code in (200, 400) and "lone surrogate" in page.get_data(as_text=True)
