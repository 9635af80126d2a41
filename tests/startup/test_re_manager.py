"""``sibyls-re-manager``'s validation cache: the same verdicts and messages as queueserver's own."""

from __future__ import annotations

from pathlib import Path

import pytest
from bluesky_queueserver.manager import profile_ops

from sibyls.startup import re_manager

REPO_STARTUP = Path(__file__).resolve().parents[2] / "startup"

SAXS = {"name": "saxs_exposure", "args": ["GluRS_1", "P1"]}
ITEMS = [
    {**SAXS, "kwargs": {"exposure_time": 0.5, "num_frames": 10, "sample_role": "sample"}},
    {**SAXS, "kwargs": {"exposure_time": "long"}},
    {**SAXS, "kwargs": {"exposure_time": 120.0}},
    {**SAXS, "kwargs": {"num_frames": 0}},
    {**SAXS, "kwargs": {"sample_role": "blank"}},
    {**SAXS, "kwargs": {"sample_type": "virus", "cell_temperature": 10.0, "concentration_mg_ml": 2.5}},
    {**SAXS, "kwargs": {"cell_temperature": 70.0}},
    {**SAXS, "kwargs": {"exposure": 1.0}},
    {"name": "saxs_exposure", "args": ["GluRS_1"]},
    {"name": "count", "args": [["pilatus", "i0"], "S1", "P1"], "kwargs": {"num": 3}},
    {"name": "count", "args": [["no_such_detector"], "S1", "P1"]},
    {"name": "scan", "args": [["i0"], "sample_stage.x", -1.0, 1.0, 5, "S1", "P1"]},
    {"name": "scan", "args": [["i0"], "ring", -1.0, 1.0, 5, "S1", "P1"]},
    {"name": "ht_plate", "args": [{"plate_id": "P1", "wells": []}, "P1"]},
    {"name": "ht_plate", "args": ["not a plate", "P1"]},
    {"name": "mv", "args": ["sample_stage.x", 1.0]},
    {"name": "no_such_plan", "args": []},
]


@pytest.fixture(scope="module")
def allowed():
    plans, devices = profile_ops.load_allowed_plans_and_devices(
        path_existing_plans_and_devices=str(REPO_STARTUP / "existing_plans_and_devices.yaml"),
        path_user_group_permissions=str(REPO_STARTUP / "user_group_permissions.yaml"),
    )
    return plans, devices


@pytest.fixture
def cache():
    assert re_manager.install_validation_cache(), "cache not installed with the pinned queueserver"
    yield
    re_manager.uninstall_validation_cache()


def _verdicts(allowed, group: str) -> list[tuple[bool, str]]:
    plans, devices = allowed
    return [
        profile_ops.validate_plan(dict(item), allowed_plans=plans[group], allowed_devices=devices[group])
        for item in ITEMS
    ]


def test_cached_validation_gives_upstreams_verdicts_and_messages(allowed, request):
    groups = ("primary", "admin")
    upstream = {group: _verdicts(allowed, group) for group in groups}
    assert any(ok for ok, _ in upstream["primary"]) and any(not ok for ok, _ in upstream["primary"])
    request.getfixturevalue("cache")
    for _ in range(2):  # built, then served from the cache, both groups in one cache lifetime
        assert {group: _verdicts(allowed, group) for group in groups} == upstream


def test_each_signature_is_built_once_and_reused(allowed, cache):
    plans, devices = allowed
    for _ in range(5):
        ok, msg = profile_ops.validate_plan(
            dict(ITEMS[0]), allowed_plans=plans["primary"], allowed_devices=devices["primary"]
        )
        assert ok, msg
    assert (re_manager._model_classes.misses, re_manager._model_classes.hits) == (1, 4)


def _plan(name: str, parameters: list[dict]) -> dict:
    kind = {"name": "POSITIONAL_OR_KEYWORD", "value": 1}
    return {"name": name, "parameters": [{"kind": kind, **p} for p in parameters]}


def _validate_each(plans: dict, devices: dict, items: list[dict]) -> list[tuple[bool, str]]:
    return [profile_ops.validate_plan(dict(i), allowed_plans=plans, allowed_devices=devices) for i in items]


def test_signatures_python_calls_equal_but_pydantic_does_not_stay_apart(request):
    """``Union[float, int]`` vs ``Union[int, float]`` and defaults ``1`` vs ``True``."""
    plans = {
        "a": _plan("a", [{"name": "x", "annotation": {"type": "typing.Union[float, int]"}}]),
        "b": _plan("b", [{"name": "x", "annotation": {"type": "typing.Union[int, float]"}}]),
        "c": _plan("c", [{"name": "x", "annotation": {"type": "int"}, "default": "1"}]),
        "d": _plan("d", [{"name": "x", "annotation": {"type": "int"}, "default": "True"}]),
    }
    items = [{"name": n, "args": [v]} for v in (True, "1", 2) for n in ("a", "b")]
    items += [{"name": n, "kwargs": {}} for n in ("c", "d")]
    upstream = _validate_each(plans, None, items)
    request.getfixturevalue("cache")
    assert _validate_each(plans, None, items) == upstream
    assert _validate_each(plans, None, items[::-1]) == upstream[::-1]


def test_a_group_that_sees_fewer_devices_gets_its_own_signature(request):
    """Device enums (queueserver ``devices`` annotations) are filtered per group before validation."""
    plans = {
        "take": _plan(
            "take",
            [
                {
                    "name": "dets",
                    "annotation": {"type": "typing.List[Dets]", "devices": {"Dets": ["det1", "det2"]}},
                }
            ],
        )
    }
    wide, narrow = {"det1": {}, "det2": {}}, {"det1": {}}
    uses_det2 = {"name": "take", "args": [["det2"]]}
    request.getfixturevalue("cache")
    for _ in range(2):
        for devices, accepted in ((wide, True), (narrow, False), (wide, True)):
            ok, msg = profile_ops.validate_plan(dict(uses_det2), allowed_plans=plans, allowed_devices=devices)
            assert ok is accepted, msg


def test_cached_parameters_cannot_be_corrupted_by_a_caller(cache):
    description = [{"name": "x", "kind": {"name": "POSITIONAL_OR_KEYWORD", "value": 1}}]
    first = profile_ops.construct_parameters(description)
    first.clear()
    assert [p.name for p in profile_ops.construct_parameters(description)] == ["x"]


def test_only_the_content_free_item_add_line_is_dropped():
    import logging

    keep = re_manager.DropItemAddProgressLine()

    def record(message: str, *args) -> logging.LogRecord:
        return logging.LogRecord(
            "bluesky_queueserver.manager.manager", logging.INFO, "", 0, message, args, None
        )

    assert not keep.filter(record("Adding new item to the queue ..."))
    assert keep.filter(record("Item added: success=%s", True))
    assert keep.filter(record("Adding new batch to the queue ..."))


def test_manager_entry_point_is_installed():
    from sibyls.startup.stack.services import console_script

    assert Path(console_script("sibyls-re-manager")).exists()
