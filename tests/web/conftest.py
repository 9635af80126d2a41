"""Fixtures for the page's tests: Chromium driven by Playwright against the session's stack
(``stack`` and ``api`` in ``tests/conftest.py``); the browser and the logged-in tab are
``tests/browser_helpers.py``'s (shared with the plan matrix).
"""

from __future__ import annotations

import pytest
from browser_helpers import PageSession, chromium

from sibyls.startup.stack import http_login


@pytest.fixture(scope="package")
def browser():
    """Debian's Chromium under Playwright (skipped when absent outside CI, a failure under CI)."""
    with chromium() as launched:
        yield launched


@pytest.fixture
def open_page(browser, stack, request):
    """``open_page("user")``: a new tab logged in as that account (closed after the test)."""
    sessions: list[PageSession] = []

    def opener(username: str) -> PageSession:
        session = PageSession(browser, stack, username, request.node.name)
        sessions.append(session)
        return session

    yield opener
    for session in sessions:
        assert not session.errors, f"JavaScript errors on the page: {session.errors}"
        session.close()


@pytest.fixture
def token(stack):
    """``token("staff")``: a fresh access token of a demo account."""
    return lambda username: http_login(stack, username)
