"""A project's results from the page: "Download results" fills its progress bar against the archive's
Content-Length while the zip arrives, ends at "done" and saves a zip of that project alone."""

from __future__ import annotations

import time
import zipfile
from pathlib import Path

import pytest
from stack_helpers import http, wait_until_idle

pytestmark = pytest.mark.slow

PROJECT = "LAB_B"


@pytest.fixture(scope="module")
def big_results(stack):
    """One run of LAB_B by ``user2`` and a large processed file beside it, so the archive arrives in
    many pieces (removed afterwards)."""
    from sibyls.startup.stack import http_login, manager_api

    api = manager_api(stack, timeout=10)
    api.queue_clear()
    kwargs = {"sample_code": "dl_sample", "project_code": PROJECT, "exposure_time": 0.1, "num_frames": 1}
    item = {"name": "saxs_exposure", "item_type": "plan", "kwargs": kwargs}
    reply = http(stack, "POST", "/api/queue/item/add", token=http_login(stack, "user2"), json={"item": item})
    assert reply.json()["success"], reply.json()
    api.queue_start()
    wait_until_idle(api)
    api.close()
    records = Path(stack.var_dir) / "records" / PROJECT
    deadline = time.monotonic() + 60
    while not any(records.glob("*dl_sample*.yaml")):
        assert time.monotonic() < deadline, "no record of the run"
        time.sleep(0.3)
    big = Path(stack.var_dir) / "processed" / PROJECT / "dl_big" / "large_curve.dat"
    big.parent.mkdir(parents=True, exist_ok=True)
    big.write_bytes(b"0.01 1.0 0.1\n" * 2_000_000)  # 26 MB
    yield big
    big.unlink(missing_ok=True)
    big.parent.rmdir()


def test_download_results_fills_the_progress_bar_and_saves_the_projects_zip(open_page, big_results, tmp_path):
    session = open_page("user2")
    page = session.page
    row = page.locator(f"#project-downloads li[data-project='{PROJECT}']")
    row.wait_for(timeout=30000)
    assert not page.query_selector("#project-downloads li[data-project='MY_PROJECT']")
    page.evaluate(
        """() => {
          window.seenProgress = [];
          const bar = document.querySelector("#project-downloads li[data-project='LAB_B'] progress");
          new MutationObserver(() => window.seenProgress.push([bar.value, bar.max]))
            .observe(bar, { attributes: true, attributeFilter: ["value", "max"] });
        }"""
    )
    with page.expect_download(timeout=120000) as download_info:
        row.locator("button.project-download").click()
    done = f"#project-downloads li[data-project='{PROJECT}'][data-state='done']"
    page.wait_for_selector(done, timeout=60000)
    assert row.locator(".download-note").inner_text().startswith("done:")
    value, maximum = row.locator("progress").evaluate("bar => [bar.value, bar.max]")
    assert maximum > big_results.stat().st_size and value == maximum
    seen = page.evaluate("window.seenProgress")
    partial = [v for v, m in seen if 0 < v < m]
    assert partial, f"the bar never showed a partial download: {seen}"
    assert partial == sorted(partial)
    session.shot("download-done")
    saved = tmp_path / download_info.value.suggested_filename
    download_info.value.save_as(saved)
    assert saved.name == f"{PROJECT}_results.zip"
    with zipfile.ZipFile(saved) as zipped:
        assert zipped.testzip() is None
        names = zipped.namelist()
    assert f"{PROJECT}/processed/dl_big/large_curve.dat" in names
    assert any("dl_sample" in n and "/records/" in n for n in names)
    assert all(n.startswith(f"{PROJECT}/") for n in names)
