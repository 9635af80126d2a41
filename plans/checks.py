"""Each SIBYLS plan's argument check, run at queue add (RE Manager) and as the plan's first statement.

A beamline user gets one verdict with one wording: the RE Manager's queue gate
(:mod:`sibyls.plans.validation`) and the plan itself call the same function from
:data:`PLAN_CHECKS`, so an item refused at run start is refused when it is added, naming the plan
argument (``cell_temperature``, ``temperatures[1]``, ``plate.wells[3].well``) and the rule from
:mod:`sibyls.metadata.rules`. Every setpoint a plan will drive to is checked here against the
limits table before anything moves; at plan start :func:`check_live_setpoints` repeats that against
the devices' live limits.

Hardware-free: this module imports no ophyd (the RE Manager process, which forks the RE worker, must
not start Channel Access).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from sibyls.metadata.contract import ContractError, RunMetadata, validate_run_metadata
from sibyls.metadata.plate_registry import empty_well_problems, unknown_plate_problem
from sibyls.metadata.plate_spec import PlateSpec, validate_plate
from sibyls.metadata.rule_fields import RULE_OF_FIELD, argument_named
from sibyls.metadata.rules import AXIS_LIMITS, RULES, argument_problems, number_text

#: Plan argument name → the RunStart contract field it fills.
CONTRACT_ARGUMENTS = {name: name for name in RunMetadata.model_fields} | {
    argument: field for field, argument in RULE_OF_FIELD.items()
}


def refuse(problems: list[str]) -> None:
    """Raise one ``ContractError`` listing ``problems`` (nothing when there are none)."""
    if problems:
        raise ContractError(problems)


def contract_from_arguments(arguments: dict[str, Any], plan_type: str, **fixed: Any) -> RunMetadata:
    """The RunStart contract from a plan's arguments (those named like contract fields) plus ``fixed``.

    Problems name the plan argument (``cell_temperature``), not the contract field it fills.
    """
    fields = {
        CONTRACT_ARGUMENTS[k]: v for k, v in arguments.items() if k in CONTRACT_ARGUMENTS and v is not None
    }
    try:
        return validate_run_metadata(**{**fields, **fixed, "plan_type": plan_type})
    except ContractError as exc:
        raise ContractError([argument_named(p) for p in exc.problems]) from None


def _checked_contract(arguments: dict[str, Any], plan_type: str, **fixed: Any) -> RunMetadata:
    """Every rule of every argument, then the contract: all problems at once."""
    problems = argument_problems(arguments)
    try:
        metadata = contract_from_arguments(arguments, plan_type, **fixed)
    except ContractError as exc:  # the same rules again, and the contract's own cross-field rules
        reported = {p.split(":", 1)[0] for p in problems}
        problems += [p for p in exc.problems if p.split(":", 1)[0] not in reported]
        metadata = None
    refuse(problems)
    return metadata  # type: ignore[return-value]


# ---- batch SAXS ---------------------------------------------------------------------------------


def check_saxs_exposure(arguments: dict[str, Any]) -> RunMetadata:
    """saxs_exposure: every argument's rule and the contract."""
    return _checked_contract(arguments, "saxs_exposure")


def check_temperature_series(arguments: dict[str, Any]) -> list[RunMetadata]:
    """temperature_series: every setpoint 4–60 °C (named ``temperatures[i]``), one contract per run."""
    temperatures = arguments["temperatures"]
    if isinstance(temperatures, list | tuple) and not temperatures:
        refuse(["temperatures: give at least one setpoint"])
    base = _checked_contract(arguments, "temperature_series")
    return [base.model_copy(update={"cell_temperature_c": float(t)}) for t in temperatures]


# ---- HT plates ----------------------------------------------------------------------------------


def check_ht_plate(arguments: dict[str, Any]) -> tuple[PlateSpec, list[RunMetadata]]:
    """ht_plate: the whole plate (wells, buffers, order, size, every well's contract), the plate known
    to the robot's registry, and the plate-wide arguments."""
    problems = argument_problems(arguments)
    plate = arguments["plate"]
    spec = None
    try:
        spec = validate_plate(plate)
    except ContractError as exc:
        problems += exc.problems
    unknown = unknown_plate_problem(plate.get("plate_id")) if isinstance(plate, dict) else None
    if unknown and not any(p.startswith("plate.plate_id:") for p in problems):
        problems.append(unknown)
    if spec is not None and not unknown:
        problems += empty_well_problems(spec.plate_id, [well.well for well in spec.wells])
    refuse(problems)
    common = {
        "proposal_id": arguments["proposal_id"],
        "operator": arguments["operator"],
        "cell_temperature_c": arguments["cell_temperature"],
    }
    wells_md = spec.well_metadata(  # type: ignore[union-attr]
        arguments["project_code"], **{k: v for k, v in common.items() if v is not None}
    )
    return spec, wells_md  # type: ignore[return-value]


# ---- SEC-SAXS-MALS ------------------------------------------------------------------------------


def sec_frame_count(duration_min: float, frame_period_s: float) -> int:
    """Frames of a SEC run: ``duration`` minutes at one frame per ``frame_period`` seconds."""
    return int(round(duration_min * 60.0 / frame_period_s))


def check_sec_saxs(arguments: dict[str, Any]) -> RunMetadata:
    """sec_saxs: flow, timing and threshold ranges; exposure within the period; 1–10000 frames."""
    metadata = _checked_contract(arguments, "sec_saxs", collection_mode="sec_saxs", sample_role="sample")
    exposure, period, duration = arguments["exposure_time"], arguments["frame_period"], arguments["duration"]
    problems = []
    if exposure > period:
        problems.append(f"exposure_time: {exposure:g} s is longer than frame_period {period:g} s")
    frames, limits = sec_frame_count(duration, period), RULES["num_frames"]
    if not limits.low <= frames <= limits.high:  # type: ignore[operator]
        problems.append(
            f"duration: {duration:g} min at frame_period {period:g} s gives {frames} frames; "
            f"a SEC run takes {limits.low:g}–{limits.high:g}"
        )
    refuse(problems)
    return metadata


# ---- alignment ----------------------------------------------------------------------------------


def check_alignment(arguments: dict[str, Any]) -> RunMetadata:
    """Alignment plans: points, counting time, half-widths; the run's contract (``plan_type`` alignment)."""
    what = f"{arguments['axis']} alignment" if "axis" in arguments else "grid map"
    return _checked_contract(arguments, "alignment", description=what)


# ---- standard scans -----------------------------------------------------------------------------

#: Motor argument → (start/stop or positions arguments) of each standard scan; ``relative`` scans
#: are offsets from where the motor is.
SCAN_AXES_OF_PLAN: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "count": (),
    "scan": (("motor", ("start", "stop")),),
    "rel_scan": (("motor", ("start", "stop")),),
    "list_scan": (("motor", ("positions",)),),
    "grid_scan": (("motor1", ("start1", "stop1")), ("motor2", ("start2", "stop2"))),
}
RELATIVE_SCANS = frozenset({"rel_scan"})


def scan_setpoints(plan_name: str, arguments: dict[str, Any]) -> list[tuple[str, Any, list[tuple[str, Any]]]]:
    """Per motor argument: (argument name, motor, [(argument label, position), ...]) the scan drives to.

    A linear scan's extremes are its start and stop; a list scan's are all its positions.
    """
    found = []
    for motor_arg, position_args in SCAN_AXES_OF_PLAN[plan_name]:
        points: list[tuple[str, Any]] = []
        for name in position_args:
            value = arguments[name]
            if isinstance(value, list | tuple):
                points += [(f"{name}[{i}]", v) for i, v in enumerate(value)]
            else:
                points.append((name, value))
        found.append((motor_arg, arguments[motor_arg], points))
    return found


def _number_problems(points: Iterable[tuple[str, Any]]) -> list[str]:
    problems = []
    for label, value in points:
        if isinstance(value, bool) or not isinstance(value, int | float):
            problems.append(f"{label}: must be a number, got {type(value).__name__} {value!r}")
        elif value != value or value in (float("inf"), float("-inf")):
            problems.append(f"{label}: must be a finite number, got {value!r}")
    return problems


def _static_limit_problems(plan_name: str, arguments: dict[str, Any]) -> list[str]:
    """Scan points against the limits table (queue time: the motor is still a name)."""
    problems = []
    for motor_arg, motor, points in scan_setpoints(plan_name, arguments):
        problems += _number_problems(points)
        rule = AXIS_LIMITS.get(motor) if isinstance(motor, str) else None
        if rule is None or problems:
            continue
        if plan_name in RELATIVE_SCANS:
            # some position p within the limits must keep p + every offset within them
            offsets = [v for _, v in points]
            lowest = max(rule.low, rule.low - min(offsets))  # type: ignore[operator]
            highest = min(rule.high, rule.high - max(offsets))  # type: ignore[operator]
            if lowest > highest:
                problems.append(
                    f"{points[-1][0]}: a relative scan from {number_text(min(offsets))} to "
                    f"{number_text(max(offsets))} {rule.unit} cannot stay within {motor}'s soft limits "
                    f"{rule.range_text()} from any position"
                )
            continue
        for label, value in points:
            if problem := rule.problem(label, value):
                problems.append(f"{problem} ({motor} soft limits, argument {motor_arg})")
    return problems


def _name_of(device: Any) -> Any:
    return getattr(device, "name", device)  # a device at run start, its name at queue time


def _device_list_problems(arguments: dict[str, Any]) -> list[str]:
    """``detectors``: at least one, each once."""
    detectors = arguments.get("detectors")
    if not isinstance(detectors, list | tuple):
        return []
    if not detectors:
        return ["detectors: give at least one detector"]
    names = [_name_of(d) for d in detectors]
    twice = sorted({str(n) for n in names if names.count(n) > 1})
    return [f"detectors: {', '.join(twice)} listed more than once"] if twice else []


def check_standard(plan_name: str) -> Callable[[dict[str, Any]], RunMetadata]:
    """The check of a standard scan: point count, every setpoint within the axis' limits, the contract."""

    def check(arguments: dict[str, Any]) -> RunMetadata:
        problems = argument_problems(arguments) + _device_list_problems(arguments)
        if plan_name == "list_scan" and isinstance(arguments["positions"], list | tuple):
            count, most = len(arguments["positions"]), RULES["num"].high
            if not count:
                problems.append("positions: give at least one position")
            elif count > most:  # type: ignore[operator]
                problems.append(f"positions: at most {most:g} positions (got {count})")
        if plan_name == "grid_scan" and _name_of(arguments["motor1"]) == _name_of(arguments["motor2"]):
            problems.append(
                f"motor2: {_name_of(arguments['motor2'])} is motor1 already; a grid needs two axes"
            )
        if not problems:
            problems += _static_limit_problems(plan_name, arguments)
        refuse(problems)
        return _checked_contract(arguments, plan_name)

    check.__name__ = f"check_{plan_name}"
    return check


def check_live_setpoints(device: Any, argument: str, points: Iterable[tuple[str, Any]]) -> None:
    """Refuse, before the first move, any setpoint ``device`` itself refuses (its live soft limits).

    ``device.check_value`` is ophyd's own limit check (an EpicsMotor reads its soft-limit PVs). Every
    refused point is listed, named by the plan argument it came from.
    """
    problems = []
    for label, value in points:
        try:
            device.check_value(value)
        except Exception as exc:  # ophyd raises LimitError or ValueError, depending on the device
            problems.append(f"{label}: {number_text(value)} refused by {device.name} ({argument}): {exc}")
    refuse(problems)


#: Plan name → its argument check (called with the plan's bound arguments, defaults applied).
PLAN_CHECKS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "saxs_exposure": check_saxs_exposure,
    "temperature_series": check_temperature_series,
    "ht_plate": check_ht_plate,
    "sec_saxs": check_sec_saxs,
    "align_beamstop": check_alignment,
    "align_sample_stage": check_alignment,
    "alignment_grid_scan": check_alignment,
    **{name: check_standard(name) for name in SCAN_AXES_OF_PLAN},
}
