"""Exports of stored runs by format name: ``export(source, "nxcansas", out, scan_id=...)``.

Each export of a run is named like its lambda-ber record (``<project>/<scan_id>_<sample>_<uid8>``)
below the output folder, and is written atomically: a failed export leaves no partial file. The
formats: NXcanSAS (:mod:`.nxcansas`), CSV and JSON (:mod:`.tables`), SPEC (:mod:`.spec`) and a PNG
plot of I(q) (:mod:`.png`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from sibyls.metadata.mapping import record_relpath
from sibyls.metadata.runs.sources import RunSource, StoredRun, select_runs
from sibyls.saxs.exports.nxcansas import write_nxcansas
from sibyls.saxs.exports.png import write_png
from sibyls.saxs.exports.spec import write_spec
from sibyls.saxs.exports.tables import write_csv, write_json
from sibyls.saxs.reduction.iq import reduce_run

log = logging.getLogger(__name__)

FORMATS = ("nxcansas", "csv", "json", "spec", "png")


def export_stem(run: StoredRun) -> Path:
    """``<project>/<scan_id>_<sample>_<uid8>`` — the record's name without suffix."""
    return record_relpath(run.start).with_suffix("")


def export_run(run: StoredRun, fmt: str, out_dir: Path | str) -> list[Path]:
    """Export one run in ``fmt`` (one of :data:`FORMATS`) below ``out_dir``; returns the files."""
    out_dir = Path(out_dir)
    stem = export_stem(run)
    writers: dict[str, Callable[[], list[Path]]] = {
        "nxcansas": lambda: [write_nxcansas(run, out_dir / f"{stem}.h5")],
        "csv": lambda: write_csv(run, out_dir, stem),
        "json": lambda: [write_json(run, out_dir / f"{stem}.json")],
        "spec": lambda: [write_spec([run], out_dir / f"{stem}.spec")],
        "png": lambda: [write_png(run, out_dir / f"{stem}_Iq.png")],
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

    Every run is checked (and, for I(q) formats, reduced) before the first file is written, so a
    bad run in a project export leaves no output at all.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    runs = select_runs(source, scan_id=scan_id, uid=uid, project=project)
    written: list[Path] = []
    if fmt in ("nxcansas", "png"):
        reduced = [reduce_run(run) for run in runs]
        for run, red in zip(runs, reduced, strict=True):
            stem = export_stem(run)
            if fmt == "nxcansas":
                written.append(write_nxcansas(run, Path(out_dir) / f"{stem}.h5", red))
            else:
                written.append(write_png(run, Path(out_dir) / f"{stem}_Iq.png", red))
        return written
    if fmt == "spec" and project is not None:
        name = runs[0].start.get("project_code") or "runs"
        return [write_spec(runs, Path(out_dir) / f"{name}.spec")]
    for run in runs:
        written.extend(export_run(run, fmt, out_dir))
    return written
