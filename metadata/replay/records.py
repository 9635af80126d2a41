"""lambda-ber records ⇄ Bluesky documents.

* Stored runs (Tiled or a folder of document logs) → lambda-ber records, through the same mapping
  code as the live record writer (:func:`sibyls.metadata.documents_to_dataset`).
* A lambda-ber record + its data files → a Bluesky document stream that passes event-model
  validation and can be replayed into any callback (e.g. a TiledWriter); mapped again it gives
  the same record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

from sibyls.metadata.atomic import atomic_write_text
from sibyls.metadata.errors import ExchangeError
from sibyls.metadata.hashing import sha256_file
from sibyls.metadata.mapping import (
    DETECTOR_NAME,
    KEY_ACQUIRE_TIME,
    KEY_CELL_TEMPERATURE,
    KEY_DISTANCE,
    KEY_ENERGY,
    KEY_IMAGE,
    KEY_NUM_IMAGES,
    KEY_WAVELENGTH,
    documents_to_dataset,
    record_relpath,
)
from sibyls.metadata.runs.sources import RunSource, select_runs
from sibyls.metadata.writer import dump_record


def records_from_runs(
    source: RunSource,
    records_dir: Path | str,
    *,
    scan_id: int | None = None,
    uid: str | None = None,
    project: str | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Write the lambda-ber record of each chosen stored run (``<records>/<project>/...yaml``).

    Existing records are kept unless ``overwrite``; returns the records written.
    """
    records_dir = Path(records_dir)
    written = []
    for run in select_runs(source, scan_id=scan_id, uid=uid, project=project):
        target = records_dir / record_relpath(run.start)
        if target.exists() and not overwrite:
            continue
        record = documents_to_dataset(run.documents()).to_dict()
        atomic_write_text(target, dump_record(record))
        written.append(target)
    return written


# ---- record -> documents ---------------------------------------------------------------------------


def _value(q: dict | None) -> float | None:
    return None if not q else q.get("numeric_value")


def _one(record: dict, key: str) -> dict:
    items = record.get(key) or []
    if len(items) != 1:
        raise ExchangeError(f"the record must hold exactly one {key[:-1]} (it has {len(items)})")
    return items[0]


def _check_data_files(record: dict, verify_checksums: bool) -> list[dict]:
    files = record.get("data_files") or []
    missing = [f["file_path"] for f in files if not Path(f.get("file_path", "")).is_file()]
    if missing:
        raise ExchangeError(f"data files of the record are missing: {', '.join(missing)}")
    if verify_checksums:
        for f in files:
            checksum = f.get("checksum")
            if checksum and checksum != "sha256:" + sha256_file(Path(f["file_path"])):
                raise ExchangeError(f"data file {f['file_path']} does not match the record's checksum")
    return files


def _resource_doc(data_file: dict[str, Any], run_uid: str) -> dict[str, Any]:
    """The Resource document a record's DataFile came from."""
    return {
        "uid": data_file.get("bluesky_resource_uid"),
        "spec": data_file.get("resource_spec") or "AD_HDF5",
        "root": data_file.get("resource_root") or "/",
        "resource_path": data_file.get("resource_path") or data_file["file_path"].lstrip("/"),
        "resource_kwargs": {},
        "path_semantics": "posix",
        "run_start": run_uid,
    }


def record_to_documents(record: dict, *, verify_checksums: bool = True) -> Iterator[tuple[str, dict]]:
    """A valid Bluesky document stream rebuilt from a lambda-ber record and its data files.

    Run, descriptor, resource and datum uids, times and the recorded readings (energy, wavelength,
    distance, temperature, exposure, frames) come from the record; each primary event references one
    data file. Data files are checked (present, checksum) before the first document is produced:
    :class:`ExchangeError` otherwise. Streams the record only counts (monitors, and the primary stream
    of a scan without detector frames) are replayed with their event times and no readings.
    """
    study = _one(record, "studies")
    run = _one(record, "experiment_runs")
    # The run's own files (each from a Resource document); first-look products beside them are not
    # part of the run's documents.
    files = [f for f in _check_data_files(record, verify_checksums) if f.get("bluesky_resource_uid")]
    uid = run.get("bluesky_uid") or study.get("bluesky_uid")
    if not uid:
        raise ExchangeError("the record has no bluesky_uid: it was not written from a Bluesky run")
    samples = record.get("samples") or []
    sample = samples[0] if samples else {}
    conditions = run.get("experimental_conditions") or {}
    strategy = run.get("data_collection_strategy") or {}
    t0 = study.get("time_start")
    if t0 is None:
        raise ExchangeError("the record has no time_start")

    start: dict[str, Any] = {"uid": uid, "time": t0}
    for key, value in (
        ("scan_id", study.get("scan_id")),
        ("plan_name", study.get("plan_name")),
        ("plan_type", study.get("plan_type")),
        ("project_code", study.get("project_code")),
        ("sample_code", run.get("sample_code") or sample.get("sample_code")),
        ("sample_role", run.get("sample_role")),
        ("sample_type", sample.get("sample_type")),
        ("concentration_mg_ml", _value(sample.get("concentration"))),
        ("molecular_weight_kda", _value(sample.get("molecular_weight"))),
        ("collection_mode", strategy.get("collection_mode")),
        ("description", run.get("description")),
        ("operator", run.get("operator_id")),
        ("plate_id", run.get("plate_id")),
        ("well", run.get("well")),
        ("buffer_run_uid", run.get("buffer_run_uid")),
    ):
        if value is not None:
            start[key] = value
    buffer = sample.get("buffer_composition") or {}
    if buffer.get("description") is not None:
        start["buffer_name"] = buffer["description"]
    if _value(buffer.get("ph")) is not None:
        start["buffer_ph"] = _value(buffer.get("ph"))
    if buffer.get("components"):
        start["buffer_composition"] = buffer["components"]
    if run.get("detector") == DETECTOR_NAME:
        start["detectors"] = [DETECTOR_NAME]
    yield "start", start

    streams = run.get("bluesky_streams") or [{"stream_name": "primary", "event_count": len(files)}]
    file_iter = iter(files)
    readings = {
        KEY_ENERGY: _value(conditions.get("beam_energy")),
        KEY_WAVELENGTH: _value(strategy.get("wavelength_a")),
        KEY_DISTANCE: _value(strategy.get("detector_distance_mm")),
        KEY_CELL_TEMPERATURE: _value(conditions.get("temperature")),
    }
    readings = {k: v for k, v in readings.items() if v is not None}
    exposure = _value(strategy.get("exposure_time")) or _value(conditions.get("exposure_time"))
    for index, stream in enumerate(streams):
        name = stream["stream_name"]
        count = int(stream.get("event_count") or 0)
        desc_uid = stream.get("bluesky_descriptor_uid") or f"{uid}-descriptor-{index}"
        data_keys: dict[str, dict] = {}
        configuration: dict[str, dict] = {}
        values: dict[str, Any] = {}
        images = name == "primary" and bool(files)  # a scan without the area detector has no frames
        if images:
            data_keys[KEY_IMAGE] = {
                "source": "replay",
                "dtype": "array",
                "shape": [],
                "external": "FILESTORE:",
            }
            total = _value(strategy.get("total_frames"))
            conf: dict[str, Any] = {}
            if exposure is not None:
                conf[KEY_ACQUIRE_TIME] = exposure
            if total is not None and count:
                conf[KEY_NUM_IMAGES] = total / count
            if conf:
                configuration[DETECTOR_NAME] = {
                    "data": conf,
                    "timestamps": {k: t0 for k in conf},
                    "data_keys": {k: {"source": "replay", "dtype": "number", "shape": []} for k in conf},
                }
        elif name == "baseline":
            values = dict(readings)
            data_keys = {k: {"source": "replay", "dtype": "number", "shape": []} for k in values}
        yield (
            "descriptor",
            {
                "uid": desc_uid,
                "run_start": uid,
                "name": name,
                "time": stream.get("event_time_first") or t0,
                "data_keys": data_keys,
                "configuration": configuration,
                "object_keys": {},
                "hints": {},
            },
        )
        t_first = stream.get("event_time_first") or t0
        t_last = stream.get("event_time_last") or t_first
        seq_last = stream.get("seq_num") or count
        for i in range(count):
            t = t_first if count == 1 else t_first + (t_last - t_first) * i / (count - 1)
            if i == count - 1:
                t = t_last
            seq = i + 1 if i < count - 1 else seq_last
            data = dict(values)
            if images:
                data_file = next(file_iter, None)
                if data_file is None:
                    raise ExchangeError(f"the record lists {count} primary events but fewer data files")
                res_uid = data_file.get("bluesky_resource_uid")
                yield "resource", _resource_doc(data_file, uid)
                datum_ids = data_file.get("bluesky_datum_ids") or [f"{res_uid}/0"]
                for datum_id in datum_ids:
                    yield "datum", {"resource": res_uid, "datum_id": datum_id, "datum_kwargs": {}}
                data[KEY_IMAGE] = datum_ids[0]
            yield (
                "event",
                {
                    "uid": f"{desc_uid}-{i + 1}",
                    "descriptor": desc_uid,
                    "time": t,
                    "seq_num": seq,
                    "data": data,
                    "timestamps": {k: t for k in data},
                    "filled": {KEY_IMAGE: False} if KEY_IMAGE in data else {},
                },
            )
    for data_file in file_iter:  # files not referenced by an event still belong to the run
        yield "resource", _resource_doc(data_file, uid)
    stop: dict[str, Any] = {
        "uid": f"{uid}-stop",
        "run_start": uid,
        "time": run.get("time_stop") or t0,
        "exit_status": run.get("exit_status") or "success",
        "reason": run.get("exit_reason") or "",
        "num_events": {s["stream_name"]: int(s.get("event_count") or 0) for s in streams},
    }
    yield "stop", stop


def validate_documents(documents: Iterable[tuple[str, dict]]) -> list[tuple[str, dict]]:
    """Check every document against event-model's JSON schemas; returns them as a list.

    Raises :class:`ExchangeError` naming the first invalid document.
    """
    from event_model import DocumentNames, schema_validators

    checked = []
    for n, (name, doc) in enumerate(documents):
        try:
            schema_validators[DocumentNames[name]].validate(doc)
        except Exception as exc:
            raise ExchangeError(f"document {n} ({name}) is not a valid Bluesky document: {exc}") from exc
        checked.append((name, doc))
    return checked


def load_record(path: Path | str) -> dict:
    """A lambda-ber record from its YAML file."""
    try:
        record = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ExchangeError(f"cannot read record {path}: {exc}") from exc
    if not isinstance(record, dict):
        raise ExchangeError(f"{path} is not a lambda-ber record")
    return record


def replay_record(
    path: Path | str, callbacks: Iterable[Callable[[str, dict], Any]] = (), *, verify_checksums: bool = True
) -> list[tuple[str, dict]]:
    """Rebuild, validate and send a record's documents to ``callbacks`` (e.g. a TiledWriter).

    Nothing is sent unless the whole stream validates.
    """
    documents = validate_documents(record_to_documents(load_record(path), verify_checksums=verify_checksums))
    for name, doc in documents:
        for callback in callbacks:
            callback(name, doc)
    return documents


__all__ = [
    "load_record",
    "record_to_documents",
    "records_from_runs",
    "replay_record",
    "validate_documents",
]
