"""SEC-SAXS-MALS: an elution measured frame by frame, with UV/MALS/RI monitored throughout."""

from collections.abc import Generator
from typing import Any

from bluesky import plan_stubs as bps
from bluesky import preprocessors as bpp
from bluesky.utils import Msg
from bluesky_queueserver import parameter_annotation_decorator
from ophyd import Kind, Signal

from sibyls.devices.sec import SECError
from sibyls.metadata.contract import SampleType, inject_run_metadata
from sibyls.metadata.rules import annotations
from sibyls.plans.checks import check_live_setpoints, check_sec_saxs, sec_frame_count
from sibyls.plans.context import PlanContext, beamline_plan
from sibyls.plans.errors import cleanup_keeping_error, device_errors
from sibyls.plans.exposure import configure_exposure, frame_file_prefix, with_fast_shutter_open
from sibyls.plans.help_texts import field_help

#: Name of the per-frame label in the primary stream: "buffer" until the UV peak starts, then "sample".
FRAME_ROLE = "sec_frame_role"


@parameter_annotation_decorator(
    {
        "description": "SEC-SAXS-MALS: inject, then frames at a fixed period for the whole elution.",
        "parameters": {
            **field_help(
                "sample_code",
                "project_code",
                "sample_type",
                "molecular_weight_kda",
                "buffer_name",
                "proposal_id",
                "operator",
                "description",
            ),
            **annotations(
                "concentration_mg_ml",
                "flow_rate",
                "frame_period",
                "duration",
                "buffer_threshold_mau",
                exposure_time="seconds per frame, at most frame_period",
            ),
        },
    }
)
@beamline_plan
def sec_saxs(
    sample_code: str,
    project_code: str,
    flow_rate: float = 0.5,
    frame_period: float = 3.0,
    exposure_time: float = 2.5,
    duration: float = 30.0,
    buffer_threshold_mau: float = 5.0,
    concentration_mg_ml: float | None = None,
    sample_type: SampleType | None = None,
    molecular_weight_kda: float | None = None,
    buffer_name: str | None = None,
    proposal_id: str | None = None,
    operator: str | None = None,
    description: str | None = None,
    *,
    context: PlanContext,
) -> Generator[Msg, Any, str]:
    """Run an elution of the vial in the autosampler and take SAXS frames throughout (one run).

    Sets the flow, injects, and takes ``duration * 60 / frame_period`` frames timed by the HPLC
    run clock. UV 280 nm, MALS and RI are recorded in monitor streams and with every frame.
    Frames before the UV peak starts (UV below the injection baseline + ``buffer_threshold_mau``)
    are marked ``buffer`` in ``sec_frame_role``, the rest ``sample``. The HPLC run is stopped and
    the fast shutter closed at the end, also on error. If the HPLC run stops before the last
    frame (stopped at the instrument, or its method ended), the run ends at once with the HPLC's
    reason; if its clock stalls, after 1.5 frame periods + 5 s.

    Parameters
    ----------
    sample_code, project_code : str
        Sample and project.
    flow_rate : float
        mL/min.
    frame_period : float
        Seconds between frame starts.
    exposure_time : float
        Seconds per frame (at most ``frame_period``).
    duration : float
        Minutes of elution to record.
    buffer_threshold_mau : float
        UV rise that marks the end of the buffer frames.
    """
    metadata = check_sec_saxs(locals())
    num_frames = sec_frame_count(duration, frame_period)
    beamline = context.beamline
    sec = beamline.sec
    frame_role = Signal(name=FRAME_ROLE, value="buffer", kind=Kind.normal)  # this run's own label
    detectors = [beamline.pilatus, beamline.i0, beamline.bs_diode, sec, frame_role]
    monitored = [sec.uv280, sec.mals, sec.refractive_index]
    md = {
        "plan_name": "sec_saxs",
        "plan_args": {
            "flow_rate": flow_rate,
            "frame_period": frame_period,
            "exposure_time": exposure_time,
            "duration": duration,
            "buffer_threshold_mau": buffer_threshold_mau,
        },
        "num_points": num_frames,
        "num_frames": num_frames,
        "frame_period_s": frame_period,
        "exposure_time_s": exposure_time,
        "flow_rate_ml_min": flow_rate,
        "detectors": [d.name for d in detectors],
    }

    def elution() -> Generator[Msg, Any, str]:
        if (yield from bps.rd(sec.run_state)) == "Running":
            raise SECError(f"{sec.name}: an HPLC run is already in progress; stop it before injecting")
        uid = yield from bps.open_run(md)
        for signal in monitored:
            yield from bps.monitor(signal, name=f"{signal.name}_monitor")
        yield from bps.mv(frame_role, "buffer")
        yield from bps.mv(sec, "inject")
        uv_baseline = yield from bps.rd(sec.uv280)
        peak_started = False
        clock_timeout = sec.run_clock_timeout(frame_period)
        for index in range(num_frames):
            # Wait for the run clock; fails at once if the HPLC run stops.
            yield from bps.abs_set(sec.elapsed, index * frame_period, timeout=clock_timeout, wait=True)
            if not peak_started and (yield from bps.rd(sec.uv280)) > uv_baseline + buffer_threshold_mau:
                peak_started = True
                yield from bps.mv(frame_role, "sample")
            yield from bps.trigger_and_read(detectors)
        for signal in monitored:
            yield from bps.unmonitor(signal)
        yield from bps.close_run()
        return uid

    def stop_hplc() -> Generator[Msg, Any, None]:
        if (yield from bps.rd(sec.run_state)) == "Running":
            yield from bps.mv(sec, "stop")

    check_live_setpoints(sec.flow_rate, "flow_rate", [("flow_rate", flow_rate)])
    yield from configure_exposure(context, exposure_time, frame_file_prefix(metadata), project_code)
    # The HPLC method runs a minute longer than we record (its RunTime is at most 600 min).
    yield from device_errors(bps.mv(sec.flow_rate, flow_rate, sec.run_time, min(duration + 1.0, 600.0)))
    staged = bpp.stage_wrapper(elution(), [beamline.pilatus, beamline.i0, beamline.bs_diode])
    measured = cleanup_keeping_error(device_errors(staged), stop_hplc, "stopping the HPLC run")
    return (yield from with_fast_shutter_open(context, inject_run_metadata(measured, metadata)))
