"""``sibyls process``: the first look again for stored runs (from the document log or Tiled), e.g.
with another buffer or a new calibration; the run's products, record and summaries are updated.

One run failing does not stop the others: each failure is named (and written into that run's
record, ``processing_status: failed``), as is each run whose plan has no first look."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sibyls.metadata.errors import ExchangeError
from sibyls.metadata.runs.sources import RunSource, StoredRun, select_runs
from sibyls.saxs.processing.run_processor import analysis_kind
from sibyls.saxs.processing.service import FirstLookFailed, FirstLookService, ProcessedRun, failure_reason
from sibyls.saxs.processing.summaries import write_project_summaries


@dataclass
class ReprocessOutcome:
    """What ``sibyls process`` did: runs processed, runs without a first look, runs that failed
    (each ``"scan N sample (uid8): reason"``)."""

    done: list[ProcessedRun] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def _label(run: StoredRun) -> str:
    return f"scan {run.scan_id} {run.start.get('sample_code') or '?'} ({run.uid[:8]})"


def reprocess(
    source: RunSource,
    records_dir: Path | str,
    processed_dir: Path | str,
    *,
    scan_id: int | None = None,
    uid: str | None = None,
    project: str | None = None,
    buffer_uid: str | None = None,
    poni: Path | str | None = None,
    absolute_scale: float | None = None,
) -> ReprocessOutcome:
    """First looks of the selected stored runs, in measurement order; ``buffer_uid`` (a stored
    buffer_blank run) replaces each sample's own buffer. A bad selection or buffer raises
    :class:`ExchangeError` before anything is processed; a run whose first look fails is in
    ``failures`` (and its record says so) and the others are still processed."""
    runs = sorted(select_runs(source, scan_id=scan_id, uid=uid, project=project),
                  key=lambda r: r.start.get("time", 0))  # fmt: skip
    service = FirstLookService(records_dir, processed_dir, poni=poni, absolute_scale=absolute_scale)
    outcome = ReprocessOutcome()
    try:
        if buffer_uid is not None:
            (buffer,) = select_runs(source, uid=buffer_uid) or [None]
            if buffer is None or buffer.start.get("sample_role") != "buffer_blank":
                raise ExchangeError(f"buffer_uid: {buffer_uid} is not a stored buffer_blank run")
            try:
                service.process_documents(buffer.documents())
            except FirstLookFailed as exc:
                raise ExchangeError(f"buffer_uid: buffer run {_label(buffer)} cannot be used: {exc}") from exc
            buffer_uid = buffer.uid
        for run in runs:
            if analysis_kind(run.start) is None:
                outcome.skipped.append(f"{_label(run)}: {service.mark_not_applicable(run.start)}")
                continue
            documents = list(run.documents())
            if buffer_uid is not None and run.start.get("sample_role") != "buffer_blank":
                name, start = documents[0]
                documents[0] = (name, {**start, "buffer_run_uid": buffer_uid})
            try:
                processed = service.process_documents(documents)
            except FirstLookFailed as exc:
                outcome.failures.append(f"{_label(run)}: {exc}")
                continue
            except Exception as exc:  # reading the stored run itself failed
                outcome.failures.append(f"{_label(run)}: {failure_reason(exc)}")
                continue
            if processed is not None:
                outcome.done.append(processed)
        for project_code in sorted({p.record_path.parent.name for p in outcome.done}):
            write_project_summaries(records_dir, processed_dir, project_code)
        return outcome
    finally:
        service.close()
