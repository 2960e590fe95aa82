"""The verification pages in a real headless Chromium: a dropped file, a
pasted tampered credential and a QR link, with the ticks and crosses read off
the page; and the result on a phone-sized screen."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest

from kernel.web.extensions import limiter
from tests.helpers_credentials import issue_stored

pytestmark = pytest.mark.browser


@pytest.fixture
def issued(app):
    limiter.reset()
    return issue_stored(app, 2)


def read_checks(page) -> dict[str, tuple[str, str]]:
    """check id -> (status, the mark a person sees)."""
    page.wait_for_selector("#result")
    rows = page.query_selector_all("#checks li[data-check]")
    return {row.get_attribute("data-check"): (row.get_attribute("data-status"), row.query_selector(".mark").inner_text().strip())
            for row in rows}


def test_dropped_file_shows_ticks(live_server, page, issued, tmp_path):
    path = tmp_path / "ada.json"
    path.write_text(json.dumps(issued[0]))
    page.goto(live_server.url + "/verify")
    page.set_input_files("#credential_file", str(path))  # the drop zone's input submits on change
    checks = read_checks(page)
    from credentials.verification import CHECK_IDS

    assert list(checks) == list(CHECK_IDS), "every check, in the verifier's order"
    assert all(mark == "✓" for cid, (status, mark) in checks.items() if cid != "valid_until")
    assert checks["valid_until"] == ("skipped", "–")
    assert "Genuine" in page.inner_text("#verdict")
    assert page.inner_text("#fact-holder") == "Ada Lovelace"
    assert "BSc Computer Science" in page.inner_text("#fact-achievement")


def test_pasted_tampered_credential_shows_a_cross(live_server, page, issued, tmp_path):
    tampered = copy.deepcopy(issued[1])
    tampered["credentialSubject"]["achievement"]["name"] = "PhD Computer Science"
    page.goto(live_server.url + "/verify")
    page.fill("#credential_json", json.dumps(tampered, indent=2))
    page.click("#verify-button")
    checks = read_checks(page)
    assert checks["integrity"] == ("failed", "✗")
    assert checks["anchor"] == ("passed", "✓")
    assert checks["merkle_proof"][0] == "skipped"
    assert "Not valid" in page.inner_text("#verdict")
    message = page.inner_text("li[data-check=integrity] .message")
    assert message.startswith("Expected") and "changed after it was issued" in message
    page.screenshot(path=str(Path(os.environ.get("ATTEST_SCREENSHOT_DIR") or tmp_path) / "verify-tampered.png"),
                    full_page=True)


def test_qr_link_on_a_phone(live_server, browser, issued, tmp_path):
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
                                  has_touch=True)
    try:
        page = context.new_page()
        page.goto(f"{live_server.url}/v/{issued[0]['id'].removeprefix('urn:uuid:')}")
        checks = read_checks(page)
        assert [mark for status, mark in checks.values() if status == "passed"] == ["✓"] * (len(checks) - 1)
        # Nothing wider than the screen: no sideways scrolling on a phone.
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        shots = Path(os.environ.get("ATTEST_SCREENSHOT_DIR") or tmp_path)  # to look at it yourself
        page.screenshot(path=str(shots / "verify-phone.png"), full_page=True)
        missing = page.goto(f"{live_server.url}/v/not-a-credential")
        assert missing.status == 404
        assert "No credential with this id" in page.inner_text("h1")
    finally:
        context.close()


def test_drag_and_drop_onto_the_drop_zone(live_server, page, issued):
    """A real drop event carrying the file, as a person dragging it from their desktop makes."""
    page.goto(live_server.url + "/verify")
    transfer = page.evaluate_handle("""(text) => {
        const dt = new DataTransfer();
        dt.items.add(new File([text], "credential.json", {type: "application/json"}));
        return dt;
    }""", json.dumps(issued[1]))
    page.dispatch_event("#dropzone", "dragenter", {"dataTransfer": transfer})
    assert "over" in page.get_attribute("#dropzone", "class")
    with page.expect_navigation():
        page.dispatch_event("#dropzone", "drop", {"dataTransfer": transfer})
    checks = read_checks(page)
    assert checks["signature"] == ("passed", "✓") and checks["revocation"] == ("passed", "✓")
    assert page.inner_text("#fact-holder") == "Grace Hopper"


def test_genuine_and_impostor_headlines_read_apart(live_server, page, app, issued, tmp_path, anvil_url, db_urls):
    """A second installation on the same chain, with the same default name and
    did:web: its credential reads "Not confirmed", the genuine one "Genuine",
    with the confirmed domain, in words an employer reads."""
    from app import create_app

    impostor_app = create_app({"TESTING": True, "data_dir": tmp_path / "impostor", "rpc_url": anvil_url,
                               "database_url": db_urls.for_dir(tmp_path / "impostor"),
                               "SECRET_KEY": "x", "public_url": live_server.url})
    try:
        impostor = issue_stored(impostor_app, 1)[0]
    finally:
        impostor_app.extensions.pop("attest.registry").close()
    assert impostor["issuer"]["name"] == issued[0]["issuer"]["name"] == "Example University"
    assert impostor["issuer"]["id"] == issued[0]["issuer"]["id"]
    shots = Path(os.environ.get("ATTEST_SCREENSHOT_DIR") or tmp_path)

    page.goto(f"{live_server.url}/v/{issued[0]['id'].removeprefix('urn:uuid:')}")
    page.wait_for_selector("#result")
    headline = page.inner_text("#verdict")
    domain = live_server.url.split("//")[1].split(":")[0]
    assert "Genuine" in headline and f"Issued by Example University ({domain})" in headline
    assert page.get_attribute("#result", "data-verdict") == "genuine"
    page.screenshot(path=str(shots / "verify-genuine.png"), full_page=True)

    page.goto(live_server.url + "/verify")
    page.fill("#credential_json", json.dumps(impostor))
    page.click("#verify-button")
    checks = read_checks(page)
    headline = page.inner_text("#verdict")
    assert "Not confirmed" in headline and "its issuer is not one you trust" in headline
    assert "Genuine" not in headline
    assert checks["issuer_identity"] == ("failed", "✗")
    assert checks["integrity"] == ("passed", "✓") and checks["anchor"] == ("passed", "✓")
    warning = page.inner_text("#identity-warning")
    assert "calls itself Example University" in warning and "is not one Example University lists" in warning
    assert "Not confirmed" in page.inner_text("#fact-issuer")
    page.screenshot(path=str(shots / "verify-impostor.png"), full_page=True)
