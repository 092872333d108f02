"""Debian's Chromium driven by Playwright (which cannot download its own browser here).

Without Chromium these tests skip on a developer's machine and FAIL when CI is set: `./dev
test` installs it from Debian's packages. Screenshots go to test-artifacts/ (or
$PROCTRAIL_TEST_ARTIFACTS).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.integration.conftest import REPO, amqp_url  # noqa: F401 - the vhost fixture

ARTIFACTS = Path(os.environ.get("PROCTRAIL_TEST_ARTIFACTS", REPO / "test-artifacts"))
TABLET = {"width": 768, "height": 1024}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Per module, not per session: Playwright's sync API holds an asyncio loop while it runs,
    and the anyio tests that come after need the main thread's loop free."""
    chromium = shutil.which("chromium")
    if chromium is None:
        message = "Debian's chromium is not installed (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI is set: browser tests must not skip)", pytrace=False)
        pytest.skip(message)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield launched
        launched.close()


@pytest.fixture
def tablet(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A 768x1024 tablet; its last screen is saved as <test name>.png."""
    context = browser.new_context(viewport=TABLET, device_scale_factor=1, has_touch=True)
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: console.append(f"page error: {e}"))
    yield page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    (ARTIFACTS / f"{request.node.name}.console.txt").write_text("\n".join(console) + "\n")
    context.close()


def fits(page: Page) -> bool:
    """No sideways scrolling: the page is no wider than the window."""
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))
