"""The simulated beamline as a command: its options and what runs them.

Used by ``python -m sibyls.devices.sim`` (how :mod:`sibyls.devices.sim.launcher` starts the IOC, so
nothing below the CLI names the CLI) and by ``sibyls ioc``; both parse exactly these options.
"""

from __future__ import annotations

import argparse
import logging
from textwrap import dedent


def add_ioc_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The IOC's options on ``parser``; ``parser.set_defaults(func=run_ioc_command)`` is set too."""
    from sibyls.devices.sim.ioc import DEFAULT_PREFIX, SibylsIOC

    parser.description = dedent(SibylsIOC.__doc__ or "")
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--prefix", default=DEFAULT_PREFIX, help="PV prefix (default %(default)s)")
    parser.add_argument("--port", type=int, default=5064, help="CA server port (default %(default)s)")
    parser.add_argument("--time-scale", type=float, default=1.0, help="simulated s per wall s")
    parser.add_argument("--binning", type=int, default=1, choices=(1, 2, 4, 8), help="detector binning")
    parser.add_argument("--plate", action="append", default=[], help="plate definition file (JSON/YAML)")
    parser.add_argument(
        "--plate-registry", default=None, help="plate registry file shared with the queue gate (YAML)"
    )
    parser.add_argument(
        "--interface", action="append", default=None, help="interface to serve on (default 127.0.0.1)"
    )
    parser.set_defaults(func=run_ioc_command)
    return parser


def run_ioc_command(args: argparse.Namespace) -> int:
    """Serve the simulated beamline until interrupted; prints the EPICS environment clients need."""
    from sibyls.devices.epics_env import apply_loopback_ca_env
    from sibyls.devices.sim.ioc import load_plates, run_ioc

    plates = load_plates(args.plate)
    interfaces = tuple(args.interface or ["127.0.0.1"])
    env = apply_loopback_ca_env(args.port)
    print(
        f"SIBYLS simulated beamline: PV prefix {args.prefix!r}, time scale {args.time_scale:g}x", flush=True
    )
    print("Clients need this EPICS environment:", flush=True)
    for key, value in env.items():
        if key.startswith("EPICS_CA_"):
            print(f"  export {key}={value}", flush=True)
    logging.basicConfig(level=logging.WARNING)
    run_ioc(args.prefix, args.port, args.time_scale, args.binning, plates, interfaces, args.plate_registry)
    return 0
