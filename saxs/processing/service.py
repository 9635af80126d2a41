"""The first-look service: runs' documents in, first looks out, off the acquisition path.

A :class:`FirstLookService` is a document callback that only queues what it is given (so the 0MQ
``RemoteDispatcher`` feeding it, or a RunEngine in tests, never waits); one worker thread routes the
documents (event_model ``RunRouter``, one :class:`RunProcessor` per run), reduces frames as they
arrive, and at each stop runs the first look:

* batch runs (saxs_exposure, ht_plate, temperature_series): buffers are remembered (memory and
  ``<processed>/.buffers/<uid>.npz``); a sample is subtracted with the buffer its RunStart names
  (``buffer_run_uid``, set by ht_plate for every well) or else the project's latest buffer_blank;
* SEC runs: the chromatogram, buffer region, peak(s), Rg across the peak and MALS molar mass.

A run whose first look fails (any error) gets ``processing_status: failed`` with the reason in its
record; a run of a plan without one (scans, alignments) gets ``processing_status: raw`` and a
``not applicable: why``. (Over 450 lines: the service's threads share its queues and buffer store.)

Products (``.dat``, PNGs, JSON) go to ``<processed>/<project>/<scan_id>_<sample>_<uid8>/``; the
results into the run's lambda-ber record (:mod:`.record_results`) and, when a Tiled server is
configured, beside the run in Tiled (retried in the background until the run's own copy is there).

(Over 450 lines on purpose: one service whose three threads (routing and reduction, plots, Tiled
retries) share its queue, buffer store and product folders; split, every hand-off between them
would cross a module.)
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from event_model import RunRouter

from sibyls.metadata.mapping import record_relpath
from sibyls.metadata.record_results import RunResults, apply_results, describe_product
from sibyls.saxs.processing.run_processor import ReducedRun, RunProcessor, analysis_kind, no_first_look_reason
from sibyls.saxs.processing.summaries import write_project_summaries
from sibyls.saxs.reduction.curves import Curve

log = logging.getLogger(__name__)

#: Seconds a run's processed curves wait for the run itself to appear in Tiled.
TILED_WAIT_S = 600.0


class FirstLookFailed(RuntimeError):
    """A stored run's first look failed; the message is the reason its record now carries."""


def failure_reason(exc: BaseException) -> str:
    """An error in words: its message, and its kind when that is all it has."""
    text = str(exc).strip()
    if isinstance(exc, (ValueError, RuntimeError, OSError)) and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


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
        self._plot_jobs: queue.Queue = queue.Queue()
        self._plot_thread = threading.Thread(target=self._plot_loop, name="first-look-plots", daemon=True)
        self._plot_thread.start()

    def warm_up(self) -> float:
        """Load and compile everything a first look uses (analysis libraries, the integrator's
        compiled kernel, matplotlib's fonts) on synthetic data, so the first real run is as fast as
        the rest; seconds taken."""
        import tempfile

        from sibyls.devices.geometry import DetectorGeometry
        from sibyls.saxs.analysis.firstlook import first_look_batch, write_products
        from sibyls.saxs.reduction.reducer import FrameReducer

        began = time.monotonic()
        geometry = DetectorGeometry(binning=8)
        reducer = FrameReducer.from_geometry(geometry, np.zeros(geometry.shape, dtype=np.uint32))
        reducer.reduce(np.ones((1, *geometry.shape), dtype=np.int32), i0=1.0e5, bs_diode=1.0e4, exposure=1.0)
        q = np.linspace(0.008, 0.35, 300)
        rng = np.random.default_rng(0)

        def curve(scale: float) -> Curve:
            intensity = scale * np.exp(-((q * 25.0) ** 2) / 3.0) + 0.01
            sigma = 0.002 * np.sqrt(intensity / intensity[0]) + 1e-4
            return Curve(q, intensity + rng.normal(0, sigma), sigma)

        with tempfile.TemporaryDirectory(prefix="sibyls-warm-up-") as folder:
            result = first_look_batch([curve(1.0) for _ in range(3)], [curve(0.0) for _ in range(3)], 1.0,
                                      sample_name="warm_up")  # fmt: skip
            write_products(result, folder, "warm_up")
        return time.monotonic() - began

    # ---- documents in (any thread) ---------------------------------------------------------------

    def __call__(self, name: str, doc: dict) -> None:
        self._queue.put((name, doc))

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every document given so far is processed; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._queue.unfinished_tasks == 0 and self._plot_jobs.unfinished_tasks == 0:
                return True
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.01)

    def close(self, timeout: float = 30.0) -> None:
        """Finish what was given (up to ``timeout``), then stop the worker thread."""
        self.flush(timeout)
        self._queue.put(None)
        self._plot_jobs.put(None)
        self._thread.join(timeout)
        self._plot_thread.join(timeout)

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

    def _reducers_now(self) -> Callable[[Path], Any]:
        """The reducers for a run starting now: the given scale, else the stack's current calibration
        (``sibyls calibrate``), read at each run's start so a new calibration applies from the next run."""
        if self._reducer_for is not None:
            return self._reducer_for
        from sibyls.saxs.processing.calibration import current_calibration

        scale = self._absolute_scale
        if scale is None and (stored := current_calibration(self.processed_dir)) is not None:
            scale = stored.absolute_scale
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

    def _finish(self, reduced: ReducedRun) -> ProcessedRun | None:
        try:
            return self.finish(reduced)
        except Exception as exc:
            log.exception("first look of run %s failed", reduced.uid)
            self.record_failure(reduced.start, exc)
            return None

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
            return self.finish(processor.result, plots_now=True)
        except Exception as exc:
            raise FirstLookFailed(self.record_failure(start, exc)) from exc

    def _frame_writer(self, start: dict) -> Callable[[int, list[Curve]], None]:
        """Writes each frame's ``<sample>_<NNNNN>.dat`` as it is reduced (a 600-frame SEC run has
        nothing of that left to do at its stop)."""
        from sibyls.saxs.analysis.firstlook import frame_file_name
        from sibyls.saxs.reduction.curves import write_dat

        name = start.get("sample_code") or "sample"
        out_dir = self.processed_dir / record_relpath(start).with_suffix("")
        products = self._frame_products.setdefault(start["uid"], [])
        products.clear()

        def write(first: int, curves: list[Curve]) -> None:
            out_dir.mkdir(parents=True, exist_ok=True)
            for index, curve in enumerate(curves, start=first):
                header = {"sample": name, "frame": index + 1, "run": start["uid"]}
                path = write_dat(out_dir / frame_file_name(name, index), curve, header)
                products.append(describe_product(path, "per-frame I(q)"))

        return write

    def finish(self, reduced: ReducedRun, *, plots_now: bool = False) -> ProcessedRun:
        """The first look of a reduced run: numbers and curves into the record at once, then the plots
        (on the plots thread, or here with ``plots_now``) in a second update of the record."""
        from sibyls.saxs.analysis.firstlook import write_data_products

        start = reduced.start
        if not reduced.curves:
            raise ValueError(f"run {reduced.uid} has no frames to look at ({'; '.join(reduced.problems)})")
        name = start.get("sample_code") or "sample"
        relpath = record_relpath(start)
        out_dir = self.processed_dir / relpath.with_suffix("")
        if analysis_kind(start) == "sec":
            result, results = self._sec(reduced, name)
        else:
            result, results = self._batch(reduced, name)
        written = write_data_products(result, out_dir, name, frames=False)
        frame_products = self._frame_products.pop(reduced.uid, [])
        products = frame_products + [describe_product(p, _describe(p)) for p in written]
        run_results = RunResults(run_uid=reduced.uid, products=products, complete=False, **results)
        record_path = self.records_dir / relpath
        merged = apply_results(record_path, run_results)
        processed = ProcessedRun(reduced.uid, out_dir, run_results, record_path, merged)
        self.processed.append(processed)
        log.info("first look of run %s: %s", reduced.uid, run_results.quality_metrics or "no metrics")
        job = (result, out_dir, name, run_results, record_path, start)
        if plots_now:
            self._plot(*job)
        else:
            self._plot_jobs.put(job)
        if self._tiled is not None:
            self._store_in_tiled_later(reduced.uid, _tiled_curves(result), result.to_dict(), reduced.curves)
        return processed

    def _plot(
        self, result, out_dir: Path, name: str, run_results: RunResults, record_path: Path, start: dict
    ) -> None:
        from sibyls.saxs.analysis.firstlook import write_plots

        try:
            images = [describe_product(p, _describe(p)) for p in write_plots(result, out_dir, name)]
            update = {"products": run_results.products + images, "complete": True}
            apply_results(record_path, run_results.model_copy(update=update))
            write_project_summaries(self.records_dir, self.processed_dir, record_path.parent.name)
            if analysis_kind(start) != "sec":
                self._series(record_path.parent.name)
            if self.on_first_look is not None:
                self.on_first_look(start, record_path)
        except Exception as exc:  # the numbers stay in the record; its status and notes say the plots failed
            log.exception("plots of run %s failed", run_results.run_uid)
            reason = f"first look failed: plots not drawn ({failure_reason(exc)})"
            self.failures.append((run_results.run_uid, reason))
            notes = [reason, run_results.workflow.get("description") or ""]
            workflow = {**run_results.workflow, "description": "; ".join(n for n in notes if n)}
            try:
                apply_results(
                    record_path, run_results.model_copy(update={"outcome": "failed", "workflow": workflow})
                )
            except Exception:
                log.exception("the failure of run %s could not be put in its record", run_results.run_uid)
            self._tell_failure(start, record_path, reason)

    def _series(self, project_folder: str) -> None:
        """The project's concentration series, again (a failure is logged: the run's results stand)."""
        from sibyls.saxs.processing.series import write_project_series

        try:
            write_project_series(self.processed_dir, project_folder)
        except Exception:
            log.exception("concentration series of %s not analysed", project_folder)

    def _plot_loop(self) -> None:
        while True:
            job = self._plot_jobs.get()
            try:
                if job is None:
                    return
                self._plot(*job)
            finally:
                self._plot_jobs.task_done()

    def _batch(self, reduced: ReducedRun, name: str):
        from sibyls.saxs.analysis.firstlook import first_look_batch
        from sibyls.saxs.analysis.results import FLAG_DAMAGE, guinier_numbers, shape_numbers

        start = reduced.start
        project = start.get("project_code") or ""
        is_buffer = start.get("sample_role") == "buffer_blank"
        buffer_uid = buffer = None
        if is_buffer:
            self.buffers.remember(reduced.uid, project, name, reduced.curves)
        else:
            buffer_uid = start.get("buffer_run_uid") or self.buffers.latest_blank(project)
            buffer = self.buffers.get(buffer_uid)
        result = first_look_batch(
            reduced.curves,
            None if buffer is None else buffer[1],
            start.get("concentration_mg_ml"),
            sample_name=name,
            buffer_name=None if buffer is None else f"{buffer[0]} (run {buffer_uid})",
            expected_mw_kda=start.get("molecular_weight_kda"),
        )
        saxs: dict[str, Any] = {
            "frames_total": result.frames_total,
            "frames_kept": result.frames_kept,
            "flags": list(result.flags),
        }
        notes = list(result.notes)
        if is_buffer:  # a buffer is screened and averaged for its samples: no subtraction, no Guinier
            saxs["flags"] = [flag for flag in result.flags if flag == FLAG_DAMAGE]
            notes = [note for note in notes if note.startswith("CorMap")] + [
                "buffer_blank: frames screened and averaged for its samples (no Guinier or MW)"
            ]
        if buffer is not None and result.curves.subtracted is not None:
            saxs["buffer_run_uid"] = buffer_uid
        if not is_buffer:
            if result.guinier is not None:
                saxs.update(guinier_numbers(result.guinier))
            if result.mw_vc is not None:
                saxs["molecular_weight_vc_kda"] = result.mw_vc.mw_kda
            if result.mw_i0 is not None:
                saxs["molecular_weight_i0_kda"] = result.mw_i0.mw_kda
            if result.shape is not None:
                saxs.update(shape_numbers(result.shape))
        return result, {
            "quality_metrics": {} if is_buffer else result.quality_metrics(),
            "saxs_results": {k: v for k, v in saxs.items() if v is not None},
            "workflow": _with_notes(result, notes),
        }

    def _sec(self, reduced: ReducedRun, name: str):
        from sibyls.saxs.analysis.results import guinier_numbers
        from sibyls.saxs.analysis.sec import first_look_sec

        n = len(reduced.curves)
        wanted = {"uv280": "uv280_mau", "mals": "mals_v", "ri": "ri_riu"}
        traces = {
            key: [float(v) for v in reduced.traces[name]]
            for key, name in wanted.items()
            if len(reduced.traces.get(name, ())) == n
        }
        eluted = reduced.traces.get("eluted_ml", ())
        volumes = [float(v) for v in eluted] if len(eluted) == n else None
        result = first_look_sec(reduced.curves, traces, sample_name=name, volumes=volumes)
        main = result.main_species
        saxs: dict[str, Any] = {"frames_total": result.frames_total, "flags": list(result.flags)}
        if main is not None:
            saxs["frames_kept"] = len(main.averaged_frames)
            if main.components is not None:
                saxs["svd_components"] = main.components.components
            if main.guinier is not None:
                saxs.update(guinier_numbers(main.guinier))
            estimates = {
                "molecular_weight_vc_kda": main.mw_vc,
                "molecular_weight_i0_kda": main.mw_i0,
                "mals_molar_mass_kda": main.mw_mals,
            }
            for key, estimate in estimates.items():
                if estimate is not None:
                    saxs[key] = estimate.mw_kda
        separated = [
            (s, g) for sep in result.separations for s, g in zip(sep.efa.species, sep.guinier, strict=True)
        ]
        if separated:
            saxs["efa_components"] = len(separated)
            saxs["efa_rg_a"] = [None if g is None else g.rg for _, g in separated]
            saxs["efa_mals_molar_mass_kda"] = [s.mals_molar_mass_kda for s, _ in separated]
        return result, {
            "quality_metrics": result.quality_metrics(),
            "saxs_results": {k: v for k, v in saxs.items() if v is not None},
            "workflow": _with_notes(result, result.notes),
        }

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


def _with_notes(result, notes: list[str]) -> dict[str, Any]:
    """The result's workflow entry, the notes (why there is no Guinier fit, no buffer...) as the
    entry's description, so the record says them."""
    workflow = result.workflow_run()
    if notes:
        workflow["description"] = "; ".join(notes)
    return workflow


def _tiled_curves(result) -> dict[str, Curve]:
    """The curves of a first look worth storing beside the run in Tiled."""
    from sibyls.saxs.analysis.sec import SecResult

    curves = result.curves
    if isinstance(result, SecResult):
        named = {"buffer": curves.buffer}
        named.update({f"species_{i + 1}": c for i, c in enumerate(curves.species) if c is not None})
        return named
    named = {"averaged": curves.averaged}
    if curves.subtracted is not None:
        named["subtracted"] = curves.subtracted
    return named


#: What each product is, by its name (first match wins: the more specific name first).
_PRODUCT_DESCRIPTIONS = (
    (lambda n: n.endswith("_Pr_plot.png"), "P(r) by BIFT with its Monte-Carlo band and Dmax"),
    (lambda n: n.endswith("_pr.dat"), "P(r) by BIFT: r (Å), P(r), σ"),
    (lambda n: n.startswith("A_S_"), "averaged, buffer-subtracted I(q) of the kept frames"),
    (lambda n: n.startswith("A_buff_"), "average I(q) of the SEC buffer region"),
    (lambda n: n.startswith("A_"), "average I(q) of the frames kept by CorMap screening"),
    (lambda n: n.endswith("_Guinier_plot.png"), "Guinier plot with residuals"),
    (lambda n: n.endswith("_Kratky_plot.png"), "dimensionless Kratky plot"),
    (lambda n: n.endswith("_Iq_plot.png"), "I(q), log-log"),
    (lambda n: n.endswith("_SEC_chromatogram.png"),
     "SEC chromatogram: integrated intensity, UV, MALS, RI and Rg across the peak"),
    (lambda n: n.endswith(".json"), "first-look results (JSON)"),
    (lambda n: n.endswith(".dat"), "per-frame I(q)"),
)  # fmt: skip


def _describe(path: Path) -> str:
    return next((text for matches, text in _PRODUCT_DESCRIPTIONS if matches(path.name)), "first-look product")


def cached_reducers(
    poni: Path | str | None = None, absolute_scale: float | None = None
) -> Callable[[Path], Any]:
    """``reducer_for(frame_file)``: one FrameReducer per geometry and pixel mask (the mask follows the
    beamstop), with the beamline's PONI calibration and absolute scale when configured."""
    import zlib

    from sibyls.saxs.reduction.iq import read_frame_geometry
    from sibyls.saxs.reduction.poni import read_poni
    from sibyls.saxs.reduction.reducer import FrameReducer

    calibration = read_poni(poni) if poni else None
    cache: dict[tuple, Any] = {}

    def reducer_for(path: Path):
        frame_geometry = read_frame_geometry(path)
        key = (frame_geometry.geometry, zlib.crc32(np.ascontiguousarray(frame_geometry.mask).data))
        reducer = cache.get(key)
        if reducer is None:
            if len(cache) > 8:
                cache.clear()
            reducer = cache[key] = FrameReducer.from_frame_file(path, calibration, absolute_scale)
        return reducer

    return reducer_for
