"""The queue gate's shortcuts change no verdict: a plan's plain binding and the by-type checks of plain
annotations (``str``, ``float | None``, ``Literal`` texts) give exactly the problems the general path
(``inspect.Signature.bind`` and the strict pydantic adapter for every value) gives.

Every item of the bad-item battery, each plan's valid item, and many variants of each valid item (each
argument replaced by values of every JSON type and edge: text numbers, booleans, NaN, 64-bit edges,
unknown Literal texts; positional, mixed, repeated, unknown and missing arguments) go through both,
from the plan functions and from queueserver's plan descriptions (what the RE Manager uses).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_gate_battery import BATTERY, KNOWN_PLATE, ROBOT_PLATE, VALID, valid_item

import sibyls.plans.validation as validation
from sibyls.metadata.plate_registry import use_registry
from sibyls.plans import QUEUE_PLAN_NAMES
from sibyls.plans.validation import PlanSignature, item_problems

PLAN_LIST = Path(validation.__file__).parents[1] / "startup" / "existing_plans_and_devices.yaml"

#: Values every argument is tried with: each JSON type, and the edges the by-type checks decide.
PROBES: list[Any] = [
    "x", "", "3", "3.5", "buffer_blank", "sample", "nope", "B1", "x" * 3000,
    0, 1, -1, 3, 2**53, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 10**400,
    0.0, 1.5, -2.5, 1e308, float("nan"), float("inf"), float("-inf"),
    True, False, None, [], [1.0, 2.0], ["a"], {}, {"a": 1},
]  # fmt: skip


class _Str(str):
    """A text subclass: the shortcuts decide by exact type, anything else takes the general path."""


class _Float(float):
    pass


PROBES += [_Str("x"), _Float(1.5), _Float("nan")]


def _general(signature: PlanSignature) -> PlanSignature:
    """The same signature with the shortcuts off (every call bound by inspect, every value by pydantic)."""
    slow = copy.copy(signature)
    object.__setattr__(slow, "binding", None)
    return slow


def _variants(plan: str) -> list[tuple[list, dict]]:
    """(args, kwargs) variants of the plan's valid item."""
    kwargs = copy.deepcopy(VALID[plan])
    names = list(PlanSignature.from_plan(plan).signature.parameters)
    ordered = [name for name in names if name in kwargs]
    variants: list[tuple[list, dict]] = [([], kwargs)]
    for name in kwargs:
        for probe in PROBES:
            variants.append(([], {**kwargs, name: probe}))
        variants.append(([], {k: v for k, v in kwargs.items() if k != name}))  # missing
    leading = []
    for name in names:  # as positional as the valid item allows (a prefix of the signature)
        if name not in kwargs:
            break
        leading.append(name)
    for cut in range(len(leading) + 1):
        args = [kwargs[name] for name in leading[:cut]]
        rest = {k: v for k, v in kwargs.items() if k not in leading[:cut]}
        variants.append((args, rest))
        if cut:
            variants.append((args, {**rest, leading[0]: kwargs[leading[0]]}))  # given twice
            variants.append((args[:-1] + [PROBES[3]], rest))  # a wrong positional value
    variants.append(([kwargs[n] for n in ordered] + ["extra"] * len(names), {}))  # too many
    variants.append(([], {**kwargs, "no_such_argument": 1}))
    variants.append(([], {**kwargs, "dry_run": True, "operator": None}))
    return variants


@pytest.fixture(scope="module", autouse=True)
def registry(tmp_path_factory):
    path = tmp_path_factory.mktemp("plates") / "plates.yaml"
    path.write_text(yaml.safe_dump({KNOWN_PLATE: ROBOT_PLATE}))
    use_registry(path)
    yield
    use_registry(None)


def _descriptions() -> dict[str, dict]:
    plans = yaml.safe_load(PLAN_LIST.read_text())["existing_plans"]
    return {name: plans[name] for name in QUEUE_PLAN_NAMES}


@pytest.mark.parametrize("plan", QUEUE_PLAN_NAMES)
def test_shortcuts_give_the_general_paths_verdict_for_every_variant(plan):
    signatures = {
        "plan": PlanSignature.from_plan(plan),
        "description": PlanSignature.from_description(_descriptions()[plan]),
    }
    for source, fast in signatures.items():
        assert fast.binding is not None, f"{plan} ({source}) takes no shortcut: nothing is tested"
        slow = _general(fast)
        refused = 0
        for args, kwargs in _variants(plan):
            expected = slow.problems(copy.deepcopy(args), copy.deepcopy(kwargs))
            got = fast.problems(copy.deepcopy(args), copy.deepcopy(kwargs))
            assert got == expected, f"{plan} ({source}) args={args!r} kwargs={kwargs!r}"
            refused += bool(expected)
        assert refused >= 20, f"{plan}: the variants must include refusals ({refused})"


def test_shortcuts_give_the_general_paths_verdict_for_the_battery(monkeypatch):
    items = [case.item for case in BATTERY] + [valid_item(plan) for plan in QUEUE_PLAN_NAMES]
    fast = [item_problems(copy.deepcopy(item)) for item in items]
    monkeypatch.setattr(validation, "_fast_binding", lambda signature: None)
    monkeypatch.setattr(validation, "_from_plans", {})
    slow = [item_problems(copy.deepcopy(item)) for item in items]
    for item, got, expected in zip(items, fast, slow, strict=True):
        assert got == expected, item
    assert sum(bool(p) for p in slow) == len(BATTERY)


def test_a_text_subclass_or_float_subclass_is_still_checked_by_the_rules():
    kwargs = {**VALID["saxs_exposure"], "sample_code": _Str("x" * 3000), "exposure_time": _Float("nan")}
    problems = item_problems({"name": "saxs_exposure", "args": [], "kwargs": kwargs})
    assert any(p.startswith("sample_code") for p in problems), problems
    assert any(p.startswith("exposure_time") for p in problems), problems
