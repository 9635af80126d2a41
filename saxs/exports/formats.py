"""Exports of stored runs by format name: ``export(source, "nxcansas", out, scan_id=...)``.

Each export of a run is named like its lambda-ber record (``<project>/<scan_id>_<sample>_<uid8>``)
below the output folder, and is written atomically: a failed export leaves no partial file. The
formats: NXcanSAS (:mod:`.nxcansas`), CSV and JSON (:mod:`.tables`), SPEC (:mod:`.spec`) and a PNG
plot of I(q) (:mod:`.png`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sibyls.metadata.errors import ExchangeError
from sibyls.metadata.mapping import record_relpath
from sibyls.metadata.runs.sources import RunSource, StoredRun, select_runs
from sibyls.saxs.exports.nxcansas import write_nxcansas
from sibyls.saxs.exports.png import write_png
from sibyls.saxs.exports.spec import write_spec
from sibyls.saxs.exports.tables import write_csv, write_json
from sibyls.saxs.reduction.iq import RunProfile, reduce_run

log = logging.getLogger(__name__)

FORMATS = ("nxcansas", "csv", "json", "spec", "png")
#: Formats of the run's reduced I(q) (they need its detector frames).
IQ_FORMATS = ("nxcansas", "png")


def export_stem(run: StoredRun) -> Path:
    """``<project>/<scan_id>_<sample>_<uid8>`` — the record's name without suffix."""
    return record_relpath(run.start).with_suffix("")


def export_run(run: StoredRun, fmt: str, out_dir: Path | str) -> list[Path]:
    """Export one run in ``fmt`` (one of :data:`FORMATS`) below ``out_dir``; returns the files."""
    out_dir = Path(out_dir)
    stem = export_stem(run)
    writers: dict[str, Callable[[], list[Path]]] = {
        "nxcansas": lambda: [_write_iq(run, fmt, out_dir, _reduce_for_export(run, fmt))],
        "csv": lambda: write_csv(run, out_dir, stem),
        "json": lambda: [write_json(run, out_dir / f"{stem}.json")],
        "spec": lambda: [write_spec([run], out_dir / f"{stem}.spec")],
        "png": lambda: [_write_iq(run, fmt, out_dir, _reduce_for_export(run, fmt))],
    }
    if fmt not in writers:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return writers[fmt]()


def export(
    source: RunSource,
    fmt: str,
    out_dir: Path | str,
    *,
    scan_id: int | None = None,
    uid: str | None = None,
    project: str | None = None,
) -> list[Path]:
    """Export the run(s) chosen by scan id, uid or project; :class:`RunNotFoundError` if none.

    Strict: every run is checked (and, for I(q) formats, reduced) before the first file is written,
    so a run that cannot be exported raises :class:`ExchangeError` and leaves no output at all
    (:func:`export_each` instead writes what it can and names each run it cannot export).
    """
    _check_format(fmt)
    runs = select_runs(source, scan_id=scan_id, uid=uid, project=project)
    if fmt in IQ_FORMATS:
        reduced = [_reduce_for_export(run, fmt) for run in runs]
        return [_write_iq(run, fmt, out_dir, red) for run, red in zip(runs, reduced, strict=True)]
    if fmt == "spec" and project is not None:
        return [write_spec(runs, Path(out_dir) / f"{_project_name(runs)}.spec")]
    written: list[Path] = []
    for run in runs:
        written.extend(export_run(run, fmt, out_dir))
    return written


@dataclass(frozen=True)
class ExportFailure:
    """A run that could not be exported in one format, and why (in words a user can act on)."""

    run: str
    fmt: str
    reason: str

    def __str__(self) -> str:
        return f"{self.run}: {self.fmt} not exported: {self.reason}"


@dataclass
class ExportReport:
    """What :func:`export_each` wrote, and each run × format it could not export."""

    written: list[Path] = field(default_factory=list)
    failures: list[ExportFailure] = field(default_factory=list)


def run_label(run: StoredRun) -> str:
    """How a user names a run: ``scan 12 GluRS_2 (1b05a9aa)``."""
    return f"scan {run.scan_id} {run.start.get('sample_code') or '?'} ({run.uid[:8]})"


def export_each(
    source: RunSource,
    formats: list[str] | tuple[str, ...],
    out_dir: Path | str,
    *,
    scan_id: int | None = None,
    uid: str | None = None,
    project: str | None = None,
) -> ExportReport:
    """Export every selected run in every format, one run at a time: a run that cannot be exported in
    a format (no detector frames, a missing file) is named in the report with the reason and the
    others are still written. :class:`RunNotFoundError` if the selection finds no run."""
    for fmt in formats:
        _check_format(fmt)
    runs = select_runs(source, scan_id=scan_id, uid=uid, project=project)
    report = ExportReport()
    for fmt in formats:
        if fmt == "spec" and project is not None:
            _attempt(report, f"project {_project_name(runs)}", fmt,
                     lambda: [write_spec(runs, Path(out_dir) / f"{_project_name(runs)}.spec")])  # fmt: skip
            continue
        for run in runs:
            _attempt(report, run_label(run), fmt, lambda run=run, fmt=fmt: export_run(run, fmt, out_dir))
    return report


def _attempt(report: ExportReport, label: str, fmt: str, write: Callable[[], list[Path]]) -> None:
    try:
        report.written.extend(write())
    except (ExchangeError, ValueError, OSError, KeyError) as exc:
        log.info("export %s of %s failed: %s", fmt, label, exc)
        report.failures.append(ExportFailure(label, fmt, str(exc)))


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")


def _project_name(runs: list[StoredRun]) -> str:
    return runs[0].start.get("project_code") or "runs"


def _reduce_for_export(run: StoredRun, fmt: str) -> RunProfile:
    """The run's I(q); a run without detector frames (a motor scan, a count of the monitors) is
    refused in words: I(q) formats need the area detector's frames."""
    if not run.frame_files:
        detectors = ", ".join(run.start.get("detectors") or ()) or "none"
        raise ExchangeError(
            f"{fmt} holds I(q), and this {run.start.get('plan_name') or 'run'} recorded no detector "
            f"frames (detectors: {detectors}); export it as csv, json or spec"
        )
    return reduce_run(run)


def _write_iq(run: StoredRun, fmt: str, out_dir: Path | str, reduced: RunProfile) -> Path:
    stem = export_stem(run)
    if fmt == "nxcansas":
        return write_nxcansas(run, Path(out_dir) / f"{stem}.h5", reduced)
    return write_png(run, Path(out_dir) / f"{stem}_Iq.png", reduced)
