"""Upstream-strict export: merge a project's run records into one lambda-ber Dataset (no extension slots).

A user gets ``sibyls export-lambda-ber --records DIR --project CODE --out FILE``: one YAML file valid
against lambda-ber-schema alone, for sharing. Bluesky identity survives in upstream slots: run and
file ids are ``urn:uuid:<Bluesky uid>``, and plan/scan/exit status are summarised in descriptions.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sibyls.metadata.atomic import atomic_write_text
from sibyls.metadata.lambda_ber import (
    BlueskyDataset,
    DataFile,
    Dataset,
    ExperimentRun,
    SaxsResults,
    Study,
)
from sibyls.metadata.mapping import safe_part
from sibyls.metadata.record_yaml import dump_record, load_record_text

log = logging.getLogger(__name__)

_ENTITY_LISTS = (
    "studies",
    "instruments",
    "samples",
    "experiment_runs",
    "data_files",
    "workflow_runs",
    "images",
)
_ASSOCIATION_LISTS = (
    "study_sample_associations",
    "study_experiment_associations",
    "experiment_sample_associations",
    "experiment_instrument_associations",
    "study_workflow_associations",
    "workflow_experiment_associations",
    "workflow_output_associations",
)


def _base(model: Any, base: type) -> dict[str, Any]:
    data = model.model_dump(exclude_none=True, mode="json")
    return {k: v for k, v in data.items() if k in base.model_fields}


def to_upstream(record: BlueskyDataset) -> Dataset:
    """The same record with only upstream slots; Bluesky facts folded into descriptions."""
    studies = [Study(**_base(s, Study)) for s in record.studies or []]
    runs = []
    for run in record.experiment_runs or []:
        data = _base(run, ExperimentRun)
        study = (record.studies or [None])[0]
        facts = [f"Bluesky run {run.bluesky_uid}"]
        if study is not None:
            facts.append(f"plan {study.plan_name} ({study.plan_type}), scan_id {study.scan_id}")
        facts.append(f"sample_code {run.sample_code}")
        if run.sample_role:
            facts.append(f"sample_role {run.sample_role}")
        if run.buffer_run_uid:
            facts.append(f"buffer run {run.buffer_run_uid}")
        status = f"exit status {run.exit_status}"
        if run.exit_reason:
            status += f": {run.exit_reason}"
        facts.append(status)
        for stream in run.bluesky_streams or []:
            facts.append(f"stream {stream.stream_name}: {stream.event_count} events")
        if run.saxs_results is not None:
            facts.append(_results_text(run.saxs_results))
        summary = "; ".join(facts)
        data["description"] = f"{data['description']} ({summary})" if data.get("description") else summary
        runs.append(ExperimentRun(**data))
    files = [DataFile(**_base(f, DataFile)) for f in record.data_files or []]
    base = _base(record, Dataset)
    base.update(studies=studies or None, experiment_runs=runs or None, data_files=files or None)
    return Dataset(**base)


def _results_text(results: SaxsResults) -> str:
    """The first look's numbers that lambda-ber has no slot for, as a sentence."""
    parts = []
    if results.molecular_weight_vc_kda is not None:
        parts.append(f"MW (Vc) {results.molecular_weight_vc_kda:.1f} kDa")
    if results.molecular_weight_i0_kda is not None:
        parts.append(f"MW (I(0)/c) {results.molecular_weight_i0_kda:.1f} kDa")
    if results.mals_molar_mass_kda is not None:
        parts.append(f"MALS molar mass {results.mals_molar_mass_kda:.1f} kDa")
    if results.frames_kept is not None and results.frames_total is not None:
        parts.append(f"{results.frames_kept} of {results.frames_total} frames kept")
    if results.flags:
        parts.append("flags " + ", ".join(results.flags))
    return "first look: " + (", ".join(parts) or "no results")


def merge_datasets(datasets: Iterable[Dataset], *, dataset_id: str, title: str) -> Dataset:
    """One Dataset from many: entities de-duplicated by id, association rows by content."""
    merged: dict[str, list] = {name: [] for name in _ENTITY_LISTS + _ASSOCIATION_LISTS}
    seen_ids: dict[str, dict[str, Any]] = {name: {} for name in _ENTITY_LISTS}
    seen_rows: set[tuple] = set()
    for ds in datasets:
        for name in _ENTITY_LISTS:
            for item in getattr(ds, name) or []:
                previous = seen_ids[name].get(item.id)
                if previous is None:
                    seen_ids[name][item.id] = item
                    merged[name].append(item)
                elif previous != item:
                    log.warning("%s %s differs between runs; keeping the first seen", name, item.id)
        for name in _ASSOCIATION_LISTS:
            for row in getattr(ds, name) or []:
                key = (name, tuple(sorted(row.model_dump(exclude_none=True).items())))
                if key not in seen_rows:
                    seen_rows.add(key)
                    merged[name].append(row)
    return Dataset(id=dataset_id, title=title, **{k: v or None for k, v in merged.items()})


def load_record(path: Path) -> BlueskyDataset:
    """A per-run record file as a model."""
    return BlueskyDataset.model_validate(load_record_text(Path(path).read_text(encoding="utf-8")))


def export_project(records_dir: Path, project_code: str, out: Path) -> Dataset:
    """Merge all records of ``project_code`` into one upstream-strict Dataset, written atomically."""
    folder = Path(records_dir) / safe_part(project_code, "_no_project")
    paths = sorted(p for p in folder.glob("*.yaml") if not p.name.startswith("."))
    if not paths:
        raise FileNotFoundError(f"no run records for project {project_code!r} in {folder}")
    dataset = merge_datasets(
        (to_upstream(load_record(p)) for p in paths),
        dataset_id=f"sibyls:project/{safe_part(project_code, '_no_project')}/export",
        title=f"SIBYLS project {project_code}: {len(paths)} runs",
    )
    atomic_write_text(Path(out), dump_record(dataset.to_dict()))
    log.info("exported %d run records of project %s to %s", len(paths), project_code, out)
    return dataset
