"""The simulated SIBYLS beamline over real Channel Access: the project's IOC + the ophyd devices.

No ophyd.sim here: every device talks to the caproto IOC started by the ``sim_ioc`` fixture.
"""

from __future__ import annotations

import threading
import time

import epics
import h5py
import numpy as np
import pytest
from bluesky import RunEngine
from bluesky import plan_stubs as bps
from bluesky import plans as bp
from ophyd.utils import LimitError

from sibyls.devices.geometry import DetectorGeometry, azimuthal_average
from sibyls.devices.robot import RobotError
from sibyls.devices.sim.robot import ROBOT_CLEAN_S, ROBOT_LOAD_S
from sibyls.devices.sim.samples import catalogue_sample

pytestmark = pytest.mark.slow

PROTEIN = {
    "sample_code": "GluRS_1",
    "kind": "sample",
    "rg_a": 32.0,
    "concentration_mg_ml": 5.0,
    "mw_kda": 54.0,
}
BUFFER = {"sample_code": "buff_HEPES", "kind": "buffer"}


@pytest.fixture
def RE():
    return RunEngine({})


@pytest.fixture
def frames_dir(tmp_path, beamline):
    beamline.pilatus.set_file_destination(str(tmp_path), "frames")
    return tmp_path


def caput_refused(pv: str, value) -> bool:
    """Put ``value`` over raw CA; True if the PV kept its old value (the IOC refused the put)."""
    before = epics.caget(pv, as_string=isinstance(value, str), timeout=5)
    assert before is not None, f"{pv} did not connect"
    epics.caput(pv, value, wait=True, timeout=5)
    time.sleep(0.1)
    after = epics.caget(pv, as_string=isinstance(value, str), timeout=5)
    return after == before and after != value


def expose(RE, beamline, seconds: float, frames: int = 1) -> dict:
    """Open both shutters, expose detector + counters once, close; returns the event's data."""
    beamline.pilatus.acquire_time.put(seconds, wait=True)
    beamline.pilatus.acquire_period.put(seconds, wait=True)
    beamline.pilatus.num_images.put(frames, wait=True)
    for counter in (beamline.i0, beamline.bs_diode):
        counter.preset_time.put(seconds * frames, wait=True)
    data = {}

    def plan():
        yield from bps.mv(beamline.photon_shutter, "open", beamline.fast_shutter, "open")
        yield from bp.count([beamline.pilatus, beamline.i0, beamline.bs_diode])
        yield from bps.mv(beamline.fast_shutter, "close", beamline.photon_shutter, "close")

    RE(plan(), lambda name, doc: data.update(doc["data"]) if name == "event" else None)
    return data


def test_motors_move_at_their_velocity_and_report_done(RE, beamline, time_scale):
    time_scale(10.0)
    motor = beamline.sample_stage.x
    RE(bps.mv(motor, 0.0))
    start = time.monotonic()
    RE(bps.mv(motor, 2.0))
    elapsed = time.monotonic() - start
    assert motor.position == pytest.approx(2.0, abs=1e-3)
    assert motor.motor_done_move.get() == 1
    assert motor.motor_is_moving.get() == 0
    # 2 mm at VELO 2 mm/s is 1 s of simulated time: 0.1 s at 10x, never less.
    assert elapsed >= 0.1
    RE(bps.mv(beamline.beamstop.y, -0.5))
    assert beamline.beamstop.y.user_readback.get() == pytest.approx(-0.5, abs=1e-3)
    RE(bps.mv(motor, 0.0, beamline.beamstop.y, 0.0))


def test_motor_refuses_targets_beyond_its_soft_limits(RE, beamline, sim_ioc):
    motor = beamline.sample_stage.y
    with pytest.raises(LimitError, match="sample_stage_y"):
        RE(bps.mv(motor, 50.0))
    assert caput_refused(f"{sim_ioc.prefix}SampleStage:Y.VAL", 50.0)
    assert motor.position == pytest.approx(0.0, abs=1e-3)


def test_closed_shutter_gives_zero_i0_diode_and_frame(RE, beamline, simulation, frames_dir):
    simulation.put_in_cell(PROTEIN)
    beamline.pilatus.acquire_time.put(0.2, wait=True)
    beamline.pilatus.num_images.put(1, wait=True)
    for counter in (beamline.i0, beamline.bs_diode):
        counter.preset_time.put(0.2, wait=True)
    events = []
    RE(bps.mv(beamline.photon_shutter, "close", beamline.fast_shutter, "close"))
    RE(
        bp.count([beamline.pilatus, beamline.i0, beamline.bs_diode]),
        lambda name, doc: events.append(doc) if name == "event" else None,
    )
    dark = events[-1]["data"]
    assert dark["i0_counts"] == 0
    assert dark["bs_diode_counts"] == 0
    assert dark["pilatus_total_counts"] == 0
    with h5py.File(beamline.pilatus.full_file_name.get()) as f:
        assert f["entry/data/data"][()].max() == 0

    lit = expose(RE, beamline, 0.2)
    assert lit["i0_counts"] > 1e5
    assert lit["bs_diode_counts"] > 1e4
    assert lit["pilatus_total_counts"] > 1e5


@pytest.mark.parametrize("binning", [4, 1])
def test_exposure_writes_hdf5_matching_the_settings(RE, beamline, simulation, frames_dir, binning):
    simulation.put_in_cell(BUFFER)
    beamline.pilatus.binning.put(binning, wait=True)
    frames = 3 if binning == 4 else 1
    docs = []
    beamline.pilatus.acquire_time.put(0.05, wait=True)
    beamline.pilatus.num_images.put(frames, wait=True)
    try:
        RE(bp.count([beamline.pilatus]), lambda name, doc: docs.append((name, doc)))
    finally:
        beamline.pilatus.binning.put(4, wait=True)
    resources = [doc for name, doc in docs if name == "resource"]
    datums = [doc for name, doc in docs if name == "datum"]
    (event,) = [doc for name, doc in docs if name == "event"]
    (descriptor,) = [doc for name, doc in docs if name == "descriptor"]
    assert len(resources) == 1 and resources[0]["spec"] == "AD_HDF5"
    assert event["data"]["pilatus_image"] == datums[0]["datum_id"]
    path = "/" + resources[0]["resource_path"]
    assert path.startswith(str(frames_dir))
    rows, cols = DetectorGeometry(binning=binning).shape
    assert descriptor["data_keys"]["pilatus_image"]["shape"] == [frames, rows, cols]
    with h5py.File(path) as f:
        data = f["entry/data/data"]
        assert data.shape == (frames, rows, cols)
        assert data.dtype == np.int32
        assert f["entry/instrument/detector/count_time"][()] == pytest.approx(0.05)
    assert not list(frames_dir.glob("*.partial"))


def test_guinier_fit_of_the_simulated_frame_recovers_rg(RE, beamline, simulation, frames_dir, time_scale):
    time_scale(50.0)
    simulation.put_in_cell(BUFFER)
    expose(RE, beamline, 2.0)
    buffer_path = beamline.pilatus.full_file_name.get()
    simulation.put_in_cell(PROTEIN)
    expose(RE, beamline, 2.0)
    sample_path = beamline.pilatus.full_file_name.get()
    assert sample_path != buffer_path

    profiles = []
    for path in (sample_path, buffer_path):
        with h5py.File(path) as f:
            det = f["entry/instrument/detector"]
            binning = int(det["binning"][()])
            geometry = DetectorGeometry(
                wavelength_a=float(f["entry/instrument/monochromator/wavelength"][()]),
                distance_mm=float(det["distance"][()]),
                beam_center_x=float(det["beam_center_x"][()]) * binning,
                beam_center_y=float(det["beam_center_y"][()]) * binning,
                binning=binning,
            )
            profiles.append(
                azimuthal_average(
                    f["entry/data/data"][0], geometry, det["pixel_mask"][()], np.linspace(0.0, 0.1, 80)
                )
            )
    sample, buffer = profiles
    np.testing.assert_allclose(sample.q, buffer.q)
    subtracted = sample.intensity - buffer.intensity
    guinier = (sample.q * PROTEIN["rg_a"] < 1.3) & (subtracted > 0)
    assert guinier.sum() >= 8, "too few points in the Guinier region"
    slope = np.polyfit(sample.q[guinier] ** 2, np.log(subtracted[guinier]), 1)[0]
    rg = np.sqrt(-3.0 * slope)
    assert rg == pytest.approx(PROTEIN["rg_a"], rel=0.10)


def test_a_sensitive_sample_damages_frame_by_frame_until_the_cell_is_refilled(
    RE, beamline, sim_ioc, simulation, frames_dir, time_scale
):
    time_scale(50.0)
    sample = catalogue_sample("lysozyme", "lys_dmg", 5.0, damage_dose_gy=1000.0).model_dump(mode="json")
    simulation.put_in_cell(sample)
    dose_pv = f"{sim_ioc.prefix}Sim:CellDose_RBV"
    assert epics.caget(dose_pv, use_monitor=False) == 0.0
    try:
        expose(RE, beamline, 0.2, frames=8)
    finally:
        beamline.pilatus.num_images.put(1, wait=True)  # as the other tests expect it
    dose = epics.caget(dose_pv, use_monitor=False)
    assert 8 * 0.2 * 2000.0 < dose < 8 * 0.2 * 8000.0  # kGy/s in a static cell
    with h5py.File(beamline.pilatus.full_file_name.get()) as f:
        det = f["entry/instrument/detector"]
        binning = int(det["binning"][()])
        geometry = DetectorGeometry(
            beam_center_x=float(det["beam_center_x"][()]) * binning,
            beam_center_y=float(det["beam_center_y"][()]) * binning,
            binning=binning,
        )
        low_q = (geometry.q_map() < 0.03) & (det["pixel_mask"][()] == 0)
        totals = [float(frame[low_q].sum()) for frame in f["entry/data/data"][()]]
    # Frame 1 is taken below the 1 kGy threshold; from frame 2 on aggregates grow frame by frame.
    assert all(later > earlier for earlier, later in zip(totals[1:], totals[2:], strict=False))
    assert totals[-1] > 1.05 * totals[0]
    simulation.put_in_cell(sample)  # fresh liquid
    assert epics.caget(dose_pv, use_monitor=False) == 0.0


def test_bad_detector_settings_are_refused_and_unchanged(beamline, sim_ioc):
    with pytest.raises(LimitError, match="pilatus_acquire_time"):
        beamline.pilatus.acquire_time.put(-1.0)
    assert caput_refused(f"{sim_ioc.prefix}Pilatus:AcquireTime", -1.0)
    assert caput_refused(f"{sim_ioc.prefix}Pilatus:NumImages", 0)
    with pytest.raises(ValueError, match="file_name"):
        beamline.pilatus.set_file_destination("/tmp", "bad name/../x")


def test_cell_temperature_limits_and_approach(RE, beamline, sim_ioc, time_scale):
    with pytest.raises(ValueError, match="cell_temperature.*4–60"):
        RE(bps.mv(beamline.cell_temperature, 70.0))
    with pytest.raises(ValueError, match="cell_temperature"):
        RE(bps.mv(beamline.cell_temperature, 2.0))
    assert caput_refused(f"{sim_ioc.prefix}Cell:Temp:SP", 70.0)
    assert caput_refused(f"{sim_ioc.prefix}Cell:Temp:SP", 3.9)
    time_scale(100.0)
    RE(bps.mv(beamline.cell_temperature, 10.0))
    assert beamline.cell_temperature.readback.get() == pytest.approx(10.0, abs=0.15)
    RE(bps.mv(beamline.cell_temperature, 20.0))


def _timed(status_factory) -> tuple[float, float]:
    """Wall time of a status, and how long the robot reported a busy state during it."""
    start = time.monotonic()
    status_factory().wait(timeout=30)
    return time.monotonic() - start


def test_robot_load_clean_cycle_follows_the_time_scale(beamline, simulation, time_scale):
    robot = beamline.ht_robot
    robot.define_plate(
        {
            "plate_id": "PLATE_T1",
            "wells": {"A1": BUFFER, "A2": PROTEIN},
        }
    )
    robot.select_plate("PLATE_T1")
    if robot.state.get() != "idle":
        robot.clean().wait(timeout=30)

    states = []
    robot.state.subscribe(lambda value, **kw: states.append(value), run=False)
    for scale in (50.0, 25.0):
        time_scale(scale)
        load_s = _timed(lambda: robot.set("A2"))
        assert robot.state.get() == "loaded"
        assert robot.loaded_well.get() == "A2"
        assert simulation.cell_contents.get() == PROTEIN["sample_code"]
        clean_s = _timed(robot.clean)
        assert robot.state.get() == "idle"
        assert simulation.cell_contents.get() == "empty"
        # Never faster than the simulated duration; generous on the slow side (loaded CI).
        assert ROBOT_LOAD_S / scale <= load_s < ROBOT_LOAD_S / scale + 2.0
        assert ROBOT_CLEAN_S / scale <= clean_s < ROBOT_CLEAN_S / scale + 2.0
    assert "loading" in states and "cleaning" in states


def test_robot_refuses_bad_wells_unknown_plates_and_out_of_order_commands(beamline, sim_ioc, time_scale):
    time_scale(100.0)
    robot = beamline.ht_robot
    robot.define_plate({"plate_id": "PLATE_T2", "wells": {"B1": BUFFER}})
    robot.select_plate("PLATE_T2")
    with pytest.raises(ValueError, match="Z99"):
        robot.set("Z99")
    assert caput_refused(f"{sim_ioc.prefix}Robot:Well", "Z99")
    with pytest.raises(ValueError, match="unknown plate 'NOPE'"):
        robot.select_plate("NOPE")
    assert caput_refused(f"{sim_ioc.prefix}Robot:PlateId", "NOPE")
    with pytest.raises(RobotError, match="H12 of plate PLATE_T2 is empty"):
        robot.set("H12").wait(timeout=10)
    robot.set("B1").wait(timeout=10)
    with pytest.raises(RobotError, match="robot is loaded"):
        robot.set("B1").wait(timeout=10)
    robot.clean().wait(timeout=10)
    with pytest.raises(RuntimeError):  # an invalid plate definition is refused by the IOC
        robot.define_plate({"plate_id": "BAD", "wells": {"Q1": BUFFER}})
    assert "BAD" not in robot.known_plate_ids()


def test_hplc_run_gives_the_uv_peak_at_the_expected_elution_time(beamline, sim_ioc, time_scale):
    time_scale(50.0)
    sec = beamline.sec
    sec.flow_rate.put(1.0, wait=True)
    sec.run_time.put(12.0, wait=True)
    sample = {**PROTEIN, "sample_code": "GluRS_sec", "concentration_mg_ml": 10.0, "elution_volume_ml": 7.0}
    sec.load_vial(sample)
    trace: list[tuple[float, float]] = []
    lock = threading.Lock()

    def on_uv(value, **kwargs):
        with lock:
            trace.append((sec.elapsed.get(), value))

    sec.uv280.subscribe(on_uv, run=False)
    try:
        sec.inject().wait(timeout=10)
        assert sec.run_state.get() == "Running"
        deadline = time.monotonic() + 30
        while sec.elapsed.get() < 9.0 * 60 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        sec.stop_run().wait(timeout=10)
        sec.uv280.clear_sub(on_uv)
    with lock:
        elapsed, uv = np.array(trace).T
    # Peak at (elution volume + UV cell offset) / flow = 7.02 mL / 1 mL/min = 421 s.
    expected_s = (7.0 + 0.02) / 1.0 * 60.0
    assert uv.max() > 100.0
    assert elapsed[np.argmax(uv)] == pytest.approx(expected_s, abs=10.0)
    assert np.all(uv[elapsed < 300] < 5.0)  # baseline before the peak (a flat one sends no updates)


def test_hplc_refuses_flow_above_its_maximum(beamline, sim_ioc):
    with pytest.raises(LimitError, match="sec_flow_rate"):
        beamline.sec.flow_rate.put(1.5)
    assert caput_refused(f"{sim_ioc.prefix}SEC:Pump:FlowRate", 1.5)
