"""Every wait on a SIBYLS device ends, and says which device, what it waited for and where it got to.

Against the session's caproto IOC over real Channel Access. Bounds are shrunk on the device (the
attributes a profile would set) so that each timeout takes a fraction of a second.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time

import epics
import pytest
from bluesky import RunEngine
from bluesky import plan_stubs as bps
from bluesky import plans as bp

from sibyls.devices.pilatus import DetectorError
from sibyls.devices.sec import SECError
from sibyls.devices.status import DeviceTimeoutError
from sibyls.plans.errors import device_errors

pytestmark = pytest.mark.slow

BUFFER = {"sample_code": "buff_faults", "kind": "buffer"}


@pytest.fixture
def bounds(monkeypatch):
    """Shrink a device's timeout attributes for one test (restored afterwards)."""

    def shrink(device, **values) -> None:
        for attribute, value in values.items():
            monkeypatch.setattr(device, attribute, value)

    return shrink


def timed_failure(status, timeout: float = 30.0) -> tuple[BaseException, float]:
    start = time.monotonic()
    with pytest.raises(Exception) as info:
        status.wait(timeout=timeout)
    return info.value, time.monotonic() - start


def test_derived_bounds_follow_what_each_device_is_expected_to_take(beamline):
    robot = beamline.ht_robot
    assert robot.command_timeout(robot.load_time_s) == 3.0 * 15.0 + 10.0
    # Full travel at the motor's VELO: sample stage 20 mm at 2 mm/s, beamstop 10 mm at 1 mm/s.
    assert beamline.sample_stage.x.timeout == pytest.approx(2.0 * 20.0 / 2.0 + 5.0)
    assert beamline.beamstop.y.timeout == pytest.approx(2.0 * 10.0 / 1.0 + 5.0)
    assert beamline.cell_temperature.move_timeout(beamline.cell_temperature.position + 10.0) == pytest.approx(
        10.0 * 10.0 + 120.0
    )
    assert beamline.sec.run_clock_timeout(3.0) == pytest.approx(1.5 * 3.0 + 5.0)


def test_robot_command_that_overruns_its_bound_times_out_naming_the_command(beamline, time_scale, bounds):
    robot = beamline.ht_robot
    time_scale(10.0)  # a clean takes 2 s
    bounds(robot, timeout_margin=0.0, timeout_allowance_s=0.3)
    error, waited = timed_failure(robot.clean())
    assert isinstance(error, DeviceTimeoutError)
    assert str(error).startswith(
        "ht_robot: cleaning the cell did not finish within 0.3 s (robot state cleaning"
    )
    assert 0.2 < waited < 1.5
    deadline = time.monotonic() + 10
    while robot.state.get(use_monitor=False) != "idle" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert robot.state.get(use_monitor=False) == "idle"


def test_exposure_that_overruns_its_bound_times_out_and_is_aborted(beamline, time_scale, bounds, tmp_path):
    pilatus = beamline.pilatus
    pilatus.set_file_destination(str(tmp_path), "slow")
    pilatus.acquire_time.put(2.0, wait=True)
    pilatus.acquire_period.put(2.0, wait=True)
    pilatus.num_images.put(1, wait=True)
    time_scale(5.0)  # the exposure takes 0.4 s
    bounds(pilatus, trigger_timeout_margin=0.0, readout_allowance_s=0.15, frame_readout_s=0.0)
    error, waited = timed_failure(pilatus.trigger())
    assert isinstance(error, DeviceTimeoutError)
    assert str(error).startswith(
        "pilatus: acquisition of 1 x 2 s did not finish within 0.15 s (detector Acquire"
    )
    assert waited < 1.5
    deadline = time.monotonic() + 5  # the timeout stopped the detector: no file, detector idle
    while pilatus.detector_state.get(use_monitor=False) != "Idle" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pilatus.status_message.get(use_monitor=False) == "Aborted; no file written"
    assert list(tmp_path.iterdir()) == []


def test_run_clock_wait_fails_at_once_when_the_hplc_stops_and_times_out_when_the_clock_stalls(
    beamline, sim_ioc, time_scale
):
    sec = beamline.sec
    time_scale(1.0)  # the run clock advances 1 s per second
    sec.flow_rate.put(0.5, wait=True)
    sec.run_time.put(10.0, wait=True)
    sec.load_vial({**BUFFER, "sample_code": "clock_test"})
    sec.inject().wait(timeout=10)
    assert float(sec.elapsed.get(use_monitor=False)) < 5.0, sec.message.get(use_monitor=False)
    try:
        error, waited = timed_failure(sec.wait_for_run_clock(300.0, timeout=0.4))
        assert isinstance(error, DeviceTimeoutError)
        assert str(error).startswith("sec: the run clock did not reach 300 s within 0.4 s (run clock at ")
        assert "HPLC Running" in str(error)
        assert waited < 1.5

        status = sec.wait_for_run_clock(300.0, timeout=60)
        stopper = threading.Timer(0.3, epics.caput, (f"{sim_ioc.prefix}SEC:Stop", 1), {"wait": True})
        stopper.start()
        error, waited = timed_failure(status)
        stopper.join()
        assert isinstance(error, SECError)
        assert str(error).startswith(
            "sec: the HPLC run is not running (Run stopped); the run clock stopped at "
        )
        assert waited < 1.5
        # Waiting on a run that is not running fails at once, also for a moment the clock has
        # passed (frames lagging the clock must not be taken once the run has ended).
        error, waited = timed_failure(sec.wait_for_run_clock(5.0))
        assert isinstance(error, SECError) and waited < 0.5
        stopped_at = float(sec.elapsed.get(use_monitor=False))
        assert stopped_at > 0.0
        error, _ = timed_failure(sec.wait_for_run_clock(stopped_at / 2))
        assert isinstance(error, SECError) and "short of" in str(error)
    finally:
        if sec.run_state.get(use_monitor=False) == "Running":
            sec.stop_run().wait(timeout=10)


def test_shutter_cell_temperature_and_motor_moves_time_out_naming_the_move(beamline, time_scale):
    time_scale(0.01)  # the fast shutter's 5 ms take 0.5 s; 1 °C takes long
    shutter = beamline.fast_shutter
    move = "opening" if shutter.status.get(use_monitor=False) == "Closed" else "closing"
    error, _ = timed_failure(shutter.set("open" if move == "opening" else "close", timeout=0.1))
    assert isinstance(error, DeviceTimeoutError)
    assert str(error) == f"fast_shutter: {move} did not finish within 0.1 s (status Moving)"

    cell = beamline.cell_temperature
    error, _ = timed_failure(cell.set(25.0, timeout=0.3))
    assert isinstance(error, DeviceTimeoutError)
    assert re.fullmatch(
        r"cell_temperature: change to 25 °C did not finish within 0.3 s \(at \d+\.\d\d °C\)", str(error)
    )

    # A motor's MoveStatus timeout, as a plan reports it: motor, target and where it stopped.
    motor = beamline.sample_stage.x
    time_scale(1.0)
    derived = motor.timeout
    motor.timeout = 0.2
    RE = RunEngine({})
    try:
        moving = r"^sample_stage_x: move to 2 did not finish within 0.2 s \(at 0\.\d+\)$"
        with pytest.raises(DeviceTimeoutError, match=moving):
            RE(device_errors(bps.mv(motor, 2.0)))
    finally:
        motor.timeout = derived
        time_scale(200.0)
        RE(bps.mv(motor, 0.0, cell, 20.0, shutter, "close"))
    assert shutter.status.get(use_monitor=False) == "Closed"


def test_unwritable_frame_folder_fails_the_trigger_with_the_detectors_message(beamline, tmp_path):
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a read-only tmpfs needs root and mount(8)")
    folder = tmp_path / "read_only"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"mount -t tmpfs is not permitted here: {mounted.stderr.strip()}")
    try:
        pilatus = beamline.pilatus
        pilatus.set_file_destination(str(folder), "ro")
        pilatus.acquire_time.put(0.05, wait=True)
        pilatus.num_images.put(1, wait=True)
        with pytest.raises(
            DetectorError, match=rf"^pilatus: cannot write to {folder}: Read-only file system$"
        ):
            RunEngine({})(device_errors(bp.count([pilatus])))
        assert pilatus.detector_state.get(use_monitor=False) == "Error"
        pilatus.set_file_destination(str(tmp_path), "rw")  # the next acquisition, elsewhere, works
        RunEngine({})(bp.count([pilatus]))
        assert pilatus.detector_state.get(use_monitor=False) == "Idle"
        assert [p.name for p in tmp_path.glob("*.h5")] == ["rw_00001.h5"]
    finally:
        subprocess.run(["umount", str(folder)], check=True)
