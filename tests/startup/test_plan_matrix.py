"""Every queue plan × every consumer of its run, against one real stack (issue 19).

One stack (``sibyls up`` in a temporary folder, time scale 50, binned frames) runs each queue plan
once with short exposures and a small plate; then, per plan, each consumer reads the run: the record
(valid against lambda-ber + the extension), the first look (results, or the record's explicit "not
applicable: why"), every export format through the ``sibyls export`` function, ``sibyls process``,
``sibyls records-from-runs``, ``sibyls replay-record``, the run read back from Tiled, and over HTTP
as the ``staff`` account the run's record, each export the page offers and the run's zip; last, one
browser session opens every plan's run view on the page. Every cell either works or answers a clear,
named refusal — never a traceback, a 404/500 for a run that exists, or silence.

Hook for more consumers: the module fixture ``plan_runs`` maps each plan name to the uid of the run it
made (``ht_plate``: its sample well); ``matrix_stack`` is the stack. Add a test parametrised over
``PLANS`` that takes both.
"""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path

import pytest
import yaml
from bluesky_queueserver_api import BPlan
from browser_helpers import PageSession, chromium
from stack_helpers import ca_environment, http, register_plate, wait_until_idle

from sibyls.startup.cli import main as sibyls
from sibyls.startup.http.extensions import PAGE_EXPORTS
from sibyls.startup.stack import http_login, manager_api, profile_config
from sibyls.startup.stack.soak import SEC_RUN

pytestmark = pytest.mark.slow

PROJECT = "MATRIX"
PLATE = "MTX_PLATE"
SAXS = dict(exposure_time=0.2, num_frames=3)

#: Each queue plan once, as a user would queue it (short exposures, few points).
PLANS: dict[str, BPlan] = {
    "saxs_exposure": BPlan("saxs_exposure", "mx_cell", PROJECT, concentration_mg_ml=2.0, **SAXS),
    # before the plate: the robot's wells replace what is in the cell
    "temperature_series": BPlan(
        "temperature_series",
        "mx_temp",
        PROJECT,
        temperatures=[20.0, 22.0],
        equilibration_time=0.0,
        concentration_mg_ml=2.0,
        **SAXS,
    ),  # fmt: skip
    "ht_plate": BPlan(
        "ht_plate",
        {
            "plate_id": PLATE,
            "wells": [
                {"well": "A1", "sample_code": f"{PLATE}_A1", "sample_role": "buffer_blank", **SAXS},
                {
                    "well": "A2",
                    "sample_code": f"{PLATE}_A2",
                    "buffer_well": "A1",
                    "concentration_mg_ml": 2.0,
                    **SAXS,
                },
            ],
        },
        PROJECT,
    ),  # fmt: skip
    "sec_saxs": BPlan("sec_saxs", "mx_sec", PROJECT, **SEC_RUN),  # the soak's: keeps pace with the HPLC
    "align_beamstop": BPlan("align_beamstop", "mx_bs", PROJECT, "x", points=7, nscans=1, count_time=0.05),
    "align_sample_stage": BPlan("align_sample_stage", "mx_align", PROJECT, "x", points=7, count_time=0.05),
    "alignment_grid_scan": BPlan(
        "alignment_grid_scan", "mx_grid", PROJECT, num_x=3, num_y=3, count_time=0.05
    ),
    "count": BPlan("count", ["pilatus", "i0", "bs_diode"], "mx_count", PROJECT, num=2),
    "scan": BPlan("scan", ["i0", "bs_diode"], "sample_stage.x", -0.5, 0.5, 3, "mx_scan", PROJECT),
    "rel_scan": BPlan("rel_scan", ["bs_diode"], "beamstop.x", -0.2, 0.2, 3, "mx_rel", PROJECT),
    "list_scan": BPlan("list_scan", ["i0"], "sample_stage.y", [0.0, 0.3, 0.1], "mx_list", PROJECT),
    "grid_scan": BPlan(
        "grid_scan",
        ["i0"],
        "sample_stage.x",
        -0.2,
        0.2,
        2,
        "sample_stage.y",
        -0.2,
        0.2,
        2,
        "mx_gridscan",
        PROJECT,
    ),  # fmt: skip
}
#: Plans whose runs get a first look (the others: "not applicable: why" in the record).
FIRST_LOOK = {"saxs_exposure", "ht_plate", "sec_saxs", "temperature_series"}
#: Why a plan's run has no I(q) to export as NXcanSAS or PNG: the refusal its user reads (a count
#: reads the detector with the shutter closed: frames, but no beam to normalise them by).
NO_IQ = {plan: "recorded no detector frames" for plan in PLANS if plan not in FIRST_LOOK | {"count"}}
NO_IQ["count"] = "no beam to normalise by"
#: The RunStart's plan_name where it is not the queue plan's name (apstools' lineup2 names its runs).
RUN_PLAN_NAME = {"align_beamstop": "alignment", "align_sample_stage": "alignment"}
EXPORT_FORMATS = ("nxcansas", "csv", "json", "spec", "png")


@pytest.fixture(scope="module")
def matrix_stack(stack):
    """The session's stack (time scale 50, frames binned 8x8); this module's runs are project MATRIX."""
    return stack


def _inject_sec_sample(stack) -> None:
    from caproto.sync.client import write

    from sibyls.devices.sim.samples import catalogue_sample

    vial = catalogue_sample("lysozyme", sample_code="mx_sec", concentration_mg_ml=5.0)
    with ca_environment(stack):
        write(f"{stack.ioc_prefix}SEC:InjectSample", vial.model_dump_json(exclude_none=True).encode(),
              notify=True, timeout=5, repeater=False)  # fmt: skip


def _put_in_cell(stack, sample: dict) -> None:
    import json

    from caproto.sync.client import write

    with ca_environment(stack):
        write(f"{stack.ioc_prefix}Sim:CellSample", json.dumps(sample).encode(), notify=True, timeout=5,
              repeater=False)  # fmt: skip


def _records_by_uid(stack) -> dict[str, Path]:
    folder = profile_config(stack).records_dir / PROJECT
    found = {}
    for path in folder.glob("*.yaml"):
        run = yaml.safe_load(path.read_text())["experiment_runs"][0]
        found[run["bluesky_uid"]] = path
    return found


def _status(path: Path) -> str | None:
    return yaml.safe_load(path.read_text())["experiment_runs"][0].get("processing_status")


class PlanRuns(dict):
    """Plan name → its run (uid, or record file); a plan that failed or never ran is kept in
    ``failures`` with the manager's words, and asking for its run fails that one cell with them."""

    def __init__(self, entries: dict | None = None, failures: dict[str, str] | None = None) -> None:
        super().__init__(entries or {})
        self.failures: dict[str, str] = {} if failures is None else failures

    def __missing__(self, name: str):
        if name in self.failures:
            pytest.fail(f"{name} made no run to check: {self.failures[name]}", pytrace=False)
        raise KeyError(name)


@pytest.fixture(scope="module")
def plan_runs(matrix_stack) -> PlanRuns:
    """Every plan of :data:`PLANS` run once through the queue: plan name → its run's uid (the sample
    well for ``ht_plate``; the last run of plans that make several). Also ``"plate_buffer"``: the
    plate's buffer well. Returns once every record has its first look (or its "not applicable")."""
    stack = matrix_stack
    register_plate(stack, PLATE, {"A1": "buffer", "A2": "sample"})
    _inject_sec_sample(stack)
    _put_in_cell(stack, {"sample_code": "mx_cell", "kind": "sample", "rg_a": 20.0, "concentration_mg_ml": 2.0,
                         "mw_kda": 50.0})  # fmt: skip
    time.sleep(1.5)  # the simulated robot re-reads the plate registry every second
    api = manager_api(stack, timeout=10)
    item_uids: dict[str, str] = {}
    try:
        api.queue_clear()
        for name, item in PLANS.items():
            added = api.item_add(item)
            assert added["success"], f"{name}: {added['msg']}"
            item_uids[name] = added["item"]["item_uid"]
        # A failed plan stops the queue (queueserver's rule): start it again for the plans after it,
        # so one failure fails only its own plan's cells.
        for _ in PLANS:
            api.queue_start()
            wait_until_idle(api, timeout=300)
            if not api.queue_get()["items"]:
                break
        history = {item["item_uid"]: item for item in api.history_get()["items"]}
    finally:
        api.close()
    runs = PlanRuns()
    for name, item_uid in item_uids.items():
        item = history.get(item_uid)
        result = item["result"] if item else {"exit_status": "never run", "msg": "not in the history"}
        if result["exit_status"] != "completed" or not result.get("run_uids"):
            runs.failures[name] = f"{result['exit_status']}: {result.get('msg') or 'no run made'}"
            continue
        runs[name] = result["run_uids"][-1]
        if name == "ht_plate":
            runs["plate_buffer"] = result["run_uids"][0]
    deadline = time.monotonic() + 120
    settled = {"completed", "failed", "raw"}
    while time.monotonic() < deadline:
        records = _records_by_uid(stack)
        if all(uid in records and _status(records[uid]) in settled for uid in runs.values()):
            break
        time.sleep(0.5)
    return runs


@pytest.fixture(scope="module")
def records(matrix_stack, plan_runs) -> dict[str, Path]:
    """Plan name → its run's record file."""
    by_uid = _records_by_uid(matrix_stack)
    missing = [name for name, uid in plan_runs.items() if uid not in by_uid]
    assert not missing, f"no record for {missing}"
    return PlanRuns({name: by_uid[uid] for name, uid in plan_runs.items()}, plan_runs.failures)


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    """``sibyls <args>`` in this process: exit status, stdout, stderr."""
    capsys.readouterr()
    code = sibyls(list(args))
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    return code, out.out, out.err


def _runs_dir(stack) -> str:
    return str(profile_config(stack).var_dir / "runs")


@pytest.mark.parametrize("plan", PLANS)
def test_record_validates(plan, records, extended_validator):
    record = yaml.safe_load(records[plan].read_text())
    assert extended_validator.validate(record) == []
    assert record["experiment_runs"][0]["exit_status"] == "success"


@pytest.mark.parametrize("plan", PLANS)
def test_first_look_or_not_applicable(plan, records):
    record = yaml.safe_load(records[plan].read_text())
    run = record["experiment_runs"][0]
    workflows = [w for w in record.get("workflow_runs") or [] if w["id"].startswith("urn:sibyls:first-look:")]
    assert len(workflows) == 1, f"{plan}: no first-look entry (status {run.get('processing_status')})"
    (workflow,) = workflows
    if plan not in FIRST_LOOK:
        assert run["processing_status"] == "raw"
        assert workflow["description"].startswith(
            f"first look not applicable to {RUN_PLAN_NAME.get(plan, plan)}: "
        )
        kind = "an alignment scan" if plan.startswith("align") else "a standard scan or count"
        assert kind in workflow["description"]
        return
    assert run["processing_status"] == "completed", workflow.get("description")
    assert run["saxs_results"]["frames_total"] >= 1
    if plan in ("saxs_exposure", "ht_plate", "temperature_series"):
        assert run["quality_metrics"]["rg"]["numeric_value"] > 0
    else:  # a three-minute SEC method (3 mL): the sample has not eluted yet; the record says what was found
        assert "rg" in (run.get("quality_metrics") or {}) or workflow.get("description")


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
@pytest.mark.parametrize("plan", PLANS)
def test_export(plan, fmt, matrix_stack, plan_runs, tmp_path, capsys):
    uid = plan_runs[plan]
    code, out, err = _cli(capsys, "export", "--runs-dir", _runs_dir(matrix_stack), "--uid", uid,
                          "--format", fmt, "--out", str(tmp_path))  # fmt: skip
    if fmt in ("nxcansas", "png") and plan in NO_IQ:
        assert code == 1 and not out
        assert f"({uid[:8]}): {fmt} not exported: " in err and NO_IQ[plan] in err
        return
    assert code == 0, err
    written = [Path(line) for line in out.splitlines()]
    assert written and all(p.is_file() and p.stat().st_size > 0 for p in written)
    if fmt == "nxcansas":
        (path,) = written
        assert path.suffix == ".h5"
        from sasdata.dataloader.loader import Loader

        (loaded,) = Loader().load(str(path))
        assert len(loaded.x) > 10


@pytest.mark.parametrize("plan", PLANS)
def test_sibyls_process(plan, matrix_stack, plan_runs, records, capsys, extended_validator):
    uid = plan_runs[plan]
    var_dir = str(profile_config(matrix_stack).var_dir)
    code, out, err = _cli(capsys, "process", "--runs-dir", _runs_dir(matrix_stack), "--uid", uid,
                          "--var-dir", var_dir)  # fmt: skip
    assert code == 0, err
    if plan in FIRST_LOOK:
        assert str(records[plan]) in out
    else:
        assert f"({uid[:8]}): first look not applicable to {RUN_PLAN_NAME.get(plan, plan)}: " in out
    assert extended_validator.validate(yaml.safe_load(records[plan].read_text())) == []


def test_sibyls_process_with_the_buffer_of_a_plate_well(matrix_stack, plan_runs, records, capsys):
    """The issue's case: a cell sample subtracted with a plate well's buffer (other cell, other run)."""
    var_dir = str(profile_config(matrix_stack).var_dir)
    code, out, err = _cli(capsys, "process", "--runs-dir", _runs_dir(matrix_stack), "--uid",
                          plan_runs["saxs_exposure"], "--buffer-uid", plan_runs["plate_buffer"],
                          "--var-dir", var_dir)  # fmt: skip
    assert code == 0, err
    run = yaml.safe_load(records["saxs_exposure"].read_text())["experiment_runs"][0]
    assert run["processing_status"] == "completed"
    assert run["saxs_results"].get("buffer_run_uid") == plan_runs["plate_buffer"] or "no-buffer" in run[
        "saxs_results"
    ].get("flags", [])


@pytest.mark.parametrize("plan", PLANS)
def test_records_from_runs(plan, matrix_stack, plan_runs, tmp_path, capsys, extended_validator):
    code, out, err = _cli(capsys, "records-from-runs", "--runs-dir", _runs_dir(matrix_stack), "--uid",
                          plan_runs[plan], "--records", str(tmp_path))  # fmt: skip
    assert code == 0, err
    (path,) = [Path(line) for line in out.splitlines()]
    assert extended_validator.validate(yaml.safe_load(path.read_text())) == []


@pytest.mark.parametrize("plan", PLANS)
def test_replay_record(plan, records, tmp_path, capsys):
    code, out, err = _cli(
        capsys, "replay-record", str(records[plan]), "--out", str(tmp_path / "replayed.jsonl")
    )
    assert code == 0, err
    assert (tmp_path / "replayed.jsonl").stat().st_size > 0 and "valid documents replayed" in err


@pytest.mark.parametrize("plan", PLANS)
def test_tiled_read_back(plan, matrix_stack, plan_runs):
    from sibyls.metadata.runs.sources import FolderRunSource, RunNotFoundError, TiledRunSource

    uid = plan_runs[plan]
    config = profile_config(matrix_stack)
    stored = FolderRunSource(_runs_dir(matrix_stack)).load(uid)
    tiled = TiledRunSource(matrix_stack.tiled_url, api_key=config.tiled_api_key())
    # The worker stores runs in Tiled off the RunEngine's thread, in order: on the session's stack an
    # earlier module's long SEC run (a request per frame) may still be ahead of this one.
    deadline = time.monotonic() + 240
    while True:
        try:
            from_tiled = tiled.load(uid)
            if from_tiled.stop is not None:
                break
        except RunNotFoundError:
            pass
        assert time.monotonic() < deadline, f"{plan}: run {uid} not in Tiled within 240 s"
        time.sleep(1.0)
    assert from_tiled.start["uid"] == uid and from_tiled.stop["exit_status"] == "success"
    assert {n: len(s) for n, s in from_tiled.streams.items()} == {
        n: len(s) for n, s in stored.streams.items()
    }
    assert len(from_tiled.frame_files) == len(stored.frame_files)


def test_project_export_writes_every_run_it_can_and_names_the_others(
    matrix_stack, plan_runs, tmp_path, capsys
):
    """``sibyls export --project``: plate wells and all; the runs without frames are refused by name."""
    code, out, err = _cli(capsys, "export", "--runs-dir", _runs_dir(matrix_stack), "--project", PROJECT,
                          "--format", *EXPORT_FORMATS, "--out", str(tmp_path))  # fmt: skip
    written = {Path(line) for line in out.splitlines()}
    assert written and all(p.is_file() for p in written)
    for plan in FIRST_LOOK:
        uid8 = plan_runs[plan][:8]
        assert any(p.name.endswith(f"{uid8}.h5") for p in written), plan
        assert any(p.name.endswith(f"{uid8}_Iq.png") for p in written), plan
    refused = [line for line in err.splitlines() if line.startswith("not exported: ")]
    for plan, reason in NO_IQ.items():
        uid8 = plan_runs[plan][:8]
        assert any(f"({uid8}): nxcansas not exported" in line and reason in line for line in refused), plan
    assert len(refused) == 2 * len(NO_IQ)  # NXcanSAS and PNG of each, nothing else
    assert code == 1


# ---- over HTTP, as the page asks (staff see every project) ----------------------------------------


def _as_staff(stack, path: str):
    """``GET path`` with a fresh ``staff`` login (a token lasts 15 minutes; this module runs longer)."""
    return http(stack, "GET", path, token=http_login(stack, "staff"))


def _attachment_name(response) -> str:
    disposition = response.headers.get("content-disposition", "")
    assert "filename=" in disposition, disposition
    return disposition.split("filename=", 1)[1].strip('"')


@pytest.mark.parametrize("plan", PLANS)
def test_http_run_record(plan, matrix_stack, plan_runs, records):
    uid = plan_runs[plan]
    response = _as_staff(matrix_stack, f"/api/sibyls/runs/{uid}")
    assert response.status_code == 200, response.text
    details = response.json()
    assert details["uid"] == uid and details["record_name"] == records[plan].name
    assert details["experiment_run"]["processing_status"] == _status(records[plan])
    assert details["exports"] == list(PAGE_EXPORTS)
    if plan not in FIRST_LOOK:
        assert details["first_look_note"].startswith("first look not applicable to ")


@pytest.mark.parametrize("fmt", PAGE_EXPORTS)
@pytest.mark.parametrize("plan", PLANS)
def test_http_export(plan, fmt, matrix_stack, plan_runs, records, tmp_path):
    """What the page's export button gets is what ``sibyls export`` writes: one file as itself, several
    (CSV: one per stream) in one zip; a run without I(q) is refused (422) with the CLI's reason."""
    from sibyls.metadata.runs.sources import FolderRunSource
    from sibyls.saxs.exports.formats import export

    uid = plan_runs[plan]
    response = _as_staff(matrix_stack, f"/api/sibyls/runs/{uid}/export/{fmt}")
    if fmt in ("nxcansas", "png") and plan in NO_IQ:
        assert response.status_code == 422, response.text
        detail = response.json()["detail"]
        assert detail.startswith(f"{fmt} export of run {uid[:8]}: ") and NO_IQ[plan] in detail
        return
    assert response.status_code == 200, response.text
    assert response.content
    expected = export(FolderRunSource(_runs_dir(matrix_stack)), fmt, tmp_path / "cli", uid=uid)
    name = _attachment_name(response)
    if len(expected) == 1:
        assert name == expected[0].name
        assert response.content == expected[0].read_bytes() or fmt == "nxcansas"  # h5: own timestamps
    else:
        assert name == f"{records[plan].stem}_{fmt}.zip"
        archive = zipfile.ZipFile(io.BytesIO(response.content))
        assert archive.testzip() is None
        assert sorted(archive.namelist()) == sorted(p.name for p in expected)
        assert all(archive.read(p.name) == p.read_bytes() for p in expected)
    if fmt == "nxcansas":
        from sasdata.dataloader.loader import Loader

        assert name.endswith(".h5")
        (tmp_path / name).write_bytes(response.content)
        (loaded,) = Loader().load(str(tmp_path / name))
        assert len(loaded.x) > 10


@pytest.mark.parametrize("plan", PLANS)
def test_http_files_zip(plan, matrix_stack, plan_runs, records):
    """The run's zip holds its record and its own frames, processed files and plots, nothing else."""
    from sibyls.metadata.runs.sources import FolderRunSource

    uid = plan_runs[plan]
    response = _as_staff(matrix_stack, f"/api/sibyls/runs/{uid}/files.zip")
    assert response.status_code == 200, response.text
    stem = records[plan].stem
    assert _attachment_name(response) == f"{stem}.zip"
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert archive.testzip() is None
    names = archive.namelist()
    assert len(names) == len(set(names)) and all(n.startswith(f"{stem}/") for n in names)
    assert archive.read(f"{stem}/{records[plan].name}") == records[plan].read_bytes()
    frames = {Path(n).name for n in names if n.startswith(f"{stem}/frames/")}
    stored = FolderRunSource(_runs_dir(matrix_stack)).load(uid)
    assert frames == {Path(p).name for p in stored.frame_files}
    record_text = records[plan].read_text()
    others = [n for n in names if not n.startswith(f"{stem}/frames/") and n != f"{stem}/{records[plan].name}"]
    assert all(Path(n).name in record_text for n in others), others
    if plan in FIRST_LOOK:
        assert any(n.startswith(f"{stem}/plots/") for n in names), names


# ---- the page's run view -------------------------------------------------------------------------


def test_page_run_view_of_every_plan(matrix_stack, plan_runs, records):
    """One browser session as ``staff`` opens each plan's run in turn: a results table, or a note that
    says why not (failed with its reason, not applicable, still processing, a buffer) — never an error
    or an empty view."""
    with chromium() as browser:
        session = PageSession(browser, matrix_stack, "staff", "plan_matrix")
        page = session.page
        seen: dict[str, dict] = {}
        try:
            for plan, uid in plan_runs.items():
                page.evaluate(f"openRun('{uid}')")
                page.wait_for_selector(f"#run-view[data-uid='{uid}']", timeout=30000)
                seen[plan] = page.evaluate(
                    """() => ({
                    rows: document.querySelectorAll('#run-results table.metrics tr').length,
                    notes: Object.fromEntries([...document.querySelectorAll('#run-status .run-note')]
                      .map((p) => [p.dataset.note, p.textContent])),
                    status: document.getElementById('run-status').textContent,
                    message: document.getElementById('run-msg').textContent,
                    exports: document.querySelectorAll('#run-files .export-link').length,
                  })"""
                )
                session.shot(plan)
                if plan == "ht_plate":  # queued with positional arguments, as qserver users do
                    history = page.text_content("#history-table")
                    seen[plan]["history"] = f"plate {PLATE} (2 wells)" in history and "[object" not in history
                if plan == "saxs_exposure":  # the export buttons download what the HTTP cells checked
                    with page.expect_download(timeout=60000) as csv_export:
                        page.click("#run-files .export-link[data-format='csv']")
                    seen[plan]["csv"] = csv_export.value.suggested_filename
                elif plan == "count":  # and a refusal says why in the run view
                    page.click("#run-files .export-link[data-format='nxcansas']")
                    page.wait_for_selector("#run-msg:not(:empty)", timeout=60000)
                    seen[plan]["refusal"] = page.text_content("#run-msg")
        finally:
            session.close()
    assert not session.errors, f"JavaScript errors on the page: {session.errors}"
    problems = []
    for plan, view in seen.items():
        notes = view["notes"]
        if view["message"] or view["exports"] != len(PAGE_EXPORTS):
            problems.append(f"{plan}: error box {view['message']!r}, {view['exports']} export buttons")
        if not view["rows"] and not notes:
            problems.append(f"{plan}: empty run view ({view['status']!r})")
        if plan == "plate_buffer":
            ok = "buffer" in notes
        elif plan == "sec_saxs":  # subtracts its own buffer frames: never "measured without a buffer"
            ok = view["rows"] > 0 and "failed" not in notes and "no-buffer" not in notes
        elif plan in FIRST_LOOK:
            ok = view["rows"] > 0 and "failed" not in notes
        else:
            ok = "first look not applicable" in notes.get("none", "")
        if not ok:
            problems.append(f"{plan}: {view['rows']} result rows, notes {notes}")
    assert seen["saxs_exposure"]["csv"] == f"{records['saxs_exposure'].stem}_csv.zip"
    assert NO_IQ["count"] in seen["count"]["refusal"]
    assert seen["ht_plate"]["history"], "the history names each item by its sample or plate"
    problems += [f"{plan}: no run view, the plan failed ({why})" for plan, why in plan_runs.failures.items()]
    assert not problems, "\n".join(problems)
