"""Two people of two projects on the page: each sees only their project's history and runs; staff all;
a person creates, uses and revokes a personal API key."""

from __future__ import annotations

import httpx
import pytest
from stack_helpers import http, wait_until_idle
from stack_helpers import saxs_item as saxs

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def measured(stack):
    """One run of MY_PROJECT by ``user`` and one of LAB_B by ``user2``, queued over HTTP."""
    from sibyls.startup.stack import http_login, manager_api

    api = manager_api(stack, timeout=10)
    api.queue_clear()
    for who, project in (("user", "MY_PROJECT"), ("user2", "LAB_B")):
        token = http_login(stack, who)
        reply = http(
            stack, "POST", "/api/queue/item/add", token=token, json={"item": saxs(f"{who}_sample", project)}
        )
        assert reply.json()["success"], reply.json()
    api.queue_start()
    wait_until_idle(api)
    api.close()


def history_text(session) -> str:
    session.page.wait_for_selector("#history-table tbody tr")
    return session.page.inner_text("#history-table")


def test_each_person_sees_only_their_projects_history_and_runs_staff_sees_all(stack, open_page, measured):
    second = open_page("user2")
    second.page.wait_for_selector("#project-runs li[data-project='LAB_B']", timeout=30000)
    assert "user2_sample" in history_text(second) and "user_sample" not in history_text(second).replace(
        "user2", ""
    )
    assert second.page.is_hidden("#project-picker-label")  # one project: no picker
    assert not second.page.query_selector("#project-runs li[data-project='MY_PROJECT']")
    second.shot("projects")

    first = open_page("user")
    first.page.wait_for_selector("#project-runs li[data-project='MY_PROJECT']", timeout=30000)
    assert "user2_sample" not in history_text(first)
    assert first.page.is_visible("#project-picker-label")  # several projects: a picker
    first.page.select_option("#project-picker", "MY_PROJECT")
    first.page.wait_for_selector("#project-runs[data-picked='MY_PROJECT'] li[data-project='MY_PROJECT']")
    assert not first.page.query_selector("#project-runs li:not([data-project='MY_PROJECT']):not(.sub)")
    first.shot("projects")

    staff = open_page("staff")
    text = history_text(staff)
    assert "user_sample" in text and "user2_sample" in text


def test_a_person_creates_uses_and_revokes_a_personal_api_key(stack, open_page):
    session = open_page("user2")
    page = session.page
    page.fill("#apikey-note", "queue-monitor")
    page.click("#apikey-create")
    page.wait_for_selector("#apikey-secret:text('shown once')")
    secret = page.inner_text("#apikey-secret").rsplit(": ", 1)[-1].strip()
    page.wait_for_selector("#apikey-table tbody tr td:text('queue-monitor')")
    headers = {"Authorization": f"ApiKey {secret}"}
    assert httpx.get(f"{stack.http_url}/api/status", headers=headers, timeout=10).status_code == 200
    mine = httpx.get(f"{stack.http_url}/api/sibyls/projects", headers=headers, timeout=10).json()
    assert mine["projects"] == {"LAB_B": "A second group's mail-in plates"}  # the key is user2's
    row = page.locator("#apikey-table tbody tr", has_text="queue-monitor")
    row.locator("button").click()
    page.wait_for_selector("#apikey-table tbody tr td:text('queue-monitor')", state="detached")
    assert httpx.get(f"{stack.http_url}/api/status", headers=headers, timeout=10).status_code == 401
