"""Queue-item validation without hardware: the plans' own checks, run as a dry run."""

from __future__ import annotations

import pytest

from sibyls.plans.validation import validate_plan_call, validate_queue_item

pytestmark = pytest.mark.slow

GOOD_PLATE = {
    "plate_id": "P1",
    "wells": [
        {"well": "A1", "sample_code": "buf", "sample_role": "buffer_blank"},
        {"well": "A2", "sample_code": "lys", "buffer_well": "A1", "concentration_mg_ml": 2.0},
    ],
}


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ({"name": "saxs_exposure", "kwargs": {"sample_code": "", "project_code": "P"}}, "sample_code: "),
        (
            {"name": "saxs_exposure", "kwargs": {"sample_code": "ok", "project_code": "P", "num_frames": 0}},
            "num_frames: 0 is outside",
        ),
        (
            {
                "name": "saxs_exposure",
                "kwargs": {"sample_code": "ok", "project_code": "P", "sample_role": "x"},
            },
            "sample_role: Input should be",
        ),
        (
            {"name": "saxs_exposure", "kwargs": {"sample_code": "ok"}},
            "project_code: required argument of saxs_exposure is missing",
        ),
        (
            {"name": "saxs_exposure", "kwargs": {"sample_code": "ok", "project_code": "P", "bogus": 1}},
            "bogus: saxs_exposure has no such parameter",
        ),
        ({"name": "mv", "args": ["sample_stage_x", 1]}, "name: 'mv' is not a SIBYLS plan"),
        (
            {
                "name": "count",
                "kwargs": {"detectors": ["pilatus", "pilatsu"], "sample_code": "s", "project_code": "P"},
            },
            "detectors: 'pilatsu' not allowed here; choose from beamstop, bs_diode",
        ),
        (
            {"name": "count", "kwargs": {"detectors": "pilatus", "sample_code": "s", "project_code": "P"}},
            "detectors: a list of device names",
        ),
        (
            {"name": "scan", "args": [["i0"], "ring", -1.0, 1.0, 5, "s", "P"]},
            "motor: 'ring' not allowed here; choose from beamstop.x",
        ),
        (
            {
                "name": "ht_plate",
                "kwargs": {"plate": {**GOOD_PLATE, "wells": GOOD_PLATE["wells"][1:]}, "project_code": "P"},
            },
            "buffer well A1 of lys is not on the plate",
        ),
        (
            {"name": "sec_saxs", "kwargs": {"sample_code": "s", "project_code": "P", "flow_rate": 2.0}},
            "flow_rate: 2 mL/min is outside 0.01–1 mL/min",
        ),
        (
            {
                "name": "temperature_series",
                "kwargs": {"sample_code": "s", "project_code": "P", "temperatures": [20.0, 80.0]},
            },
            "temperatures[1]: 80 °C is outside 4–60 °C",
        ),
        (
            {
                "name": "saxs_exposure",
                "kwargs": {"sample_code": "ok", "project_code": "P"},
                "meta": {"sample_code": "other"},
            },
            "meta.sample_code: reserved",
        ),
    ],
)
def test_bad_items_are_refused_with_the_field_named(item, expected):
    result = validate_queue_item(item)
    assert result["success"] is False
    assert any(expected in problem for problem in result["problems"]), result["problems"]


def test_good_items_pass():
    assert validate_plan_call("ht_plate", kwargs={"plate": GOOD_PLATE, "project_code": "P"}) == []
    assert validate_queue_item(
        {"name": "count", "kwargs": {"detectors": ["ring"], "sample_code": "s", "project_code": "P"}}
    )["success"]
    assert validate_queue_item(
        {"name": "scan", "args": [["i0", "pilatus"], "sample_stage.x", -1.0, 1.0, 5, "s", "P"]}
    )["success"]


def test_the_standard_plans_device_lists_are_the_beamlines(beamline):
    """READABLE_DEVICES is every device, and every SCAN_AXES entry is a movable (sub)device."""
    from sibyls.plans.standard import READABLE_DEVICES, SCAN_AXES

    devices = beamline.devices()
    assert set(READABLE_DEVICES) == set(devices)
    for axis in SCAN_AXES:
        top, _, child = axis.partition(".")
        device = getattr(devices[top], child) if child else devices[top]
        assert hasattr(device, "set") and hasattr(device, "position"), axis
