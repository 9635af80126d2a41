"""A run's first-look results in its lambda-ber record, written atomically whichever comes first.

The processing service finishes a run's first look in its own process, before or after the RE
worker's record writer has written the run's record. Both sides meet under one lock per record:

* the service writes the results beside the record (``<record>.results.json``) and, if the record
  exists, merges them into it;
* the record writer, when it writes a record, merges results already waiting beside it.

So the record gains its ``quality_metrics``, ``saxs_results``, the ``workflow_runs`` entry, the
processed ``data_files`` and ``images`` (with checksums) and the workflow associations exactly once,
and a reader always finds either the record without results or the record with all of them (each
version validated before it replaces the last). Re-processing a run replaces its earlier results.
A first look that failed (``processing_status: failed``) or does not apply to the run's plan
(``processing_status: raw``) travels the same way, its reason the workflow entry's description.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator

from sibyls.metadata.atomic import atomic_write_text
from sibyls.metadata.lambda_ber import BlueskyDataset, QualityMetrics, SaxsResults, WorkflowRun
from sibyls.metadata.record_yaml import dump_record, load_record_text

RESULTS_SUFFIX = ".results.json"
#: Processed files by suffix: lambda-ber file_format and data_type.
_FORMATS = {
    ".dat": ("ascii", "processed_data"),
    ".json": ("json", "metadata"),
    ".csv": ("csv", "processed_data"),
    ".h5": ("h5", "processed_data"),
    ".html": ("ascii", "metadata"),
}


class ProductFile(BaseModel):
    """One file the first look wrote: where, what, and its checksum."""

    model_config = ConfigDict(extra="forbid")

    path: str
    kind: Literal["data", "image"]
    description: str
    sha256: str
    size: int
    width: int | None = None
    height: int | None = None


class RunResults(BaseModel):
    """What the first look adds to one run's record."""

    model_config = ConfigDict(extra="forbid")

    run_uid: str
    quality_metrics: dict[str, Any]
    saxs_results: dict[str, Any]
    workflow: dict[str, Any]
    products: list[ProductFile]
    #: False while the plots are still being drawn (the record says ``processing_status: processing``).
    complete: bool = True
    #: ``results``: what the first look found; ``failed``: it failed (the workflow's description says
    #: why; the record says ``processing_status: failed``); ``not_applicable``: the run's plan has no
    #: first look (a scan, an alignment; ``processing_status: raw``).
    outcome: Literal["results", "failed", "not_applicable"] = "results"

    @model_validator(mode="after")
    def _fits_the_record(self) -> RunResults:
        """Each part must be what its lambda-ber class accepts, before anything is written."""
        QualityMetrics.model_validate(self.quality_metrics)
        SaxsResults.model_validate(self.saxs_results)
        WorkflowRun.model_validate({"id": _workflow_id(self.run_uid), "workflow_code": "x", **self.workflow})
        return self


def png_size(path: Path) -> tuple[int, int] | None:
    """Width and height of a PNG from its header (None if not a PNG)."""
    with open(path, "rb") as fh:
        head = fh.read(24)
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    width, height = struct.unpack(">II", head[16:24])
    return int(width), int(height)


def describe_product(path: Path | str, description: str) -> ProductFile:
    """Checksum, size (and pixel size for a PNG) of a file the first look wrote."""
    path = Path(path)
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    size = png_size(path) if path.suffix == ".png" else None
    return ProductFile(
        path=str(path),
        kind="image" if size else "data",
        description=description,
        sha256=digest.hexdigest(),
        size=path.stat().st_size,
        width=size[0] if size else None,
        height=size[1] if size else None,
    )


def results_path(record_path: Path | str) -> Path:
    """Where a record's waiting results live: ``<record stem>.results.json`` beside it."""
    record_path = Path(record_path)
    return record_path.with_name(record_path.stem + RESULTS_SUFFIX)


@contextmanager
def record_lock(record_path: Path | str) -> Iterator[None]:
    """Exclusive lock (across processes) for read-modify-write of a record: the lock is taken on the
    record's folder itself, so no lock file is left behind."""
    folder = Path(record_path).parent
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _workflow_id(run_uid: str) -> str:
    return f"urn:sibyls:first-look:{run_uid}"


def merge_results(record: dict[str, Any], results: RunResults) -> dict[str, Any]:
    """The record with ``results`` in it (earlier first-look entries of the run replaced)."""
    record = json.loads(json.dumps(record))  # a copy the caller's dict does not share
    workflow_id = _workflow_id(results.run_uid)
    prefix = workflow_id + "/"
    runs = record.get("experiment_runs") or []
    studies = record.get("studies") or []
    if not runs:
        raise ValueError(f"record of run {results.run_uid} has no experiment_runs to attach results to")
    run = runs[0]
    # An earlier first look's numbers go: what the record says is the latest first look's.
    for key in ("quality_metrics", "saxs_results"):
        run.pop(key, None)
    if results.quality_metrics:
        run["quality_metrics"] = results.quality_metrics
    if results.saxs_results:
        run["saxs_results"] = results.saxs_results
    if results.outcome == "results":
        run["processing_status"] = "completed" if results.complete else "processing"
    elif results.outcome == "failed":
        run["processing_status"] = "failed"
    elif run.get("processing_status") == "collected":  # a run that itself failed keeps saying so
        run["processing_status"] = "raw"

    def keep(entries: list[dict] | None, key: str = "id") -> list[dict]:
        return [e for e in entries or [] if not str(e.get(key, "")).startswith(workflow_id)]

    files = keep(record.get("data_files"))
    images = keep(record.get("images"))
    outputs = keep(record.get("workflow_output_associations"), "workflow_id")
    created = datetime.now(UTC).date().isoformat()
    for product in results.products:
        name = Path(product.path).name
        entity_id = prefix + name
        if product.kind == "image":
            images.append(
                {
                    "id": entity_id,
                    "file_name": name,
                    "description": f"{product.description} ({product.path}; sha256:{product.sha256})",
                    "acquisition_date": created,
                    "dimensions_x": {"numeric_value": product.width, "unit": "pixels"},
                    "dimensions_y": {"numeric_value": product.height, "unit": "pixels"},
                }
            )
            continue
        file_format, data_type = _FORMATS.get(Path(name).suffix, ("ascii", "processed_data"))
        files.append(
            {
                "id": entity_id,
                "file_name": name,
                "file_path": product.path,
                "file_format": file_format,
                "file_size_bytes": {"numeric_value": product.size, "unit": "bytes"},
                "checksum": f"sha256:{product.sha256}",
                "creation_date": created,
                "data_type": data_type,
                "file_role": "processed",
                "description": product.description,
            }
        )
        outputs.append({"workflow_id": workflow_id, "file_id": entity_id, "output_type": "processed_data"})
    workflow = {"id": workflow_id, "workflow_code": f"first-look-{results.run_uid[:8]}", **results.workflow}
    record["workflow_runs"] = keep(record.get("workflow_runs")) + [workflow]
    record["data_files"] = files or None
    record["images"] = images or None
    record["workflow_output_associations"] = outputs or None
    record["workflow_experiment_associations"] = keep(
        record.get("workflow_experiment_associations"), "workflow_id"
    ) + [{"workflow_id": workflow_id, "experiment_id": run["id"]}]
    if studies:
        record["study_workflow_associations"] = keep(
            record.get("study_workflow_associations"), "workflow_id"
        ) + [{"study_id": studies[0]["id"], "workflow_id": workflow_id}]
    # Validated before it can replace the record; key order as the writer's.
    return BlueskyDataset.model_validate({k: v for k, v in record.items() if v is not None}).to_dict()


def with_waiting_results(record_path: Path | str, record: dict[str, Any]) -> dict[str, Any]:
    """For the record writer (holding :func:`record_lock`): ``record`` with results waiting beside it."""
    waiting = results_path(record_path)
    if not waiting.is_file():
        return record
    results = RunResults.model_validate_json(waiting.read_text(encoding="utf-8"))
    return merge_results(record, results)


def apply_results(record_path: Path | str, results: RunResults) -> bool:
    """Keep ``results`` beside the record and merge them into it if it is written; True if merged."""
    record_path = Path(record_path)
    results = RunResults.model_validate(results.model_dump())
    with record_lock(record_path):
        atomic_write_text(results_path(record_path), results.model_dump_json(indent=1))
        if not record_path.is_file():
            return False
        record = load_record_text(record_path.read_text(encoding="utf-8"))
        atomic_write_text(record_path, dump_record(merge_results(record, results)))
        return True
