"""``sibyls export``, ``sibyls records-from-runs`` and ``sibyls replay-record``."""

from __future__ import annotations

import argparse
import os
import sys

from sibyls.metadata.exchange.atomic import ExchangeError
from sibyls.metadata.exchange.exports import FORMATS

API_KEY_ENV = "TILED_API_KEY"


def _add_source(parser: argparse.ArgumentParser, selection: bool = True) -> None:
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--runs-dir", help="folder of document logs (*.jsonl) written by DocumentLog")
    where.add_argument("--tiled", metavar="URL", help=f"Tiled server URL (API key from ${API_KEY_ENV})")
    if selection:
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--scan-id", type=int, help="the run with this scan id")
        which.add_argument("--uid", help="the run with this uid (or its first characters)")
        which.add_argument("--project", help="every run of this project")


def _source(args):
    from sibyls.metadata.exchange.runs import FolderRunSource, TiledRunSource

    if args.runs_dir:
        return FolderRunSource(args.runs_dir)
    return TiledRunSource(args.tiled, api_key=os.environ.get(API_KEY_ENV))


def _run_export(args) -> int:
    from sibyls.metadata.exchange.exports import export

    paths = []
    for fmt in args.format:
        paths += export(
            _source(args), fmt, args.out, scan_id=args.scan_id, uid=args.uid, project=args.project
        )
    for path in paths:
        print(path)
    return 0


def _run_records(args) -> int:
    from sibyls.metadata.exchange.records import records_from_runs

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


def _run_replay(args) -> int:
    from sibyls.metadata.exchange.doclog import write_document_log
    from sibyls.metadata.exchange.records import replay_record

    callbacks = []
    if args.tiled:
        from sibyls.metadata.exchange.tiled import make_tiled_writer

        callbacks.append(make_tiled_writer(args.tiled, os.environ.get(API_KEY_ENV), raise_errors=True))
    documents = replay_record(args.record, callbacks, verify_checksums=not args.no_checksums)
    if args.out:
        write_document_log(args.out, documents)
        print(args.out)
    print(f"{len(documents)} valid documents replayed", file=sys.stderr)
    return 0


def _guard(func):
    def run(args) -> int:
        try:
            return func(args)
        except (ExchangeError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2

    return run


def add_exchange_commands(subparsers) -> None:
    """Register the exchange subcommands on the ``sibyls`` parser."""
    p = subparsers.add_parser(
        "export",
        help="export stored runs as NXcanSAS, CSV, JSON, SPEC or a PNG of I(q)",
        description="Export a run (by scan id or uid) or a whole project from a folder of document logs "
        "or a Tiled server. Files are named <project>/<scan>_<sample>_<uid8>.* and written atomically.",
    )
    _add_source(p)
    p.add_argument("--format", nargs="+", choices=FORMATS, required=True, help="one or more formats")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=_guard(_run_export))

    p = subparsers.add_parser(
        "records-from-runs",
        help="write lambda-ber records for stored (past) runs",
        description="Turn stored runs into lambda-ber records with the live record writer's mapping.",
    )
    _add_source(p)
    p.add_argument("--records", required=True, help="records folder (<records>/<project>/...yaml)")
    p.add_argument("--overwrite", action="store_true", help="replace records that already exist")
    p.set_defaults(func=_guard(_run_records))

    p = subparsers.add_parser(
        "replay-record",
        help="rebuild a run's Bluesky documents from a lambda-ber record and its data files",
        description="Rebuild and validate (event-model) the documents of a record; optionally write them "
        "as a document log and/or send them to a Tiled server.",
    )
    p.add_argument("record", help="the record's YAML file")
    p.add_argument("--out", help="write the documents to this .jsonl document log")
    p.add_argument(
        "--tiled", metavar="URL", help=f"also write the run into Tiled (API key from ${API_KEY_ENV})"
    )
    p.add_argument("--no-checksums", action="store_true", help="skip the data files' sha256 check")
    p.set_defaults(func=_guard(_run_replay))
