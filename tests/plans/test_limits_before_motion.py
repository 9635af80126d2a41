"""A scan started from a console (no queue) with one setpoint beyond a limit moves nothing.

The queue gate refuses such items when they are added; a plan called directly in a RunEngine must
refuse them too, before its first move and before its run opens: every setpoint is checked against
the limits table and the devices' live soft limits first. Against the session's simulated IOC over
Channel Access; each refusal must name the plan argument, leave every motor, setpoint and shutter as
it was (monitored while the plan is tried) and emit no RunStart.
"""

from __future__ import annotations

import re
import time

import pytest
from bluesky import RunEngine
from bluesky import plan_stubs as bps

from sibyls.metadata.contract import ContractError
from sibyls.metadata.rules import AXIS_LIMITS, RULES
from sibyls.plans import (
    configure_plans,
    grid_scan,
    list_scan,
    rel_scan,
    saxs_exposure,
    scan,
    setup_run_engine,
    temperature_series,
)

pytestmark = pytest.mark.slow

PROJECT = "LIMITS_TEST"
SAMPLE = "limits_s1"
T_HIGH = RULES["cell_temperature"].high + 10  # 70 °C
BEAMSTOP_Y_OUT = AXIS_LIMITS["beamstop.y"].high + 7  # 12 mm
STAGE_X_OUT = AXIS_LIMITS["sample_stage.x"].high + 1
STAGE_Y_OUT = AXIS_LIMITS["sample_stage.y"].high + 1


@pytest.fixture
def console(beamline, simulation, tmp_path):
    """A RunEngine as at the beamline console (SIBYLS set-up, no queue) and every document it emits."""
    configure_plans(beamline, tmp_path / "data")
    RE = RunEngine({}, call_returns_result=True)
    setup_run_engine(RE, beamline, tmp_path / "records", spool_dir=tmp_path / "spool")
    documents: list[tuple[str, dict]] = []
    RE.subscribe(lambda name, doc: documents.append((name, doc)))
    return RE, documents


def watched(beamline) -> dict:
    """Every motor's setpoint and readback, the cell temperature setpoint, the shutters and the robot."""
    signals = {}
    for stage in ("sample_stage", "beamstop"):
        for axis in ("x", "y"):
            motor = getattr(getattr(beamline, stage), axis)
            signals[f"{stage}.{axis} VAL"] = motor.user_setpoint
            signals[f"{stage}.{axis} RBV"] = motor.user_readback
    signals["cell_temperature SP"] = beamline.cell_temperature.setpoint
    signals["photon_shutter"] = beamline.photon_shutter.status
    signals["fast_shutter"] = beamline.fast_shutter.status
    signals["ht_robot"] = beamline.ht_robot.state
    return signals


def names_field(message: str, field: str) -> bool:
    """A problem line (``\\n  - field: ...``) of ``message`` starts with ``field``."""
    return re.search(rf"(?:^|\n)\s*- {re.escape(field)}(?=[:\[.])", message) is not None


def assert_refused_before_motion(console, beamline, plan, field: str) -> None:
    """``plan`` raises ContractError naming ``field``; no watched PV changes, no run opens."""
    RE, documents = console
    signals = watched(beamline)
    before = {name: signal.get(use_monitor=False) for name, signal in signals.items()}
    posted: list[tuple[str, object]] = []
    tokens = {
        name: signal.subscribe(lambda value, name=name, **kw: posted.append((name, value)), run=False)
        for name, signal in signals.items()
    }
    try:
        with pytest.raises(ContractError) as refused:
            RE(plan)
        time.sleep(0.3)  # a move that started anyway would have posted by now
    finally:
        for name, token in tokens.items():
            signals[name].unsubscribe(token)
    assert names_field(str(refused.value), field), str(refused.value)
    # A new subscription may post the current value first; any other value is a change.
    assert [(name, value) for name, value in posted if value != before[name]] == []
    assert {name: signal.get(use_monitor=False) for name, signal in signals.items()} == before
    assert [name for name, _ in documents if name == "start"] == []


def test_a_scan_with_its_stop_beyond_the_soft_limit_moves_nothing(console, beamline):
    plan = scan([beamline.i0], beamline.beamstop.y, 0, BEAMSTOP_Y_OUT, 4, SAMPLE, PROJECT)
    assert_refused_before_motion(console, beamline, plan, "stop")


def test_a_list_scan_with_one_position_outside_moves_nothing(console, beamline):
    plan = list_scan([beamline.i0], beamline.sample_stage.x, [0.0, 1.0, STAGE_X_OUT, 2.0], SAMPLE, PROJECT)
    assert_refused_before_motion(console, beamline, plan, "positions[2]")


def test_a_grid_scan_whose_second_axis_leaves_its_range_moves_nothing(console, beamline):
    stage = beamline.sample_stage
    plan = grid_scan([beamline.i0], stage.x, -1.0, 1.0, 3, stage.y, -1.0, STAGE_Y_OUT, 3, SAMPLE, PROJECT)
    assert_refused_before_motion(console, beamline, plan, "stop2")


def test_a_rel_scan_ending_beyond_the_limit_from_where_the_motor_is_moves_nothing(console, beamline):
    """The span (4 mm) fits the axis; from 3 mm its end (6 mm) does not: only the live check sees it."""
    RE, _ = console
    motor = beamline.beamstop.x
    start_position = motor.position
    RE(bps.mv(motor, 3.0))
    try:
        assert AXIS_LIMITS["beamstop.x"].high < 3.0 + 3.0
        plan = rel_scan([beamline.i0], motor, -1.0, 3.0, 5, SAMPLE, PROJECT)
        assert_refused_before_motion(console, beamline, plan, "stop")
    finally:
        RE(bps.mv(motor, start_position))


def test_live_soft_limits_narrower_than_the_table_are_what_counts(console, beamline):
    """Staff narrowed beamstop Y's high limit to 2 mm: a scan to 3 mm (inside the table) is refused."""
    motor = beamline.beamstop.y
    high = motor.high_limit_travel.get()
    motor.high_limit_travel.put(2.0, wait=True)
    try:
        deadline = time.monotonic() + 5
        while motor.limits[1] != 2.0 and time.monotonic() < deadline:
            time.sleep(0.05)
        plan = scan([beamline.i0], motor, 0.0, 3.0, 4, SAMPLE, PROJECT)
        assert_refused_before_motion(console, beamline, plan, "stop")
    finally:
        motor.high_limit_travel.put(high, wait=True)


def test_a_temperature_series_with_one_bad_setpoint_moves_nothing(console, beamline):
    plan = temperature_series(SAMPLE, PROJECT, [10.0, T_HIGH], exposure_time=0.05, num_frames=1)
    assert_refused_before_motion(console, beamline, plan, "temperatures[1]")


def test_a_saxs_exposure_at_70_degrees_moves_nothing(console, beamline):
    plan = saxs_exposure(SAMPLE, PROJECT, exposure_time=0.05, num_frames=1, cell_temperature=T_HIGH)
    assert_refused_before_motion(console, beamline, plan, "cell_temperature")
