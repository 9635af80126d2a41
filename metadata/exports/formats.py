"""Exports of stored runs for users who don't use Python: NXcanSAS, CSV, JSON, SPEC and a PNG plot.

Each export of a run is named like its lambda-ber record (``<project>/<scan_id>_<sample>_<uid8>``)
below the output folder, and is written atomically: a failed export leaves no partial file.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from sibyls.metadata.exchange.atomic import ExchangeError, atomic_path
from sibyls.metadata.exchange.reduce import RunProfile, reduce_run
from sibyls.metadata.exchange.runs import RunSource, StoredRun, select_runs
from sibyls.metadata.mapping import record_relpath

log = logging.getLogger(__name__)

FORMATS = ("nxcansas", "csv", "json", "spec", "png")
I_UNITS = "arbitrary"  # mean counts per pixel per frame (no absolute calibration)


def export_stem(run: StoredRun) -> Path:
    """``<project>/<scan_id>_<sample>_<uid8>`` — the record's name without suffix."""
    return record_relpath(run.start).with_suffix("")


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


# ---- NXcanSAS ---------------------------------------------------------------------------------------


def write_nxcansas(run: StoredRun, target: Path, reduced: RunProfile | None = None) -> Path:
    """NXcanSAS HDF5 of the run's I(q): SASentry / SASdata (I, Idev, Q) / SASinstrument / SASsample."""
    import h5py

    reduced = reduced or reduce_run(run)
    profile, geo = reduced.profile, reduced.frame_geometry
    g = geo.geometry
    start = run.start
    with atomic_path(target) as tmp, h5py.File(tmp, "w") as fh:
        fh.attrs.update(
            {
                "default": "sasentry01",
                "file_name": target.name,
                "file_time": datetime.now(UTC).isoformat(),
                "producer": "sibyls.metadata.exchange",
                "NX_class": "NXroot",
            }
        )
        entry = fh.create_group("sasentry01")
        entry.attrs.update({"NX_class": "NXentry", "canSAS_class": "SASentry", "version": "1.1"})
        entry.attrs["default"] = "sasdata01"
        entry["definition"] = "NXcanSAS"
        entry["title"] = f"{start.get('sample_code')} scan {start.get('scan_id')}"
        entry["run"] = str(start.get("scan_id"))
        entry["run"].attrs["name"] = start["uid"]

        data = entry.create_group("sasdata01")
        data.attrs.update(
            {"NX_class": "NXdata", "canSAS_class": "SASdata", "signal": "I", "I_axes": "Q", "Q_indices": 0}
        )
        data["Q"] = profile.q
        data["Q"].attrs["units"] = "1/angstrom"
        data["I"] = profile.intensity
        data["I"].attrs.update({"units": I_UNITS, "uncertainties": "Idev"})
        data["Idev"] = profile.sigma
        data["Idev"].attrs["units"] = I_UNITS

        inst = entry.create_group("sasinstrument")
        inst.attrs.update({"NX_class": "NXinstrument", "canSAS_class": "SASinstrument"})
        inst["name"] = "SIBYLS beamline 12.3.1 (ALS)"
        source = inst.create_group("sassource")
        source.attrs.update({"NX_class": "NXsource", "canSAS_class": "SASsource"})
        source["radiation"] = "Synchrotron X-ray Source"
        source["incident_wavelength"] = g.wavelength_a
        source["incident_wavelength"].attrs["units"] = "angstrom"
        coll = inst.create_group("sascollimation01")
        coll.attrs.update({"NX_class": "NXcollimator", "canSAS_class": "SAScollimation"})
        det = inst.create_group("sasdetector01")
        det.attrs.update({"NX_class": "NXdetector", "canSAS_class": "SASdetector"})
        det["name"] = "PILATUS3 X 2M"
        for key, value, unit in (
            ("SDD", g.distance_mm, "mm"),
            ("x_pixel_size", g.binned_pixel_mm, "mm"),
            ("y_pixel_size", g.binned_pixel_mm, "mm"),
            ("beam_center_x", g.beam_center_x / g.binning, "pixel"),
            ("beam_center_y", g.beam_center_y / g.binning, "pixel"),
        ):
            det[key] = value
            det[key].attrs["units"] = unit

        sample = entry.create_group("sassample")
        sample.attrs.update({"NX_class": "NXsample", "canSAS_class": "SASsample"})
        sample["name"] = str(start.get("sample_code") or "")
        temperature = _baseline_value(run, "cell_temperature")
        if temperature is not None:
            sample["temperature"] = temperature
            sample["temperature"].attrs["units"] = "degC"

        process = entry.create_group("sasprocess01")
        process.attrs.update({"NX_class": "NXprocess", "canSAS_class": "SASprocess"})
        process["name"] = "sibyls azimuthal average"
        process["date"] = datetime.now(UTC).isoformat()
        process["description"] = (
            f"mean of {reduced.frames} frames; pixel mask (module gaps, beamstop) applied; "
            "I is mean counts per pixel per frame, Idev from Poisson statistics"
        )
    return target


def _baseline_value(run: StoredRun, key: str) -> float | None:
    for name in ("baseline", "primary"):
        stream = run.streams.get(name)
        if stream is not None and key in stream.columns and len(stream.columns[key]):
            try:
                return float(stream.columns[key][0])
            except (TypeError, ValueError):
                return None
    return None


# ---- CSV / JSON ------------------------------------------------------------------------------------


def _scalar_columns(run: StoredRun, stream_name: str) -> tuple[list[str], list[np.ndarray]]:
    stream = run.streams[stream_name]
    names, cols = [], []
    for key, values in stream.columns.items():
        if values.ndim == 1:
            names.append(key)
            cols.append(values)
    if stream_name == "primary" and run.frame_files and len(run.frame_files) == len(stream):
        names.append("pilatus_image_file")
        cols.append(np.asarray([str(p) for p in run.frame_files]))
    return names, cols


def write_csv(run: StoredRun, target_dir: Path, stem: Path) -> list[Path]:
    """One CSV per stream (``<stem>_<stream>.csv``): a header row of data keys, one row per event."""
    written = []
    for name in run.streams:
        target = target_dir / f"{stem}_{name}.csv"
        keys, cols = _scalar_columns(run, name)
        with atomic_path(target) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(keys)
            for row in zip(*cols, strict=True):
                writer.writerow([_jsonable(v) for v in row])
        written.append(target)
    return written


def run_as_json(run: StoredRun) -> dict:
    """The run as plain JSON data: RunStart, RunStop, each stream's data keys and columns, frame files."""
    return _jsonable(
        {
            "start": run.start,
            "stop": run.stop,
            "streams": {
                name: {
                    "data_keys": stream.descriptor.get("data_keys", {}),
                    "configuration": stream.descriptor.get("configuration", {}),
                    "columns": stream.columns,
                }
                for name, stream in run.streams.items()
            },
            "frame_files": [str(p) for p in run.frame_files],
        }
    )


def write_json(run: StoredRun, target: Path) -> Path:
    """``<stem>.json``: metadata and streams (see :func:`run_as_json`)."""
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(run_as_json(run), indent=1, allow_nan=False), encoding="utf-8")
    return target


# ---- SPEC ----------------------------------------------------------------------------------------


def write_spec(runs: list[StoredRun], target: Path) -> Path:
    """A SPEC data file of one or more runs (apstools' SpecWriterCallback), one #S scan per run."""
    from apstools.callbacks import SpecWriterCallback

    with atomic_path(target) as tmp:
        tmp.unlink()
        writer = SpecWriterCallback(filename=str(tmp), auto_write=True)
        writer.newfile(str(tmp))
        for run in runs:
            for name, doc in run.documents():
                if name in ("start", "descriptor", "event", "stop"):
                    writer.receiver(name, _jsonable(doc))
        if not tmp.exists():
            raise ExchangeError(f"the SPEC writer wrote nothing for {len(runs)} run(s)")
        tmp.write_text(tmp.read_text(encoding="utf-8").replace(str(tmp), str(target)), encoding="utf-8")
    return target


# ---- PNG -------------------------------------------------------------------------------------------


def write_png(run: StoredRun, target: Path, reduced: RunProfile | None = None) -> Path:
    """A log I vs q plot (with error bars) of the run's I(q) for mail-in users."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    reduced = reduced or reduce_run(run)
    p = reduced.profile
    keep = p.intensity > 0
    fig = Figure(figsize=(6, 4.5), dpi=100)
    ax = fig.add_subplot()
    ax.errorbar(p.q[keep], p.intensity[keep], yerr=p.sigma[keep], fmt=".", ms=3, elinewidth=0.6)
    ax.set_yscale("log")
    ax.set_xlabel("q (1/Å)")
    ax.set_ylabel("I (counts / pixel / frame)")
    start = run.start
    ax.set_title(f"{start.get('sample_code')}  ·  scan {start.get('scan_id')}  ·  {reduced.frames} frames")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png")
    return target


# ---- dispatch --------------------------------------------------------------------------------------


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
