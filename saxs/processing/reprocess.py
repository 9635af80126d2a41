"""``sibyls process``: the first look again for stored runs (from the document log or Tiled), e.g.
with another buffer or a new calibration, in parallel on a Dask cluster (:mod:`.cluster`); the runs'
products, records and summaries are updated.

Every selected run is one task (:func:`.tasks.reprocess_run`: its frames read and reduced on the
worker, then its first look); a sample's task waits for its buffer run's task when that buffer is
re-processed too. One run failing does not stop the others: each failure is named (and written into
that run's record, ``processing_status: failed``), as is each run whose plan has no first look."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sibyls.metadata.errors import ExchangeError
from sibyls.metadata.runs.sources import RunSource, StoredRun, select_runs
from sibyls.saxs.processing.cluster import FirstLookCluster
from sibyls.saxs.processing.run_processor import analysis_kind
from sibyls.saxs.processing.service import FirstLookService, ProcessedRun
from sibyls.saxs.processing.summaries import write_project_summaries
from sibyls.saxs.processing.tasks import BufferFrames, FirstLookOutput, failure_reason, reprocess_run

#: ``on_progress(finished, total, what)``: called as each run's first look comes back.
Progress = Callable[[int, int, str], None]


@dataclass
class ReprocessOutcome:
    """What ``sibyls process`` did: runs processed, runs without a first look, runs that failed
    (each ``"scan N sample (uid8): reason"``)."""

    done: list[ProcessedRun] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def _label(run: StoredRun | dict) -> str:
    start = run if isinstance(run, dict) else run.start
    return f"scan {start.get('scan_id')} {start.get('sample_code') or '?'} ({start['uid'][:8]})"


def reprocess(
    source: RunSource,
    records_dir: Path | str,
    processed_dir: Path | str,
    *,
    scan_id: int | None = None,
    uid: str | None = None,
    project: str | None = None,
    every: bool = False,
    buffer_uid: str | None = None,
    poni: Path | str | None = None,
    absolute_scale: float | None = None,
    cluster: FirstLookCluster | None = None,
    on_progress: Progress | None = None,
) -> ReprocessOutcome:
    """First looks of the selected stored runs (or ``every`` run), in parallel on ``cluster``
    (default: a local cluster, one worker per core, stopped at the end); ``buffer_uid`` (a stored
    buffer_blank run) replaces each sample's own buffer. A bad selection or buffer raises
    :class:`ExchangeError` before anything is processed; a run whose first look fails is in
    ``failures`` (and its record says so) and the others are still processed."""
    runs = sorted(select_runs(source, scan_id=scan_id, uid=uid, project=project, every=every),
                  key=lambda r: r.start.get("time", 0))  # fmt: skip
    service = FirstLookService(records_dir, processed_dir, poni=poni, absolute_scale=absolute_scale)
    own_cluster = cluster is None
    cluster = cluster or FirstLookCluster()
    outcome = ReprocessOutcome()
    try:
        settings = service.task_settings()
        fixed_buffer = None
        if buffer_uid is not None:
            fixed_buffer = _fixed_buffer(source, buffer_uid, service, cluster, settings)
        client = None
        futures: dict[Any, dict] = {}
        latest_blank: dict[str, tuple[str, Any]] = {}  # project → (uid, future) of its latest buffer
        by_uid: dict[str, Any] = {}
        for run in runs:
            kind = analysis_kind(run.start)
            if kind is None:
                outcome.skipped.append(f"{_label(run)}: {service.mark_not_applicable(run.start)}")
                continue
            try:
                documents = list(run.documents())
            except Exception as exc:  # reading the stored run itself failed
                outcome.failures.append(f"{_label(run)}: {service.record_failure(run.start, exc)}")
                continue
            start = run.start
            project_code = start.get("project_code") or ""
            buffer: Any = None
            if kind == "batch" and start.get("sample_role") == "buffer_blank":
                pass
            elif fixed_buffer is not None:
                documents[0] = ("start", {**start, "buffer_run_uid": fixed_buffer.uid})
                buffer = fixed_buffer
            elif kind == "batch":
                wanted = start.get("buffer_run_uid") or latest_blank.get(project_code, (None,))[0]
                buffer = by_uid.get(wanted) or _stored_buffer(service, wanted)
            client = client or cluster.client()
            future = client.submit(reprocess_run, documents, buffer, settings, pure=False)
            futures[future] = start
            if kind == "batch" and start.get("sample_role") == "buffer_blank":
                latest_blank[project_code] = (run.uid, future)
                by_uid[run.uid] = future
        _collect(futures, service, outcome, on_progress)
        for project_code in sorted({p.record_path.parent.name for p in outcome.done}):
            write_project_summaries(records_dir, processed_dir, project_code)
            service.update_series(project_code)
        return outcome
    finally:
        service.close()
        if own_cluster:
            cluster.close()


def _collect(futures: dict, service: FirstLookService, outcome: ReprocessOutcome, on_progress) -> None:
    """Each run's first look as it comes back: into its record (or its failure), counted."""
    if not futures:
        return
    from distributed import as_completed

    for finished, future in enumerate(as_completed(list(futures)), start=1):
        start = futures[future]
        try:
            output: FirstLookOutput = future.result()
            if output.error is not None:
                raise RuntimeError(output.error)
            if output.buffer is not None:
                frames, project_code = output.buffer, start.get("project_code") or ""
                service.buffers.remember(frames.uid, project_code, frames.name, frames.curves)
            outcome.done.append(service.apply_output(output, summaries=False))
            status = "ok"
        except Exception as exc:  # the task failed, or its worker died
            reason = service.record_failure(start, exc)
            outcome.failures.append(f"{_label(start)}: {reason}")
            status = f"failed ({failure_reason(exc)})"
        if on_progress is not None:
            on_progress(finished, len(futures), f"{_label(start)} {status}")


def _stored_buffer(service: FirstLookService, uid: str | None) -> BufferFrames | None:
    stored = service.buffers.get(uid)
    return None if stored is None else BufferFrames(uid, stored[0], stored[1])


def _fixed_buffer(source, buffer_uid: str, service, cluster: FirstLookCluster, settings) -> BufferFrames:
    """The buffer run given on the command line, processed first (its frames for every sample)."""
    (buffer,) = select_runs(source, uid=buffer_uid) or [None]
    if buffer is None or buffer.start.get("sample_role") != "buffer_blank":
        raise ExchangeError(f"buffer_uid: {buffer_uid} is not a stored buffer_blank run")
    documents = list(buffer.documents())
    output = cluster.client().submit(reprocess_run, documents, None, settings, pure=False).result()
    if output.error is not None or output.buffer is None:
        reason = service.record_failure(buffer.start, RuntimeError(output.error or "no frames"))
        raise ExchangeError(f"buffer_uid: buffer run {_label(buffer)} cannot be used: {reason}")
    service.buffers.remember(buffer.uid, buffer.start.get("project_code") or "", output.buffer.name,
                             output.buffer.curves)  # fmt: skip
    service.apply_output(output)
    return output.buffer
