"""Chromium under Playwright, logged in to the page: shared by the page's tests (``tests/web``) and the
plan matrix's page cell (``tests/startup/test_plan_matrix.py``).

Chromium is Debian's (``/usr/bin/chromium``; ``playwright install`` cannot download browsers here).
Without it the browser tests skip with the reason, except under CI (``CI`` set), where they fail:
``.ci/run`` installs it. Screenshots go to ``tests/web/artifacts/`` (or ``$SIBYLS_WEB_ARTIFACTS``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(os.environ.get("SIBYLS_WEB_ARTIFACTS") or Path(__file__).parent / "web" / "artifacts")


@contextlib.contextmanager
def chromium() -> Iterator:
    """Debian's Chromium under Playwright, closed afterwards (skipped when absent outside CI, a failure
    under CI)."""
    if not CHROMIUM.exists():
        reason = f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)"
        if os.environ.get("CI"):
            pytest.fail(reason + "; CI must run the browser tests")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class PageSession:
    """A browser tab logged in to the page as one demo account; ``shot(name)`` saves a screenshot."""

    def __init__(self, browser, stack, username: str, test_name: str) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 1000}, accept_downloads=True)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.username, self.test_name = username, test_name
        self.page.goto(f"{stack.http_url}/sibyls/")
        self.page.fill("#login-user", username)
        self.page.fill("#login-password", stack.http_password(username))
        self.page.click("#login-button")
        self.page.wait_for_selector("#app:not([hidden])")
        self.page.wait_for_selector("#st-stream:text('stream: live')", timeout=15000)

    def shot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{self.test_name}-{self.username}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        print(f"screenshot: {path}")
        return path

    def close(self) -> None:
        self.context.close()
