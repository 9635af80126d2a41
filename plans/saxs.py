"""Batch SAXS: one sample or buffer in the cell, and temperature series of it."""

from collections.abc import Generator
from typing import Any

from bluesky import plan_stubs as bps
from bluesky.utils import Msg
from bluesky_queueserver import parameter_annotation_decorator

from sibyls.metadata.contract import SampleRole, SampleType
from sibyls.metadata.rules import annotations
from sibyls.plans.checks import check_live_setpoints, check_saxs_exposure, check_temperature_series
from sibyls.plans.context import PlanContext, beamline_plan
from sibyls.plans.exposure import exposure_run
from sibyls.plans.help_texts import field_help

#: Parameters every batch plan describes the sample with (help texts in plans/help_texts.py).
_SAMPLE_FIELDS = (
    "sample_code",
    "project_code",
    "sample_role",
    "sample_type",
    "molecular_weight_kda",
    "buffer_name",
    "proposal_id",
    "operator",
    "description",
)


@parameter_annotation_decorator(
    {
        "description": "Batch SAXS of the sample (or buffer) in the cell: N frames of t seconds.",
        "parameters": {
            **field_help(*_SAMPLE_FIELDS, "buffer_run_uid"),
            **annotations(
                "exposure_time",
                "num_frames",
                "concentration_mg_ml",
                cell_temperature="°C to reach before exposing; omit to leave as is",
            ),
        },
    }
)
@beamline_plan
def saxs_exposure(
    sample_code: str,
    project_code: str,
    exposure_time: float = 1.0,
    num_frames: int = 10,
    sample_role: SampleRole = "sample",
    concentration_mg_ml: float | None = None,
    sample_type: SampleType | None = None,
    molecular_weight_kda: float | None = None,
    buffer_name: str | None = None,
    buffer_run_uid: str | None = None,
    cell_temperature: float | None = None,
    proposal_id: str | None = None,
    operator: str | None = None,
    description: str | None = None,
    *,
    context: PlanContext,
) -> Generator[Msg, Any, str]:
    """Expose the sample in the cell: ``num_frames`` frames of ``exposure_time`` s, one run.

    Each frame is one event with the PILATUS frame (an HDF5 file ``<sample_code>_#####.h5``,
    ``buff_<sample_code>_...`` for buffers), I0 and the beamstop diode. Shutters open for the
    exposure and the fast shutter closes afterwards, also on error. The run carries the
    metadata contract (``plan_type`` ``saxs_exposure``) and gets a lambda-ber record.

    Parameters
    ----------
    sample_code : str
        What is in the cell, e.g. ``GluRS_1``; part of the file names.
    project_code : str
        Project the run is filed under.
    exposure_time : float
        Seconds per frame.
    num_frames : int
        Frames to take.
    sample_role : str
        ``sample``, ``buffer_blank`` or ``standard``.
    concentration_mg_ml, sample_type, molecular_weight_kda, buffer_name : optional
        Sample description recorded with the run.
    buffer_run_uid : str, optional
        Run uid of the buffer to subtract from this sample.
    cell_temperature : float, optional
        Bring the cell to this temperature (°C) and wait before exposing.
    proposal_id, operator, description : str, optional
        Recorded with the run.
    """
    metadata = check_saxs_exposure(locals())
    cell = context.beamline.cell_temperature
    if cell_temperature is not None:
        check_live_setpoints(cell, "cell_temperature", [("cell_temperature", cell_temperature)])
        yield from bps.mv(cell, cell_temperature)
    plan_args = {"exposure_time": exposure_time, "num_frames": num_frames}
    return (yield from exposure_run(context, metadata, exposure_time, num_frames, "saxs_exposure", plan_args))


@parameter_annotation_decorator(
    {
        "description": "Temperature series: at each setpoint, equilibrate and expose (one run each).",
        "parameters": {
            **field_help(*(name for name in _SAMPLE_FIELDS if name != "molecular_weight_kda")),
            **annotations(
                "exposure_time",
                "temperatures",
                "equilibration_time",
                "concentration_mg_ml",
                num_frames="frames per temperature",
            ),
        },
    }
)
@beamline_plan
def temperature_series(
    sample_code: str,
    project_code: str,
    temperatures: list[float],
    exposure_time: float = 1.0,
    num_frames: int = 10,
    equilibration_time: float = 60.0,
    sample_role: SampleRole = "sample",
    concentration_mg_ml: float | None = None,
    sample_type: SampleType | None = None,
    buffer_name: str | None = None,
    proposal_id: str | None = None,
    operator: str | None = None,
    description: str | None = None,
    *,
    context: PlanContext,
) -> Generator[Msg, Any, list[str]]:
    """Measure the sample in the cell at each temperature (4–60 °C): one run per setpoint.

    The cell is brought to each temperature, held for ``equilibration_time`` seconds, then
    exposed like ``saxs_exposure``. Every setpoint is checked before the first move.

    Parameters
    ----------
    sample_code, project_code : str
        Sample and project (see ``saxs_exposure``).
    temperatures : list of float
        Setpoints in °C, measured in the given order.
    exposure_time : float
        Seconds per frame.
    num_frames : int
        Frames per temperature.
    equilibration_time : float
        Seconds to hold each temperature before exposing.
    """
    runs = check_temperature_series(locals())
    cell = context.beamline.cell_temperature
    setpoints = [(f"temperatures[{i}]", t) for i, t in enumerate(temperatures)]
    check_live_setpoints(cell, "temperatures", setpoints)
    uids = []
    for index, metadata in enumerate(runs):
        yield from bps.mv(cell, metadata.cell_temperature_c)
        if equilibration_time:
            yield from bps.sleep(equilibration_time)
        plan_args = {
            "temperatures": list(temperatures),
            "exposure_time": exposure_time,
            "num_frames": num_frames,
        }
        extra = {"series_position": {"index": index + 1, "total": len(runs)}}
        uids.append(
            (
                yield from exposure_run(
                    context, metadata, exposure_time, num_frames, "temperature_series", plan_args, extra
                )
            )
        )
    return uids
