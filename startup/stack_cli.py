"""``sibyls up | down | status | validate-item``: run the stack and check queue items from a shell."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_stack_commands(subparsers) -> None:
    """Register the stack subcommands."""
    up = subparsers.add_parser("up", help="start Redis, the simulated IOC, RE Manager and the HTTP server")
    _var_dir_option(up)
    up.add_argument("--ioc-prefix", default="SIBYLS:", help="PV prefix of the simulated beamline")
    up.add_argument("--time-scale", type=float, default=1.0, help="simulation speed-up")
    up.add_argument("--binning", type=int, default=4, choices=(1, 2, 4, 8), help="detector binning")
    for name in ("redis", "ca", "zmq-control", "zmq-info", "http"):
        up.add_argument(f"--{name}-port", type=int, default=None, help=f"{name} port (default: a free one)")
    up.add_argument("--no-open", action="store_true", help="do not open the RE environment")
    up.set_defaults(func=_up)

    down = subparsers.add_parser("down", help="stop exactly the processes 'sibyls up' started")
    _var_dir_option(down)
    down.set_defaults(func=_down)

    status = subparsers.add_parser("status", help="show the stack's processes, ports and log folder")
    _var_dir_option(status)
    status.set_defaults(func=_status)

    validate = subparsers.add_parser(
        "validate-item", help="dry-run a queue item (JSON, or @file.json) with the plans' own checks"
    )
    validate.add_argument("item", help='e.g. \'{"name": "saxs_exposure", "kwargs": {...}}\' or @item.json')
    validate.set_defaults(func=_validate)


def _var_dir_option(parser) -> None:
    parser.add_argument(
        "--var-dir",
        type=Path,
        default=Path("var/stack"),
        help="state, logs, data and records of the stack (default %(default)s)",
    )


def _up(args: argparse.Namespace) -> int:
    from sibyls.startup.stack import describe, up

    ports = {
        "redis": args.redis_port,
        "ca": args.ca_port,
        "zmq_control": args.zmq_control_port,
        "zmq_info": args.zmq_info_port,
        "http": args.http_port,
    }
    state = up(
        args.var_dir,
        ioc_prefix=args.ioc_prefix,
        time_scale=args.time_scale,
        binning=args.binning,
        ports={k: v for k, v in ports.items() if v},
        open_environment=not args.no_open,
    )
    print(describe(state))
    return 0


def _down(args: argparse.Namespace) -> int:
    from sibyls.startup.stack import down

    stopped = down(args.var_dir)
    print(f"stopped {len(stopped)} processes" if stopped else "nothing was running")
    return 0


def _status(args: argparse.Namespace) -> int:
    from sibyls.startup.stack import describe, load_state

    print(describe(load_state(args.var_dir.resolve())))
    return 0


def _validate(args: argparse.Namespace) -> int:
    from sibyls.plans.validation import validate_queue_item

    text = Path(args.item[1:]).read_text() if args.item.startswith("@") else args.item
    try:
        item = json.loads(text)
    except json.JSONDecodeError as exc:
        print(f"item: not valid JSON ({exc})", file=sys.stderr)
        return 2
    result = validate_queue_item(item)
    if result["success"]:
        print("valid")
        return 0
    for problem in result["problems"]:
        print(problem, file=sys.stderr)
    return 1
