"""The page's history and run view against the real stack: re-queue a past item, a failed or unfinished
first look says so, logout leaves nothing of the last person, the page fits a narrow window."""

from __future__ import annotations

import uuid

import pytest
from stack_helpers import wait_until_idle

from sibyls.startup.stack import profile_config

pytestmark = pytest.mark.slow

PROJECT = "WEB_RUNVIEW"


def test_a_user_requeues_a_past_item_from_the_history_after_the_dry_run(stack, api, open_page):
    item = {
        "name": "saxs_exposure",
        "item_type": "plan",
        "kwargs": {
            "sample_code": "web_again_1",
            "project_code": PROJECT,
            "exposure_time": 0.5,
            "num_frames": 2,
        },
    }
    assert api.item_add(item, user="user", user_group="primary")["success"]
    api.queue_start()
    wait_until_idle(api, timeout=60)
    session = open_page("user")
    page = session.page
    row = page.locator("#history-table tr:has-text('web_again_1')").first
    row.wait_for(timeout=20000)
    row.locator("button.requeue").click()
    # The item is back in the form, checked by the gate's dry run; nothing is queued until "Add".
    page.wait_for_selector("#plan-form[data-valid='yes']")
    assert page.input_value("#plan-select") == "saxs_exposure"
    assert page.input_value("#field-sample_code") == "web_again_1"
    assert page.input_value("#field-num_frames") == "2"
    assert "Re-queue web_again_1" in page.text_content("#add-title")
    assert api.queue_get(reload=True)["items"] == []
    session.shot("requeue-form")
    page.click("#add-button")
    page.wait_for_selector("#queue-table td.label:text('web_again_1')")
    (queued,) = api.queue_get(reload=True)["items"]
    assert queued["kwargs"] == item["kwargs"] and queued["user"] == "user"
    api.queue_clear()


def write_record(stack, status: str, note: str | None) -> tuple[str, object]:
    """A record of a (made-up) SAXS run whose first look is in state ``status``, as the services write it."""
    uid = str(uuid.uuid4())
    folder = profile_config(stack).records_dir / PROJECT
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"09999_web_{status}_{uid[:8]}.yaml"
    workflow = (
        f"workflow_runs:\n- id: urn:sibyls:first-look:{uid}\n  workflow_code: first-look-{uid[:8]}\n"
        f"  description: '{note}'\n"
        if note
        else ""
    )
    path.write_text(
        f"id: urn:sibyls:record:{uid}\nexperiment_runs:\n- id: urn:uuid:{uid}\n  bluesky_uid: {uid}\n"
        f"  sample_code: web_{status}\n  sample_role: sample\n  exit_status: success\n"
        f"  processing_status: {status}\n{workflow}"
    )
    return uid, path


def test_a_failed_first_look_shows_its_reason_and_an_unfinished_one_says_it_is_processing(stack, open_page):
    failed, failed_path = write_record(
        stack, "failed", "first look failed: no positive point after subtraction"
    )
    busy, busy_path = write_record(stack, "processing", None)
    try:
        session = open_page("user")
        page = session.page
        page.evaluate(f"openRun('{failed}')")
        page.wait_for_selector(f"#run-view[data-uid='{failed}']")
        note = page.text_content("#run-status [data-note='failed']")
        assert "processing_status: failed" in note and "no positive point after subtraction" in note
        assert "No first-look results" not in page.text_content("#run-status")
        session.shot("failed-first-look")
        page.evaluate(f"openRun('{busy}')")
        page.wait_for_selector(f"#run-view[data-uid='{busy}']")
        assert "still processing" in page.text_content("#run-status [data-note='processing']")
    finally:
        failed_path.unlink()
        busy_path.unlink()


def test_logout_clears_the_last_persons_view_and_the_page_fits_a_narrow_window(stack, api, open_page):
    session = open_page("user")
    page = session.page
    page.set_viewport_size({"width": 800, "height": 900})
    # A console line far wider than the window wraps; the page never scrolls sideways.
    page.evaluate("showConsole({ text: 'x'.repeat(4000) + '\\n' })")
    page.select_option("#plan-select", "sec_saxs")
    page.fill("#field-sample_code", "web_" + "n" * 60)
    page.wait_for_timeout(300)  # layout settles
    assert page.evaluate("document.documentElement.scrollWidth") <= 800
    session.shot("narrow")
    if page.locator("#history-table .run-link").count():
        uid = page.locator("#history-table .run-link").first.get_attribute("data-uid")
        page.click(f"#history-table .run-link[data-uid='{uid}']")
        page.wait_for_selector(f"#run-view[data-uid='{uid}']", timeout=20000)
        assert page.evaluate("document.documentElement.scrollWidth") <= 800
        session.shot("narrow-run")
    page.click("#logout-button")
    page.wait_for_selector("#login-form:not([hidden])")
    left = page.evaluate(
        """() => ({
        runView: document.getElementById('run-view').hidden,
        record: document.getElementById('run-record').textContent,
        results: document.getElementById('run-results').childElementCount,
        history: document.querySelectorAll('#history-table tbody tr').length,
        queue: document.querySelectorAll('#queue-table tbody tr').length,
        console: document.getElementById('console').textContent,
        form: document.querySelectorAll('#plan-form [name]').length,
        who: document.getElementById('who-name').textContent,
        stored: sessionStorage.getItem('sibyls.tokens'),
      })"""
    )
    assert left == {
        "runView": True,
        "record": "",
        "results": 0,
        "history": 0,
        "queue": 0,
        "console": "",
        "form": 0,
        "who": "",
        "stored": None,
    }
