"""``sibyls demo``: bring the simulated SIBYLS beamline up, show it live, and take a test exposure."""

from __future__ import annotations

import argparse
import time
import uuid
from pathlib import Path

import h5py
import numpy as np

from sibyls.devices.epics_env import free_ca_port_pair

DEMO_SAMPLE = {
    "sample_code": "GluRS_1",
    "kind": "sample",
    "rg_a": 31.0,
    "concentration_mg_ml": 3.0,
    "mw_kda": 54.0,
    "buffer": "25 mM HEPES pH 7.5, 150 mM NaCl",
}


def add_demo_command(subparsers) -> None:
    """Register ``sibyls demo``."""
    parser = subparsers.add_parser(
        "demo", help="start the simulated beamline, print live readings and take a test exposure"
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path("var/demo"),
        help="where frames and logs go (default %(default)s)",
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="how long to print live readings")
    parser.set_defaults(func=_demo_main)


def _demo_main(args: argparse.Namespace) -> int:
    from sibyls.startup.services import start_ioc

    data_dir = args.data_dir.resolve()
    port = free_ca_port_pair()
    prefix = f"DEMO{uuid.uuid4().hex[:4]}:"
    print(f"Starting the simulated SIBYLS beamline (prefix {prefix}, CA port {port} on 127.0.0.1)...")
    ioc = start_ioc(prefix, port, data_dir / "logs" / "ioc.log", binning=2, time_scale=10.0)
    try:
        # Imported only now: ophyd starts its Channel Access context on import, and that
        # context must see the loopback environment start_ioc has just set.
        from bluesky import RunEngine
        from bluesky import plan_stubs as bps
        from bluesky import plans as bp

        from sibyls.devices.beamline import build_beamline
        from sibyls.devices.sim.control import build_simulation_control

        beamline = build_beamline(prefix)
        simulation = build_simulation_control(prefix)
        print(f"Connected {len(beamline.devices())} devices. Live readings:")
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline:
            print(
                f"  ring {beamline.ring.current.get():7.2f} mA | "
                f"E {beamline.mono.energy.get():.3f} keV (λ {beamline.mono.wavelength.get():.4f} Å) | "
                f"cell {beamline.cell_temperature.readback.get():6.2f} °C | "
                f"shutters {beamline.photon_shutter.status.get()}/{beamline.fast_shutter.status.get()} | "
                f"robot {beamline.ht_robot.state.get()} | I0 rate {beamline.i0.rate.get():.3g}/s",
                flush=True,
            )
            time.sleep(0.5)

        beamline.pilatus.set_file_destination(str(data_dir / "frames"), DEMO_SAMPLE["sample_code"])
        beamline.pilatus.acquire_time.put(1.0, wait=True)
        beamline.pilatus.num_images.put(2, wait=True)
        for counter in (beamline.i0, beamline.bs_diode):
            counter.preset_time.put(2.0, wait=True)
        simulation.put_in_cell(DEMO_SAMPLE)
        run_engine = RunEngine({})
        print(f"Exposing {DEMO_SAMPLE['sample_code']} (2 x 1 s, simulated 10x faster)...")
        run_engine(bps.mv(beamline.photon_shutter, "open", beamline.fast_shutter, "open"))
        readings = {}
        run_engine(
            bp.count([beamline.pilatus, beamline.i0, beamline.bs_diode]),
            lambda name, doc: readings.update(doc["data"]) if name == "event" else None,
        )
        run_engine(bps.mv(beamline.fast_shutter, "close", beamline.photon_shutter, "close"))
        path = beamline.pilatus.full_file_name.get()
        with h5py.File(path) as frames:
            data = frames["entry/data/data"]
            valid = data[0][data[0] >= 0]
            print(
                f"Wrote {path}: {data.shape[0]} frames of {data.shape[1]}x{data.shape[2]} {data.dtype}, "
                f"{int(np.sum(valid))} counts in frame 1"
            )
        print(
            f"I0 {readings['i0_counts']:.4g} counts, beamstop diode {readings['bs_diode_counts']:.4g} counts"
        )
    finally:
        from sibyls.devices.beamline import release_channel_access

        release_channel_access()
        ioc.stop()
        print("Simulated beamline stopped.")
    return 0
