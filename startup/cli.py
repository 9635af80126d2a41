"""The ``sibyls`` command: run the simulated beamline, the demo, and project utilities."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every ``sibyls`` subcommand."""
    parser = argparse.ArgumentParser(prog="sibyls", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)

    from sibyls.devices.sim.ioc import add_ioc_command

    add_ioc_command(subparsers)

    from sibyls.startup.demo import add_demo_command
    from sibyls.startup.stack_cli import add_stack_commands

    add_demo_command(subparsers)
    add_stack_commands(subparsers)

    from sibyls.metadata.export import add_export_command

    add_export_command(subparsers)
    from sibyls.metadata.exchange import add_exchange_commands

    add_exchange_commands(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sibyls`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
