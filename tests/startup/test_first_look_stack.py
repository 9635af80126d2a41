"""End to end through the queue: the processing service `sibyls up` starts gives every run its first
look from the published documents; the results land in the records, and a run measured while the
service was down is caught up when it comes back."""

from __future__ import annotations

import csv
import time

import pytest
import yaml
from bluesky_queueserver_api import BPlan
from stack_helpers import ca_environment, wait_until_idle

from sibyls.metadata.record_results import results_path
from sibyls.startup.stack import profile_config, up
from sibyls.startup.stack.state import ours, terminate

pytestmark = pytest.mark.slow

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


@pytest.fixture(scope="module", autouse=True)
def _sec_pace(stack):
    """The session stack at 30x for this module (SEC frames must keep pace with the HPLC clock), back
    to its own scale afterwards."""
    from caproto.sync.client import read, write

    pv = f"{stack.ioc_prefix}Sim:TimeScale"
    with ca_environment(stack):
        before = float(read(pv, timeout=5, repeater=False).data[0])
        write(pv, 30.0, notify=True, timeout=5, repeater=False)
    try:
        yield
    finally:
        with ca_environment(stack):
            write(pv, before, notify=True, timeout=5, repeater=False)


def _put(stack, pv: str, text: str) -> None:
    from caproto.sync.client import write

    with ca_environment(stack):
        write(f"{stack.ioc_prefix}{pv}", text.encode(), notify=True, timeout=5, repeater=False)


def test_plate_and_sec_runs_get_first_looks_and_a_plate_summary(stack, api):
    from sibyls.devices.sim.samples import catalogue_sample
    from sibyls.metadata.plate_registry import PlateRegistry

    proteins = ("lysozyme", "BSA", "rod", "dumbbell")
    robot, wells = {}, []
    for index, name in enumerate(proteins):
        buffer_well, sample_well = f"A{2 * index + 1}", f"A{2 * index + 2}"
        sample = catalogue_sample(name, sample_code=f"FL_{name}", concentration_mg_ml=2.0)
        robot[buffer_well] = {"sample_code": f"FL_{name}_buf", "kind": "buffer"}
        robot[sample_well] = sample.model_dump(mode="json", exclude_none=True)
        wells.append({"well": buffer_well, "sample_code": f"FL_{name}_buf", "sample_role": "buffer_blank",
                      "num_frames": 10, "exposure_time": 1.0})  # fmt: skip
        wells.append({"well": sample_well, "sample_code": f"FL_{name}", "buffer_well": buffer_well,
                      "concentration_mg_ml": 2.0, "num_frames": 10, "exposure_time": 1.0})  # fmt: skip
    PlateRegistry(profile_config(stack).plate_registry).add({"plate_id": "FL_PLATE", "wells": robot})
    time.sleep(2.5)  # the simulated robot re-reads the plate registry every second
    vial = catalogue_sample("GluRS", sample_code="FL_GluRS_sec", concentration_mg_ml=8.0)
    _put(stack, "SEC:InjectSample", vial.model_dump_json(exclude_none=True))
    assert api.item_add(BPlan("ht_plate", {"plate_id": "FL_PLATE", "wells": wells}, PROJECT))["success"]
    # 10 s frames: at the stack's 50x, 0.16 s a frame besides the exposure to keep pace with the HPLC
    # clock (5 s frames left 60 ms, about what a frame takes on a quiet machine).
    sec = BPlan("sec_saxs", "FL_GluRS_sec", PROJECT, flow_rate=0.5, frame_period=10.0, exposure_time=2.0,
                duration=18.0)  # fmt: skip
    assert api.item_add(sec)["success"]
    api.queue_start()
    wait_until_idle(api, timeout=300)
    done = _wait_for_results(stack, 9)
    assert len(done) == 9, sorted((p.name, _status(r)) for p, r in _records(stack).items())
    by_code = {r["experiment_runs"][0]["sample_code"]: r for r in done.values()}
    for name in proteins:
        run = by_code[f"FL_{name}"]["experiment_runs"][0]
        buffer_run = by_code[f"FL_{name}_buf"]["experiment_runs"][0]
        assert run["saxs_results"]["buffer_run_uid"] == buffer_run["bluesky_uid"]
        sample = catalogue_sample(name, concentration_mg_ml=2.0)
        results = run["saxs_results"]
        # Rg from P(r) is the true Rg; the standard Guinier Rg is the ideal straight line over its range
        # (the shape's own Guinier bias in: a rod reads ~7 % low).
        assert results["pr_rg_a"] == pytest.approx(sample.apparent_rg_a(), rel=0.03)
        line = sample.guinier_line_rg_a(results["guinier_q_min"], results["guinier_q_max"])
        assert run["quality_metrics"]["rg"]["numeric_value"] == pytest.approx(line, rel=0.03)
        assert any(i["file_name"].endswith("_Guinier_plot.png") for i in by_code[f"FL_{name}"]["images"])
        assert "quality_metrics" not in buffer_run  # buffers: screened and averaged, no Guinier
    sec_record = by_code["FL_GluRS_sec"]
    sec_run = sec_record["experiment_runs"][0]
    assert sec_run["saxs_results"]["mals_molar_mass_kda"] == pytest.approx(54.0, rel=0.05)
    assert any(i["file_name"].endswith("_SEC_chromatogram.png") for i in sec_record["images"])

    summary = profile_config(stack).processed_dir / PROJECT / "plate_FL_PLATE_summary.csv"
    rows = {row["well"]: row for row in csv.DictReader(summary.open())}
    assert sorted(rows) == [f"A{i}" for i in range(1, 9)]
    for index, name in enumerate(proteins):
        row = rows[f"A{2 * index + 2}"]
        rg = by_code[f"FL_{name}"]["experiment_runs"][0]["quality_metrics"]["rg"]["numeric_value"]
        assert float(row["Rg_Guinier_A"]) == pytest.approx(rg, abs=0.01)
        assert row["I0"] and row["MW_Vc_kDa"] and row["flags"] is not None
        assert (summary.parent / row["files"].split()[0]).is_file()
    project_summary = (summary.parent / "summary.csv").read_text()
    assert "FL_GluRS_sec" in project_summary


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
