"""Plans take their beamline as a hidden ``context`` keyword: unit tests on mock devices, no set-up."""

from __future__ import annotations

import inspect
from types import SimpleNamespace

import pytest
from bluesky import RunEngine
from ophyd import Component, Device, Signal
from ophyd.sim import SynAxis

import sibyls.plans.context
from sibyls.plans import QUEUE_PLANS, alignment_grid_scan, count, plan_progress, setup_run_engine
from sibyls.plans.context import PlanContext
from sibyls.plans.validation import validate_plan_call


class MockCounter(Device):
    counts = Component(Signal, value=1.0, kind="hinted")
    preset_time = Component(Signal, value=0.1, kind="config")


def mock_beamline() -> SimpleNamespace:
    return SimpleNamespace(
        bs_diode=MockCounter(name="bs_diode"),
        i0=MockCounter(name="i0"),
        sample_stage=SimpleNamespace(x=SynAxis(name="sample_stage_x"), y=SynAxis(name="sample_stage_y")),
        photon_shutter=Signal(name="photon_shutter", value="closed"),
        fast_shutter=Signal(name="fast_shutter", value="closed"),
        baseline=lambda: [],
    )


@pytest.fixture
def unconfigured(monkeypatch):
    """No default context: a plan that looked one up would fail."""
    monkeypatch.setattr(sibyls.plans.context, "_default", None)


def test_no_queue_plan_shows_the_context_to_queueserver():
    for name, plan in QUEUE_PLANS.items():
        assert "context" not in inspect.signature(plan).parameters, name
        assert inspect.isgeneratorfunction(plan), name
    problems = validate_plan_call(
        "count", ["ring"], {"sample_code": "S_1", "project_code": "P", "context": 1}
    )
    assert problems and problems[0].startswith("context:")


def test_a_plan_runs_on_mock_devices_passed_as_its_context(unconfigured, tmp_path):
    beamline = mock_beamline()
    RE = RunEngine({})
    starts = []
    RE.subscribe(lambda name, doc: starts.append(doc) if name == "start" else None)
    context = PlanContext(beamline, tmp_path)
    RE(alignment_grid_scan("empty_cell", "P_1", num_x=3, num_y=3, count_time=0.2, context=context))
    assert (starts[0]["plan_type"], starts[0]["sample_code"]) == ("alignment", "empty_cell")
    assert beamline.bs_diode.preset_time.get() == 0.2 and beamline.fast_shutter.get() == "close"


def test_without_a_context_the_plan_says_how_to_configure_one(unconfigured):
    with pytest.raises(RuntimeError, match="configure_plans"):
        RunEngine({})(alignment_grid_scan("empty_cell", "P_1"))


def test_each_set_up_run_engine_has_its_own_progress(unconfigured, tmp_path):
    beamline = mock_beamline()
    first, second = RunEngine({}), RunEngine({})
    writers = [setup_run_engine(r, beamline, tmp_path / f"records{i}") for i, r in enumerate((first, second))]
    first(count([beamline.i0], "S_1", "P_1", num=2))
    for writer in writers:
        writer.close()
    assert plan_progress(first)["state"] == "finished" and plan_progress(first)["frame"] == 2
    assert plan_progress(second)["state"] == "idle"


def test_every_sibyls_plan_takes_sample_code_then_project_code_first():
    """The beamline's own plans (not the standard scans, whose devices come first as in bluesky) all
    begin ``sample_code, project_code``; a plate's samples are in its ``plate``, which takes that place."""
    from sibyls.plans import _WHERE

    first_two = {
        name: list(inspect.signature(plan).parameters)[:2]
        for name, plan in QUEUE_PLANS.items()
        if _WHERE[name] != "standard"
    }
    assert first_two.pop("ht_plate") == ["plate", "project_code"]
    others = {name: params for name, params in first_two.items() if params != ["sample_code", "project_code"]}
    assert others == {}
    assert len(first_two) == 6
