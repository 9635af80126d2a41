"""Faults end a SIBYLS plan in bounded time with the root cause named, and nothing is lost.

Real caproto IOC (the session's), real RunEngine; the faults are real too: the HPLC stopped over
Channel Access, a well the robot has nothing in, a frame folder on a full (tmpfs) disk.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import epics
import pytest
import test_plans_beamline as beamline_tests
from bluesky import RunEngine
from bluesky import plan_stubs as bps
from bluesky.utils import FailedStatus

from sibyls.devices.geometry import DetectorGeometry
from sibyls.devices.pilatus import DetectorError
from sibyls.devices.robot import RobotError
from sibyls.devices.sec import SECError
from sibyls.devices.sim.frame_writer import FRAME_FILE_RESERVE_BYTES
from sibyls.plans import ht_plate, saxs_exposure, sec_saxs
from sibyls.plans.errors import cleanup_keeping_error, device_errors

pytestmark = pytest.mark.slow

PROJECT = beamline_tests.PROJECT
PROTEIN = beamline_tests.PROTEIN
# The plan tests' fixture: a SIBYLS-ready RunEngine with records (``simulation``: tests/conftest.py).
session = beamline_tests.session


def stop_document(recorder, uid: str) -> dict:
    (stop,) = [doc for name, doc in recorder.of_run(uid) if name == "stop"]
    return stop


def flushed_records(writer, tmp_path: Path) -> list[Path]:
    if hasattr(writer, "flush"):
        assert writer.flush(timeout=30), "records were not written within 30 s"
    return beamline_tests.records_of(tmp_path)


# ---- the error a plan reports ---------------------------------------------------------------------


def test_a_failing_cleanup_does_not_replace_the_plans_error():
    def measurement():
        yield from bps.null()
        raise RobotError("ht_robot: Load refused: well A3 of plate P1 is empty (state idle)")

    def close_shutter():
        yield from bps.null()
        raise TimeoutError("fast_shutter: lost connection to X:FShutter:Open")

    RE = RunEngine({})
    with pytest.raises(RobotError, match="well A3 of plate P1 is empty") as info:
        RE(cleanup_keeping_error(measurement(), close_shutter, "closing the fast shutter"))
    assert info.value.__notes__ == [
        "then closing the fast shutter failed too: "
        "TimeoutError: fast_shutter: lost connection to X:FShutter:Open"
    ]

    # Without a failure in the plan, the cleanup's own failure is the error.
    with pytest.raises(TimeoutError, match="lost connection"):
        RE(cleanup_keeping_error(bps.null(), close_shutter, "closing the fast shutter"))


def test_robot_refusing_a_well_fails_the_plate_with_the_robots_own_message(session, beamline, simulation):
    RE, writer, recorder, tmp_path = session
    simulation.time_scale.put(100.0, wait=True)
    plate, robot_plate = beamline_tests.make_plate(1)  # A1 buffer, A2 sample
    del robot_plate["wells"]["A2"]  # ... but the robot's A2 is empty
    robot_plate["plate_id"] = plate["plate_id"] = "FAULT_PLATE_1"
    beamline.ht_robot.define_plate(robot_plate)
    try:
        with pytest.raises(RobotError) as info:
            RE(ht_plate(plate, PROJECT, dry_between_wells=False))
    finally:
        simulation.time_scale.put(50.0, wait=True)
    assert str(info.value) == "ht_robot: Load refused: well A2 of plate FAULT_PLATE_1 is empty (state idle)"
    assert isinstance(info.value.__cause__, FailedStatus)  # the chain is kept
    starts = recorder.starts()
    assert [s["well"] for s in starts] == ["A1"]  # the buffer was measured, its run closed cleanly
    assert stop_document(recorder, starts[0]["uid"])["exit_status"] == "success"
    assert beamline.ht_robot.state.get() == "idle"
    assert simulation.cell_contents.get(use_monitor=False) == "empty"
    assert beamline.fast_shutter.status.get(use_monitor=False) == "Closed"


def test_hplc_stopped_mid_sec_saxs_ends_the_run_at_once_with_the_hplcs_reason(
    session, simulation, beamline, sim_ioc
):
    RE, writer, recorder, tmp_path = session
    simulation.time_scale.put(100.0, wait=True)
    beamline.sec.load_vial({"sample_code": "GluRS_stop", **PROTEIN, "concentration_mg_ml": 10.0})
    stopped_at: list[float] = []

    def stop_the_hplc_mid_run() -> None:
        deadline = time.monotonic() + 30
        state_pv = f"{sim_ioc.prefix}SEC:RunState_RBV"
        while epics.caget(state_pv, as_string=True, timeout=2) != "Running" and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # ~100 s of elution at 100x: a few frames in
        stopped_at.append(time.monotonic())
        epics.caput(f"{sim_ioc.prefix}SEC:Stop", 1, wait=True, timeout=5)

    stopper = threading.Thread(target=stop_the_hplc_mid_run, daemon=True)
    stopper.start()
    try:
        with pytest.raises(SECError) as info:
            RE(sec_saxs("GluRS_stop", PROJECT, frame_period=10.0, exposure_time=1.0, duration=10.0))
        failed_at = time.monotonic()
    finally:
        stopper.join(timeout=30)
        simulation.time_scale.put(50.0, wait=True)
    message = str(info.value)
    assert message.startswith("sec: the HPLC run is not running (Run stopped); the run clock stopped at ")
    assert stopped_at and failed_at - stopped_at[0] < 2.0, f"{failed_at - stopped_at[0]:.2f} s after the stop"
    (start,) = recorder.starts()
    stop = stop_document(recorder, start["uid"])
    assert stop["exit_status"] == "fail" and "Run stopped" in stop["reason"]
    frames = [
        doc for name, doc in recorder.of_run(start["uid"]) if name == "event" and "sec_elapsed" in doc["data"]
    ]
    assert 0 < len(frames) < 60  # the frames taken before the stop are kept
    records = flushed_records(writer, tmp_path)
    assert len(records) == 1 and start["uid"][:8] in records[0].name
    assert beamline.sec.run_state.get(use_monitor=False) == "Idle"
    assert beamline.fast_shutter.status.get(use_monitor=False) == "Closed"


# ---- a full disk ----------------------------------------------------------------------------------


@pytest.fixture
def small_disk(session):
    """The plans' frame folder on a 6 MB tmpfs, unmounted afterwards (skipped where mount is refused)."""
    data_dir = session[3] / "data"
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(data_dir)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"mount -t tmpfs is not permitted here: {mounted.stderr.strip()}")
    try:
        yield data_dir
    finally:
        if subprocess.run(["umount", str(data_dir)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(data_dir)], check=True)


def fill_disk(directory: Path, leave_bytes: int) -> Path:
    """Fill ``directory``'s file system up to ``leave_bytes`` free; returns the filler file."""
    stats = os.statvfs(directory)
    filler = directory / "filler.bin"
    with filler.open("wb") as out:
        out.write(b"\0" * (stats.f_bavail * stats.f_frsize - leave_bytes))
    return filler


def test_full_disk_fails_the_exposure_with_the_detectors_message_and_the_next_one_works(
    session, simulation, beamline, sim_ioc, small_disk
):
    RE, writer, recorder, tmp_path = session
    simulation.put_in_cell({"sample_code": "FullDisk_1", **PROTEIN})
    rows, cols = DetectorGeometry(binning=int(beamline.pilatus.binning.get())).shape
    # Room for the writer's reserve and the file's layout, not for a whole frame.
    filler = fill_disk(small_disk, FRAME_FILE_RESERVE_BYTES + rows * cols * 4 // 2)
    target = small_disk / PROJECT / "FullDisk_1_00001.h5"
    started = time.monotonic()
    with pytest.raises(DetectorError) as info:
        RE(saxs_exposure("FullDisk_1", PROJECT, exposure_time=0.1, num_frames=3))
    elapsed = time.monotonic() - started
    assert str(info.value) == f"pilatus: no space left on device: {target}"
    assert elapsed < 10.0
    leftovers = [p.name for p in small_disk.rglob("*") if p.is_file() and p != filler]
    assert leftovers == [], f"left behind on the full disk: {leftovers}"
    # The IOC is up and says what happened.
    prefix = sim_ioc.prefix
    assert epics.caget(f"{prefix}Pilatus:DetectorState_RBV", as_string=True, timeout=5) == "Error"
    assert epics.caget(f"{prefix}Sim:TimeScale", timeout=5) == pytest.approx(50.0)
    (start,) = recorder.starts()
    stop = stop_document(recorder, start["uid"])
    assert stop["exit_status"] == "fail" and "no space left on device" in stop["reason"]
    assert beamline.fast_shutter.status.get(use_monitor=False) == "Closed"

    filler.unlink()  # space freed: the next exposure works
    (uid,) = RE(saxs_exposure("FullDisk_1", PROJECT, exposure_time=0.1, num_frames=2)).run_start_uids
    assert stop_document(recorder, uid)["exit_status"] == "success"
    assert sorted(p.name for p in (small_disk / PROJECT).iterdir()) == [
        "FullDisk_1_00001.h5",
        "FullDisk_1_00002.h5",
    ]
    assert beamline.pilatus.detector_state.get(use_monitor=False) == "Idle"
    flushed_records(writer, tmp_path)  # the record writer is done with the frames before the unmount


def test_device_errors_passes_a_plans_own_error_through_unchanged():
    def plan():
        yield from bps.null()
        raise ValueError("not a device failure")

    with pytest.raises(ValueError, match="not a device failure"):
        RunEngine({})(device_errors(plan()))


# ---- the IOC dies mid-exposure --------------------------------------------------------------------


@pytest.fixture(scope="module")
def ioc_death(tmp_path_factory) -> dict:
    """How a saxs_exposure ends when its IOC is killed mid-exposure (own process, own IOC, ~5 s)."""
    work = tmp_path_factory.mktemp("ioc_death")
    script = Path(__file__).with_name("ioc_death_run.py")
    done = subprocess.run(
        [sys.executable, str(script), str(work)], capture_output=True, text=True, timeout=120
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, f"no result from {script.name}:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return json.loads(lines[-1].removeprefix("RESULT "))


def test_ioc_death_mid_exposure_ends_the_run_at_once_with_a_record(ioc_death):
    assert ioc_death["ended_after_kill_s"] < 5.0
    lost = re.compile(
        r"DeviceDisconnectedError: (pilatus|i0|bs_diode): lost connection to DEATH:\S+ "
        r"while waiting for (acquisition of 1 x 5 s|count of 5 s)$"
    )
    assert lost.match(ioc_death["error"]), ioc_death
    reason = ioc_death["error"].removeprefix("DeviceDisconnectedError: ")
    assert [stop["reason"] for stop in ioc_death["stops"]] == [reason]
    # The fast shutter cannot be closed any more: said, but not instead of the cause.
    assert [note.split(":")[0] for note in ioc_death["notes"]] == ["then closing the fast shutter failed too"]
    assert [stop["exit_status"] for stop in ioc_death["stops"]] == ["fail"]
    assert ioc_death["records_flushed"] and len(ioc_death["records"]) == 1
