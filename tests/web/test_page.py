"""The SIBYLS page in a real browser against the real stack: what a user, staff and an observer see and do.

Each test logs in through the page's form (bluesky-httpserver's own login) and reads what the page
shows from its pushed updates (Server-Sent Events); nothing reloads the page. Screenshots are saved
as test artefacts (see conftest). (Over 450 lines: one walk per kind of person through the same page
on one shared stack; each test reads top to bottom as a user's session.)
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from stack_helpers import csv_sheet, register_plate, wait_until_idle

pytestmark = pytest.mark.slow

PROJECT = "WEB_TEST"
#: A first-look plot (fetched with the login's token) is on screen.
PLOT_SHOWN = "() => [...document.querySelectorAll('#run-results img')].some((img) => img.naturalWidth > 0)"
#: Collects every value the progress bar takes (``window.seenProgress``) without touching the page.
WATCH_PROGRESS = """() => {
  window.seenProgress = [];
  window.pageMarker = "not reloaded";
  const bar = document.getElementById("pg-bar");
  new MutationObserver(() => window.seenProgress.push([bar.dataset.state, Number(bar.value)]))
    .observe(bar, { attributes: true });
}"""


#: Records what the progress row shows on every change (``window.seenRow``): bar state, item, queue ETA.
WATCH_ROW = """() => {
  window.seenRow = [];
  const record = () => window.seenRow.push([document.getElementById("pg-bar").dataset.state,
    document.getElementById("pg-item").textContent, document.getElementById("pg-queue-eta").textContent]);
  for (const id of ["pg-item", "pg-queue-eta", "pg-bar"]) {
    new MutationObserver(record).observe(document.getElementById(id),
      { attributes: true, childList: true, subtree: true, characterData: true });
  }
}"""


def open_run(page, uid: str) -> None:
    """Open run ``uid`` in the history's run view and wait until it is shown whole."""
    page.click(f"#history-table .run-link[data-uid='{uid}']")
    page.wait_for_selector(f"#run-view[data-uid='{uid}']", timeout=20000)


def run_start(stack, uid: str) -> dict:
    """The RunStart document of run ``uid``, from the stack's document log."""
    for path in Path(stack.var_dir, "runs").rglob(f"*_{uid[:8]}.jsonl"):
        name, doc = json.loads(path.read_text().splitlines()[0])
        assert name == "start"
        return doc
    raise AssertionError(f"no document log of run {uid}")


def test_a_user_fixes_a_bad_sample_code_inline_queues_it_and_watches_it_run_to_its_record(
    stack, api, open_page
):
    session = open_page("user")
    page = session.page
    page.select_option("#plan-select", "saxs_exposure")
    # Untouched: the dry run knows sample_code is missing, but nothing is red yet.
    page.wait_for_selector("#plan-form[data-valid='no']")
    assert page.locator("#plan-form .field.invalid").count() == 0
    # The add button follows the manager's pushed state (enabled once the page has heard it).
    page.wait_for_selector("#add-button:enabled", timeout=15000)
    assert page.text_content("#error-sample_code") == ""
    # Labels in words with units, never cut off; help texts plain, each field its own.
    assert page.text_content("label[for='field-concentration_mg_ml']") == "Concentration (mg/mL)"
    assert page.text_content("label[for='field-exposure_time']").startswith("Exposure time (s)")
    cut = page.evaluate(
        "() => [...document.querySelectorAll('#plan-form label')]"
        ".filter((l) => l.scrollWidth > l.clientWidth + 1).map((l) => l.textContent)"
    )
    assert cut == []
    helps = {
        n: page.text_content(f"#help-{n}") for n in ("sample_type", "molecular_weight_kda", "buffer_name")
    }
    assert len(set(helps.values())) == 3 and all(helps.values()), helps
    assert "`" not in page.text_content("#plan-form")
    # With sample_code still empty, a 1000 s exposure is refused at once, next to its field.
    page.fill("#field-exposure_time", "1000")
    page.wait_for_selector("#error-exposure_time:has-text('outside 0.001–60 s')")
    assert page.text_content("#error-sample_code") == ""  # not touched: not red yet
    page.focus("#field-sample_code")
    page.keyboard.press("Tab")  # visited and left empty: both problems show at once
    page.wait_for_selector("#error-sample_code:has-text('missing')")
    assert "outside" in page.text_content("#error-exposure_time") and page.is_disabled("#add-button")
    session.shot("all-problems")
    # A fresh form: trying to add shows every problem, and queues nothing.
    page.select_option("#plan-select", "temperature_series")
    page.select_option("#plan-select", "saxs_exposure")
    page.wait_for_selector("#plan-form[data-valid='no']")
    assert page.locator("#plan-form .field.invalid").count() == 0
    page.click("#add-button")
    page.wait_for_selector("#error-project_code:has-text('missing')")
    assert page.locator("#plan-form .field.invalid").count() == 2
    assert page.evaluate("document.activeElement.id") == "field-sample_code"
    assert api.queue_get(reload=True)["items"] == []
    page.fill("#field-sample_code", "bad code!")
    page.fill("#field-project_code", PROJECT)
    page.fill("#field-exposure_time", "5")
    page.fill("#field-num_frames", "20")
    page.wait_for_selector("#error-sample_code:has-text('must start with')")
    page.wait_for_selector("#plan-form[data-valid='no']")
    error = page.text_content("#error-sample_code")
    assert "'bad code!' must start with a letter or digit" in error
    assert page.is_disabled("#add-button")
    session.shot("bad-code")
    assert api.queue_get(reload=True)["items"] == []  # the dry run queued nothing

    page.fill("#field-sample_code", "web_lyso_1")
    page.wait_for_selector("#plan-form[data-valid='yes']")
    assert page.text_content("#error-sample_code") == ""
    page.click("#add-button")
    page.wait_for_selector("#queue-table td.label:text('web_lyso_1')")
    (queued,) = api.queue_get(reload=True)["items"]
    assert queued["user"] == "user" and queued["kwargs"]["sample_code"] == "web_lyso_1"

    page.evaluate(WATCH_PROGRESS)
    page.click("#queue-start")
    page.wait_for_function(
        "() => document.getElementById('pg-bar').dataset.state === 'running'", timeout=20000
    )
    page.wait_for_selector("#pg-frames:text-matches('frame [1-9][0-9]*/20')", timeout=20000)
    session.shot("running")
    page.wait_for_function(
        "() => document.getElementById('pg-bar').dataset.state === 'finished' "
        "&& document.getElementById('pg-bar').value === 1",
        timeout=60000,
    )
    assert page.evaluate("window.pageMarker") == "not reloaded"
    running = [value for state, value in page.evaluate("window.seenProgress") if state == "running"]
    assert any(0 < value < 1 for value in running), running
    assert running == sorted(running)  # the bar only moves forward
    assert page.text_content("#pg-frames") == "frame 20/20"
    assert page.text_content("#pg-item") == "done: saxs_exposure web_lyso_1 (success)"

    page.wait_for_selector("#history-table .run-link", timeout=20000)
    assert page.text_content("#history-table td.exit-completed") == "completed"
    uid = page.get_attribute("#history-table .run-link", "data-uid")
    assert run_start(stack, uid)["submitted_by"] == "user"  # the person who logged in, not a key
    open_run(page, uid)
    assert "web_lyso_1" in page.text_content("#run-title") and uid in page.text_content("#run-record")
    # No buffer was given: the page says why there is no subtracted curve.
    assert "without a buffer" in page.text_content("#run-status [data-note='no-buffer']")
    # Single files are folded away; one "download all" takes everything of the run.
    frames = page.locator("#run-files .file-link[data-kind='frames']")
    assert frames.count() == 20 and frames.first.is_hidden()
    page.click("#run-files details.files summary")
    with page.expect_download() as download:
        frames.first.click()
    assert download.value.suggested_filename == "web_lyso_1_00001.h5"
    with page.expect_download(timeout=60000) as everything:
        page.click("#run-files .download-all")
    assert everything.value.suggested_filename.endswith(f"_web_lyso_1_{uid[:8]}.zip")
    names = zipfile.ZipFile(everything.value.path()).namelist()
    stem = everything.value.suggested_filename.removesuffix(".zip")
    assert f"{stem}/{stem}.yaml" in names
    assert sum(n.startswith(f"{stem}/frames/web_lyso_1_") for n in names) == 20
    details = page.evaluate(f"() => apiJSON('GET', '/api/sibyls/runs/{uid}').then((r) => r.data)")
    own = {Path(f["path"]).name for f in details["files"]} | {Path(details["record_path"]).name}
    own |= {Path(f["path"]).name for f in (details["results"] or {}).get("images", [])}
    assert {Path(n).name for n in names} <= own  # nothing but the run's own files
    with page.expect_download(timeout=60000) as export:
        page.click("#run-files .export-link[data-format='csv']")
    assert export.value.suggested_filename == f"{stem}_csv.zip"  # one CSV per stream
    assert f"{stem}_primary.csv" in zipfile.ZipFile(export.value.path()).namelist()
    session.shot("history-record")


def well_rows(plate_id: str, bad_well: str | None = None) -> list[dict]:
    """Four buffer/sample pairs (A1..A8); ``bad_well`` gets a sample code the rules refuse."""
    rows = []
    for pair in range(4):
        buffer_well, sample_well = f"A{2 * pair + 1}", f"A{2 * pair + 2}"
        common = {"plate_id": plate_id, "project_code": PROJECT, "exposure_time": 1.0, "num_frames": 3}
        rows.append(
            {
                **common,
                "well": buffer_well,
                "sample_code": f"{plate_id}_{buffer_well}",
                "sample_role": "buffer_blank",
            }
        )
        rows.append(
            {
                **common,
                "well": sample_well,
                "sample_code": f"{plate_id}_{sample_well}",
                "sample_role": "sample",
                "buffer_well": buffer_well,
                "concentration_mg_ml": 2.0,
                "sample_type": "protein",
            }
        )
    for row in rows:
        if row["well"] == bad_well:
            row["sample_code"] = "bad code!"
    return rows


def upload(page, name: str, rows: list[dict]) -> None:
    page.set_input_files(
        "#sheet-file", files=[{"name": name, "mimeType": "text/csv", "buffer": csv_sheet(rows)}]
    )


def test_an_8_well_sheet_with_one_bad_well_shows_it_on_the_map_and_queues_nothing_then_runs_fixed(
    stack, api, open_page
):
    plate_id = "WEBPLATE1"
    register_plate(stack, plate_id, {f"A{i}": "buffer" if i % 2 else "sample" for i in range(1, 9)})
    session = open_page("user")
    page = session.page
    upload(page, "bad.csv", well_rows(plate_id, bad_well="A4"))
    page.wait_for_selector("#plate-section[data-valid='no']")
    assert page.locator("#plate-map .well.bad").count() == 1
    bad = page.locator("#plate-map .well[data-well='A4']")
    assert "bad" in bad.get_attribute("class") and "role-sample" in bad.get_attribute("class")
    assert "must start with a letter or digit" in bad.get_attribute("title")
    assert "A4: column sample_code" in page.text_content("#sheet-problems")
    assert page.locator("#plate-map .well.role-buffer_blank").count() == 4
    assert page.is_disabled("#sheet-submit")
    session.shot("bad-sheet")
    assert api.queue_get(reload=True)["items"] == []

    upload(page, "fixed.csv", well_rows(plate_id))
    page.wait_for_selector("#plate-section[data-valid='yes']")
    assert page.locator("#plate-map .well.bad").count() == 0
    page.click("#sheet-submit")
    page.wait_for_selector("#sheet-msg[data-ok='yes']")
    (item,) = api.queue_get(reload=True)["items"]
    assert item["name"] == "ht_plate" and len(item["kwargs"]["plate"]["wells"]) == 8
    page.evaluate(WATCH_ROW)
    page.click("#queue-start")
    page.wait_for_selector("#pg-wells:text-matches('well [2-8]/8')", timeout=60000)
    session.shot("plate-running")
    wait_until_idle(api, timeout=180)
    page.wait_for_selector("#pg-item:text-matches('^done: ht_plate')", timeout=20000)
    seen = page.evaluate("window.seenRow")
    running = [i for i, (state, _, _) in enumerate(seen) if state == "running"]
    assert running, seen
    # Between wells the row keeps the plate (no "done: ..." per well) and the queue ETA never blanks.
    # (Rows before the plate's first "running" belong to whatever the shared stack ran before it.)
    assert not [row for row in seen[running[0] : running[-1]] if row[1].startswith("done:")], seen
    assert not [row for row in seen[running[0] : running[-1] + 1] if row[2] == "–"], seen
    page.wait_for_selector("#history-table tr:has(.run-link[data-uid]) >> nth=0")
    runs = page.locator("#history-table tr").filter(has_text=f"plate {plate_id}").locator(".run-link")
    assert runs.count() == 8
    for index in (1, 3, 5, 7):  # each sample's run (A2, A4, A6, A8): its first-look results appear
        deadline = time.monotonic() + 60  # the results layer adds them to the record after the run
        uid = runs.nth(index).get_attribute("data-uid")
        while True:
            open_run(page, uid)
            try:
                page.wait_for_function(PLOT_SHOWN, timeout=3000)
                break
            except PlaywrightTimeout:
                assert time.monotonic() < deadline, f"no first-look results for run {uid}"
        assert f"{plate_id}_A{index + 1}" in page.text_content("#run-record")
        assert_results_table(page)
        if index == 1:
            session.shot("plate-results")
            check_plots_enlarge(page)
            check_plate_run_downloads(page, plate_id)
    open_run(page, runs.nth(0).get_attribute("data-uid"))  # a buffer: no first look of its own
    assert "A buffer" in page.text_content("#run-status [data-note='buffer']")
    assert page.locator("#run-results table.metrics tr[data-key='rg']").count() == 0
    assert page.locator("#run-files .file-link[data-kind='frames']").count() >= 1
    session.shot("plate-history")


def assert_results_table(page) -> None:
    """The first look as a table: Rg and I(0) with σ, MW, flags in words, Guinier range, units in words."""
    rows = dict(
        zip(
            page.locator("#run-results table.metrics th").all_text_contents(),
            page.locator("#run-results table.metrics td").all_text_contents(),
            strict=True,
        )
    )
    assert rows["Rg (Guinier)"].endswith(" Å") and " ± " in rows["Rg (Guinier)"], rows
    assert " ± " in rows["I(0) (Guinier)"] and "arbitrary units" in rows["I(0) (Guinier)"], rows
    assert any(label.startswith("MW (") and " kDa" in value for label, value in rows.items()), rows
    assert " Å⁻¹" in rows["Guinier range (q)"] and " – " in rows["Guinier range (q·Rg)"], rows
    assert "Flags" in rows and "-" not in rows["Flags"].split(":")[0], rows  # words, not flag keys
    assert "Angstroms" not in str(rows) and "i_zero" not in str(rows)
    # P(r) and the consensus MW by name, never a record key turned into words ("Pr rg", "MW (kda)")
    assert rows["Rg (P(r), BIFT)"].endswith(" Å") and rows["Dmax"].endswith(" Å"), rows
    assert rows["MW (consensus)"].split(" (")[0].endswith(" kDa"), rows
    raw_endings = (" a3", " kda", " sigma", " a")
    raw = [label for label in rows if label.startswith("Pr ") or label.lower().endswith(raw_endings)]
    assert not raw and "MW (kda)" not in rows and "MW (sigma)" not in rows, raw


def check_plots_enlarge(page) -> None:
    """A plot opens large in a dialog, reachable by keyboard; Esc closes it."""
    small = page.locator("#run-results button.plot").first
    small.focus()
    page.keyboard.press("Enter")
    dialog = page.locator("#plot-dialog")
    dialog.wait_for(state="visible")
    assert page.evaluate("document.getElementById('plot-dialog').open")
    assert page.evaluate("document.getElementById('plot-large').naturalWidth") > 0
    shown = page.evaluate("document.getElementById('plot-large').getBoundingClientRect().width")
    assert shown > page.evaluate(
        "document.querySelector('#run-results button.plot img').getBoundingClientRect().width"
    )
    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")


def check_plate_run_downloads(page, plate_id: str) -> None:
    """A plate run links its plate's summary; NXcanSAS comes as .h5, or the reason it cannot."""
    with page.expect_download(timeout=30000) as summary:
        page.click(f"#run-files .summary-link[data-name='plate_{plate_id}_summary.html']")
    assert summary.value.suggested_filename == f"plate_{plate_id}_summary.html"
    assert b"<html" in Path(summary.value.path()).read_bytes()[:2000].lower()
    try:
        with page.expect_download(timeout=60000) as export:
            page.click("#run-files .export-link[data-format='nxcansas']")
        assert export.value.suggested_filename.endswith(".h5")
    except PlaywrightTimeout:  # refused: the page says why, not just a status number
        message = page.text_content("#run-msg")
        assert "nxcansas" in message and not message.rstrip().split(": ")[-1].isdigit(), message


def test_a_user_sees_no_abort_and_is_refused_it_staff_pause_and_abort_from_the_page(
    stack, api, open_page, token
):
    user = open_page("user")
    for control in ("#re-abort", "#re-pause", "#re-stop", "#re-resume"):
        assert user.page.locator(control).is_hidden()
    assert user.page.locator("#queue-start").is_visible()
    refused = httpx.post(
        f"{stack.http_url}/api/re/abort", headers={"Authorization": f"Bearer {token('user')}"}
    )
    assert refused.status_code == 403 and "write:plan:control" in refused.json()["detail"]
    user.shot("no-abort")

    staff = open_page("staff")
    page = staff.page
    assert page.locator("#re-abort").is_visible() and page.locator("#re-pause").is_visible()
    page.select_option("#plan-select", "saxs_exposure")
    page.fill("#field-sample_code", "web_long_1")
    page.fill("#field-project_code", PROJECT)
    page.fill("#field-exposure_time", "20")
    page.fill("#field-num_frames", "200")
    page.wait_for_selector("#plan-form[data-valid='yes']")
    # Idle with an empty queue: nothing to start, pause, resume, stop or abort.
    assert enabled_controls(page) == set()
    page.click("#add-button")
    page.wait_for_selector("#queue-table td.label:text('web_long_1')")
    page.wait_for_function("() => !document.getElementById('queue-start').disabled")
    assert enabled_controls(page) == {"queue-start"}
    page.click("#queue-start")
    page.wait_for_selector("#st-re:text('running')", timeout=20000)
    page.wait_for_function("() => !document.getElementById('re-pause').disabled")
    assert enabled_controls(page) == {"queue-stop", "re-pause"}
    page.click("#re-pause")
    page.wait_for_selector("#st-re:text('paused')", timeout=20000)
    # Paused shows: the status bar says so, the queue row says "paused", only paused controls act.
    page.wait_for_selector("#st-paused:visible")
    page.wait_for_selector("#queue-table tr.running .run-state:text('paused')")
    page.wait_for_function("() => !document.getElementById('re-abort').disabled")
    assert {"re-resume", "re-stop", "re-abort"} <= enabled_controls(page)
    assert "re-pause" not in enabled_controls(page) and "queue-start" not in enabled_controls(page)
    staff.shot("paused")
    # The user's page sees the pause too, pushed (no reload, no polling).
    user.page.wait_for_selector("#st-re:text('paused')", timeout=10000)
    user.page.wait_for_selector("#st-paused:visible")
    # Abort asks first; "Cancel" (or Esc) leaves the plan paused.
    page.click("#re-abort")
    page.wait_for_selector("#confirm-dialog[open]")
    staff.shot("abort-confirm")
    page.keyboard.press("Escape")
    page.wait_for_selector("#confirm-dialog:not([open])", state="attached")
    assert api.status()["re_state"] == "paused"
    page.click("#re-abort")
    page.click("#confirm-yes")
    page.wait_for_selector("#history-table td.exit-aborted", timeout=20000)
    wait_until_idle(api, timeout=30)
    assert api.history_get(reload=True)["items"][-1]["result"]["exit_status"] == "aborted"
    assert page.locator("#history-table tr.not-completed td.exit-aborted").count() >= 1  # marked, not hidden
    page.wait_for_selector("#st-paused", state="hidden")
    staff.shot("aborted")


def enabled_controls(page) -> set[str]:
    """Ids of the queue/plan controls that are visible and enabled now."""
    return set(
        page.evaluate(
            "() => [...document.querySelectorAll('#controls button')]"
            ".filter((b) => !b.disabled && !b.hidden).map((b) => b.id)"
        )
    )


def test_an_observer_reads_everything_and_can_add_nothing(stack, api, open_page, token):
    session = open_page("observer")
    page = session.page
    for section in ("#add-section", "#plate-section", "#queue-start", "#re-abort"):
        assert page.locator(section).is_hidden()
    assert page.locator("#history-table").is_visible() and page.text_content("#st-manager") == "idle"
    item = {
        "name": "saxs_exposure",
        "item_type": "plan",
        "kwargs": {"sample_code": "obs", "project_code": PROJECT},
    }
    added = httpx.post(
        f"{stack.http_url}/api/queue/item/add",
        json={"item": item},
        headers={"Authorization": f"Bearer {token('observer')}"},
    )
    assert added.status_code == 403
    sheet = {"spreadsheet": ("plate.csv", io.BytesIO(csv_sheet(well_rows("WEBPLATE1"))), "text/csv")}
    uploaded = httpx.post(
        f"{stack.http_url}/api/queue/upload/spreadsheet",
        files=sheet,
        headers={"Authorization": f"Bearer {token('observer')}"},
    )
    assert uploaded.status_code == 403
    assert api.queue_get(reload=True)["items"] == []
    session.shot("observer")


def test_a_user_gets_no_edit_controls_on_another_persons_item(stack, api, open_page, token):
    staff_item = {
        "name": "saxs_exposure",
        "item_type": "plan",
        "kwargs": {"sample_code": "staffs_own", "project_code": PROJECT},
    }
    headers = {"Authorization": f"Bearer {token('staff')}"}
    assert httpx.post(
        f"{stack.http_url}/api/queue/item/add", json={"item": staff_item}, headers=headers
    ).json()["success"]
    session = open_page("user")
    row = session.page.locator("#queue-table tr:has(td.label:text('staffs_own'))")
    row.wait_for()
    assert row.locator("button.edit").count() == 0 and row.locator("button.remove").count() == 0
    assert row.locator("button.duplicate").count() == 1  # anyone who may queue may copy it as their own
    row.locator("button.duplicate").click()
    session.page.wait_for_function("() => document.querySelectorAll('#queue-table td.label').length === 2")
    items = api.queue_get(reload=True)["items"]
    assert [(i["kwargs"]["sample_code"], i["user"]) for i in items] == [
        ("staffs_own", "staff"),
        ("staffs_own", "user"),
    ]
    own = session.page.locator("#queue-table tr").nth(2)
    assert own.locator("button.remove").count() == 1
    own.locator("button.remove").click()
    session.page.wait_for_function("() => document.querySelectorAll('#queue-table td.label').length === 1")
    assert [i["user"] for i in api.queue_get(reload=True)["items"]] == ["staff"]
    api.queue_clear()


def test_a_user_edits_their_own_item_in_the_page_and_an_expired_token_is_refreshed(stack, api, open_page):
    session = open_page("user")
    page = session.page
    page.select_option("#plan-select", "saxs_exposure")
    page.fill("#field-sample_code", "web_edit_1")
    page.fill("#field-project_code", PROJECT)
    page.wait_for_selector("#plan-form[data-valid='yes']")
    page.click("#add-button")
    row = page.locator("#queue-table tr:has(td.label:text('web_edit_1'))")
    row.wait_for()
    row.locator("button.edit").click()
    assert page.input_value("#field-sample_code") == "web_edit_1"
    # The access token goes bad (as when it expires): the page refreshes it with the session's refresh
    # token, as httpserver does it, and carries on.
    page.evaluate("() => { auth.access = 'expired.or.revoked'; }")
    page.fill("#field-num_frames", "70000")
    page.wait_for_selector("#error-num_frames:has-text('outside')")
    assert page.is_disabled("#save-button")
    page.fill("#field-num_frames", "7")
    page.wait_for_selector("#plan-form[data-valid='yes']")
    page.click("#save-button")
    page.wait_for_selector("#add-msg:text('saved')")
    (item,) = api.queue_get(reload=True)["items"]
    assert item["kwargs"]["num_frames"] == 7 and item["user"] == "user"
    assert page.evaluate("() => auth.access") != "expired.or.revoked"
    session.shot("edited")
    api.queue_clear()
