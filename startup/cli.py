"""The ``sibyls`` command: every subcommand's options are defined here, and only here.

Each subcommand parses its options and calls a plain function of the package that does the work:

=====================  ==========================================================================
``ioc``                :mod:`sibyls.devices.sim.command` (the simulated beamline alone)
``up/down/status``     :mod:`sibyls.startup.stack` (the whole stack, its state under ``--var-dir``)
``validate-item``      :func:`sibyls.plans.validation.validate_queue_item`
``demo``               :func:`sibyls.startup.stack.demo.run_demo`
``watch``              :func:`sibyls.startup.watch.watch` (the running item's progress bar)
``export``             :func:`sibyls.saxs.exports.formats.export` (NXcanSAS, CSV, JSON, SPEC, PNG)
``export-lambda-ber``  :func:`sibyls.metadata.exports.lambda_ber.export_project`
``records-from-runs``  :func:`sibyls.metadata.replay.records.records_from_runs`
``replay-record``      :func:`sibyls.metadata.replay.records.replay_record`
``project``            :class:`sibyls.metadata.projects.ProjectsFile` (who belongs to which project)
``sheet check``        :func:`sibyls.plans.plate_sheet.sheet_report` (a plate sheet's dry run)
``calibrate``          :mod:`sibyls.saxs.processing.calibration` (absolute scale from water)
=====================  ==========================================================================

The work is imported when a subcommand runs. The IOC's options are its own
(:mod:`sibyls.devices.sim.command`): the stack starts it as ``python -m sibyls.devices.sim``.
(Over 450 lines on purpose: every option of every subcommand in one place, so ``--help`` and the
README read from one file; each subcommand's work lives in the layer it belongs to.)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

#: The environment variable the exchange commands read a Tiled API key from.
TILED_API_KEY_ENV = "TILED_API_KEY"

# ---- sibyls ioc ---------------------------------------------------------------------------------


def _add_ioc(subparsers) -> None:
    from sibyls.devices.sim.command import add_ioc_arguments

    add_ioc_arguments(
        subparsers.add_parser("ioc", help="run the simulated SIBYLS beamline (caproto IOC) on loopback")
    )


# ---- sibyls up | down | status | validate-item | demo -------------------------------------------


def _var_dir_option(parser, default: str = "var/stack", what: str = "state, logs, data and records") -> None:
    parser.add_argument(
        "--var-dir", type=Path, default=Path(default), help=f"{what} of the stack (default %(default)s)"
    )


def _add_stack(subparsers) -> None:
    from sibyls.startup.config import ProfileConfig

    tiled_db_env = ProfileConfig.env_name("tiled_db")
    up = subparsers.add_parser("up", help="start Redis, the simulated IOC, RE Manager and the HTTP server")
    _var_dir_option(up)
    up.add_argument("--ioc-prefix", default="SIBYLS:", help="PV prefix of the simulated beamline")
    up.add_argument("--time-scale", type=float, default=1.0, help="simulation speed-up")
    up.add_argument("--binning", type=int, default=4, choices=(1, 2, 4, 8), help="detector binning")
    for name in ("redis", "ca", "zmq-control", "zmq-info", "http"):
        up.add_argument(f"--{name}-port", type=int, default=None, help=f"{name} port (default: a free one)")
    up.add_argument("--no-open", action="store_true", help="do not open the RE environment")
    up.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="seconds each service may take to answer (default %(default)s; more on a busy machine)",
    )
    up.add_argument(
        "--tiled-db",
        metavar="URI",
        default=None,
        help=f"database of the Tiled catalog, postgresql://user@host[:port]/db (default: ${tiled_db_env}, "
        f"else SQLite under --var-dir); give a password through ${tiled_db_env} or ~/.pgpass, not here",
    )
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
    _var_dir_option(validate, what="the robot's plate registry (<var-dir>/plates.yaml)")
    validate.set_defaults(func=_validate)

    demo = subparsers.add_parser(
        "demo",
        help="bring the whole stack up, queue a SAXS sample and an 8-well plate, run them, show records",
    )
    demo.add_argument(
        "--var-dir",
        type=Path,
        default=Path("var/demo"),
        help="where the stack keeps data, records, logs and state (default %(default)s)",
    )
    demo.add_argument("--time-scale", type=float, default=20.0, help="simulation speed-up (default 20x)")
    demo.add_argument("--keep-up", action="store_true", help="leave the stack running afterwards")
    demo.add_argument(
        "--timeout", type=float, default=60.0, help="seconds each service may take to answer (default 60)"
    )
    demo.set_defaults(func=_demo)

    watch = subparsers.add_parser(
        "watch", help="a live progress bar of the stack's queue: item, frames, wells, ETA, queue ETA"
    )
    _var_dir_option(watch)
    watch.add_argument("--once", action="store_true", help="print the current line and exit")
    watch.add_argument("--until-idle", action="store_true", help="exit when the queue has run out")
    watch.set_defaults(func=_watch)


def _up(args: argparse.Namespace) -> int:
    from sibyls.startup.config import ProfileConfig
    from sibyls.startup.stack import describe, up

    ports = {
        "redis": args.redis_port,
        "ca": args.ca_port,
        "zmq_control": args.zmq_control_port,
        "zmq_info": args.zmq_info_port,
        "http": args.http_port,
    }
    try:
        state = up(
            args.var_dir,
            ioc_prefix=args.ioc_prefix,
            time_scale=args.time_scale,
            binning=args.binning,
            ports={k: v for k, v in ports.items() if v},
            open_environment=not args.no_open,
            timeout=args.timeout,
            tiled_db=args.tiled_db or ProfileConfig().tiled_db or None,
        )
    except (RuntimeError, TimeoutError, OSError, ValueError) as exc:  # StackError is a RuntimeError
        print(f"error: the stack did not start: {exc}", file=sys.stderr)
        print(f"logs in {args.var_dir / 'logs'}; `sibyls status` shows what runs", file=sys.stderr)
        return 1
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
    from sibyls.metadata.plate_registry import use_registry
    from sibyls.plans.validation import validate_queue_item
    from sibyls.startup.stack.starters import stack_plate_registry

    # The stack's own registry, as its queue gate reads it: an unknown plate is refused here too.
    use_registry(stack_plate_registry(args.var_dir))
    try:
        text = Path(args.item[1:]).read_text() if args.item.startswith("@") else args.item
    except OSError as exc:
        print(f"item: cannot read {args.item[1:]} ({exc.strerror})", file=sys.stderr)
        return 2
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


def _watch(args: argparse.Namespace) -> int:
    from sibyls.startup.stack import load_state
    from sibyls.startup.watch import watch

    state = load_state(args.var_dir.resolve())
    if state is None:
        print(f"error: no stack in {args.var_dir} (start one with: sibyls up --var-dir {args.var_dir})")
        return 2
    return watch(state, once=args.once, until_idle=args.until_idle)


def _demo(args: argparse.Namespace) -> int:
    from sibyls.startup.stack.demo import run_demo

    try:
        return run_demo(args.var_dir, time_scale=args.time_scale, keep_up=args.keep_up, timeout=args.timeout)
    except (RuntimeError, TimeoutError, OSError, ValueError) as exc:  # StackError is a RuntimeError
        print(f"error: the demo did not run: {exc}", file=sys.stderr)
        print(f"logs in {args.var_dir / 'logs'}", file=sys.stderr)
        return 1


# ---- sibyls export | export-lambda-ber | records-from-runs | replay-record -----------------------


def _add_source(parser: argparse.ArgumentParser, selection: bool = True, every: bool = False) -> None:
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--runs-dir", help="folder of document logs (*.jsonl) written by DocumentLog")
    where.add_argument("--tiled", metavar="URL", help=f"Tiled server URL (API key from ${TILED_API_KEY_ENV})")
    if selection:
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--scan-id", type=int, help="the run with this scan id")
        which.add_argument("--uid", help="the run with this uid (or its first characters)")
        which.add_argument("--project", help="every run of this project")
        if every:
            which.add_argument("--all", dest="every", action="store_true", help="every stored run")


def _add_exchange(subparsers) -> None:
    from sibyls.saxs.exports.formats import FORMATS
    from sibyls.startup.config import ProfileConfig

    env_name = ProfileConfig.env_name

    p = subparsers.add_parser(
        "export",
        help="export stored runs as NXcanSAS, CSV, JSON, SPEC or a PNG of I(q)",
        description="Export a run (by scan id or uid) or a whole project from a folder of document logs "
        "or a Tiled server. Files are named <project>/<scan>_<sample>_<uid8>.* and written atomically.",
    )
    _add_source(p)
    p.add_argument("--format", nargs="+", choices=FORMATS, required=True, help="one or more formats")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=_reporting_errors(_export))

    p = subparsers.add_parser(
        "export-lambda-ber",
        help="merge a project's run records into one lambda-ber Dataset valid against the upstream schema",
        description="Upstream-strict lambda-ber export: a project's run records merged into one Dataset "
        "valid against lambda-ber alone (no Bluesky extension slots).",
    )
    p.add_argument("--records", type=Path, required=True, help="records folder (holds <project>/)")
    p.add_argument("--project", required=True, help="project_code to export")
    p.add_argument("--out", type=Path, required=True, help="output YAML file")
    p.set_defaults(func=_export_lambda_ber)

    p = subparsers.add_parser(
        "records-from-runs",
        help="write lambda-ber records for stored (past) runs",
        description="Turn stored runs into lambda-ber records with the live record writer's mapping.",
    )
    _add_source(p)
    p.add_argument("--records", required=True, help="records folder (<records>/<project>/...yaml)")
    p.add_argument("--overwrite", action="store_true", help="replace records that already exist")
    p.set_defaults(func=_reporting_errors(_records_from_runs))

    p = subparsers.add_parser(
        "process",
        help="run the first look again for stored runs (e.g. with another buffer) and update their records",
        description="The first-look SAXS processing (reduction, CorMap, subtraction, Guinier, MW, plots) of "
        "stored runs, as the processing service does it live; products, records and summaries updated. "
        f"Runs are processed in parallel on the Dask cluster of {env_name('dask_scheduler')} (else a local "
        f"one, {env_name('dask_workers')} processes); a run that fails is reported and the others go on "
        "(exit 1).",
    )
    _add_source(p, every=True)
    p.add_argument(
        "--var-dir",
        type=Path,
        default=Path("var/stack"),
        help="the stack folder whose records/ and processed/ are updated (default var/stack)",
    )
    p.add_argument("--buffer-uid", help="subtract this stored buffer_blank run instead of each sample's own")
    p.add_argument("--poni", help="detector calibration (pyFAI PONI file) instead of the frames' geometry")
    p.add_argument("--absolute-scale", type=float, help="cm⁻¹ per normalised unit (from a water measurement)")
    p.set_defaults(func=_reporting_errors(_process))

    p = subparsers.add_parser(
        "replay-record",
        help="rebuild a run's Bluesky documents from a lambda-ber record and its data files",
        description="Rebuild and validate (event-model) the documents of a record; optionally write them "
        "as a document log and/or send them to a Tiled server.",
    )
    p.add_argument("record", help="the record's YAML file")
    p.add_argument("--out", help="write the documents to this .jsonl document log")
    p.add_argument(
        "--tiled",
        metavar="URL",
        help=f"also write the run into Tiled (API key from ${TILED_API_KEY_ENV}; tagged with its project "
        "when the projects setting names the projects file)",
    )
    p.add_argument("--no-checksums", action="store_true", help="skip the data files' sha256 check")
    p.set_defaults(func=_reporting_errors(_replay_record))


def _reporting_errors(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A bad source, selection or file is one ``error:`` line and exit status 2, not a traceback."""

    def run(args: argparse.Namespace) -> int:
        from sibyls.metadata.errors import ExchangeError

        try:
            return func(args)
        except (ExchangeError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2

    return run


def _source(args: argparse.Namespace) -> Any:
    from sibyls.metadata.runs.sources import FolderRunSource, TiledRunSource

    if args.runs_dir:
        return FolderRunSource(args.runs_dir)
    return TiledRunSource(args.tiled, api_key=os.environ.get(TILED_API_KEY_ENV))


def _export(args: argparse.Namespace) -> int:
    from sibyls.saxs.exports.formats import export_each

    report = export_each(
        _source(args), args.format, args.out, scan_id=args.scan_id, uid=args.uid, project=args.project
    )
    for path in report.written:
        print(path)
    for failure in report.failures:
        print(f"not exported: {failure}", file=sys.stderr)
    if report.failures:
        print(
            f"{len(report.written)} file(s) written, {len(report.failures)} export(s) refused",
            file=sys.stderr,
        )
        return 1
    return 0


def _process(args: argparse.Namespace) -> int:
    from sibyls.saxs.processing.cluster import FirstLookCluster
    from sibyls.saxs.processing.reprocess import reprocess
    from sibyls.startup.config import ProfileConfig

    config = ProfileConfig.given(var_dir=args.var_dir)
    cluster = FirstLookCluster.from_config(ProfileConfig.from_env())
    progress = _ProgressLine(sys.stderr)
    print(f"first looks on {cluster.where}", file=sys.stderr)
    try:
        outcome = reprocess(
            _source(args),
            config.records_dir,
            config.processed_dir,
            scan_id=args.scan_id,
            uid=args.uid,
            project=args.project,
            every=args.every,
            buffer_uid=args.buffer_uid,
            poni=args.poni,
            absolute_scale=args.absolute_scale,
            cluster=cluster,
            on_progress=progress,
        )
    except OSError as exc:  # the cluster cannot be reached or started
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        progress.end()
        cluster.close()
    for processed in outcome.done:
        metrics = processed.results.quality_metrics
        rg = metrics.get("rg", {}).get("numeric_value")
        found = f"Rg {rg:.2f} Å" if rg is not None else "processed (no Guinier: see the record's notes)"
        print(f"{processed.record_path}: {found}")
    for skipped in outcome.skipped:
        print(f"no first look: {skipped}")
    for failure in outcome.failures:
        print(f"failed: {failure}", file=sys.stderr)
    if not outcome.done and not outcome.failures and not outcome.skipped:
        print("no run with a first look was selected")
    else:
        done, failed, skipped = len(outcome.done), len(outcome.failures), len(outcome.skipped)
        print(f"{done} ok, {failed} failed, {skipped} without a first look")
    return 1 if outcome.failures else 0


class _ProgressLine:
    """``sibyls process``'s progress: one line redrawn on a terminal, a plain line per run otherwise."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self._drawn = False

    def __call__(self, finished: int, total: int, what: str) -> None:
        if not self.tty:
            print(f"[{finished}/{total}] {what}", file=self.stream, flush=True)
            return
        width = 30
        filled = width * finished // max(total, 1)
        line = f"[{'#' * filled}{'.' * (width - filled)}] {finished}/{total} {what}"[:118]
        self.stream.write(f"\r\x1b[K{line}")
        self.stream.flush()
        self._drawn = True

    def end(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()


def _export_lambda_ber(args: argparse.Namespace) -> int:
    from sibyls.metadata.exports.lambda_ber import export_project

    try:
        dataset = export_project(args.records, args.project, args.out)
    except FileNotFoundError as exc:
        print(f"error: {exc}")
        return 1
    print(f"wrote {args.out}: {len(dataset.experiment_runs or [])} experiment runs")
    return 0


def _records_from_runs(args: argparse.Namespace) -> int:
    from sibyls.metadata.replay.records import records_from_runs

    paths = records_from_runs(
        _source(args),
        args.records,
        scan_id=args.scan_id,
        uid=args.uid,
        project=args.project,
        overwrite=args.overwrite,
    )
    for path in paths:
        print(path)
    print(f"{len(paths)} record(s) written", file=sys.stderr)
    return 0


def _replay_record(args: argparse.Namespace) -> int:
    from sibyls.metadata.replay.records import replay_record
    from sibyls.metadata.runs.doclog import write_document_log
    from sibyls.metadata.runs.tiled import make_tiled_writer, project_access_tags
    from sibyls.startup.config import ProfileConfig

    callbacks = []
    if args.tiled:
        projects = ProfileConfig().projects  # the run is tagged with its project, as the stack writes it
        tags = project_access_tags(projects) if projects else None
        key = os.environ.get(TILED_API_KEY_ENV)
        callbacks.append(make_tiled_writer(args.tiled, key, raise_errors=True, access_tags=tags))
    documents = replay_record(args.record, callbacks, verify_checksums=not args.no_checksums)
    if args.out:
        write_document_log(args.out, documents)
        print(args.out)
    print(f"{len(documents)} valid documents replayed", file=sys.stderr)
    return 0


def _add_calibrate(subparsers) -> None:
    p = subparsers.add_parser(
        "calibrate",
        help="absolute scale from a water and an empty-cell run; the first look uses it from the next run",
        description="Compute the absolute intensity scale (cm⁻¹) from stored water and empty-cell runs, "
        "store it as the stack's calibration (with a lambda-ber calibration record) for every later "
        "first look.",
    )
    p.add_argument("--water", required=True, metavar="UID", help="the water run (uid or its start)")
    p.add_argument("--empty", required=True, metavar="UID", help="the empty-cell run (uid or its start)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--runs-dir", help="folder of document logs (default: <var-dir>/runs)")
    where.add_argument("--tiled", metavar="URL", help=f"Tiled server URL (API key from ${TILED_API_KEY_ENV})")
    _var_dir_option(p, what="calibration (under processed/) and document logs")
    p.add_argument("--poni", help="detector calibration (pyFAI PONI file) instead of the frames' geometry")
    p.set_defaults(func=_reporting_errors(_calibrate))


def _calibrate(args: argparse.Namespace) -> int:
    from sibyls.metadata.errors import ExchangeError
    from sibyls.metadata.runs.sources import select_runs
    from sibyls.saxs.processing.calibration import calibrate_from_runs, save_calibration
    from sibyls.startup.config import ProfileConfig

    config = ProfileConfig.given(var_dir=args.var_dir)
    if not args.tiled and not args.runs_dir:
        args.runs_dir = str(config.var_dir / "runs")
    source = _source(args)
    runs = {}
    for option in ("water", "empty"):
        found = select_runs(source, uid=getattr(args, option))
        if len(found) != 1:
            raise ExchangeError(f"--{option}: no single stored run with uid {getattr(args, option)!r}")
        runs[option] = found[0]
    calibration = calibrate_from_runs(runs["water"], runs["empty"], poni=args.poni)
    current, record = save_calibration(config.processed_dir, calibration)
    water, empty = calibration.water_run_uid[:8], calibration.empty_cell_run_uid[:8]
    print(f"absolute scale {calibration.absolute_scale:.6g} cm⁻¹ per normalised unit "
          f"(water {water}, empty cell {empty})")  # fmt: skip
    print(f"stored as the stack's calibration: {current}")
    print(f"calibration record (lambda-ber): {record}")
    print("the first look uses it from the next run on")
    return 0


# ---- sibyls project add | list | members ----------------------------------------------------------


def _add_project(subparsers) -> None:
    project = subparsers.add_parser("project", help="the facility's projects and their people")
    _var_dir_option(project, what="projects file (<var>/projects.yaml)")
    actions = project.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="add or replace a project")
    add.add_argument("code", help="project code (as plans take it; exact case)")
    add.add_argument("--title", default="", help="the project's title")
    add.add_argument("--member", action="append", default=[], help="a login name (repeat for more)")
    add.add_argument("--email", action="append", default=[], help="an address for notices (repeat)")
    actions.add_parser("list", help="every project, its people and addresses")
    members = actions.add_parser("members", help="show, add or remove a project's people")
    members.add_argument("code", help="project code")
    members.add_argument("--add", action="append", default=[], help="login name to add (repeat)")
    members.add_argument("--remove", action="append", default=[], help="login name to remove (repeat)")
    project.set_defaults(func=_reporting_errors(_project))


def _project(args: argparse.Namespace) -> int:
    from sibyls.metadata.projects import Project, ProjectsFile
    from sibyls.startup.stack.starters import projects_path

    path = projects_path(args.var_dir)
    projects = ProjectsFile(path)
    if args.action == "add":
        projects.add(Project(args.code, args.title, tuple(args.member), tuple(args.email)))
        print(f"project {args.code} written to {path}")
        return 0
    if args.action == "members":
        if args.add or args.remove:
            project = projects.set_members(args.code, args.add, args.remove)
        elif args.code in projects.projects():
            project = projects.projects()[args.code]
        else:
            raise ValueError(f"project_code: no project {args.code!r} in {path}")
        print("\n".join(project.members) or f"project {args.code} has no members")
        return 0
    for project in projects.projects().values():
        print(f"{project.code:<20} {project.title}")
        print(f"  members: {', '.join(project.members) or '-'}   emails: {', '.join(project.emails) or '-'}")
    return 0


# ---- the command --------------------------------------------------------------------------------


# ---- sibyls sheet check -------------------------------------------------------------------------


def _add_sheet(subparsers) -> None:
    sheet = subparsers.add_parser("sheet", help="plate sheets (CSV/XLSX) before they are uploaded")
    actions = sheet.add_subparsers(dest="action", required=True)
    check = actions.add_parser(
        "check",
        help="dry-run a plate sheet with the queue gate's own checks; nothing is queued",
        description="Every well's verdict and the sheet's own problems, exactly as the upload would "
        "refuse them (the plate and its wells against the stack's plate registry). Exit 0 when the "
        "sheet would be queued, 1 when it would be refused, 2 when the file cannot be read.",
    )
    check.add_argument("file", type=Path, help="the plate sheet (.csv, .xlsx)")
    _var_dir_option(check, what="the robot's plate registry (<var-dir>/plates.yaml)")
    check.set_defaults(func=_sheet_check)


def _sheet_check(args: argparse.Namespace) -> int:
    from sibyls.metadata.plate_registry import use_registry
    from sibyls.plans.plate_sheet import sheet_report
    from sibyls.startup.stack.starters import stack_plate_registry

    use_registry(stack_plate_registry(args.var_dir))
    try:
        with open(args.file, "rb") as sheet:
            report = sheet_report(sheet, args.file.name)
    except OSError as exc:
        print(f"file: cannot read {args.file} ({exc.strerror})", file=sys.stderr)
        return 2
    for well in report.wells:
        verdict = "; ".join(well.problems) or "ok"
        sample = well.sample_code or ""
        print(f"row {well.row:>3}  {well.well or '?':<4} {well.role:<13} {sample:<24} {verdict}")
    for problem in report.problems:
        print(f"sheet: {problem}")
    if report.success:
        print(f"plate {report.plate_id}: {len(report.wells)} wells, would be queued as one ht_plate item")
        return 0
    print("refused: nothing would be queued", file=sys.stderr)
    return 1


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every ``sibyls`` subcommand."""
    parser = argparse.ArgumentParser(prog="sibyls", description="SIBYLS beamline: stack, simulation, data.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_ioc(subparsers)
    _add_stack(subparsers)
    _add_exchange(subparsers)
    _add_calibrate(subparsers)
    _add_project(subparsers)
    _add_sheet(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sibyls`` console script (and of ``python -m sibyls.startup.cli``)."""
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
