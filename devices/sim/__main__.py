"""``python -m sibyls.devices.sim [options]``: the simulated SIBYLS beamline alone (as ``sibyls ioc``)."""

import argparse
import sys

from sibyls.devices.sim.command import add_ioc_arguments

if __name__ == "__main__":
    args = add_ioc_arguments(argparse.ArgumentParser(prog="python -m sibyls.devices.sim")).parse_args()
    sys.exit(args.func(args))
