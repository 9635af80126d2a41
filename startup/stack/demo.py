"""``sibyls demo``: the whole stack up, a SAXS sample, then water (from the robot) and the empty cell
for the absolute calibration (as ``sibyls calibrate``), then an 8-well plate queued and run on absolute
scale, records and the first look (Guinier and P(r) Rg, Dmax, MW, flags per sample) shown. The samples
are the simulator's catalogue (``sibyls.devices.sim.samples``): proteins with shapes, hydration shells
and their own truth."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

DEMO_PROJECT = "DEMO_2026"
#: The protein the demo puts into the cell by hand (GluRS, a two-domain bead model; no buffer
#: before it, so its first look is flagged no-buffer).
DEMO_CELL_SAMPLE = ("GluRS", "GluRS_1", 3.0)
#: The plate's proteins (catalogue names), each after its buffer.
DEMO_PLATE_SAMPLES = ("lysozyme", "BSA", "rod", "cage")
FIRST_LOOK_WAIT_S = 60.0
#: The robot's well of pure water for the absolute calibration (measured before the plate's samples).
WATER_WELL = "H12"


def demo_cell_sample() -> dict:
    """What the demo puts into the cell: a catalogue sample as the simulator takes it."""
    from sibyls.devices.sim.samples import catalogue_sample

    name, code, concentration = DEMO_CELL_SAMPLE
    return catalogue_sample(name, code, concentration).model_dump(mode="json", exclude_none=True)


def demo_plate() -> tuple[dict, dict]:
    """The 8-well plate as submitted (four buffer/sample pairs) and as the simulated robot holds it."""
    from sibyls.devices.sim.samples import catalogue_sample

    wells, robot_wells = [], {}
    for index, name in enumerate(DEMO_PLATE_SAMPLES):
        sample = catalogue_sample(name, concentration_mg_ml=2.0)
        buffer_well, sample_well = f"A{2 * index + 1}", f"A{2 * index + 2}"
        wells.append(
            {
                "well": buffer_well,
                "sample_code": f"{name}_buf",
                "sample_role": "buffer_blank",
                "exposure_time": 0.5,
                "num_frames": 10,
            }
        )
        wells.append(
            {
                "well": sample_well,
                "sample_code": name,
                "buffer_well": buffer_well,
                "concentration_mg_ml": 2.0,
                "sample_type": "protein",
                "molecular_weight_kda": sample.mw_kda,
                "exposure_time": 0.5,
                "num_frames": 10,
            }
        )
        robot_wells[buffer_well] = {"sample_code": f"{name}_buf", "kind": "buffer"}
        robot_wells[sample_well] = sample.model_dump(mode="json", exclude_none=True)
    robot_wells[WATER_WELL] = {"sample_code": "water", "kind": "buffer"}
    return {"plate_id": "DEMO_PLATE_1", "wells": wells}, {"plate_id": "DEMO_PLATE_1", "wells": robot_wells}


def run_demo(var_dir: Path, time_scale: float = 20.0, keep_up: bool = False) -> int:
    """The whole stack up in ``var_dir``, the demo items queued and run, records listed; 0 if all ran."""
    from sibyls.startup.stack import describe, down, manager_api, up

    var_dir = Path(var_dir).resolve()
    print(
        f"Starting the SIBYLS stack in {var_dir} (Redis, simulated beamline, RE Manager, HTTP server)...",
        flush=True,
    )
    state = up(var_dir, ioc_prefix="DEMO:", time_scale=time_scale, binning=4)
    try:
        print(describe(state), flush=True)
        _prepare_simulated_beamline(state)
        api = manager_api(state, timeout=10)
        plate, _ = demo_plate()
        from bluesky_queueserver_api import BPlan

        items = [
            BPlan(
                "saxs_exposure",
                DEMO_CELL_SAMPLE[1],
                DEMO_PROJECT,
                exposure_time=0.5,
                num_frames=10,
                concentration_mg_ml=DEMO_CELL_SAMPLE[2],
                sample_type="protein",
                operator="demo",
            ),
            *_calibration_items(plate["plate_id"]),
        ]
        _queue_and_run(api, state, items, "saxs_exposure of GluRS_1, water and the empty cell")
        _calibrate(api, var_dir)
        items.append(BPlan("ht_plate", plate, DEMO_PROJECT, operator="demo"))
        _queue_and_run(api, state, items[-1:], "ht_plate of 8 wells")
        history = api.history_get()["items"][-len(items) :]
        for item in history:
            result = item["result"]
            print(f"  {item['name']:<14} {result['exit_status']:<10} runs {len(result['run_uids'])}")
        api.close()
        failed = [i for i in history if i["result"]["exit_status"] != "completed"]
        records = sorted((var_dir / "records").rglob("*.yaml"))
        frames = sorted((var_dir / "data").rglob("*.h5"))
        print(f"lambda-ber records: {len(records)} in {var_dir / 'records' / DEMO_PROJECT}")
        for record in records[-3:]:
            print(f"  {record}")
        print(f"frame files: {len(frames)} in {var_dir / 'data' / DEMO_PROJECT}")
        looked = _show_first_look(var_dir)
        if failed or not records or not looked:
            print(f"Demo FAILED; see {var_dir / 'logs'}")
            return 1
        return 0
    finally:
        if keep_up:
            print(f"Stack left running; stop it with: sibyls down --var-dir {var_dir}")
        else:
            stopped = down(var_dir)
            print(f"Stack stopped ({len(stopped)} processes).")


def _calibration_items(plate_id: str) -> list:
    """Water from the robot's well (the plate cleans and dries the cell after it), then the empty cell."""
    from bluesky_queueserver_api import BPlan

    water = {"well": WATER_WELL, "sample_code": "water", "sample_role": "buffer_blank", "exposure_time": 0.5,
             "num_frames": 10}  # fmt: skip
    return [
        BPlan("ht_plate", {"plate_id": plate_id, "wells": [water]}, DEMO_PROJECT, operator="demo"),
        BPlan(
            "saxs_exposure",
            "empty_cell",
            DEMO_PROJECT,
            exposure_time=0.5,
            num_frames=10,
            sample_role="standard",
            operator="demo",
        ),  # fmt: skip
    ]


def _queue_and_run(api, state, items: list, what: str) -> None:
    """Add ``items`` to the queue, start it and follow it until the manager is idle."""
    from sibyls.startup.watch import watch

    result = api.item_add_batch(items)
    if not result["success"]:
        problems = [r["msg"] for r in result["results"] if not r["success"]]
        raise RuntimeError(f"the queue refused the demo items: {problems}")
    print(f"Queued: {what}. Running...", flush=True)
    api.queue_start()
    watch(state, until_idle=True, timeout=600)


def _calibrate(api, var_dir: Path) -> None:
    """The absolute scale from the water and empty-cell runs just measured (as ``sibyls calibrate``)."""
    from sibyls.metadata.runs.sources import FolderRunSource, select_runs
    from sibyls.saxs.processing.calibration import calibrate_from_runs, save_calibration
    from sibyls.startup.config import ProfileConfig

    water_item, empty_item = api.history_get()["items"][-2:]
    source = FolderRunSource(var_dir / "runs")
    (water,) = select_runs(source, uid=water_item["result"]["run_uids"][0])
    (empty,) = select_runs(source, uid=empty_item["result"]["run_uids"][0])
    calibration = calibrate_from_runs(water, empty)
    config = ProfileConfig.from_env({"SIBYLS_VAR_DIR": str(var_dir)})
    current, _ = save_calibration(config.processed_dir, calibration)
    print(f"Absolute scale {calibration.absolute_scale:.4g} cm⁻¹ per unit from water and the empty cell "
          f"({current}); the plate is measured on absolute scale.", flush=True)  # fmt: skip


def _show_first_look(var_dir: Path, timeout: float = FIRST_LOOK_WAIT_S) -> bool:
    """Wait for every demo run's first look, print the plate's summary table; False if any is missing."""
    import csv
    import time

    import yaml

    records = sorted((var_dir / "records" / DEMO_PROJECT).glob("*.yaml"))
    deadline = time.monotonic() + timeout
    while True:
        status = [
            (yaml.safe_load(p.read_text())["experiment_runs"][0].get("processing_status"), p) for p in records
        ]
        waiting = [p for s, p in status if s != "completed"]
        if not waiting or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    summary = var_dir / "processed" / DEMO_PROJECT / "summary.csv"
    print(f"first look (Rg Guinier / P(r), Dmax, I(0), MW, flags) of {len(records) - len(waiting)} runs; "
          f"summary: {summary}")  # fmt: skip
    if summary.is_file():
        for row in csv.DictReader(summary.open()):
            if row["Rg_Guinier_A"]:
                mw = row["MW_kDa"] or row["MW_I0_c_kDa"] or row["MW_Vc_kDa"]
                flags = row["flags"] or "none"
                print(f"  {row['well'] or '-':<4} {row['sample_code']:<12} Rg {row['Rg_Guinier_A']:>6} / "
                      f"{row['Rg_Pr_A'] or '-':>6} Å  Dmax {row['Dmax_A'] or '-':>6} Å  I(0) {row['I0']} "
                      f"{row['I0_unit']}  MW {mw} kDa  flags: {flags}")  # fmt: skip
    if waiting:
        print(f"  no first look for {len(waiting)} runs; see {var_dir / 'logs' / 'processing.log'}")
    return not waiting


def _prepare_simulated_beamline(state) -> None:
    """Simulation only: what a person would do by hand — fill the cell, put the plate on the robot.

    Channel Access is used only here and closed afterwards, so the terminal shows none of the CA
    library's own messages: no "caRepeater couldn't be located" (printed by the repeater the library
    tries to spawn when its context starts) and no "Virtual circuit disconnect" banners when the
    stack's IOC stops at the end.
    """
    os.environ.update(state.ca_env())  # before ophyd starts its Channel Access context
    with _c_stderr_silenced():
        from sibyls.devices.robot import HTRobot
        from sibyls.devices.sim.control import build_simulation_control

        simulation = build_simulation_control(state.ioc_prefix)
        simulation.put_in_cell(demo_cell_sample())
        robot = HTRobot(f"{state.ioc_prefix}Robot:", name="ht_robot")
        robot.wait_for_connection(timeout=10)
        _, robot_plate = demo_plate()
        robot.define_plate(robot_plate)
        for device in (simulation, robot):
            device.destroy()
        import epics.ca

        epics.ca.finalize_libca()


@contextlib.contextmanager
def _c_stderr_silenced():
    """File descriptor 2 to /dev/null (C libraries and the processes they spawn write there directly)."""
    import sys

    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
