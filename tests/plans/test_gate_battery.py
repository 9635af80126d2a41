"""The queue gate's battery of bad items, in process: every one refused, naming the field.

One table, :data:`BATTERY`, of items a user could submit to the queue, each with one thing wrong,
and the plan argument the refusal must name at the start of a problem line (``sample_code``,
``temperatures[1]``, ``plate.wells[1].well``, ``meta.plan_type``, ``item``). Here each goes through
:func:`sibyls.plans.validation.validate_queue_item` (what ``/api/sibyls/validate`` and plate sheets
run); ``tests/startup/test_queue_gate.py`` sends the same table to a real stack over the ``qserver``
CLI, HTTP and the Python API. :data:`VALID` holds one good item of each plan: every bad item is one
of these with one change, so the named field is the only problem.

Limits come from :mod:`sibyls.metadata.rules` (just outside each range), not from numbers here.

(Over 450 lines on purpose: the battery is one table, one bad item per line, read as a whole against
the rule table and replayed by test_queue_gate.py; split, a category would lose its neighbours.)
"""

from __future__ import annotations

import copy
import math
import re
from typing import Any, NamedTuple

import pytest
import yaml

from sibyls.metadata.plate_registry import use_registry
from sibyls.metadata.rules import (
    AXIS_LIMITS,
    CODE_MAX_LENGTH,
    ITEM_MAX_BYTES,
    ITEM_MAX_DEPTH,
    NAME_MAX_LENGTH,
    PLATE_WELLS,
    RULES,
    TEXT_MAX_LENGTH,
    WELL_COLUMNS,
    WELL_ROWS,
)
from sibyls.plans import QUEUE_PLAN_NAMES
from sibyls.plans.validation import refusal_message, validate_queue_item

PROJECT = "GATE"
SAMPLE = "gate_s1"
#: The plate the robot knows (the stack test defines it over Channel Access first).
KNOWN_PLATE = "GATE_PLATE"
UNKNOWN_PLATE = "NOT_ON_ROBOT"
NAN, INF = float("nan"), float("inf")
DROP = object()  # in a change: leave the argument out


def plate_wells() -> list[dict[str, Any]]:
    """A buffer and its sample, buffer first: the smallest valid plate."""
    return [
        {
            "well": "B1",
            "sample_code": "gbuf",
            "sample_role": "buffer_blank",
            "exposure_time": 0.05,
            "num_frames": 1,
        },
        {
            "well": "B2",
            "sample_code": "gprot",
            "buffer_well": "B1",
            "concentration_mg_ml": 2.0,
            "exposure_time": 0.05,
            "num_frames": 1,
        },
    ]


#: What the simulated robot holds in the wells of :data:`KNOWN_PLATE` (``HTRobot.define_plate``).
ROBOT_PLATE = {
    "plate_id": KNOWN_PLATE,
    "wells": {
        "B1": {"sample_code": "gbuf", "kind": "buffer"},
        "B2": {
            "sample_code": "gprot",
            "kind": "sample",
            "rg_a": 30.0,
            "concentration_mg_ml": 2.0,
            "mw_kda": 50.0,
        },
    },
}

_CODES = {"sample_code": SAMPLE, "project_code": PROJECT}
_DETECTORS = ["i0", "bs_diode"]

#: One valid, quick item of each queue plan (run to completion by the stack test).
VALID: dict[str, dict[str, Any]] = {
    "saxs_exposure": {**_CODES, "exposure_time": 0.05, "num_frames": 1},
    "ht_plate": {"plate": {"plate_id": KNOWN_PLATE, "wells": plate_wells()}, "project_code": PROJECT},
    "sec_saxs": {**_CODES, "flow_rate": 0.5, "duration": 0.2, "frame_period": 3.0, "exposure_time": 0.1},
    "temperature_series": {
        **_CODES,
        "temperatures": [21.0, 20.0],
        "exposure_time": 0.05,
        "num_frames": 1,
        "equilibration_time": 0.0,
    },
    "align_beamstop": {
        "sample_code": "empty_cell",
        "project_code": PROJECT,
        "axis": "x",
        "half_width": 0.5,
        "points": 5,
        "count_time": 0.01,
        "nscans": 1,
    },
    "align_sample_stage": {
        "sample_code": SAMPLE,
        "project_code": PROJECT,
        "axis": "x",
        "half_width": 0.5,
        "points": 5,
        "count_time": 0.01,
    },
    "alignment_grid_scan": {
        "sample_code": SAMPLE,
        "project_code": PROJECT,
        "half_width_x": 0.2,
        "num_x": 3,
        "half_width_y": 0.2,
        "num_y": 3,
        "count_time": 0.01,
    },
    "count": {**_CODES, "detectors": _DETECTORS, "num": 2},
    "scan": {
        **_CODES,
        "detectors": _DETECTORS,
        "motor": "sample_stage.x",
        "start": -0.1,
        "stop": 0.1,
        "num": 3,
    },
    "rel_scan": {
        **_CODES,
        "detectors": _DETECTORS,
        "motor": "beamstop.y",
        "start": -0.1,
        "stop": 0.1,
        "num": 3,
    },
    "list_scan": {**_CODES, "detectors": _DETECTORS, "motor": "sample_stage.y", "positions": [0.0, 0.1, 0.0]},
    "grid_scan": {
        **_CODES,
        "detectors": _DETECTORS,
        "motor1": "sample_stage.x",
        "start1": -0.1,
        "stop1": 0.1,
        "num1": 2,
        "motor2": "sample_stage.y",
        "start2": -0.1,
        "stop2": 0.1,
        "num2": 2,
    },
}


def valid_item(plan: str) -> dict[str, Any]:
    """A fresh copy of the valid item of ``plan`` (name, args, kwargs)."""
    return {"name": plan, "args": [], "kwargs": copy.deepcopy(VALID[plan])}


class Case(NamedTuple):
    """One bad item: its category, a short id, the item, and the field its refusal must name."""

    category: str
    id: str
    item: dict[str, Any]
    field: str


CATEGORIES = ("codes", "numbers", "structure", "limits", "plates", "sec", "meta", "size")


def bad(plan: str, **changes: Any) -> dict[str, Any]:
    """The valid item of ``plan`` with ``changes`` to its kwargs (``DROP`` leaves one out)."""
    item = valid_item(plan)
    for key, value in changes.items():
        if value is DROP:
            item["kwargs"].pop(key, None)
        else:
            item["kwargs"][key] = value
    return item


def bad_plate(change, **kwargs: Any) -> dict[str, Any]:
    """The valid plate item with ``change(plate)`` applied (and ``kwargs`` changed)."""
    item = bad("ht_plate", **kwargs)
    change(item["kwargs"]["plate"])
    return item


def bad_well(index: int, **changes: Any) -> dict[str, Any]:
    """The valid plate item with ``changes`` to well ``index`` (``DROP`` leaves a key out)."""

    def change(plate: dict) -> None:
        well = plate["wells"][index]
        for key, value in changes.items():
            if value is DROP:
                well.pop(key, None)
            else:
                well[key] = value

    return bad_plate(change)


def with_meta(plan: str, meta: Any) -> dict[str, Any]:
    return {**valid_item(plan), "meta": meta}


def nested(depth: int) -> Any:
    value: Any = "deep"
    for _ in range(depth):
        value = [value]
    return value


def _limit(name: str, side: str, table: dict = RULES) -> float:
    rule = table[name]
    return rule.high if side == "high" else rule.low  # type: ignore[return-value]


def _outside(name: str, side: str, by: float, table: dict = RULES) -> float:
    """Just outside the rule of ``name``: ``by`` above its high end or below its low end."""
    return _limit(name, side, table) + (by if side == "high" else -by)


_TOO_LONG_CODE = "a" * (CODE_MAX_LENGTH + 1)
_LONG_TEXT = "d" * (TEXT_MAX_LENGTH + 1000)
_FRAMES_MAX = int(_limit("num_frames", "high"))
_T_HIGH, _T_LOW = _outside("cell_temperature", "high", 10), _outside("cell_temperature", "low", 0.1)
_BS_Y_OUT = _outside("beamstop.y", "high", 7, AXIS_LIMITS)  # 12 mm
_STAGE_X_OUT = _outside("sample_stage.x", "high", 1, AXIS_LIMITS)
_STAGE_Y_OUT = _outside("sample_stage.y", "high", 1, AXIS_LIMITS)
_BS_X_WIDTH = _limit("beamstop.x", "high", AXIS_LIMITS) - _limit("beamstop.x", "low", AXIS_LIMITS)
_W1 = "plate.wells[1]"
_POINTS_LOW, _POINTS_HIGH = int(_outside("points", "low", 1)), int(_outside("points", "high", 1))


def _wells(n: int) -> list[dict[str, Any]]:
    """``n`` buffer wells (past 96 the names start again at A1)."""
    names = [f"{row}{column}" for row in WELL_ROWS for column in WELL_COLUMNS]
    return [
        {"well": names[i % len(names)], "sample_code": f"b{i}", "sample_role": "buffer_blank"}
        for i in range(n)
    ]


def _add_well(plate: dict, **well: Any) -> None:
    plate["wells"].append({**plate["wells"][1], **well})


def _cases(category: str, rows: list[tuple[str, dict[str, Any], str]]) -> list[Case]:
    return [Case(category, case_id, item, field) for case_id, item, field in rows]


_CODE_VALUES = {
    "empty": "",
    "blank": "   ",
    "too-long": _TOO_LONG_CODE,
    "dotdot": "../..",
    "slash": "a/b",
    "nul": "a\x00b",
    "newline": "a\nb",
    "unit-separator-end": "lys\x1f",  # a control character Python's str.strip() would have dropped
    "int": 5,
    "none": None,
}
_META = {
    "plan_type": "count",
    "sample_code": "forged",
    "project_code": "OTHER",
    "submitted_by": "someone_else",
    "queue_item_uid": "0123456789abcdef",
    "user_group": "admin",
    "uid": "0123456789abcdef",
    "scan_id": 1,
}

# fmt: off
BATTERY: list[Case] = [
    # ---- codes: content, length, type ---------------------------------------------------------
    *_cases("codes", [
        *[(f"sample_code-{k}", bad("saxs_exposure", sample_code=v), "sample_code")
          for k, v in _CODE_VALUES.items()],
        *[(f"project_code-{k}", bad("saxs_exposure", project_code=_CODE_VALUES[k]), "project_code")
          for k in ("empty", "too-long", "dotdot", "int", "none")],
        ("sec-sample_code-shell", bad("sec_saxs", sample_code="a;rm -rf ~"), "sample_code"),
        ("scan-project_code-backslash", bad("scan", project_code="a\\b"), "project_code"),
        ("align-sample_code-dotfile", bad("align_beamstop", sample_code=".hidden"), "sample_code"),
        ("ht_plate-project_code-blank", bad("ht_plate", project_code=" "), "project_code"),
        ("proposal_id-slash", bad("saxs_exposure", proposal_id="a/b"), "proposal_id"),
        ("operator-too-long", bad("saxs_exposure", operator="o" * (NAME_MAX_LENGTH + 1)), "operator"),
        ("sample_role-unknown", bad("saxs_exposure", sample_role="blank"), "sample_role"),
        ("buffer_run_uid-bad", bad("saxs_exposure", buffer_run_uid="not a uid!"), "buffer_run_uid"),
    ]),
    # ---- numbers: type, sign, NaN/inf, huge, float-for-int --------------------------------------
    *_cases("numbers", [
        *[(f"exposure_time-{k}", bad("saxs_exposure", exposure_time=v), "exposure_time") for k, v in [
            ("nan", NAN), ("inf", INF), ("-inf", -INF), ("negative", -1.0), ("zero", 0), ("huge", 1e9),
            ("huge-int", 10**400), ("str", "1"), ("bool", True)]],
        *[(f"num_frames-{k}", bad("saxs_exposure", num_frames=v), "num_frames") for k, v in [
            ("zero", 0), ("negative", -3), ("fraction", 3.5), ("str", "3"), ("above-max", _FRAMES_MAX + 1),
            ("float-for-int", 3.0), ("huge-int", 10**30)]],
        ("concentration-negative", bad("saxs_exposure", concentration_mg_ml=-1.0), "concentration_mg_ml"),
        ("count-num-fraction", bad("count", num=2.5), "num"),
        ("count-delay-inf", bad("count", delay=INF), "delay"),
        ("series-equilibration-negative", bad("temperature_series", equilibration_time=-1.0),
         "equilibration_time"),
        ("align-points-float-for-int", bad("align_beamstop", points=5.0), "points"),
    ]),
    # ---- structure: unknown plan or argument, missing or repeated arguments, nesting -----------
    *_cases("structure", [
        ("unknown-plan", {"name": "saxs_exposures", "args": [], "kwargs": dict(_CODES)}, "name"),
        ("unknown-kwarg", bad("saxs_exposure", exposure=1.0), "exposure"),
        ("missing-project_code", bad("saxs_exposure", project_code=DROP), "project_code"),
        ("missing-temperatures", bad("temperature_series", temperatures=DROP), "temperatures"),
        ("too-many-positional",
         {"name": "count", "args": [_DETECTORS, SAMPLE, PROJECT, 1, 0.0, "d", "extra"], "kwargs": {}},
         "args"),
        ("positional-and-keyword",
         {"name": "saxs_exposure", "args": [SAMPLE, PROJECT], "kwargs": {"sample_code": SAMPLE}},
         "sample_code"),
        ("nested-10-deep", bad("saxs_exposure", description=nested(ITEM_MAX_DEPTH + 4)), "description"),
        ("detectors-not-a-list", bad("count", detectors="i0"), "detectors"),
        ("detectors-unknown", bad("count", detectors=["pilatus", "pilatsu"]), "detectors"),
        ("motor-unknown", bad("scan", motor="sample_stage.z"), "motor"),
        ("motor-ring", bad("rel_scan", motor="ring"), "motor"),
        ("axis-z", bad("align_beamstop", axis="z"), "axis"),
        ("plate-not-a-dict", bad("ht_plate", plate="A1,A2"), "plate"),
        ("positions-empty", bad("list_scan", positions=[]), "positions"),
        ("args-a-dict", {**valid_item("saxs_exposure"), "args": {}}, "args"),
        ("kwargs-a-list", {"name": "count", "args": [_DETECTORS, SAMPLE, PROJECT], "kwargs": []}, "kwargs"),
        ("kwarg-name-not-identifier", bad("saxs_exposure", **{"exposure-time": 1.0}), "exposure-time"),
        ("detectors-none", bad("count", detectors=[]), "detectors"),
        ("detectors-twice", bad("count", detectors=["i0", "i0"]), "detectors"),
        ("grid-one-motor-twice", bad("grid_scan", motor2="sample_stage.x"), "motor2"),
        ("buffer_blank-with-buffer_run_uid",
         bad("saxs_exposure", sample_role="buffer_blank", buffer_run_uid="0123456789abcdef"),
         "buffer_run_uid"),
        ("buffer_run_uid-only-dashes", bad("saxs_exposure", buffer_run_uid="--------"), "buffer_run_uid"),
    ]),
    # ---- limits: soft limits, temperatures, every scan point -----------------------------------
    *_cases("limits", [
        ("cell_temperature-high", bad("saxs_exposure", cell_temperature=_T_HIGH), "cell_temperature"),
        ("cell_temperature-low", bad("saxs_exposure", cell_temperature=_T_LOW), "cell_temperature"),
        ("cell_temperature-nan", bad("saxs_exposure", cell_temperature=NAN), "cell_temperature"),
        ("temperatures-one-high", bad("temperature_series", temperatures=[20.0, _T_HIGH]), "temperatures[1]"),
        ("temperatures-empty", bad("temperature_series", temperatures=[]), "temperatures"),
        ("temperatures-str", bad("temperature_series", temperatures="20"), "temperatures"),
        ("temperatures-one-str", bad("temperature_series", temperatures=[20.0, "x"]), "temperatures[1]"),
        ("scan-beamstop-beyond", bad("scan", motor="beamstop.y", start=0.0, stop=_BS_Y_OUT), "stop"),
        ("scan-cell_temperature",
         bad("scan", motor="cell_temperature", start=20.0, stop=_T_HIGH + 10), "stop"),
        ("rel_scan-offsets-beyond-axis", bad("rel_scan", motor="beamstop.y", start=6.0, stop=11.0), "stop"),
        ("rel_scan-huge-integers", bad("rel_scan", start=-(10**308), stop=10**308), "stop"),
        ("list_scan-too-many-positions", bad("list_scan", positions=[0.0] * (_FRAMES_MAX + 1)), "positions"),
        ("temperatures-too-many", bad("temperature_series", temperatures=[20.0] * 101), "temperatures"),
        ("rel_scan-wider-than-axis",
         bad("rel_scan", motor="beamstop.x", start=-_BS_X_WIDTH / 2 - 1, stop=_BS_X_WIDTH / 2 + 1), "stop"),
        ("list_scan-one-outside",
         bad("list_scan", motor="sample_stage.x", positions=[0.0, 1.0, _STAGE_X_OUT, 2.0]), "positions[2]"),
        ("list_scan-one-inf", bad("list_scan", positions=[0.0, INF]), "positions[1]"),
        ("grid_scan-second-axis", bad("grid_scan", start2=-1.0, stop2=_STAGE_Y_OUT), "stop2"),
        ("scan-num-zero", bad("scan", num=0), "num"),
        ("scan-num-above-max", bad("scan", num=int(_limit("num", "high")) + 1), "num"),
        ("scan-num-fraction", bad("scan", num=2.5), "num"),
        ("align-points-low", bad("align_beamstop", points=_POINTS_LOW), "points"),
        ("align-points-high", bad("align_beamstop", points=_POINTS_HIGH), "points"),
        ("align-half_width-zero", bad("align_beamstop", half_width=0.0), "half_width"),
        ("align-half_width-high",
         bad("align_beamstop", half_width=_outside("half_width", "high", 1)), "half_width"),
        ("stage-half_width-high",
         bad("align_sample_stage", half_width=_outside("half_width", "high", 0.01)), "half_width"),
        ("grid-num_x-low", bad("alignment_grid_scan", num_x=int(_outside("num_x", "low", 1))), "num_x"),
    ]),
    # ---- plates: wells, buffers, order, size, registry ------------------------------------------
    *_cases("plates", [
        ("well-Z99", bad_well(1, well="Z99"), "plate.wells[1].well"),
        ("well-A13", bad_well(1, well="A13"), "plate.wells[1].well"),
        ("well-duplicate", bad_well(1, well="B1", buffer_well="B1"), "plate.wells[1].well"),
        ("sample-without-buffer_well", bad_well(1, buffer_well=DROP), "plate.wells[1]"),
        ("buffer_well-is-a-sample",
         bad_plate(lambda p: _add_well(p, well="B3", sample_code="g3", buffer_well="B2")),
         "plate.wells[2].buffer_well"),
        ("buffer-after-sample", bad_plate(lambda p: p["wells"].reverse()), "plate.wells[0].buffer_well"),
        ("buffer-missing", bad_plate(lambda p: p["wells"].pop(0)), "plate.wells[0].buffer_well"),
        ("empty-plate", bad_plate(lambda p: p.update(wells=[])), "plate.wells"),
        ("97-wells", bad_plate(lambda p: p.update(wells=_wells(PLATE_WELLS[1] + 1))), "plate.wells"),
        ("plate_id-unknown", bad_plate(lambda p: p.update(plate_id=UNKNOWN_PLATE)), "plate.plate_id"),
        ("plate_id-slash", bad_plate(lambda p: p.update(plate_id="a/b")), "plate.plate_id"),
        ("well-concentration-zero", bad_well(1, concentration_mg_ml=0.0), f"{_W1}.concentration_mg_ml"),
        ("well-concentration-negative", bad_well(1, concentration_mg_ml=-1.0), f"{_W1}.concentration_mg_ml"),
        ("well-concentration-nan", bad_well(1, concentration_mg_ml=NAN), f"{_W1}.concentration_mg_ml"),
        ("well-num_frames-zero", bad_well(1, num_frames=0), "plate.wells[1].num_frames"),
        ("well-exposure-huge-int", bad_well(1, exposure_time=10**400), "plate.wells[1].exposure_time"),
        ("well-well-control-char", bad_well(1, well="A2\x1e"), "plate.wells[1].well"),
        ("well-description-long", bad_well(1, description=_LONG_TEXT), "plate.wells[1].description"),
        ("well-sample_code-empty", bad_well(1, sample_code=""), "plate.wells[1].sample_code"),
        ("well-unknown-key", bad_well(1, volume_ul=20), "plate.wells[1].volume_ul"),
        ("well-empty-on-robot", bad_plate(lambda p: p["wells"].append({**p["wells"][0], "well": "H12"})),
         "plate.wells[2].well"),
        ("well-buffer_name-blank", bad_well(1, buffer_name="  "), "plate.wells[1].buffer_name"),
        ("plate-operator-blank", bad("ht_plate", operator=" "), "operator"),
    ]),
    # ---- SEC-SAXS-MALS ---------------------------------------------------------------------------
    *_cases("sec", [
        ("flow_rate-high", bad("sec_saxs", flow_rate=_outside("flow_rate", "high", 1)), "flow_rate"),
        ("flow_rate-zero", bad("sec_saxs", flow_rate=0.0), "flow_rate"),
        ("flow_rate-nan", bad("sec_saxs", flow_rate=NAN), "flow_rate"),
        ("exposure-longer-than-period",
         bad("sec_saxs", exposure_time=5.0, frame_period=3.0), "exposure_time"),
        ("duration-no-frame",
         bad("sec_saxs", duration=0.1, frame_period=60.0, exposure_time=1.0), "duration"),
        ("duration-too-many-frames",
         bad("sec_saxs", duration=_limit("duration", "high"), frame_period=0.1, exposure_time=0.05),
         "duration"),
        ("frame_period-low",
         bad("sec_saxs", frame_period=_limit("frame_period", "low") / 10, exposure_time=0.001),
         "frame_period"),
        ("buffer_threshold-zero", bad("sec_saxs", buffer_threshold_mau=0.0), "buffer_threshold_mau"),
    ]),
    # ---- meta: no RunStart key of the contract or the queue identity ---------------------------
    *_cases("meta", [
        *[(f"meta-{key}", with_meta("saxs_exposure", {key: value}), f"meta.{key}")
          for key, value in _META.items()],
        ("meta-in-a-list", with_meta("count", [{"note": "ok"}, {"plan_type": "scan"}]), "meta.plan_type"),
        ("meta-not-a-dict", with_meta("saxs_exposure", "plan_type=count"), "meta"),
        ("meta-empty-text", with_meta("saxs_exposure", ""), "meta"),
        ("meta-other-case", with_meta("saxs_exposure", {"Plan_Type": "count"}), "meta.Plan_Type"),
        ("meta-trailing-space", with_meta("saxs_exposure", {"sample_code ": "x"}), "meta.sample_code "),
        *[(f"meta-plan-written-{key}", with_meta("count", {key: 1}), f"meta.{key}")
          for key in ("plan_name", "exposure_time_s", "num_frames", "detectors")],
        ("meta-list-of-non-dicts", with_meta("scan", [1, 2]), "meta"),
    ]),
    # ---- payload size ----------------------------------------------------------------------------
    *_cases("size", [
        ("description-5MB", bad("saxs_exposure", description="x" * (10 * ITEM_MAX_BYTES)), "item"),
        ("positions-100k", bad("list_scan", positions=[0.0] * 100_000), "item"),
        ("description-3000-chars", bad("saxs_exposure", description=_LONG_TEXT), "description"),
        ("meta-key-400k", with_meta("saxs_exposure", {"k" * 400_000: 1}), "meta"),
        ("multibyte-text-2MB", with_meta("saxs_exposure", {"n": ["\U0001f600" * 1999] * 250}), "item"),
        ("description-escape-sequence", bad("saxs_exposure", description="\x1b[2J"), "description"),
        ("well-description-nested", bad_well(1, description=nested(ITEM_MAX_DEPTH + 4)),
         "plate.wells[1].description"),
    ]),
]
# fmt: on


def names_field(message: str, field: str) -> bool:
    """True if a problem line of ``message`` (``\\n  - field: ...``) starts with ``field``."""
    return re.search(rf"(?:^|\n)\s*- {re.escape(field)}(?=[:\[.])", message) is not None


def has_non_finite(value: Any) -> bool:
    """NaN or infinity anywhere in ``value``."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(has_non_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(has_non_finite(v) for v in value)
    return False


@pytest.fixture
def registry(tmp_path):
    """A plate registry that knows :data:`KNOWN_PLATE` (as ``sibyls up`` configures one)."""
    path = tmp_path / "plates.yaml"
    path.write_text(yaml.safe_dump({KNOWN_PLATE: ROBOT_PLATE}))
    use_registry(path)
    yield path
    use_registry(None)


def test_the_battery_covers_every_category_and_plan():
    assert len(BATTERY) >= 80
    assert len({case.id for case in BATTERY}) == len(BATTERY), "ids must be unique"
    per_category = {c: sum(case.category == c for case in BATTERY) for c in CATEGORIES}
    assert all(n >= 3 for n in per_category.values()), per_category
    assert {case.item["name"] for case in BATTERY} >= set(QUEUE_PLAN_NAMES)
    assert set(VALID) == set(QUEUE_PLAN_NAMES)


@pytest.mark.parametrize("plan", QUEUE_PLAN_NAMES)
def test_the_valid_item_of_each_plan_passes(plan, registry):
    assert validate_queue_item(valid_item(plan)) == {"success": True, "problems": []}


@pytest.mark.parametrize("case", BATTERY, ids=[f"{c.category}-{c.id}" for c in BATTERY])
def test_each_bad_item_is_refused_naming_its_field(case, registry):
    result = validate_queue_item(copy.deepcopy(case.item))
    assert result["success"] is False, f"{case.id} was accepted"
    message = refusal_message(case.item.get("name"), result["problems"])
    assert names_field(message, case.field), f"{case.field!r} not named: {result['problems']}"
