"""Standard bluesky plans offered through the queue, each demanding the metadata contract.

Same arguments as bluesky's own ``count``, ``scan``, ``rel_scan``, ``list_scan`` and
``grid_scan`` plus ``sample_code`` and ``project_code``; ``plan_type`` is the plan's name. Each is
a one-liner around bluesky's plan, made a queue plan by :func:`contract_plan`. They take their
devices as arguments (queue items name them; the RE worker passes the objects), so they need no
beamline context.
"""

import functools
import inspect
from collections.abc import Callable, Generator
from typing import Any

from bluesky import plans as bp
from bluesky.utils import Msg
from bluesky_queueserver import parameter_annotation_decorator

from sibyls.metadata.contract import inject_run_metadata
from sibyls.metadata.rules import AXIS_LIMITS, annotation, annotations
from sibyls.plans.checks import PLAN_CHECKS, RELATIVE_SCANS, check_live_setpoints, scan_setpoints
from sibyls.plans.help_texts import field_help

#: What the standard plans may read: every SIBYLS device (a test keeps this equal to the beamline's).
READABLE_DEVICES = (
    "beamstop",
    "bs_diode",
    "cell_temperature",
    "detector_distance",
    "fast_shutter",
    "ht_robot",
    "i0",
    "mono",
    "photon_shutter",
    "pilatus",
    "ring",
    "sample_stage",
    "sec",
)
#: What the standard scans may move: the axes of the limits table (stage, beamstop, cell temperature).
SCAN_AXES = tuple(AXIS_LIMITS)

# Named device lists (not queueserver's __READABLE__/__MOVABLE__, which it validates as any
# string): the RE Manager refuses an unknown device name when the item is added.
_DETECTORS = {
    "description": "detectors to read at each point",
    "annotation": "typing.List[Detectors]",
    "devices": {"Detectors": READABLE_DEVICES},
}
_CONTRACT_HELP = field_help("sample_code", "project_code", "description")
_MOTOR = {
    "description": "axis to move: " + ", ".join(SCAN_AXES),
    "annotation": "Axes",
    "devices": {"Axes": SCAN_AXES},
}


def contract_plan(description: str, parameters: dict[str, Any]) -> Callable[[Callable[..., Any]], Any]:
    """Decorator: a queue plan around the bluesky plan its body returns, with the contract and checks.

    The decorated function keeps its explicit signature and docstring (what queueserver lists) and
    only builds the bluesky plan. The plan it becomes first runs the argument check of
    :data:`~sibyls.plans.checks.PLAN_CHECKS` on the bound arguments (defaults applied) and checks
    every setpoint against its motor's live soft limits — before any message — then runs the
    bluesky plan with the RunStart contract injected. ``description`` and ``parameters`` are the
    queueserver annotation (``parameter_annotation_decorator``).
    """

    def decorate(build: Callable[..., Any]) -> Any:
        signature = inspect.signature(build)

        @functools.wraps(build)
        def plan(*args: Any, **kwargs: Any) -> Generator[Msg, Any, Any]:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            metadata = _checked(build.__name__, dict(bound.arguments))
            return (yield from inject_run_metadata(build(*args, **kwargs), metadata))

        return parameter_annotation_decorator({"description": description, "parameters": parameters})(plan)

    return decorate


def _checked(plan_name: str, arguments: dict[str, Any]):
    """The plan's argument check, then every setpoint against its motor's live soft limits."""
    metadata = PLAN_CHECKS[plan_name](arguments)
    for motor_arg, motor, points in scan_setpoints(plan_name, arguments):
        if plan_name in RELATIVE_SCANS:
            here = motor.position
            points = [(label, here + offset) for label, offset in points]
        check_live_setpoints(motor, motor_arg, points)
    return metadata


@contract_plan(
    "Read detectors N times (bluesky count), with the SIBYLS metadata contract.",
    {"detectors": _DETECTORS, **_CONTRACT_HELP, **annotations("num", "delay")},
)
def count(
    detectors: list,
    sample_code: str,
    project_code: str,
    num: int = 1,
    delay: float = 0.0,
    description: str | None = None,
) -> Generator[Msg, Any, Any]:
    """Take ``num`` readings of ``detectors`` (bluesky ``count``), filed under sample and project."""
    return bp.count(detectors, num=num, delay=delay or None)


@contract_plan(
    "Step scan of one motor (bluesky scan), with the SIBYLS metadata contract.",
    {
        "detectors": _DETECTORS,
        "motor": _MOTOR,
        **_CONTRACT_HELP,
        **field_help("start", "stop"),
        "num": annotation("num"),
    },
)
def scan(
    detectors: list,
    motor: Any,
    start: float,
    stop: float,
    num: int,
    sample_code: str,
    project_code: str,
    description: str | None = None,
) -> Generator[Msg, Any, Any]:
    """Scan ``motor`` from ``start`` to ``stop`` in ``num`` points, reading ``detectors`` at each."""
    return bp.scan(detectors, motor, start, stop, num)


@contract_plan(
    "Step scan relative to the motor's position (bluesky rel_scan), with the contract.",
    {
        "detectors": _DETECTORS,
        "motor": _MOTOR,
        **_CONTRACT_HELP,
        **field_help("start", "stop"),
        "num": annotation("num"),
    },
)
def rel_scan(
    detectors: list,
    motor: Any,
    start: float,
    stop: float,
    num: int,
    sample_code: str,
    project_code: str,
    description: str | None = None,
) -> Generator[Msg, Any, Any]:
    """Scan ``motor`` from ``start`` to ``stop`` relative to where it is; it returns there."""
    return bp.rel_scan(detectors, motor, start, stop, num)


@contract_plan(
    "Scan one motor through a list of positions (bluesky list_scan), with the contract.",
    {"detectors": _DETECTORS, "motor": _MOTOR, **_CONTRACT_HELP, **field_help("positions")},
)
def list_scan(
    detectors: list,
    motor: Any,
    positions: list[float],
    sample_code: str,
    project_code: str,
    description: str | None = None,
) -> Generator[Msg, Any, Any]:
    """Move ``motor`` to each of ``positions`` and read ``detectors`` there."""
    return bp.list_scan(detectors, motor, positions)


@contract_plan(
    "Two-motor grid scan (bluesky grid_scan), with the SIBYLS metadata contract.",
    {
        "detectors": _DETECTORS,
        "motor1": _MOTOR,
        "motor2": _MOTOR,
        **_CONTRACT_HELP,
        **field_help("start1", "stop1", "start2", "stop2", "snake"),
        **annotations("num1", "num2"),
    },
)
def grid_scan(
    detectors: list,
    motor1: Any,
    start1: float,
    stop1: float,
    num1: int,
    motor2: Any,
    start2: float,
    stop2: float,
    num2: int,
    sample_code: str,
    project_code: str,
    snake: bool = False,
    description: str | None = None,
) -> Generator[Msg, Any, Any]:
    """Scan ``motor1`` (slow) × ``motor2`` (fast) on a grid, reading ``detectors`` at each point."""
    return bp.grid_scan(detectors, motor1, start1, stop1, num1, motor2, start2, stop2, num2, snake_axes=snake)
