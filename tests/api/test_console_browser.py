"""The web console in a real browser (Debian's chromium, driven by Playwright) against a real farm.

Sign in with a token, upload the bundled sample book, watch it reach 100 %,
play a chapter (the audio element reports a duration and its time moves),
cancel a second job and see it cancelled. Screenshots go to the test's
folder, and to VOXFARM_SCREENSHOT_DIR when that is set.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

from producer.samples import SAMPLE_BOOK
from tests.support.api import ApiServer

pytestmark = pytest.mark.timeout(900)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
]
LONG_BOOK = "# The Long Watch\n\n" + "\n\n".join(
    f"## Night {night}\n\n" + " ".join(f"Hour {night}-{n}: the keeper watched the dark water." for n in range(60))
    for night in range(1, 5)
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield launched
        launched.close()


def screenshot(page: Page, folder: Path, name: str) -> None:
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    target = os.environ.get("VOXFARM_SCREENSHOT_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / path.name)


def wait_for(locator: Locator, expression: str, timeout_s: float = 60.0) -> object:
    """Poll an element's property from Python (page.wait_for_function evaluates strings, which the CSP forbids)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = locator.evaluate(expression)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{expression} stayed false for {timeout_s}s")
        time.sleep(0.2)


def sign_in(page: Page, api: ApiServer, token: str) -> None:
    page.goto(f"{api.url}/")
    expect(page.get_by_role("heading", name="Sign in to your farm")).to_be_visible()
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Jobs")).to_be_visible()


def submit_book(page: Page, book: Path, chapters: list[str], leave_out: str | None = None) -> str:
    page.get_by_role("link", name="New audiobook").first.click()
    expect(page.get_by_label("Voice", exact=True)).to_have_value("en_US-joe-medium")
    page.set_input_files("#book", str(book))
    picker = page.get_by_role("group", name="Chapters to read")
    expect(picker.get_by_role("checkbox")).to_have_count(len(chapters), timeout=30_000)
    for number, title in enumerate(chapters, start=1):
        expect(picker.get_by_role("checkbox", name=f"{number}. {title}")).to_be_checked()
    if leave_out is not None:
        picker.get_by_role("checkbox", name=leave_out).uncheck()
    page.get_by_role("button", name="Render audiobook").click()
    page.wait_for_url("**/console/#/job/*")
    return page.url.rsplit("/", 1)[-1]


def test_console_renders_plays_and_cancels(api: ApiServer, browser: Browser, tmp_path: Path) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 720}, device_scale_factor=1)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    sign_in(page, api, api.token("console", "admin"))
    screenshot(page, tmp_path, "console-jobs-empty")

    page.get_by_role("link", name="New audiobook").first.click()
    page.get_by_role("button", name="Hear a preview").click()
    preview = page.locator("#preview-audio")
    expect(preview).to_be_visible(timeout=120_000)
    wait_for(preview, "audio => audio.duration > 0.5")
    screenshot(page, tmp_path, "console-submit")
    unlabelled = page.locator("#view-submit input, #view-submit select").evaluate_all(
        "controls => controls.filter(c => !c.labels.length && !c.getAttribute('aria-label')).map(c => c.id)"
    )
    assert unlabelled == [], "every control of the submit page has a label"

    job = submit_book(page, SAMPLE_BOOK, ["X", "Epilogue"])
    wait_for(page.locator("#job-progress"), "bar => Number(bar.getAttribute('aria-valuenow')) >= 20", 600)
    page.wait_for_timeout(700)  # let the bar's width transition finish
    screenshot(page, tmp_path, "console-job-rendering")
    expect(page.locator("#job-state")).to_have_text("done", timeout=600_000)
    expect(page.locator("#job-percent")).to_have_text("100 %")
    expect(page.locator("#job-progress")).to_have_attribute("aria-valuenow", "100")
    chapters = page.locator("#chapters-list audio")
    expect(chapters).to_have_count(2)
    first = chapters.first
    wait_for(first, "audio => audio.readyState >= 1")
    assert first.evaluate("audio => audio.duration") > 10
    first.evaluate("audio => audio.play()")
    wait_for(first, "audio => audio.currentTime > 0.3")
    assert first.evaluate("audio => audio.paused") is False
    first.evaluate("audio => audio.pause()")
    screenshot(page, tmp_path, "console-job-done")

    book = tmp_path / "the-long-watch.md"
    book.write_text(LONG_BOOK, encoding="utf-8")
    second = submit_book(page, book, [f"Night {n}" for n in range(1, 5)], leave_out="4. Night 4")
    assert second != job
    expect(page.locator("#chapters-list .chapter-title")).to_have_text(["Night 1", "Night 2", "Night 3"])
    cancel = page.get_by_role("button", name="Cancel", exact=True)
    expect(cancel).to_be_visible()
    cancel.click()
    page.get_by_role("button", name="Confirm cancel").click()
    expect(page.locator("#job-state")).to_have_text("cancelled", timeout=30_000)
    expect(page.get_by_role("button", name="Pause")).to_be_hidden()

    page.get_by_role("link", name="All jobs").click()
    rows = page.locator("#job-list .job")
    expect(rows).to_have_count(2)
    expect(page.locator(f'[data-job="{job}"] .badge')).to_have_text("done")
    expect(page.locator(f'[data-job="{second}"] .badge')).to_have_text("cancelled")
    screenshot(page, tmp_path, "console-jobs")
    page.goto(f"{api.url}/console/#/job/{job}")
    expect(page.locator("#job-state")).to_have_text("done")
    expect(page.locator("#chapters-list audio")).to_have_count(2)
    page.wait_for_timeout(700)
    screenshot(page, tmp_path, "console-job")
    assert errors == [], f"the page raised: {errors}"


def test_console_keyboard_sign_in_and_wrong_token(api: ApiServer, browser: Browser) -> None:
    page = browser.new_page()
    page.goto(f"{api.url}/console/")
    expect(page.get_by_label("API token")).to_be_focused()
    page.keyboard.type("vfk_0000000000000000_" + "A" * 43)
    page.keyboard.press("Enter")
    expect(page.get_by_role("alert")).to_contain_text("not valid")
    expect(page.get_by_role("navigation", name="Main")).to_be_hidden()
