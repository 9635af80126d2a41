"""``python -m sibyls.devices.sim``: run the simulated beamline IOC (same options as ``sibyls ioc``)."""

import argparse
import sys

from sibyls.devices.sim.ioc import add_ioc_command

parser = argparse.ArgumentParser(prog="python -m sibyls.devices.sim")
add_ioc_command(parser.add_subparsers(dest="command", required=True))
args = parser.parse_args(["ioc", *sys.argv[1:]])
sys.exit(args.func(args))
