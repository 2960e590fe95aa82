"""The instructor's path in a real headless Chromium: log in, create a course
and an assignment, upload several submissions at once (one a copy of
another, one independent, one unreadable) with the progress bars, open the
report, read the flagged row and the highlighted passage, check the anchor
live, and mark the case reviewed; on a desktop and on a 390x844 phone."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.fixtures_browser import login

pytestmark = pytest.mark.browser

EMAIL, PASSWORD = "instructor@uni.edu", "instructor-pass-1"
SHOTS = os.environ.get("ATTEST_SCREENSHOTS")

ORIGINAL = (
    "Bees pollinate roughly a third of the crops that people eat. Their decline is blamed on pesticides, "
    "parasites and the loss of wild flowers along field margins. Neonicotinoid sprays weaken the bees' "
    "sense of direction, so foragers fail to find their way home. Farmers can help by leaving strips of "
    "meadow uncut through the summer."
)
INDEPENDENT = (
    "My grandmother keeps two hives at the bottom of her orchard. Every September we help her lift the "
    "frames and spin out the honey in her kitchen. The smoke calms the colony while we work. Each jar "
    "tastes different depending on which trees were flowering that year."
)


def shoot(page, folder: Path, name: str) -> None:
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def test_instructor_uploads_and_reads_a_flagged_report(app, runner, live_server, page, browser, tmp_path):
    shots = Path(SHOTS) if SHOTS else tmp_path / "shots"
    shots.mkdir(parents=True, exist_ok=True)
    runner.invoke(args=["users", "create", "--email", EMAIL, "--password", PASSWORD, "--role", "instructor"])
    login(page, live_server.url, EMAIL, PASSWORD)
    assert page.url.endswith("/submissions/")
    assert "No courses yet" in page.inner_text("main")

    page.fill("#code", "BIO101")
    page.fill("#title", "Ecology")
    page.click("button:has-text('Create course')")
    page.wait_for_selector("text=New assignment")
    page.fill("#name", "pollinators")
    page.fill("#title", "Why are bees in decline?")
    page.fill("#template_text", "Explain why bees are in decline and what farmers can do.")
    page.click("button:has-text('Create assignment')")
    page.wait_for_selector("#upload-form")
    shoot(page, shots, "sub-01-assignment-empty")

    folder = tmp_path / "upload"
    folder.mkdir()
    files = {
        "ana_bees.txt": ORIGINAL,
        "ben_bees.txt": ORIGINAL.replace("roughly", "about").replace("Farmers can help", "Farmers could help"),
        "cat_bees.md": INDEPENDENT,
    }
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    (folder / "dan_bees.pdf").write_bytes(b"%PDF-1.4 broken")
    page.set_input_files("#files", [str(p) for p in sorted(folder.iterdir())])
    page.click("#upload-button")
    page.wait_for_selector("#upload-progress:not([hidden])")
    # The processing bar follows the job in the database until it is done; then the page reloads.
    page.wait_for_function("() => document.getElementById('upload-status') === null"
                           " || document.getElementById('upload-status').textContent.startsWith('Done')",
                           timeout=90_000)
    page.wait_for_selector("#last-upload .job-summary", timeout=30_000)
    summary = page.inner_text("#last-upload")
    assert "3 added" in summary and "1 could not be read" in summary
    assert "dan_bees.pdf: the file is not a readable PDF" in page.inner_text("#upload-errors")
    assert page.locator("#submissions tbody tr").count() == 3
    shoot(page, shots, "sub-02-uploaded")

    page.click("#build-report")
    page.wait_for_url("**/report-jobs/*")
    # The job page follows the build in the database, then opens the report.
    page.wait_for_selector("#report-table", timeout=120_000)
    flagged = page.locator("#report-table tr.flagged")
    assert flagged.count() == 2
    flagged_text = " ".join(flagged.all_inner_texts())
    assert "ana_bees.txt" in flagged_text and "ben_bees.txt" in flagged_text and "Flagged" in flagged_text
    assert "Cluster 1" in flagged_text
    calm = page.locator("#report-table tr:has-text('cat_bees.md')").inner_text()
    assert "Not flagged" in calm
    page.wait_for_function("() => document.getElementById('chain-check').textContent.includes('matches')",
                           timeout=30_000)
    assert page.inner_text("#chain-check") == "Still matches the chain, anchored by your institution"
    shoot(page, shots, "sub-03-report")

    page.click("#report-table tr.flagged >> text=ben_bees.txt")
    page.wait_for_selector("section.pair")
    pair = page.locator("section.pair").first
    assert "ana/ana_bees.txt" in pair.inner_text()
    marks = pair.locator(".pane").nth(0).locator("mark.hl")
    assert marks.count() >= 1
    highlighted = " ".join(marks.all_inner_texts())
    assert "Neonicotinoid sprays weaken the bees" in highlighted
    right = " ".join(pair.locator(".pane").nth(1).locator("mark.hl").all_inner_texts())
    assert "Neonicotinoid sprays weaken the bees" in right
    assert "Writing style" in page.inner_text("#anomaly")
    page.wait_for_function("() => document.getElementById('chain-check').textContent.includes('matches')")
    assert page.inner_text("#chain-check") == "Still matches the chain, anchored by your institution"
    shoot(page, shots, "sub-04-submission")

    page.fill("#comment", "Spoke with both students; referred to the panel.")
    page.click("button:has-text('Mark reviewed')")
    page.wait_for_selector(".reviews li")
    assert "Spoke with both students" in page.inner_text(".reviews")
    submission_url = page.url
    report_url = submission_url.rsplit("/submissions/", 1)[0]

    phone = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=1,
                                is_mobile=True, has_touch=True)
    try:
        mobile = phone.new_page()
        login(mobile, live_server.url, EMAIL, PASSWORD)
        mobile.goto(report_url)
        mobile.wait_for_selector("#report-table")
        mobile.wait_for_function("() => document.getElementById('chain-check').textContent.includes('matches')")
        shoot(mobile, shots, "sub-05-report-phone")
        wide = mobile.evaluate("""[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > 391)
            .map(e => e.tagName + '.' + e.className + '#' + e.id + ':' + Math.round(e.getBoundingClientRect().right)).slice(0, 8)""")
        assert mobile.evaluate("document.documentElement.scrollWidth") <= 390, wide
        mobile.click("nav.crumbs >> text=Why are bees in decline?")
        mobile.wait_for_selector("#upload-form")
        assert mobile.evaluate("document.documentElement.scrollWidth") <= 390
        shoot(mobile, shots, "sub-07-assignment-phone")
        mobile.goto(submission_url)
        mobile.wait_for_selector("section.pair")
        assert mobile.evaluate("document.documentElement.scrollWidth") <= 390
        shoot(mobile, shots, "sub-06-submission-phone")
    finally:
        phone.close()
