"""``python -m bench [name ...]``: run every benchmark (or the named ones) and print one table."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from pathlib import Path

from bench.common import ca_port, format_table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", help="benchmark modules to run (bench_<name>.py); default all")
    args = parser.parse_args(argv)
    modules = pkgutil.iter_modules([str(Path(__file__).parent)])
    available = sorted(m.name for m in modules if m.name.startswith("bench_"))
    chosen = [f"bench_{n.removeprefix('bench_')}" for n in args.names] or available
    unknown = sorted(set(chosen) - set(available))
    if unknown:
        parser.error(f"unknown benchmarks {unknown}; available: {available}")
    ca_port()  # Channel Access on loopback, before any benchmark imports ophyd
    figures = []
    for name in chosen:
        module = importlib.import_module(f"bench.{name}")
        print(f"running {name} ...", flush=True)
        figures.extend(module.run())
    print()
    print(format_table(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
