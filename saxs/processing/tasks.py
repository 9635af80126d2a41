"""One run's stop-time first look as pure, picklable functions: what a Dask worker runs.

:func:`first_look` takes a run's reduced frames (a :class:`ReducedRun`), its buffer's frames and the
settings, writes the product files (curves, JSON, plots) and returns the results for the run's record
(:class:`FirstLookOutput`); it reads and writes no record and keeps no state, so any worker of a
cluster can run it (the processing service, which reduced the frames as they arrived, and ``sibyls
process`` put the results in the records). :func:`reprocess_run` does the same from a stored run's
documents (frames reduced on the worker) and never raises: a failure is in its output.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from sibyls.metadata.mapping import record_relpath
from sibyls.metadata.record_results import ProductFile, RunResults, describe_product
from sibyls.saxs.processing.run_processor import ReducedRun, RunProcessor, analysis_kind
from sibyls.saxs.reduction.curves import Curve

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FirstLookSettings:
    """Where products go and the reduction's calibration (``poni``, ``absolute_scale``; None: the
    frames' own geometry, arbitrary units)."""

    processed_dir: Path
    poni: str | None = None
    absolute_scale: float | None = None


@dataclass(frozen=True)
class BufferFrames:
    """A buffer run's frames, as a sample's first look subtracts them."""

    uid: str
    name: str
    curves: list[Curve]


@dataclass
class FirstLookOutput:
    """What one run's first look gave: its results for the record (products included), the curves
    worth storing beside the run in Tiled, and for a buffer run its frames (its samples need them).
    ``error`` (only from :func:`reprocess_run`): why the first look failed (the error's message);
    nothing else is set then."""

    start: dict[str, Any]
    results: RunResults | None = None
    out_dir: Path | None = None
    plots_failed: str | None = None
    tiled_curves: dict[str, Curve] = field(default_factory=dict)
    tiled_meta: dict[str, Any] = field(default_factory=dict)
    frames: list[Curve] = field(default_factory=list)
    buffer: BufferFrames | None = None
    error: str | None = None
    #: The analysis itself (a FirstLookResult or SecResult) until its plots are drawn.
    analysis: Any = None

    @property
    def uid(self) -> str:
        return self.start["uid"]


def failure_reason(exc: BaseException) -> str:
    """An error in words: its message, and its kind when that is all it has."""
    text = str(exc).strip()
    if isinstance(exc, (ValueError, RuntimeError, OSError)) and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def out_dir_of(start: dict[str, Any], processed_dir: Path) -> Path:
    """The run's product folder: ``<processed>/<project>/<scan_id>_<sample>_<uid8>/``."""
    return Path(processed_dir) / record_relpath(start).with_suffix("")


def first_look(
    reduced: ReducedRun,
    buffer: BufferFrames | None,
    frame_products: list[ProductFile],
    settings: FirstLookSettings,
    *,
    plots: bool = True,
) -> FirstLookOutput:
    """The first look of a run whose frames are reduced: batch (CorMap, subtraction of ``buffer``,
    Guinier, P(r), MW) or SEC; its curves, JSON and (with ``plots``) plots written; its results
    returned. Raises on a run that cannot be looked at (no frames); plots that fail leave the numbers
    (``plots_failed``). Without ``plots`` the results are not ``complete``: :func:`draw_plots` of the
    output finishes them (the live service puts the numbers in the record first)."""
    from sibyls.saxs.analysis import firstlook

    start = reduced.start
    if not reduced.curves:
        raise ValueError(f"run {reduced.uid} has no frames to look at ({'; '.join(reduced.problems)})")
    name = start.get("sample_code") or "sample"
    out_dir = out_dir_of(start, settings.processed_dir)
    if analysis_kind(start) == "sec":
        result, results = _sec(reduced, name)
    else:
        result, results = _batch(reduced, buffer, name)
    written = firstlook.write_data_products(result, out_dir, name, frames=False)
    products = list(frame_products) + [describe_product(p, describe(p)) for p in written]
    is_buffer = start.get("sample_role") == "buffer_blank" and analysis_kind(start) == "batch"
    output = FirstLookOutput(
        start=start,
        results=RunResults(run_uid=reduced.uid, products=products, complete=False, **results),
        out_dir=out_dir,
        tiled_curves=_tiled_curves(result),
        tiled_meta=result.to_dict(),
        frames=reduced.curves,
        buffer=BufferFrames(reduced.uid, name, reduced.curves) if is_buffer else None,
        analysis=result,
    )
    return draw_plots(output) if plots else output


def draw_plots(output: FirstLookOutput) -> FirstLookOutput:
    """The plots of a first look whose numbers are done (``first_look(..., plots=False)``): its
    results now ``complete`` with the PNGs; plots that fail leave the numbers, the results then say
    ``failed`` and why (``plots_failed``)."""
    from sibyls.saxs.analysis import firstlook

    results = output.results
    name = output.start.get("sample_code") or "sample"
    try:
        images = [
            describe_product(p, describe(p))
            for p in firstlook.write_plots(output.analysis, output.out_dir, name)
        ]
        update = {"products": results.products + images, "complete": True}
        plots_failed = None
    except Exception as exc:  # the numbers stay in the record; its status and notes say the plots failed
        log.exception("plots of run %s failed", output.uid)
        plots_failed = f"first look failed: plots not drawn ({failure_reason(exc)})"
        notes = [plots_failed, results.workflow.get("description") or ""]
        workflow = {**results.workflow, "description": "; ".join(n for n in notes if n)}
        update = {"outcome": "failed", "workflow": workflow, "complete": True}
    return replace(
        output, results=results.model_copy(update=update), plots_failed=plots_failed, analysis=None
    )


def reprocess_run(
    documents: list[tuple[str, dict]],
    buffer: BufferFrames | FirstLookOutput | None,
    settings: FirstLookSettings,
) -> FirstLookOutput:
    """A stored run's first look from its documents: frames read and reduced here (a worker keeps
    one reducer per geometry), then :func:`first_look`. Never raises: a failure is ``error``; a
    buffer run that failed is no buffer (the sample's notes then say it was not subtracted)."""
    start = documents[0][1]
    try:
        if isinstance(buffer, FirstLookOutput):
            buffer = buffer.buffer
        frame_products: list[ProductFile] = []
        processor = RunProcessor(
            start,
            reducers(settings.poni, settings.absolute_scale),
            frame_writer(start, settings.processed_dir, frame_products),
        )
        for name, doc in documents:
            processor(name, doc)
        return first_look(processor.result, buffer, frame_products, settings)
    except Exception as exc:
        log.exception("first look of run %s failed", start.get("uid"))
        return FirstLookOutput(start=start, error=failure_reason(exc))


def frame_writer(
    start: dict[str, Any], processed_dir: Path, products: list[ProductFile]
) -> Callable[[int, list[Curve]], None]:
    """Writes each frame's ``<sample>_<NNNNN>.dat`` as it is reduced (a 600-frame SEC run has
    nothing of that left to do at its stop), each described into ``products``."""
    from sibyls.saxs.analysis.firstlook import frame_file_name
    from sibyls.saxs.reduction.curves import write_dat

    name = start.get("sample_code") or "sample"
    out_dir = out_dir_of(start, processed_dir)

    def write(first: int, curves: list[Curve]) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        for index, curve in enumerate(curves, start=first):
            header = {"sample": name, "frame": index + 1, "run": start["uid"]}
            path = write_dat(out_dir / frame_file_name(name, index), curve, header)
            products.append(describe_product(path, "per-frame I(q)"))

    return write


_REDUCERS: dict[tuple, Callable[[Path], Any]] = {}


def reducers(poni: str | None, absolute_scale: float | None) -> Callable[[Path], Any]:
    """This process's ``reducer_for(frame_file)`` of a calibration (kept: a worker builds each
    geometry's integrator once for all the runs it is given)."""
    key = (poni, absolute_scale)
    if key not in _REDUCERS:
        _REDUCERS[key] = cached_reducers(poni, absolute_scale)
    return _REDUCERS[key]


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


def warm_up() -> float:
    """Load and compile everything a first look uses (analysis libraries, the integrator's compiled
    kernel, matplotlib's fonts) on synthetic data, so the first real run is as fast as the rest;
    seconds taken. Run once in each process that does first looks (each Dask worker)."""
    import tempfile
    import time

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


# ---- the analysis of each kind of run ---------------------------------------------------------------


def _batch(reduced: ReducedRun, buffer: BufferFrames | None, name: str):
    from sibyls.saxs.analysis.firstlook import first_look_batch
    from sibyls.saxs.analysis.flags import FLAG_DAMAGE
    from sibyls.saxs.analysis.results import guinier_numbers, shape_numbers

    start = reduced.start
    is_buffer = start.get("sample_role") == "buffer_blank"
    if is_buffer:
        buffer = None
    result = first_look_batch(
        reduced.curves,
        None if buffer is None else buffer.curves,
        start.get("concentration_mg_ml"),
        sample_name=name,
        buffer_name=None if buffer is None else f"{buffer.name} (run {buffer.uid})",
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
        saxs["buffer_run_uid"] = buffer.uid
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


def _sec(reduced: ReducedRun, name: str):
    from sibyls.saxs.analysis.results import guinier_numbers
    from sibyls.saxs.analysis.sec import first_look_sec

    n = len(reduced.curves)
    wanted = {"uv280": "uv280_mau", "mals": "mals_v", "ri": "ri_riu"}
    traces = {
        key: [float(v) for v in reduced.traces[trace]]
        for key, trace in wanted.items()
        if len(reduced.traces.get(trace, ())) == n
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


def describe(path: Path) -> str:
    """What a product file is, in words for the record."""
    return next((text for matches, text in _PRODUCT_DESCRIPTIONS if matches(path.name)), "first-look product")
