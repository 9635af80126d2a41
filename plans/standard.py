"""Standard bluesky plans offered through the queue, each demanding the metadata contract.

Same arguments as bluesky's own ``count``, ``scan``, ``rel_scan``, ``list_scan`` and
``grid_scan`` plus ``sample_code`` and ``project_code``; ``plan_type`` is the plan's name.
"""

from collections.abc import Generator
from typing import Any

from bluesky import plans as bp
from bluesky.utils import Msg
from bluesky_queueserver import parameter_annotation_decorator

from sibyls.metadata.contract import inject_run_metadata
from sibyls.plans.checks import check_range, checked_by, contract_from_arguments

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
#: What the standard scans may move: the stage and beamstop axes and the cell temperature.
SCAN_AXES = ("sample_stage.x", "sample_stage.y", "beamstop.x", "beamstop.y", "cell_temperature")

# Named device lists (not queueserver's __READABLE__/__MOVABLE__, which it validates as any
# string): the RE Manager refuses an unknown device name when the item is added.
_DETECTORS = {
    "description": "detectors to read at each point",
    "annotation": "typing.List[Detectors]",
    "devices": {"Detectors": READABLE_DEVICES},
}
_MOTOR = {
    "description": "axis to move: " + ", ".join(SCAN_AXES),
    "annotation": "Axes",
    "devices": {"Axes": SCAN_AXES},
}
_NUM = {"description": "number of points (1–10000)", "min": 1, "max": 10000}


def _contract_check(plan_type: str):
    def check(arguments: dict[str, Any]):
        if "num" in arguments:
            check_range("num", arguments["num"], 1, 10000)
        return contract_from_arguments(arguments, plan_type)

    return check


_CHECKS = {name: _contract_check(name) for name in ("count", "scan", "rel_scan", "list_scan", "grid_scan")}


@parameter_annotation_decorator(
    {
        "description": "Read detectors N times (bluesky count), with the SIBYLS metadata contract.",
        "parameters": {
            "detectors": _DETECTORS,
            "num": _NUM,
            "delay": {"description": "s between readings", "min": 0.0, "max": 3600.0},
        },
    }
)
@checked_by(_CHECKS["count"])
def count(
    detectors: list,
    sample_code: str,
    project_code: str,
    num: int = 1,
    delay: float = 0.0,
    description: str | None = None,
) -> Generator[Msg, Any, Any]:
    """Take ``num`` readings of ``detectors`` (bluesky ``count``), filed under sample and project."""
    metadata = _CHECKS["count"](locals())
    return (yield from inject_run_metadata(bp.count(detectors, num=num, delay=delay or None), metadata))


@parameter_annotation_decorator(
    {
        "description": "Step scan of one motor (bluesky scan), with the SIBYLS metadata contract.",
        "parameters": {"detectors": _DETECTORS, "motor": _MOTOR, "num": _NUM},
    }
)
@checked_by(_CHECKS["scan"])
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
    metadata = _CHECKS["scan"](locals())
    return (yield from inject_run_metadata(bp.scan(detectors, motor, start, stop, num), metadata))


@parameter_annotation_decorator(
    {
        "description": "Step scan relative to the motor's position (bluesky rel_scan), with the contract.",
        "parameters": {"detectors": _DETECTORS, "motor": _MOTOR, "num": _NUM},
    }
)
@checked_by(_CHECKS["rel_scan"])
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
    metadata = _CHECKS["rel_scan"](locals())
    return (yield from inject_run_metadata(bp.rel_scan(detectors, motor, start, stop, num), metadata))


@parameter_annotation_decorator(
    {
        "description": "Scan one motor through a list of positions (bluesky list_scan), with the contract.",
        "parameters": {"detectors": _DETECTORS, "motor": _MOTOR},
    }
)
@checked_by(_CHECKS["list_scan"])
def list_scan(
    detectors: list,
    motor: Any,
    positions: list[float],
    sample_code: str,
    project_code: str,
    description: str | None = None,
) -> Generator[Msg, Any, Any]:
    """Move ``motor`` to each of ``positions`` and read ``detectors`` there."""
    metadata = _CHECKS["list_scan"](locals())
    return (yield from inject_run_metadata(bp.list_scan(detectors, motor, positions), metadata))


@parameter_annotation_decorator(
    {
        "description": "Two-motor grid scan (bluesky grid_scan), with the SIBYLS metadata contract.",
        "parameters": {
            "detectors": _DETECTORS,
            "motor1": _MOTOR,
            "motor2": _MOTOR,
            "num1": _NUM,
            "num2": _NUM,
        },
    }
)
@checked_by(_CHECKS["grid_scan"])
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
    metadata = _CHECKS["grid_scan"](locals())
    plan = bp.grid_scan(detectors, motor1, start1, stop1, num1, motor2, start2, stop2, num2, snake_axes=snake)
    return (yield from inject_run_metadata(plan, metadata))
