"""The first-look service: runs' documents in, first looks out, off the acquisition path.

A :class:`FirstLookService` is a document callback that only queues what it is given (so the 0MQ
``RemoteDispatcher`` feeding it, or a RunEngine in tests, never waits); one worker thread routes the
documents (event_model ``RunRouter``, one :class:`RunProcessor` per run) and reduces frames as they
arrive; at each stop the run's first look (:func:`.tasks.first_look`) is submitted to an executor —
the Dask cluster of :mod:`.cluster` in the stack, a thread of its own by default — and a results
thread puts what comes back into the record, in the order the runs stopped (the numbers first,
then, from a second task, the plots):

* batch runs (saxs_exposure, ht_plate, temperature_series): buffers are remembered at their stop
  (memory and ``<processed>/.buffers/<uid>.npz``); a sample is subtracted with the buffer its
  RunStart names (``buffer_run_uid``, set by ht_plate for every well) or else the project's latest
  buffer_blank;
* SEC runs: the chromatogram, buffer region, peak(s), Rg across the peak and MALS molar mass.

A run whose first look fails (any error, in the task or the cluster) gets ``processing_status:
failed`` with the reason in its record and the log; the service goes on. A run of a plan without one
(scans, alignments) gets ``processing_status: raw`` and a ``not applicable: why``.

Products (``.dat``, PNGs, JSON) go to ``<processed>/<project>/<scan_id>_<sample>_<uid8>/``; the
results into the run's lambda-ber record (:mod:`.record_results`) and, when a Tiled server is
configured, beside the run in Tiled (retried in the background until the run's own copy is there).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from event_model import RunRouter

from sibyls.metadata.mapping import record_relpath
from sibyls.metadata.record_results import RunResults, apply_results
from sibyls.saxs.processing.run_processor import ReducedRun, RunProcessor, analysis_kind, no_first_look_reason
from sibyls.saxs.processing.summaries import write_project_summaries
from sibyls.saxs.processing.tasks import (
    BufferFrames,
    FirstLookOutput,
    FirstLookSettings,
    cached_reducers,
    draw_plots,
    failure_reason,
    first_look,
    frame_writer,
)
from sibyls.saxs.reduction.curves import Curve

log = logging.getLogger(__name__)

#: Seconds a run's processed curves wait for the run itself to appear in Tiled.
TILED_WAIT_S = 600.0


class FirstLookFailed(RuntimeError):
    """A stored run's first look failed; the message is the reason its record now carries."""


@dataclass(frozen=True)
class ProcessedRun:
    """What processing one run gave: where the products are, and the results put in the record."""

    uid: str
    out_dir: Path
    results: RunResults
    record_path: Path
    merged: bool


class BufferStore:
    """Buffer runs' per-frame curves by run uid, in memory and on disk (they outlive a restart)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._curves: dict[str, tuple[str, list[Curve]]] = {}
        self._latest: dict[str, str] = {}  # project → uid of its latest buffer_blank

    def remember(self, uid: str, project: str, name: str, curves: list[Curve]) -> None:
        """Keep a buffer run's frames for the samples measured after it."""
        from sibyls.metadata.atomic import atomic_path

        self._curves[uid] = (name, curves)
        self._latest[project] = uid
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.folder / f"{uid}.npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez(
                    fh,
                    name=np.array(name),
                    project=np.array(project),
                    q=np.stack([c.q for c in curves]),
                    intensity=np.stack([c.intensity for c in curves]),
                    sigma=np.stack([c.sigma for c in curves]),
                    unit=np.array(curves[0].unit),
                )

    def get(self, uid: str | None) -> tuple[str, list[Curve]] | None:
        """A buffer run's name and frames, from memory or disk; None if unknown."""
        if not uid:
            return None
        if uid not in self._curves:
            path = self.folder / f"{uid}.npz"
            if not path.is_file():
                return None
            with np.load(path) as data:
                unit = str(data["unit"])
                curves = [
                    Curve(q.copy(), i.copy(), s.copy(), unit)
                    for q, i, s in zip(data["q"], data["intensity"], data["sigma"], strict=True)
                ]
                self._curves[uid] = (str(data["name"]), curves)
        return self._curves[uid]

    def latest_blank(self, project: str) -> str | None:
        """Uid of the project's most recent buffer_blank seen by this service."""
        return self._latest.get(project)


class FirstLookService:
    """First looks of every run whose documents it is given (see the module docstring)."""

    #: Called with a run's start document, record and the reason when its first look failed (the
    #: mail-in notices' failed wells: :meth:`.notices.PlateNotifier.failed`); must not block.
    on_first_look_failed: Callable[[dict, Path, str], Any] | None = None
    #: Called with a run's start and stop documents at its stop, before its first look (a plate's
    #: notice learns there that the plan failed or was aborted during a well); must not block.
    on_run_stop: Callable[[dict, dict], Any] | None = None

    def __init__(
        self,
        records_dir: Path | str,
        processed_dir: Path | str,
        *,
        reducer_for: Callable[[Path], Any] | None = None,
        poni: Path | str | None = None,
        absolute_scale: float | None = None,
        tiled: Any = None,
        tiled_api_key: str | None = None,
        on_first_look: Callable[[dict, Path], Any] | None = None,
        executor: Executor | None = None,
    ) -> None:
        self.records_dir = Path(records_dir)
        #: Called with a run's start document and record once its results and summaries are stored
        #: (the mail-in notices: :class:`sibyls.saxs.processing.notices.PlateNotifier`); must not block.
        self.on_first_look = on_first_look
        self.processed_dir = Path(processed_dir)
        self.buffers = BufferStore(self.processed_dir / ".buffers")
        self._reducer_for = reducer_for
        self._poni, self._absolute_scale = poni, absolute_scale
        self._reducers: dict[float | None, Callable[[Path], Any]] = {}
        self._tiled, self._tiled_api_key = tiled, tiled_api_key
        self._queue: queue.Queue = queue.Queue()
        self._processors: dict[str, RunProcessor] = {}
        self._without_first_look: dict[str, dict] = {}  # run uid → RunStart of runs with no first look
        self._frame_products: dict[str, list] = {}
        self._router = RunRouter([self._factory])
        self.processed: list[ProcessedRun] = []
        self.failures: list[tuple[str, str]] = []
        self._thread = threading.Thread(target=self._loop, name="sibyls-first-look", daemon=True)
        self._thread.start()
        self._tiled_jobs: queue.Queue = queue.Queue()
        self._tiled_thread: threading.Thread | None = None
        #: Where each run's stop-time first look runs (:mod:`.cluster`: a Dask cluster); default: one
        #: thread of this process.
        self._own_executor = executor is None
        self._executor = executor or ThreadPoolExecutor(1, thread_name_prefix="first-look")
        self._results: queue.Queue = queue.Queue()
        self._results_thread = threading.Thread(target=self._results_loop, name="first-look-results",
                                                daemon=True)  # fmt: skip
        self._results_thread.start()

    def warm_up(self) -> float:
        """Load and compile everything a first look uses here (:func:`.tasks.warm_up`); seconds taken."""
        from sibyls.saxs.processing.tasks import warm_up

        return warm_up()

    # ---- documents in (any thread) ---------------------------------------------------------------

    def __call__(self, name: str, doc: dict) -> None:
        self._queue.put((name, doc))

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every document given so far is processed; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._queue.unfinished_tasks == 0 and self._results.unfinished_tasks == 0:
                return True
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.01)

    def close(self, timeout: float = 30.0) -> None:
        """Finish what was given (up to ``timeout``), then stop the worker thread."""
        self.flush(timeout)
        self._queue.put(None)
        self._results.put(None)
        self._thread.join(timeout)
        self._results_thread.join(timeout)
        if self._own_executor:
            self._executor.shutdown(wait=False)

    # ---- the worker thread -----------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                name, doc = item
                self._route(name, doc)
            except Exception:
                log.exception("first look: document could not be processed")
            finally:
                self._queue.task_done()

    def _route(self, name: str, doc: dict) -> None:
        self._router(name, doc)
        if name == "stop":
            self._tell_stop(doc)
            processor = self._processors.pop(doc["run_start"], None)
            if processor is not None:
                self._finish(processor.result)
            start = self._without_first_look.pop(doc["run_start"], None)
            if start is not None:
                self.mark_not_applicable(start)

    def task_settings(self) -> FirstLookSettings:
        """The settings a first look from stored documents reduces with: the given PONI and scale,
        else the stack's current calibration (``sibyls calibrate``)."""
        from sibyls.saxs.processing.calibration import current_calibration

        scale = self._absolute_scale
        if scale is None and (stored := current_calibration(self.processed_dir)) is not None:
            scale = stored.absolute_scale
        poni = None if self._poni is None else str(self._poni)
        return FirstLookSettings(self.processed_dir, poni, scale)

    def _reducers_now(self) -> Callable[[Path], Any]:
        """The reducers for a run starting now: the given scale, else the stack's current calibration
        (``sibyls calibrate``), read at each run's start so a new calibration applies from the next run."""
        if self._reducer_for is not None:
            return self._reducer_for
        scale = self.task_settings().absolute_scale
        if scale not in self._reducers:
            self._reducers[scale] = cached_reducers(self._poni, scale)
        return self._reducers[scale]

    def _factory(self, name: str, start: dict) -> tuple[list, list]:
        if analysis_kind(start) is None:
            self._without_first_look[start["uid"]] = start
            return [], []
        processor = RunProcessor(start, self._reducers_now(), self._frame_writer(start))
        self._processors[start["uid"]] = processor
        return [processor], []

    def _finish(self, reduced: ReducedRun) -> None:
        """Submit a stopped run's first look to the executor (the cluster); its results (or its
        failure) reach the record through the results thread."""
        try:
            future = self._executor.submit(first_look, *self._task_inputs(reduced), plots=False)
        except Exception as exc:  # the cluster refused the task (gone, shut down)
            log.exception("first look of run %s could not be submitted", reduced.uid)
            self.record_failure(reduced.start, exc)
            return
        self._results.put((reduced.start, future, None))

    def record_failure(self, start: dict, exc: BaseException) -> str:
        """Count the failure and put it in the run's record (``processing_status: failed``, the reason
        in the first look's workflow entry); the reason returned names the error."""
        from sibyls.saxs.analysis.results import now_iso, software_versions, workflow_run_entry

        reason = f"first look failed: {failure_reason(exc)}"
        self.failures.append((start["uid"], reason))
        self._frame_products.pop(start["uid"], None)
        workflow = workflow_run_entry(software_versions(), {}, now_iso(), now_iso())
        results = RunResults(run_uid=start["uid"], quality_metrics={}, saxs_results={}, products=[],
                             workflow={**workflow, "description": reason}, outcome="failed")  # fmt: skip
        try:
            apply_results(self.records_dir / record_relpath(start), results)
        except Exception:
            log.exception("the failure of run %s could not be put in its record", start["uid"])
        self._tell_failure(start, self.records_dir / record_relpath(start), reason)
        return reason

    def mark_not_applicable(self, start: dict) -> str:
        """The record of a run without a first look says so, and why (``processing_status: raw``)."""
        from sibyls.saxs.analysis.results import SOFTWARE_NAME, WORKFLOW_TYPE

        reason = no_first_look_reason(start)
        workflow = {"workflow_type": WORKFLOW_TYPE, "software_name": SOFTWARE_NAME, "description": reason}
        results = RunResults(run_uid=start["uid"], quality_metrics={}, saxs_results={}, products=[],
                             workflow=workflow, outcome="not_applicable")  # fmt: skip
        try:
            apply_results(self.records_dir / record_relpath(start), results)
        except Exception:
            log.exception("run %s: 'no first look' could not be put in its record", start["uid"])
        return reason

    def _tell_stop(self, stop: dict) -> None:
        processor = self._processors.get(stop["run_start"])
        start = processor.result.start if processor else self._without_first_look.get(stop["run_start"])
        if self.on_run_stop is None or start is None:
            return
        try:
            self.on_run_stop(start, stop)
        except Exception:
            log.exception("run %s: the stop's listener failed", stop["run_start"])

    def _tell_failure(self, start: dict, record_path: Path, reason: str) -> None:
        if self.on_first_look_failed is None:
            return
        try:
            self.on_first_look_failed(start, record_path, reason)
        except Exception:
            log.exception("run %s: the failure's listener failed", start.get("uid"))

    # ---- one run's first look --------------------------------------------------------------------

    def process_documents(self, documents: Iterable[tuple[str, dict]]) -> ProcessedRun | None:
        """First look of one stored run, synchronously (``sibyls process``); None if it has none."""
        documents = iter(documents)
        name, start = next(documents)
        if name != "start":
            raise ValueError(f"a run's documents begin with its start document, not {name!r}")
        if analysis_kind(start) is None:
            return None
        processor = RunProcessor(start, self._reducers_now(), self._frame_writer(start))
        processor("start", start)
        for name, doc in documents:
            processor(name, doc)
        try:
            return self.finish(processor.result)
        except Exception as exc:
            raise FirstLookFailed(self.record_failure(start, exc)) from exc

    def _frame_writer(self, start: dict) -> Callable[[int, list[Curve]], None]:
        """Writes each frame's ``.dat`` as it is reduced (:func:`.tasks.frame_writer`); the products
        are kept for the run's first look."""
        products = self._frame_products.setdefault(start["uid"], [])
        products.clear()
        return frame_writer(start, self.processed_dir, products)

    def finish(self, reduced: ReducedRun) -> ProcessedRun:
        """The first look of a reduced run, here and now: products written, results in the record."""
        return self.apply_output(first_look(*self._task_inputs(reduced)))

    def _task_inputs(self, reduced: ReducedRun) -> tuple:
        """What :func:`.tasks.first_look` needs of a run: the run, its buffer's frames (a buffer run is
        remembered here, for the samples after it), its per-frame products, the settings."""
        start = reduced.start
        buffer = None
        if analysis_kind(start) == "batch":
            project = start.get("project_code") or ""
            name = start.get("sample_code") or "sample"
            if start.get("sample_role") == "buffer_blank":
                if reduced.curves:
                    self.buffers.remember(reduced.uid, project, name, reduced.curves)
            else:
                buffer_uid = start.get("buffer_run_uid") or self.buffers.latest_blank(project)
                stored = self.buffers.get(buffer_uid)
                buffer = None if stored is None else BufferFrames(buffer_uid, stored[0], stored[1])
        frame_products = self._frame_products.pop(reduced.uid, [])
        return reduced, buffer, frame_products, FirstLookSettings(self.processed_dir)

    def apply_output(self, output: FirstLookOutput, *, summaries: bool = True) -> ProcessedRun:
        """A first look's results into the run's record, its project's summaries (unless
        ``summaries`` is False: ``sibyls process`` writes them once at the end) and (later) Tiled;
        plots that failed are counted as a failure (the record says so)."""
        record_path = self.records_dir / record_relpath(output.start)
        merged = apply_results(record_path, output.results)
        processed = ProcessedRun(output.uid, output.out_dir, output.results, record_path, merged)
        self.processed.append(processed)
        log.info("first look of run %s: %s", output.uid, output.results.quality_metrics or "no metrics")
        if output.plots_failed:
            self.failures.append((output.uid, output.plots_failed))
        if summaries:
            write_project_summaries(self.records_dir, self.processed_dir, record_path.parent.name)
            if analysis_kind(output.start) != "sec":
                self.update_series(record_path.parent.name)
        if output.plots_failed:
            self._tell_failure(output.start, record_path, output.plots_failed)
        elif self.on_first_look is not None:
            self.on_first_look(output.start, record_path)
        if self._tiled is not None:
            self._store_in_tiled_later(output.uid, output.tiled_curves, output.tiled_meta, output.frames)
        return processed

    def update_series(self, project_folder: str) -> None:
        """The project's concentration series, again (a failure is logged: the run's results stand)."""
        from sibyls.saxs.processing.series import write_project_series

        try:
            write_project_series(self.processed_dir, project_folder)
        except Exception:
            log.exception("concentration series of %s not analysed", project_folder)

    def _results_loop(self) -> None:
        """Each submitted first look, in the order the runs stopped: its numbers into the record
        (``processing_status: processing``) and its plots submitted, then with the plots its complete
        results; or its failure (any error of a task or the cluster) into the record and the log."""
        while True:
            job = self._results.get()
            try:
                if job is None:
                    return
                start, future, numbers = job
                try:
                    if numbers is None:  # the numbers are back: into the record now, then the plots
                        numbers = future.result()
                        apply_results(self.records_dir / record_relpath(start), numbers.results)
                        slim = replace(numbers, frames=[], buffer=None, tiled_curves={}, tiled_meta={})
                        self._results.put((start, self._executor.submit(draw_plots, slim), numbers))
                    else:
                        plotted = future.result()
                        done = {"results": plotted.results, "plots_failed": plotted.plots_failed}
                        self.apply_output(replace(numbers, analysis=None, **done))
                except Exception as exc:
                    log.exception("first look of run %s failed", start["uid"])
                    self.record_failure(start, exc)
            finally:
                self._results.task_done()

    # ---- Tiled, in the background ------------------------------------------------------------------

    def _store_in_tiled_later(
        self, uid: str, curves: dict[str, Curve], meta: dict, frames: list[Curve]
    ) -> None:
        if self._tiled_thread is None:
            self._tiled_thread = threading.Thread(target=self._tiled_loop, name="sibyls-processed-tiled",
                                                  daemon=True)  # fmt: skip
            self._tiled_thread.start()
        self._tiled_jobs.put((uid, curves, meta, frames, time.monotonic() + TILED_WAIT_S))

    def _tiled_loop(self) -> None:
        from sibyls.saxs.processing.processed import store_processed

        while True:
            uid, curves, meta, frames, deadline = self._tiled_jobs.get()
            while True:
                try:
                    store_processed(self._tiled, uid, curves, {"first_look": meta}, frames=frames,
                                    api_key=self._tiled_api_key)  # fmt: skip
                    break
                except KeyError:  # the run's own copy is not in Tiled yet
                    if time.monotonic() > deadline:
                        log.warning("run %s never appeared in Tiled; processed curves not stored there", uid)
                        break
                    time.sleep(1.0)
                except Exception:
                    log.exception("processed curves of run %s could not be stored in Tiled", uid)
                    break
