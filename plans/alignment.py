"""Alignment: centre the beamstop on the direct beam and the capillary in the beam; map the cell."""

from collections.abc import Generator
from typing import Any, Literal

from bluesky import plan_stubs as bps
from bluesky import plans as bp
from bluesky import preprocessors as bpp
from bluesky.utils import Msg
from bluesky_queueserver import parameter_annotation_decorator

from sibyls.metadata.contract import inject_run_metadata
from sibyls.metadata.rules import annotations
from sibyls.plans.checks import check_alignment, check_live_setpoints
from sibyls.plans.context import PlanContext, beamline_plan
from sibyls.plans.errors import device_errors
from sibyls.plans.exposure import with_fast_shutter_open
from sibyls.plans.help_texts import field_help

STATS_STREAM = "signal_stats"


def _check_span(motor, argument: str, half_width: float) -> None:
    """Both ends of a scan of ±``half_width`` around where ``motor`` is, against its live soft limits."""
    here = motor.position
    check_live_setpoints(
        motor,
        argument,
        [(f"{argument} (low end)", here - half_width), (f"{argument} (high end)", here + half_width)],
    )


class _StatsStreamReader:
    """Collects lineup2's ``signal_stats`` stream: whether each scan found a peak, and why not."""

    def __init__(self) -> None:
        self.descriptors: set[str] = set()
        self.results: list[dict] = []

    def __call__(self, name: str, doc: dict) -> None:
        if name == "descriptor" and doc.get("name") == STATS_STREAM:
            self.descriptors.add(doc["uid"])
        elif name == "event" and doc.get("descriptor") in self.descriptors:
            # lineup2 writes the statistics as signals of a device named "lineup2_signal_stats".
            self.results.append({k.removeprefix("lineup2_signal_stats_"): v for k, v in doc["data"].items()})


def _lineup(
    context: PlanContext,
    axis_motor,
    half_width: float,
    points: int,
    count_time: float,
    feature: str,
    peak_factor: float,
    nscans: int,
    metadata,
) -> Generator[Msg, Any, dict]:
    # apstools is imported here, not at module import: it takes ~2 s, and every RE environment
    # open would pay for it.
    from apstools.callbacks import SignalStatsCallback
    from apstools.plans import lineup2

    beamline = context.beamline
    yield from device_errors(bps.mv(beamline.bs_diode.preset_time, count_time))
    plan = lineup2(
        [beamline.bs_diode],
        axis_motor,
        -half_width,
        half_width,
        points,
        feature=feature,
        peak_factor=peak_factor,
        nscans=nscans,
        signal_stats=SignalStatsCallback(),
        md={"plan_name": "alignment"},
        stats_stream=STATS_STREAM,
    )
    stats = _StatsStreamReader()
    yield from with_fast_shutter_open(context, inject_run_metadata(bpp.subs_wrapper(plan, stats), metadata))
    last = stats.results[-1] if stats.results else {}
    reasons = last.get("reasons") or ([] if last else ["no statistics were recorded"])
    return {
        "success": bool(last.get("success", False)),
        "position": (yield from bps.rd(axis_motor)),
        "reasons": reasons.split("; ") if isinstance(reasons, str) else list(reasons),
    }


@parameter_annotation_decorator(
    {
        "description": "Centre the beamstop on the direct beam (apstools lineup2 on the beamstop diode).",
        "parameters": {
            **field_help("axis", "project_code", "sample_code"),
            **annotations("points", "count_time", "half_width", "nscans"),
        },
    }
)
@beamline_plan
def align_beamstop(
    sample_code: str,
    project_code: str,
    axis: Literal["x", "y"],
    half_width: float = 1.5,
    points: int = 31,
    count_time: float = 0.1,
    nscans: int = 2,
    *,
    context: PlanContext,
) -> Generator[Msg, Any, dict]:
    """Scan the beamstop along ``axis`` and leave it where the diode sees the direct beam best.

    Every scan is a run with ``plan_type`` ``alignment`` and the ``sample_code`` of what is in
    the beam (``empty_cell`` when nothing is). Returns ``{"success", "position", "reasons"}``; if
    no peak is found the beamstop goes back to where it started.
    """
    metadata = check_alignment(locals())
    motor = getattr(context.beamline.beamstop, axis)
    _check_span(motor, "half_width", half_width)
    return (
        yield from _lineup(context, motor, half_width, points, count_time, "centroid", 1.5, nscans, metadata)
    )


@parameter_annotation_decorator(
    {
        "description": "Centre the capillary in the beam: scan the sample stage, find the transmission dip.",
        "parameters": {
            **field_help("axis", "project_code", "sample_code"),
            **annotations("points", "count_time", "half_width"),
        },
    }
)
@beamline_plan
def align_sample_stage(
    sample_code: str,
    project_code: str,
    axis: Literal["x"],
    half_width: float = 2.0,
    points: int = 41,
    count_time: float = 0.1,
    *,
    context: PlanContext,
) -> Generator[Msg, Any, dict]:
    """Scan the sample stage across the capillary and move to where transmission is lowest.

    The filled capillary absorbs ~30% of the beam, so the beamstop diode dips while the beam
    crosses it. One run, ``plan_type`` ``alignment``.
    """
    metadata = check_alignment(locals())
    motor = getattr(context.beamline.sample_stage, axis)
    _check_span(motor, "half_width", half_width)
    return (
        yield from _lineup(context, motor, half_width, points, count_time, "x_at_min_y", 1.2, 1, metadata)
    )


@parameter_annotation_decorator(
    {
        "description": "Map the beamstop diode over a sample-stage grid (alignment grid scan).",
        "parameters": {
            **field_help("project_code", "sample_code"),
            **annotations("num_x", "num_y", "count_time", "half_width_x", "half_width_y"),
        },
    }
)
@beamline_plan
def alignment_grid_scan(
    sample_code: str,
    project_code: str,
    half_width_x: float = 1.0,
    num_x: int = 11,
    half_width_y: float = 1.0,
    num_y: int = 5,
    count_time: float = 0.1,
    *,
    context: PlanContext,
) -> Generator[Msg, Any, str]:
    """Relative grid scan of the sample stage (y slow, x fast) reading I0 and the beamstop diode."""
    metadata = check_alignment(locals())
    beamline = context.beamline
    stage = beamline.sample_stage
    _check_span(stage.x, "half_width_x", half_width_x)
    _check_span(stage.y, "half_width_y", half_width_y)
    yield from device_errors(
        bps.mv(beamline.bs_diode.preset_time, count_time, beamline.i0.preset_time, count_time)
    )
    plan = bp.rel_grid_scan(
        [beamline.bs_diode, beamline.i0],
        stage.y,
        -half_width_y,
        half_width_y,
        num_y,
        stage.x,
        -half_width_x,
        half_width_x,
        num_x,
        snake_axes=True,
        md={"plan_name": "alignment_grid_scan"},
    )
    return (yield from with_fast_shutter_open(context, inject_run_metadata(plan, metadata)))
