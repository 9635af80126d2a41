"""CSV and JSON exports of a run for users who don't use Python: one table per stream, metadata as JSON.

A user gets ``<stem>_<stream>.csv`` (a header row of data keys, one row per event, the frame file of
each primary event) and ``<stem>.json`` (RunStart, RunStop, each stream's data keys, configuration
and columns), written atomically.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from sibyls.metadata.atomic import atomic_path
from sibyls.metadata.runs.sources import StoredRun


def jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


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
                writer.writerow([jsonable(v) for v in row])
        written.append(target)
    return written


def run_as_json(run: StoredRun) -> dict:
    """The run as plain JSON data: RunStart, RunStop, each stream's data keys and columns, frame files."""
    return jsonable(
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
