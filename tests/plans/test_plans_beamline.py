"""SIBYLS plans against the simulated beamline over real Channel Access (no ophyd.sim)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import h5py
import pytest
import yaml
from bluesky import RunEngine
from bluesky import plans as bp

from sibyls.metadata.contract import ContractError
from sibyls.metadata.records_schema import RecordValidator
from sibyls.plans import (
    align_beamstop,
    configure_plans,
    count,
    ht_plate,
    plan_progress,
    saxs_exposure,
    sec_saxs,
    setup_run_engine,
    temperature_series,
)
from sibyls.plans.plate import PlateNotOnRobotError

pytestmark = pytest.mark.slow

PROJECT = "BEAMLINE_TEST"
PROTEIN = {"kind": "sample", "rg_a": 28.0, "concentration_mg_ml": 4.0, "mw_kda": 48.0}
BASELINE_KEYS = {
    "ring_current",
    "mono_energy",
    "mono_wavelength",
    "detector_distance",
    "cell_temperature",
    "photon_shutter_status",
    "fast_shutter_status",
    "sample_stage_x",
    "sample_stage_y",
    "beamstop_x",
    "beamstop_y",
}


@pytest.fixture(scope="module")
def validator(upstream_schema_dir):
    return RecordValidator(upstream_schema_dir, with_extension=True)


class Recorder:
    """Every document of every run, grouped by run."""

    def __init__(self):
        self.docs: list[tuple[str, dict]] = []

    def __call__(self, name, doc):
        self.docs.append((name, doc))

    def starts(self):
        return [doc for name, doc in self.docs if name == "start"]

    def of_run(self, uid):
        run_docs, descriptors = [], set()
        for name, doc in self.docs:
            if name == "start" and doc["uid"] == uid or doc.get("run_start") == uid:
                run_docs.append((name, doc))
                if name == "descriptor":
                    descriptors.add(doc["uid"])
            elif doc.get("descriptor") in descriptors:
                run_docs.append((name, doc))
        return run_docs


@pytest.fixture
def session(beamline, simulation, tmp_path):
    """A SIBYLS-ready RunEngine (contract guard, baseline, records) and a document recorder."""
    configure_plans(beamline, tmp_path / "data")
    RE = RunEngine({}, call_returns_result=True)
    writer = setup_run_engine(RE, beamline, tmp_path / "records", spool_dir=tmp_path / "spool")
    recorder = Recorder()
    RE.subscribe(recorder)
    simulation.put_in_cell(None)
    if beamline.ht_robot.state.get() != "idle":
        beamline.ht_robot.clean().wait(timeout=30)
    return RE, writer, recorder, tmp_path


def records_of(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "records").rglob("*.yaml"))


def check_records(paths, validator, recorder):
    """Each record validates and its DataFiles are the run's real frame files, checksums and all."""
    errors = validator.validate_files(paths)
    assert not any(errors.values()), errors
    for path in paths:
        record = yaml.safe_load(path.read_text())
        files = record["data_files"]
        assert files, f"{path.name} lists no data files"
        for data_file in files:
            frame_path = Path(data_file["file_path"])
            assert frame_path.is_file()
            assert data_file["checksum"] == "sha256:" + hashlib.sha256(frame_path.read_bytes()).hexdigest()
            assert data_file["file_size_bytes"]["numeric_value"] == frame_path.stat().st_size


def test_saxs_exposure_runs_with_the_contract_baseline_and_a_valid_record(session, simulation, validator):
    RE, writer, recorder, tmp_path = session
    simulation.put_in_cell({"sample_code": "GluRS_1", **PROTEIN})
    (uid,) = RE(
        saxs_exposure(
            "GluRS_1",
            PROJECT,
            exposure_time=0.5,
            num_frames=4,
            concentration_mg_ml=4.0,
            sample_type="protein",
            cell_temperature=20.0,
        )
    ).run_start_uids
    start = recorder.starts()[-1]
    assert start["uid"] == uid
    assert (start["plan_type"], start["sample_code"], start["project_code"]) == (
        "saxs_exposure",
        "GluRS_1",
        PROJECT,
    )
    assert start["plan_name"] == "saxs_exposure" and start["num_points"] == 4
    docs = recorder.of_run(uid)
    descriptors = {doc["name"]: doc for name, doc in docs if name == "descriptor"}
    assert BASELINE_KEYS <= set(descriptors["baseline"]["data_keys"])
    events = [
        doc for name, doc in docs if name == "event" and doc["descriptor"] == descriptors["primary"]["uid"]
    ]
    assert len(events) == 4
    assert all(e["data"]["i0_counts"] > 0 and e["data"]["bs_diode_counts"] > 0 for e in events)
    resources = [doc for name, doc in docs if name == "resource"]
    assert len(resources) == 4
    names = sorted(Path(r["resource_path"]).name for r in resources)
    assert names[0].startswith("GluRS_1_") and names[0].endswith(".h5")
    with h5py.File("/" + resources[0]["resource_path"]) as f:
        assert f["entry/sample_in_beam"][0] == b"GluRS_1"
    assert plan_progress(RE)["state"] == "finished"
    assert beamline_closed(RE, session)
    writer.flush(30)  # records are written off the RunEngine thread
    paths = records_of(tmp_path)
    assert [p.name for p in paths] == [writer.last_record_path.name]
    check_records(paths, validator, recorder)
    record = yaml.safe_load(paths[0].read_text())
    run = record["experiment_runs"][0]
    assert run["bluesky_uid"] == uid
    assert run["data_collection_strategy"]["total_frames"]["numeric_value"] == 4


def beamline_closed(RE, session) -> bool:
    from sibyls.plans.context import plan_context

    return plan_context().beamline.fast_shutter.status.get() == "Closed"


def test_bare_bluesky_count_is_refused_and_the_wrapped_count_runs(session, beamline):
    RE, writer, recorder, tmp_path = session
    with pytest.raises(ContractError, match="sample_code: required field is missing"):
        RE(bp.count([beamline.ring]))
    assert recorder.starts() == []
    RE(count([beamline.ring], "empty_cell", PROJECT, num=2))
    start = recorder.starts()[-1]
    assert start["plan_type"] == "count" and start["sample_code"] == "empty_cell"


def make_plate(n_pairs: int = 4) -> tuple[dict, dict]:
    """A plan plate (what the user submits) and the robot's plate (what the wells hold)."""
    wells, robot_wells = [], {}
    for i in range(n_pairs):
        buffer_well, sample_well = f"A{2 * i + 1}", f"A{2 * i + 2}"
        wells.append(
            {
                "well": buffer_well,
                "sample_code": f"HEPES{i}",
                "sample_role": "buffer_blank",
                "exposure_time": 0.2,
                "num_frames": 2,
            }
        )
        wells.append(
            {
                "well": sample_well,
                "sample_code": f"prot{i}",
                "buffer_well": buffer_well,
                "concentration_mg_ml": 2.0 + i,
                "exposure_time": 0.2,
                "num_frames": 2,
            }
        )
        robot_wells[buffer_well] = {"sample_code": f"HEPES{i}", "kind": "buffer"}
        robot_wells[sample_well] = {"sample_code": f"prot{i}", **PROTEIN, "concentration_mg_ml": 2.0 + i}
    return {"plate_id": "HT_PLATE_1", "wells": wells}, {"plate_id": "HT_PLATE_1", "wells": robot_wells}


def test_ht_plate_of_8_wells_runs_buffers_first_with_a_record_each(session, beamline, validator):
    RE, writer, recorder, tmp_path = session
    plate, robot_plate = make_plate(4)
    beamline.ht_robot.define_plate(robot_plate)
    result = RE(ht_plate(plate, PROJECT, dry_between_wells=True))
    starts = recorder.starts()
    assert len(starts) == 8
    assert [s["well"] for s in starts] == [w["well"] for w in plate["wells"]]
    by_well = {s["well"]: s for s in starts}
    for well in plate["wells"]:
        start = by_well[well["well"]]
        assert start["plan_type"] == "ht_plate" and start["plate_id"] == "HT_PLATE_1"
        if well.get("sample_role", "sample") == "sample":
            buffer_start = by_well[well["buffer_well"]]
            assert start["buffer_run_uid"] == buffer_start["uid"]
            assert buffer_start["time"] < start["time"]
    assert starts[3]["plate_position"] == {"index": 4, "total": 8}
    assert result.plan_result == {s["well"]: s["uid"] for s in starts}
    frames = sorted(p.name for p in (tmp_path / "data" / PROJECT).glob("*.h5"))
    assert frames[0].startswith("HEPES0") is False and any(f.startswith("buff_HEPES0_") for f in frames)
    writer.flush(30)
    paths = records_of(tmp_path)
    assert len(paths) == 8
    check_records(paths, validator, recorder)
    assert beamline.ht_robot.state.get() == "idle"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p: p["wells"][1].update(well="Z99"), "Z99"),
        (lambda p: p["wells"].pop(0), "buffer well A1 of prot0 is not on the plate"),
        (lambda p: p["wells"].insert(0, p["wells"].pop(1)), "must be measured before its sample"),
        (lambda p: p["wells"][3].update(well="A1"), "A1 is listed twice"),
        (lambda p: p["wells"][1].update(concentration_mg_ml=-1.0), "concentration_mg_ml"),
        (lambda p: p["wells"][1].update(exposure_time=120.0), "exposure_time"),
    ],
)
def test_bad_plate_is_refused_before_the_robot_moves(session, beamline, mutate, message):
    RE, writer, recorder, tmp_path = session
    plate, robot_plate = make_plate(2)
    beamline.ht_robot.define_plate(robot_plate)
    mutate(plate)
    states = []
    beamline.ht_robot.state.subscribe(lambda value, **kw: states.append(value), run=False)
    with pytest.raises(ContractError, match=message):
        RE(ht_plate(plate, PROJECT))
    assert recorder.starts() == []
    assert set(states) <= {"idle"} and beamline.ht_robot.state.get() == "idle"
    assert not records_of(tmp_path)


def test_plate_unknown_to_the_robot_is_refused_before_anything_moves(session, beamline):
    RE, writer, recorder, tmp_path = session
    plate, _ = make_plate(1)
    plate["plate_id"] = "NOT_ON_DECK"
    with pytest.raises(PlateNotOnRobotError, match="NOT_ON_DECK"):
        RE(ht_plate(plate, PROJECT))
    assert recorder.starts() == []
    assert beamline.ht_robot.state.get() == "idle"


def test_sec_saxs_frames_monitor_stream_and_buffer_marks(session, simulation, beamline, validator):
    RE, writer, recorder, tmp_path = session
    # Each frame samples the eluate of its moment, so frames must keep pace with the HPLC clock: at 25x
    # a 10 s frame period leaves 0.36 s a frame besides the exposure (about 60 ms used on a quiet
    # 2-core machine; at 100x a slow CI machine fell a minute behind and the HPLC method ended first).
    simulation.time_scale.put(25.0, wait=True)
    try:
        beamline.sec.load_vial(
            {"sample_code": "GluRS_sec", **PROTEIN, "concentration_mg_ml": 10.0, "elution_volume_ml": 1.5}
        )
        uid = RE(
            sec_saxs("GluRS_sec", PROJECT, flow_rate=0.5, frame_period=10.0, exposure_time=1.0, duration=5.0)
        ).run_start_uids[0]
    finally:
        simulation.time_scale.put(50.0, wait=True)
    docs = recorder.of_run(uid)
    start = docs[0][1]
    assert start["plan_type"] == "sec_saxs" and start["collection_mode"] == "sec_saxs"
    descriptors = {doc["uid"]: doc["name"] for name, doc in docs if name == "descriptor"}
    primary = [doc for name, doc in docs if name == "event" and descriptors[doc["descriptor"]] == "primary"]
    assert len(primary) == 5.0 * 60 / 10.0
    uv_monitor = [
        doc["data"]["sec_uv280"]
        for name, doc in docs
        if name == "event" and descriptors[doc["descriptor"]] == "sec_uv280_monitor"
    ]
    assert len(uv_monitor) > len(primary)
    assert max(uv_monitor) > 100.0  # the elution peak is in the monitor stream
    roles = [e["data"]["sec_frame_role"] for e in primary]
    elapsed = [e["data"]["sec_elapsed"] for e in primary]
    peak_time = 1.5 / 0.5 * 60.0  # elution volume / flow, seconds
    first_sample = roles.index("sample")
    assert roles[:first_sample] == ["buffer"] * first_sample and first_sample > 5
    assert set(roles[first_sample:]) == {"sample"}
    assert peak_time - 120 < elapsed[first_sample] <= peak_time
    assert beamline.sec.run_state.get() == "Idle"
    writer.flush(30)
    check_records(records_of(tmp_path), validator, recorder)


def test_temperature_series_gives_one_run_per_setpoint(session, simulation, beamline):
    RE, writer, recorder, tmp_path = session
    simulation.time_scale.put(200.0, wait=True)
    try:
        uids = RE(
            temperature_series(
                "GluRS_1", PROJECT, [10.0, 25.0], exposure_time=0.1, num_frames=1, equilibration_time=0.0
            )
        ).run_start_uids
    finally:
        simulation.time_scale.put(50.0, wait=True)
    starts = recorder.starts()
    assert len(uids) == 2 and [s["uid"] for s in starts] == list(uids)
    assert [s["cell_temperature_c"] for s in starts] == [10.0, 25.0]
    assert {s["plan_type"] for s in starts} == {"temperature_series"}
    assert beamline.cell_temperature.readback.get() == pytest.approx(25.0, abs=0.2)
    RE(count([beamline.ring], "empty_cell", PROJECT))  # leave the cell at 20 °C for other tests
    from bluesky import plan_stubs as bps

    RE(bps.mv(beamline.cell_temperature, 20.0))


def test_temperature_series_refuses_an_out_of_range_setpoint_before_moving(session, beamline):
    RE, writer, recorder, tmp_path = session
    before = beamline.cell_temperature.setpoint.get()
    with pytest.raises(ContractError, match=r"temperatures\[1\]: 75 °C is outside 4–60 °C"):
        RE(temperature_series("GluRS_1", PROJECT, [10.0, 75.0]))
    assert beamline.cell_temperature.setpoint.get() == before
    assert recorder.starts() == []


def test_align_beamstop_finds_the_direct_beam(session, beamline):
    RE, writer, recorder, tmp_path = session
    from bluesky import plan_stubs as bps

    RE(bps.mv(beamline.beamstop.x, 0.4))
    plan = align_beamstop("empty_cell", PROJECT, "x", half_width=1.2, points=25, count_time=0.05)
    outcome = RE(plan).plan_result
    assert outcome["success"], outcome["reasons"]
    assert outcome["position"] == pytest.approx(0.0, abs=0.1)
    assert beamline.beamstop.x.position == pytest.approx(0.0, abs=0.1)
    starts = recorder.starts()
    assert starts and {s["plan_type"] for s in starts} == {"alignment"}
    assert {s["sample_code"] for s in starts} == {"empty_cell"}
