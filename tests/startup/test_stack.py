"""The whole stack, the way beamline staff run it: real Redis, IOC, Tiled, RE Manager and HTTP server.

Three ways in: the ``qserver`` CLI, the HTTP API (bluesky-httpserver, API key) and the Python API
(bluesky-queueserver-api), the 0MQ ones with the manager's public key. Every process is started on
free loopback ports by ``sibyls up`` (the session's ``stack`` fixture in tests/conftest.py) and ended
by ``sibyls down``; the last test checks that none is left (on a stack of its own). Roles, logins and
encryption: test_security.py.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest
import yaml
from bluesky_queueserver_api import BPlan
from bluesky_queueserver_api.comm_base import RequestFailedError
from stack_helpers import csv_sheet, http, qserver, register_plate, upload_sheet, wait_until_idle

from sibyls.metadata.records_schema import RecordValidator
from sibyls.metadata.runs.doclog import read_document_log
from sibyls.startup.stack import StackState, _children, down, load_state, manager_api, pid_alive, up
from sibyls.startup.stack.services import log_sinks

pytestmark = pytest.mark.slow

PROJECT = "STACK_TEST"


@pytest.fixture(scope="module")
def validator(upstream_schema_dir):
    return RecordValidator(upstream_schema_dir, with_extension=True)


def records(stack: StackState) -> dict[str, Path]:
    """Run uid → record file."""
    found = {}
    for path in (Path(stack.var_dir) / "records").rglob("*.yaml"):
        record = yaml.safe_load(path.read_text())
        found[record["experiment_runs"][0]["bluesky_uid"]] = path
    return found


def last_history(api, n: int = 1) -> list[dict]:
    return api.history_get()["items"][-n:]


def the_completed_run(stack: StackState, api, validator) -> tuple[dict, dict]:
    """After the queue ran one item with one run: its history entry and RunStart; the record validates."""
    wait_until_idle(api)
    (entry,) = last_history(api)
    assert entry["result"]["exit_status"] == "completed", entry["result"]["msg"]
    (uid,) = entry["result"]["run_uids"]
    path = records(stack)[uid]
    assert not validator.validate_files([path])[path]
    name, start = next(read_document_log(next((Path(stack.var_dir) / "runs").rglob(f"*{uid[:8]}.jsonl"))))
    assert name == "start" and start["uid"] == uid
    return entry, start


def test_cli_item_completes_and_its_record_validates(stack, api, validator):
    item = {
        "name": "saxs_exposure",
        "kwargs": {
            "sample_code": "GluRS_cli",
            "project_code": PROJECT,
            "exposure_time": 0.1,
            "num_frames": 3,
        },
    }
    added = qserver(stack, "queue", "add", "plan", json.dumps(item))
    assert added.returncode == 0, added.stdout + added.stderr
    started = qserver(stack, "queue", "start")
    assert started.returncode == 0, started.stdout + started.stderr
    entry, start = the_completed_run(stack, api, validator)
    assert start["queue_item_uid"] == entry["item_uid"]
    assert start["submitted_by"] == "qserver-cli"
    manager_log = (Path(stack.var_dir) / "logs" / "manager.log").read_text()
    assert (
        f"Item added: success=True item_type='plan' name='saxs_exposure' item_uid='{entry['item_uid']}'"
        in (manager_log)
    )
    assert "Adding new item to the queue" not in manager_log  # sibyls-re-manager drops the empty line


def test_http_needs_the_key_and_runs_items(stack, api):
    assert http(stack, "GET", "/api/status", key=None).status_code == 401
    assert http(stack, "GET", "/api/status", key="wrong0key").status_code == 401
    item = {
        "name": "saxs_exposure",
        "item_type": "plan",
        "kwargs": {
            "sample_code": "GluRS_http",
            "project_code": PROJECT,
            "exposure_time": 0.1,
            "num_frames": 2,
        },
    }
    response = http(stack, "POST", "/api/queue/item/add", json={"item": item})
    assert response.status_code == 200 and response.json()["success"], response.text
    assert http(stack, "POST", "/api/queue/start").json()["success"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = http(stack, "GET", "/api/status").json()
        if status["items_in_queue"] == 0 and status["manager_state"] == "idle":
            break
        time.sleep(0.3)
    history = http(stack, "GET", "/api/history/get").json()["items"]
    assert history[-1]["item_uid"] == response.json()["item"]["item_uid"]
    assert history[-1]["result"]["exit_status"] == "completed"


def test_http_invalid_item_is_refused_naming_the_field(stack, api):
    before = api.status(reload=True)["items_in_queue"]
    bad = {
        "name": "saxs_exposure",
        "item_type": "plan",
        "kwargs": {"sample_code": "ok", "project_code": PROJECT, "num_frames": 0},
    }
    body = http(stack, "POST", "/api/queue/item/add", json={"item": bad}).json()
    assert body["success"] is False and "num_frames" in body["msg"]
    empty_code = {**bad, "kwargs": {"sample_code": "", "project_code": PROJECT}}
    checked = http(stack, "POST", "/api/sibyls/validate", json=empty_code).json()
    assert checked["success"] is False
    assert any(p.startswith("sample_code:") for p in checked["problems"])
    assert api.status(reload=True)["items_in_queue"] == before


def eight_well_rows() -> list[dict]:
    rows = []
    for i in range(4):
        buffer_well, sample_well = f"C{2 * i + 1}", f"C{2 * i + 2}"
        common = {"plate_id": "SHEET_PLATE", "project_code": PROJECT, "exposure_time": 0.2, "num_frames": 2}
        rows.append({**common, "well": buffer_well, "sample_code": f"buf{i}", "sample_role": "buffer_blank"})
        rows.append(
            {
                **common,
                "well": sample_well,
                "sample_code": f"prot{i}",
                "sample_role": "sample",
                "buffer_well": buffer_well,
                "concentration_mg_ml": 1.5,
            }
        )
    return rows


def upload(stack, name: str, content: bytes) -> dict:
    return upload_sheet(stack, name, content).json()


def test_valid_plate_sheet_becomes_exactly_one_item(stack, api):
    register_plate(stack, "SHEET_PLATE", {row["well"]: row["sample_role"] for row in eight_well_rows()})
    before = api.status(reload=True)["items_in_queue"]
    body = upload(stack, "plate.csv", csv_sheet(eight_well_rows()))
    assert body["success"], body
    queue = api.queue_get(reload=True)["items"]
    assert len(queue) == before + 1
    assert queue[-1]["name"] == "ht_plate"
    assert len(queue[-1]["kwargs"]["plate"]["wells"]) == 8

    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    rows = eight_well_rows()
    columns = list(rows[1])
    sheet.append(columns)
    for row in rows:
        sheet.append([row.get(c) for c in columns])
    data = io.BytesIO()
    book.save(data)
    assert upload(stack, "plate.xlsx", data.getvalue())["success"]
    assert len(api.queue_get(reload=True)["items"]) == before + 2
    api.queue_clear()


def test_invalid_plate_sheet_queues_nothing_and_lists_rows(stack, api):
    rows = eight_well_rows()
    rows[3]["concentration_mg_ml"] = -2  # row 5
    rows[5]["buffer_well"] = "H12"  # row 7: buffer not on the plate
    rows[6]["well"] = "Z99"  # row 8
    before = api.status(reload=True)["items_in_queue"]
    body = upload(stack, "plate.csv", csv_sheet(rows))
    assert body["success"] is False
    assert "row 5, column concentration_mg_ml" in body["msg"]
    assert "row 8, column well" in body["msg"]
    assert "row 7, column buffer_well: buffer well H12 of prot2 is not on the plate" in body["msg"]
    assert api.status(reload=True)["items_in_queue"] == before


def test_python_api_batch_runs_and_history_uids_match_records(stack, api, validator):
    plans = [BPlan("saxs_exposure", f"batch{i}", PROJECT, exposure_time=0.1, num_frames=2) for i in range(2)]
    result = api.item_add_batch(plans)
    assert result["success"], result
    api.queue_start()
    wait_until_idle(api)
    entries = last_history(api, 2)
    assert [e["result"]["exit_status"] for e in entries] == ["completed", "completed"]
    found = records(stack)
    for entry in entries:
        (uid,) = entry["result"]["run_uids"]
        assert uid in found
        record = yaml.safe_load(found[uid].read_text())
        assert record["experiment_runs"][0]["sample_code"] == entry["args"][0]


def test_standard_scans_take_device_names_and_refuse_unknown_ones_at_add(stack, api, validator):
    with pytest.raises(RequestFailedError, match="detectors"):
        api.item_add(BPlan("count", ["pilatus", "pilatsu"], "typo", PROJECT))
    with pytest.raises(RequestFailedError, match="motor"):
        api.item_add(BPlan("rel_scan", ["i0"], "ring", -0.1, 0.1, 3, "wrong_axis", PROJECT))
    assert api.status()["items_in_queue"] == 0
    assert api.item_add(
        BPlan("rel_scan", ["i0", "bs_diode"], "sample_stage.x", -0.1, 0.1, 3, "scan_q", PROJECT)
    )["success"]
    api.queue_start()
    entry, start = the_completed_run(stack, api, validator)
    assert start["motors"] == ["sample_stage_x"] and start["plan_type"] == "rel_scan"


def test_primary_users_cannot_move_motors_or_override_the_contract(stack, api):
    with pytest.raises(RequestFailedError, match="Plan 'mv' is not in the list of allowed plans"):
        api.item_add(BPlan("mv", "sample_stage_x", 1.0))
    # Beamline staff (admin) may.
    assert api.item_add(BPlan("mv", "sample_stage_x", 0.0), user_group="admin")["success"]
    api.queue_clear()

    # The queue gate refuses meta that would override the contract or the queue identity when the
    # item is added, not when its run opens (the worker's own check stays, see test_queue_metadata).
    runs_before = set(records(stack))
    override = BPlan("saxs_exposure", "honest", PROJECT, exposure_time=0.1, num_frames=1)
    override.meta = {"sample_code": "forged", "plan_type": "count"}
    with pytest.raises(RequestFailedError) as refused:
        api.item_add(override)
    assert "meta.plan_type: reserved" in str(refused.value) and "meta.sample_code: reserved" in str(
        refused.value
    )
    impersonation = BPlan("saxs_exposure", "honest", PROJECT, exposure_time=0.1, num_frames=1)
    impersonation.meta = {"submitted_by": "beamline-director"}
    with pytest.raises(RequestFailedError, match="meta.submitted_by: reserved"):
        api.item_add(impersonation)
    assert api.status()["items_in_queue"] == 0 and set(records(stack)) == runs_before
    problems = http(
        stack,
        "POST",
        "/api/sibyls/validate",
        json={
            "name": "saxs_exposure",
            "kwargs": {"sample_code": "honest", "project_code": PROJECT},
            "meta": {"uid": "x"},
        },
    ).json()["problems"]
    assert problems == ["meta.uid: reserved RunStart key; it comes from the plan, not the item"]


def test_restart_keeps_the_queue_and_scan_ids_keep_counting(stack, api):
    last_scan_id = max(
        yaml.safe_load(p.read_text())["studies"][0]["scan_id"] for p in records(stack).values()
    )
    added = api.item_add(BPlan("saxs_exposure", "after_restart", PROJECT, exposure_time=0.1, num_frames=1))
    assert added["success"]
    item_uid = added["item"]["item_uid"]
    api.close()
    var_dir = Path(stack.var_dir)
    old_pids = set(stack.pids.values())
    down(var_dir)
    assert not any(pid_alive(pid) for pid in old_pids)
    restarted = up(var_dir, ioc_prefix=stack.ioc_prefix, time_scale=stack.time_scale, binning=stack.binning)
    stack.__dict__.update(restarted.__dict__)  # the session's fixture follows the restarted stack
    client = manager_api(restarted, timeout=10)
    try:
        assert [i["item_uid"] for i in client.queue_get()["items"]] == [item_uid]
        client.queue_start()
        wait_until_idle(client)
        (entry,) = last_history(client)
        assert entry["result"]["exit_status"] == "completed"
        (uid,) = entry["result"]["run_uids"]
        scan_id = yaml.safe_load(records(restarted)[uid].read_text())["studies"][0]["scan_id"]
        assert scan_id > last_scan_id
    finally:
        client.close()


def test_down_leaves_no_process_behind(tmp_path):
    state = up(tmp_path / "stack", ioc_prefix="DWN:", time_scale=50.0, binning=8, open_environment=True)
    family = set()
    for pid in state.pids.values():
        family |= {pid, *_children(pid)}
    assert len(family) > len(state.pids)  # the RE worker and server helpers are children
    logs = [tmp_path / "stack" / "logs" / f"{name}.log" for name in state.pids]
    sinks = [sink.pid for sink in log_sinks(logs)]
    assert len(sinks) == len(state.pids)  # each service's output goes through its own log sink
    stopped = set(down(tmp_path / "stack"))
    assert family <= stopped
    assert not [pid for pid in family if pid_alive(pid)]
    assert not [pid for pid in sinks if pid_alive(pid)] and not log_sinks(logs)  # down waited for them
    assert load_state(tmp_path / "stack") is None
