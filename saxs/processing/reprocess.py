"""``sibyls process``: the first look again for stored runs (from the document log or Tiled), e.g.
with another buffer or a new calibration; the run's products, record and summaries are updated."""

from __future__ import annotations

from pathlib import Path

from sibyls.metadata.errors import ExchangeError
from sibyls.metadata.runs.sources import RunSource, select_runs
from sibyls.saxs.processing.run_processor import analysis_kind
from sibyls.saxs.processing.service import FirstLookService, ProcessedRun
from sibyls.saxs.processing.summaries import write_project_summaries


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
) -> list[ProcessedRun]:
    """First looks of the selected stored runs, in measurement order; ``buffer_uid`` (a stored
    buffer_blank run) replaces each sample's own buffer. Runs without a first look (scans,
    alignment) are skipped; a run that cannot be processed raises :class:`ExchangeError`."""
    runs = sorted(select_runs(source, scan_id=scan_id, uid=uid, project=project),
                  key=lambda r: r.start.get("time", 0))  # fmt: skip
    service = FirstLookService(records_dir, processed_dir, poni=poni, absolute_scale=absolute_scale)
    try:
        if buffer_uid is not None:
            (buffer,) = select_runs(source, uid=buffer_uid) or [None]
            if buffer is None or buffer.start.get("sample_role") != "buffer_blank":
                raise ExchangeError(f"buffer_uid: {buffer_uid} is not a stored buffer_blank run")
            service.process_documents(buffer.documents())
            buffer_uid = buffer.uid
        done = []
        for run in runs:
            if analysis_kind(run.start) is None:
                continue
            documents = list(run.documents())
            if buffer_uid is not None and run.start.get("sample_role") != "buffer_blank":
                name, start = documents[0]
                documents[0] = (name, {**start, "buffer_run_uid": buffer_uid})
            try:
                processed = service.process_documents(documents)
            except (ValueError, OSError, KeyError) as exc:
                raise ExchangeError(f"run {run.uid} (scan {run.scan_id}): first look failed: {exc}") from exc
            if processed is not None:
                done.append(processed)
        for project_code in sorted({p.record_path.parent.name for p in done}):
            write_project_summaries(records_dir, processed_dir, project_code)
        return done
    finally:
        service.close()
