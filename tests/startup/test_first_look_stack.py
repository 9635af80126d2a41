"""End to end through the queue: the processing service `sibyls up` starts gives every run its first
look from the published documents; the results land in the records, and a run measured while the
service was down is caught up when it comes back."""

from __future__ import annotations

import csv
import time

import pytest
import yaml
from bluesky_queueserver_api import BPlan
from stack_helpers import register_plate, wait_until_idle

from sibyls.metadata.processing.record_results import results_path
from sibyls.startup.stack import profile_config, up
from sibyls.startup.stack.state import ours, terminate

PROJECT = "FIRSTLOOK_E2E"


def _records(stack):
    folder = profile_config(stack).records_dir / PROJECT
    return {p: yaml.safe_load(p.read_text()) for p in sorted(folder.glob("*.yaml"))}


def _status(record: dict) -> str | None:
    return record["experiment_runs"][0].get("processing_status")


def _wait_for_results(stack, count: int, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        records = _records(stack)
        done = {p: r for p, r in records.items() if _status(r) == "completed"}
        if len(done) >= count or time.monotonic() > deadline:
            return done
        time.sleep(0.2)


def test_plate_with_buffers_gets_first_looks_in_every_record(stack, api):
    wells = {"A1": "buffer", "A2": "sample", "A3": "sample", "B1": "buffer", "B2": "sample"}
    register_plate(stack, "FL_PLATE", wells)
    time.sleep(2.5)  # the simulated robot re-reads the plate registry every second
    plate = {
        "plate_id": "FL_PLATE",
        "wells": [
            {"well": "A1", "sample_code": "FL_PLATE_A1", "sample_role": "buffer_blank", "num_frames": 5},
            {"well": "A2", "sample_code": "FL_PLATE_A2", "buffer_well": "A1", "concentration_mg_ml": 2.0,
             "num_frames": 5},
            {"well": "A3", "sample_code": "FL_PLATE_A3", "buffer_well": "A1", "concentration_mg_ml": 2.0,
             "num_frames": 5},
            {"well": "B1", "sample_code": "FL_PLATE_B1", "sample_role": "buffer_blank", "num_frames": 5},
            {"well": "B2", "sample_code": "FL_PLATE_B2", "buffer_well": "B1", "concentration_mg_ml": 2.0,
             "num_frames": 5},
        ],
    }  # fmt: skip
    assert api.item_add(BPlan("ht_plate", plate, PROJECT))["success"]
    api.queue_start()
    wait_until_idle(api, timeout=180)
    done = _wait_for_results(stack, 5)
    assert len(done) == 5, sorted(p.name for p in _records(stack))
    by_well = {r["experiment_runs"][0]["well"]: r for r in done.values()}
    buffers = {w: by_well[w]["experiment_runs"][0]["bluesky_uid"] for w in ("A1", "B1")}
    for well, buffer_well in (("A2", "A1"), ("A3", "A1"), ("B2", "B1")):
        run = by_well[well]["experiment_runs"][0]
        assert run["saxs_results"]["buffer_run_uid"] == buffers[buffer_well]
        assert run["quality_metrics"]["rg"]["numeric_value"] > 0
        assert by_well[well]["workflow_runs"][0]["workflow_type"] == "saxs_analysis"
        assert any(i["file_name"].endswith("_Guinier_plot.png") for i in by_well[well]["images"])
    for well in ("A1", "B1"):  # buffers: averaged and screened, no Guinier
        assert "quality_metrics" not in by_well[well]["experiment_runs"][0]
    summary = profile_config(stack).processed_dir / PROJECT / "plate_FL_PLATE_summary.csv"
    rows = {row["well"]: row for row in csv.DictReader(summary.open())}
    assert sorted(rows) == ["A1", "A2", "A3", "B1", "B2"]
    for well in ("A2", "A3", "B2"):
        rg = by_well[well]["experiment_runs"][0]["quality_metrics"]["rg"]["numeric_value"]
        assert float(rows[well]["Rg_A"]) == pytest.approx(rg, abs=0.01)
        assert rows[well]["I0"] and rows[well]["MW_Vc_kDa"] and "flags" in rows[well]
        assert (summary.parent / rows[well]["files"].split()[0]).is_file()


def test_a_run_measured_while_the_service_is_down_is_caught_up(stack, api):
    pid = ours(stack, "processing")
    assert pid
    terminate([pid])
    assert not ours(stack, "processing")
    assert api.item_add(BPlan("saxs_exposure", "late_buf", PROJECT, num_frames=3, exposure_time=0.5,
                              sample_role="buffer_blank"))["success"]  # fmt: skip
    api.queue_start()
    wait_until_idle(api, timeout=120)
    time.sleep(1.0)  # the record writer is done within a second
    late = [p for p, r in _records(stack).items() if r["experiment_runs"][0]["sample_code"] == "late_buf"]
    assert len(late) == 1 and not results_path(late[0]).exists()
    up(profile_config(stack).var_dir, open_environment=False)  # restarts just the dead service
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        record = yaml.safe_load(late[0].read_text())
        if record["experiment_runs"][0].get("processing_status") == "completed":
            break
        time.sleep(0.2)
    assert record["experiment_runs"][0]["processing_status"] == "completed"
    assert results_path(late[0]).exists()


@pytest.fixture(autouse=True)
def _processing_running(stack):
    assert ours(stack, "processing") and ours(stack, "proxy")
