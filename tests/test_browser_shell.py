"""The shell in a real headless Chromium: home page, log in, log out."""

import pytest

from tests.fixtures_browser import login

pytestmark = pytest.mark.browser


def test_log_in_and_out_in_chromium(app, runner, live_server, page):
    runner.invoke(args=["users", "create", "--email", "reg@uni.edu", "--password", "password-1"])
    page.goto(live_server.url + "/")
    assert "anyone can verify" in page.inner_text("h1")
    login(page, live_server.url, "reg@uni.edu", "wrong-password")
    assert "do not match" in page.inner_text(".flash")
    login(page, live_server.url, "reg@uni.edu", "password-1")
    assert "reg@uni.edu" in page.inner_text("header")
    page.click("text=Log out")
    page.wait_for_load_state("networkidle")
    assert "logged out" in page.inner_text(".flash")
