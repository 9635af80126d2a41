"""Plan overhead against the simulated beamline over real Channel Access.

* ``saxs_exposure`` of 1000 frames vs a raw ``bp.count`` of the same detectors and frames
  (target ≤ 1.03× wall time);
* ``ht_plate`` wall time vs the sum of the simulated robot and exposure time it had to wait for
  (target ≤ 1.02×).
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from bench.common import Figure

FRAMES = int(os.environ.get("BENCH_FRAMES", "1000"))
EXPOSURE_S = 0.005
PAIRS = 4  # a single run's wall time varies by ~5% on 2 cores; pairs and medians average that out
PLATE_WELLS = 4
PLATE_TIME_SCALE = 4.0


def run() -> list[Figure]:
    from bench.common import ca_port
    from sibyls.devices.sim.launcher import start_ioc

    workdir = Path(tempfile.mkdtemp(prefix="sibyls-bench-plans-"))
    prefix = f"BP{uuid.uuid4().hex[:4]}:"
    ioc = start_ioc(prefix, ca_port(), workdir / "ioc.log", binning=8, time_scale=1.0)
    try:
        figures = _measure(prefix, workdir)
    finally:
        ioc.stop()
    shutil.rmtree(workdir, ignore_errors=True)  # kept (logs, records, frames) only when the benchmark failed
    return figures


def _measure(prefix: str, workdir: Path) -> list[Figure]:
    from bluesky import RunEngine
    from bluesky import plans as bp

    from sibyls.devices.beamline import build_beamline
    from sibyls.devices.sim.control import build_simulation_control
    from sibyls.metadata.contract import RunMetadata, inject_run_metadata
    from sibyls.plans import configure_plans, saxs_exposure, setup_run_engine
    from sibyls.plans.exposure import configure_exposure, with_fast_shutter_open

    beamline = build_beamline(prefix)
    simulation = build_simulation_control(prefix)
    simulation.put_in_cell(
        {"sample_code": "lys", "kind": "sample", "rg_a": 14.0, "concentration_mg_ml": 5.0, "mw_kda": 14.3}
    )
    context = configure_plans(beamline, workdir / "data")
    RE = RunEngine({})
    setup_run_engine(RE, beamline, workdir / "records", spool_dir=workdir / "spool")

    def raw_count(project: str):
        # The same devices, shutters and file settings, but a plain bluesky count.
        metadata = RunMetadata(sample_code="lys", project_code=project, plan_type="count")
        yield from configure_exposure(context, EXPOSURE_S, "lys", project)
        plan = bp.count([beamline.pilatus, beamline.i0, beamline.bs_diode], num=FRAMES)
        yield from with_fast_shutter_open(context, inject_run_metadata(plan, metadata))

    def timed(plan_factory) -> float:
        start = time.perf_counter()
        RE(plan_factory())
        return time.perf_counter() - start

    timed(lambda: raw_count("BENCH_warmup"))  # connections, first files
    raw, ours = [], []
    for repeat in range(PAIRS):  # paired, alternating order, each run into a fresh folder
        pair = [
            (raw, lambda r=repeat: raw_count(f"BENCH_raw{r}")),
            (
                ours,
                lambda r=repeat: saxs_exposure(
                    "lys", f"BENCH_ours{r}", exposure_time=EXPOSURE_S, num_frames=FRAMES
                ),
            ),
        ]
        for results, factory in pair if repeat % 2 == 0 else reversed(pair):
            results.append(timed(factory))

    simulation.time_scale.put(PLATE_TIME_SCALE, wait=True)
    plate_wall, simulated_wall = plate_wall_time(RE, beamline, "BENCH_PLATE", "BENCH")

    return [
        Figure(
            f"saxs_exposure {FRAMES} frames (median wall)",
            statistics.median(ours),
            statistics.median(raw),
            "s",
            1.03,
            "raw bp.count, same devices",
            note="pair ratios " + ", ".join(f"{o / r:.3f}" for o, r in zip(ours, raw, strict=True)),
        ),
        Figure(
            f"ht_plate {PLATE_WELLS} wells at {PLATE_TIME_SCALE:g}x (wall)",
            plate_wall,
            simulated_wall,
            "s",
            1.02,
            "simulated robot + exposure time",
        ),
    ]


def plate_wall_time(RE, beamline, plate_id: str, project: str) -> tuple[float, float]:
    """Wall time of an ``ht_plate`` of ``PLATE_WELLS`` wells (buffer + sample pairs, each well dried)
    on a simulation running at ``PLATE_TIME_SCALE``, and the time the simulated robot and detector
    must take for it (the physical minimum)."""
    from sibyls.devices.sim.robot import ROBOT_CLEAN_S, ROBOT_DRY_S, ROBOT_LOAD_S
    from sibyls.plans import ht_plate

    wells, robot_wells = [], {}
    for i in range(PLATE_WELLS // 2):
        buffer_well, sample_well = f"B{2 * i + 1}", f"B{2 * i + 2}"
        wells += [
            {
                "well": buffer_well,
                "sample_code": f"buf{i}",
                "sample_role": "buffer_blank",
                "exposure_time": 0.3,
                "num_frames": 10,
            },
            {
                "well": sample_well,
                "sample_code": f"lys{i}",
                "buffer_well": buffer_well,
                "concentration_mg_ml": 5.0,
                "exposure_time": 0.3,
                "num_frames": 10,
            },
        ]
        robot_wells[buffer_well] = {"sample_code": f"buf{i}", "kind": "buffer"}
        robot_wells[sample_well] = {
            "sample_code": f"lys{i}",
            "kind": "sample",
            "rg_a": 14.0,
            "concentration_mg_ml": 5.0,
            "mw_kda": 14.3,
        }
    beamline.ht_robot.define_plate({"plate_id": plate_id, "wells": robot_wells})
    plate = {"plate_id": plate_id, "wells": wells}
    start = time.perf_counter()
    RE(ht_plate(plate, project, dry_between_wells=True))
    wall = time.perf_counter() - start
    per_well_s = ROBOT_LOAD_S + ROBOT_CLEAN_S + ROBOT_DRY_S + 10 * 0.3
    return wall, PLATE_WELLS * per_well_s / PLATE_TIME_SCALE
