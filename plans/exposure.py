"""The exposure every SIBYLS measurement is built from: N frames × t seconds, I0 and diode per frame."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from bluesky import plan_stubs as bps
from bluesky import plans as bp
from bluesky import preprocessors as bpp
from bluesky.utils import Msg

from sibyls.devices.pilatus import check_file_name, next_file_number
from sibyls.metadata.contract import RunMetadata, inject_run_metadata
from sibyls.plans.context import PlanContext
from sibyls.plans.errors import cleanup_keeping_error, device_errors


def frame_file_prefix(metadata: RunMetadata) -> str:
    """SIBYLS file naming: buffers as ``buff_<code>``, samples as ``<code>`` (then ``_00001.h5``)."""
    prefix = "buff_" if metadata.sample_role == "buffer_blank" else ""
    return prefix + metadata.sample_code


def configure_exposure(
    context: PlanContext,
    exposure_time: float,
    file_prefix: str,
    project_code: str,
    frames_per_trigger: int = 1,
) -> Generator[Msg, Any, None]:
    """Detector and counters for ``frames_per_trigger`` frames of ``exposure_time`` per trigger.

    Files go to ``<data_dir>/<project_code>/`` (the detector creates the folder).
    """
    beamline = context.beamline
    directory = context.data_dir / project_code
    check_file_name(beamline.pilatus.name, file_prefix)
    settings = bps.mv(
        beamline.pilatus.file_path,
        f"{directory}/",
        beamline.pilatus.file_name,
        file_prefix,
        beamline.pilatus.file_number,
        next_file_number(str(directory), file_prefix),
        beamline.pilatus.acquire_time,
        exposure_time,
        beamline.pilatus.acquire_period,
        exposure_time,
        beamline.pilatus.num_images,
        frames_per_trigger,
        beamline.i0.preset_time,
        exposure_time * frames_per_trigger,
        beamline.bs_diode.preset_time,
        exposure_time * frames_per_trigger,
    )
    yield from device_errors(settings)


def with_fast_shutter_open(context: PlanContext, plan) -> Generator[Msg, Any, Any]:
    """Open the photon and fast shutters around ``plan``; the fast shutter closes whatever happens.

    A device that fails inside surfaces with its own message (see :func:`device_errors`), and
    stays the reported error even if closing the fast shutter then fails too (that failure is
    added to it as a note).
    """
    beamline = context.beamline

    def inner():
        yield from bps.mv(beamline.photon_shutter, "open", beamline.fast_shutter, "open")
        return (yield from plan)

    return (
        yield from cleanup_keeping_error(
            device_errors(inner()),
            lambda: bps.mv(beamline.fast_shutter, "close"),
            "closing the fast shutter",
        )
    )


def exposure_run(
    context: PlanContext,
    metadata: RunMetadata,
    exposure_time: float,
    num_frames: int,
    plan_name: str,
    plan_args: dict[str, Any],
    extra_md: dict[str, Any] | None = None,
    one_file: bool = False,
) -> Generator[Msg, Any, str]:
    """One run of ``num_frames`` frames of ``exposure_time`` with the contract injected; returns its uid.

    By default every frame is an event (its own file, I0 and diode); ``one_file`` takes all
    frames in one acquisition (one event, one file of ``num_frames`` slices, I0 and diode over
    the whole exposure), as HT-SAXS does.
    """
    beamline = context.beamline
    per_trigger = num_frames if one_file else 1
    yield from configure_exposure(
        context, exposure_time, frame_file_prefix(metadata), metadata.project_code, per_trigger
    )
    detectors = [beamline.pilatus, beamline.i0, beamline.bs_diode]
    md = {
        "plan_name": plan_name,
        "plan_args": plan_args,
        "exposure_time_s": exposure_time,
        "num_frames": num_frames,
        **(extra_md or {}),
    }
    uids: list[str] = []
    count = bp.count(detectors, num=num_frames // per_trigger, md=md)
    capture = bpp.subs_wrapper(count, {"start": [lambda name, doc: uids.append(doc["uid"])]})
    yield from with_fast_shutter_open(context, inject_run_metadata(capture, metadata))
    return uids[0]
