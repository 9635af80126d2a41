"""HT-SAXS: a whole 96-well plate as one queue item, one run per well."""

import json
from collections.abc import Generator
from typing import Any

from bluesky import plan_stubs as bps
from bluesky.utils import Msg
from bluesky_queueserver import parameter_annotation_decorator

from sibyls.metadata.rules import annotation
from sibyls.plans.checks import check_ht_plate, check_live_setpoints
from sibyls.plans.context import PlanContext, beamline_plan
from sibyls.plans.errors import cleanup_keeping_error, device_errors
from sibyls.plans.exposure import exposure_run
from sibyls.plans.help_texts import field_help


class PlateNotOnRobotError(ValueError):
    """The plate id is not one the robot has a definition for."""


@parameter_annotation_decorator(
    {
        "description": "HT-SAXS of a 96-well plate: for each well load, expose, clean and dry.",
        "parameters": {
            **field_help("dry_between_wells"),
            "project_code": {"description": "Project all the plate's runs are filed under."},
            "proposal_id": {"description": "ALS proposal number, if any (recorded with every run)."},
            "operator": {"description": "Who prepared or measured the plate (recorded with every run)."},
            "plate": {
                "description": 'the plate as JSON: {"plate_id": ..., "wells": [{"well": "A1", '
                '"sample_code": ..., "sample_role": "buffer_blank" or "sample", "buffer_well": ..., '
                '"concentration_mg_ml": ..., "exposure_time": ..., "num_frames": ...}, ...]}; '
                "easier: upload a plate sheet"
            },
            "cell_temperature": annotation("cell_temperature", "°C for the whole plate; omit to leave as is"),
        },
    }
)
@beamline_plan
def ht_plate(
    plate: dict,
    project_code: str,
    cell_temperature: float | None = None,
    dry_between_wells: bool = True,
    proposal_id: str | None = None,
    operator: str | None = None,
    *,
    context: PlanContext,
) -> Generator[Msg, Any, dict[str, str]]:
    """Measure a 96-well plate in the listed order: one run per well, buffers before their samples.

    The whole plate is checked before the robot moves: wells unique within A1–H12, each sample's
    buffer well on the plate and listed before it, concentrations positive, exposures 0.001–60 s,
    frames 1–10000, every well's metadata valid, and the plate known to the robot. Each sample's
    run records the uid of its buffer's run (``buffer_run_uid``) for subtraction. A well's
    ``num_frames`` slices are one acquisition: one HDF5 file per well, I0 and the beamstop
    diode integrated over it. A well the robot refuses (or any device failing) ends the plate
    with the device's own message; the cell is cleaned whatever happens.

    Parameters
    ----------
    plate : dict
        ``plate_id`` and ``wells`` (in measurement order); see the item description.
    project_code : str
        Project all the plate's runs are filed under.
    cell_temperature : float, optional
        Bring the cell to this temperature (°C) first.
    dry_between_wells : bool
        Dry the cell after cleaning it, before the next well.
    proposal_id, operator : str, optional
        Recorded with every run.

    Returns
    -------
    dict
        Well → run uid.
    """
    spec, wells_md = check_ht_plate(locals())
    robot = context.beamline.ht_robot
    cell = context.beamline.cell_temperature
    if cell_temperature is not None:
        check_live_setpoints(cell, "cell_temperature", [("cell_temperature", cell_temperature)])
    known = json.loads((yield from bps.rd(robot.known_plates)) or "[]")
    if spec.plate_id not in known:
        raise PlateNotOnRobotError(
            f"plate.plate_id: the robot has no plate {spec.plate_id!r} (known plates: {known}); "
            "nothing was moved"
        )

    def prepare() -> Generator[Msg, Any, None]:
        if cell_temperature is not None:
            yield from bps.mv(cell, cell_temperature)
        yield from bps.mv(robot.plate_id, spec.plate_id)
        if (yield from bps.rd(robot.state)) == "loaded":
            yield from bps.mv(robot, "clean")

    yield from device_errors(prepare())

    run_uids: dict[str, str] = {}
    total = len(spec.wells)

    def measure_wells() -> Generator[Msg, Any, None]:
        for index, (well, metadata) in enumerate(zip(spec.wells, wells_md, strict=True), start=1):
            if well.buffer_well is not None:
                metadata = metadata.model_copy(update={"buffer_run_uid": run_uids[well.buffer_well]})
            if index == 1:  # open the photon shutter while the robot loads the first well
                yield from bps.mv(robot, well.well, context.beamline.photon_shutter, "open")
            else:
                yield from bps.mv(robot, well.well)
            plan_args = {
                "plate_id": spec.plate_id,
                "well": well.well,
                "exposure_time": well.exposure_time,
                "num_frames": well.num_frames,
            }
            extra = {"plate_position": {"index": index, "total": total}, "buffer_well": well.buffer_well}
            run_uids[well.well] = yield from exposure_run(
                context,
                metadata,
                well.exposure_time,
                well.num_frames,
                "ht_plate",
                plan_args,
                {k: v for k, v in extra.items() if v is not None},
                one_file=True,
            )
            yield from bps.mv(robot, "clean")
            if dry_between_wells:
                yield from bps.mv(robot, "dry")

    def leave_cell_clean() -> Generator[Msg, Any, None]:
        # A well that failed mid-way must not stay in the cell for the next user.
        if (yield from bps.rd(robot.state)) == "loaded":
            yield from bps.mv(robot, "clean")

    yield from cleanup_keeping_error(device_errors(measure_wells()), leave_cell_clean, "cleaning the cell")
    return run_uids
