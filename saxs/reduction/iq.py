"""Frames → I(q) of a stored run: the SIBYLS geometry read from the PILATUS HDF5 files (or a PONI
file), then corrected, normalised reduction (:mod:`.reducer`) of every frame.

A user gets the run's per-frame curves and their mean (I in ``"arbitrary"`` units — counts per
steradian per I0 count, transmission-corrected — or cm⁻¹ with an absolute scale, vs q in Å⁻¹,
with Poisson uncertainties), computed with the wavelength, distance, pixel size, beam centre and
pixel mask (module gaps and beamstop) stored in the frame files themselves, and the I0 and
beamstop-diode counts the run recorded with each frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sibyls.devices.geometry import DetectorGeometry
from sibyls.metadata.errors import ExchangeError
from sibyls.metadata.runs.sources import StoredRun
from sibyls.saxs.reduction.curves import Curve
from sibyls.saxs.reduction.poni import PoniGeometry, read_poni
from sibyls.saxs.reduction.reducer import FrameReducer, absolute_scale_from_water, mean_curve


@dataclass(frozen=True)
class FrameGeometry:
    """What one frame file says about the geometry, plus its pixel mask (nonzero = masked)."""

    geometry: DetectorGeometry
    mask: np.ndarray
    count_time_s: float | None
    energy_kev: float | None


def read_frame_geometry(path: Path | str) -> FrameGeometry:
    """Geometry and mask from a PILATUS frame file; :class:`ExchangeError` if unreadable or incomplete."""
    import h5py

    try:
        with h5py.File(path, "r") as fh:
            det = fh["entry/instrument/detector"]
            binning = int(det["binning"][()])
            geometry = DetectorGeometry(
                wavelength_a=float(fh["entry/instrument/monochromator/wavelength"][()]),
                distance_mm=float(det["distance"][()]),
                beam_center_x=float(det["beam_center_x"][()]) * binning,
                beam_center_y=float(det["beam_center_y"][()]) * binning,
                binning=binning,
                pixel_size_mm=float(det["x_pixel_size"][()]) / binning,
            )
            mask = np.asarray(det["pixel_mask"][()])
            count_time = float(det["count_time"][()]) if "count_time" in det else None
            mono = fh["entry/instrument/monochromator"]
            energy = float(mono["energy"][()]) if "energy" in mono else None
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise ExchangeError(f"frame file {path} is unreadable or not a PILATUS frame file: {exc}") from exc
    if mask.shape != geometry.shape:
        raise ExchangeError(f"frame file {path}: pixel_mask shape {mask.shape} != detector {geometry.shape}")
    return FrameGeometry(geometry, mask, count_time, energy)


@dataclass(frozen=True)
class RunProfile:
    """A run's normalised I(q): the mean of its per-frame curves, those curves, and the geometry used."""

    curve: Curve
    frames: int
    frame_geometry: FrameGeometry
    curves: list[Curve] = field(default_factory=list)

    @property
    def profile(self) -> Curve:
        """The mean curve (``q``, ``intensity``, ``sigma``, ``unit``, ``qdev``)."""
        return self.curve


#: Frames reduced together (one threaded pass): bounds memory for long SEC runs.
CHUNK_FRAMES = 32


def reduce_frames(
    frames,
    frame_geometry: FrameGeometry,
    q_edges: np.ndarray | None = None,
    *,
    i0=None,
    bs_diode=None,
    exposure=None,
    reducer: FrameReducer | None = None,
) -> RunProfile:
    """Reduce ``frames`` one by one (corrected, normalised by ``i0``/``bs_diode``/``exposure`` when given,
    see :mod:`.reducer`) and average them; negative (gap) pixels are left out frame by frame."""
    reducer = reducer or FrameReducer.from_geometry(
        frame_geometry.geometry, frame_geometry.mask, q_edges=q_edges
    )
    curves: list[Curve] = []
    chunk: list[np.ndarray] = []
    i0_v, bs_v, exp_v = (_optional_array(v) for v in (i0, bs_diode, exposure))

    def flush() -> None:
        start, stop = len(curves), len(curves) + len(chunk)
        curves.extend(
            reducer.reduce(
                chunk, _part(i0_v, start, stop), _part(bs_v, start, stop), _part(exp_v, start, stop)
            )
        )
        chunk.clear()

    for frame in frames:
        chunk.append(np.asarray(frame))
        if len(chunk) == CHUNK_FRAMES:
            flush()
    if chunk:
        flush()
    if not curves:
        raise ExchangeError("the run has no frames to reduce")
    for index, curve in enumerate(curves):
        curve.meta["frame"] = index
    return RunProfile(mean_curve(curves), len(curves), frame_geometry, curves)


def _optional_array(values) -> np.ndarray | None:
    if values is None:
        return None
    return np.asarray(values, dtype=np.float64)


def _part(values: np.ndarray | None, start: int, stop: int):
    if values is None or values.ndim == 0:
        return values
    if len(values) < stop:
        raise ExchangeError(f"{len(values)} monitor values for at least {stop} frames")
    return values[start:stop]


def run_monitors(run: StoredRun) -> dict[str, np.ndarray | None]:
    """The primary stream's I0 and beamstop-diode counts per frame (``None`` where the run has none)."""
    stream = run.streams.get("primary")
    columns = stream.columns if stream is not None else {}
    out: dict[str, np.ndarray | None] = {}
    for key, column in (("i0", "i0_counts"), ("bs_diode", "bs_diode_counts")):
        values = columns.get(column)
        out[key] = None if values is None or not len(values) else np.asarray(values, dtype=np.float64)
    return out


def per_frame_monitors(run: StoredRun) -> dict[str, np.ndarray | None]:
    """I0 and beamstop-diode counts per frame. An event whose frame file holds n frames (an
    ``ht_plate`` well: one trigger, one file, n frames) shares its counts evenly among them, as the
    processing service does; an event per frame keeps its own counts."""
    monitors = run_monitors(run)
    counts = [_frames_in_file(path) for path in run.frame_files]
    if sum(counts) == len(run.frame_files):
        return monitors
    out: dict[str, np.ndarray | None] = {}
    for key, values in monitors.items():
        if values is None or len(values) != len(counts):
            out[key] = values
            continue
        out[key] = np.concatenate([np.full(n, v / n) for v, n in zip(values, counts, strict=True)])
    return out


def _frames_in_file(path: Path) -> int:
    import h5py

    try:
        with h5py.File(path, "r") as fh:
            return int(fh["entry/data/data"].shape[0])
    except (OSError, KeyError) as exc:
        raise ExchangeError(f"frame file {path} is unreadable or not a PILATUS frame file: {exc}") from exc


def reduce_run(
    run: StoredRun,
    q_edges: np.ndarray | None = None,
    *,
    poni: Path | str | PoniGeometry | None = None,
    absolute_scale: float | None = None,
    empty_beam_ratio: float | None = None,
) -> RunProfile:
    """The run's normalised I(q) from all its primary-stream frames (per-frame curves in ``.curves``):
    geometry from the frame files or ``poni``; I0 and beamstop-diode counts from the run's events;
    exposure from the frame file. Clear errors for missing or corrupt files."""
    if not run.frame_files:
        raise ExchangeError(f"run {run.uid} (scan {run.scan_id}) has no frame files")
    for path in run.frame_files:
        if not Path(path).is_file():
            raise ExchangeError(f"frame file {path} of run {run.uid} (scan {run.scan_id}) is missing")
    frame_geometry = read_frame_geometry(run.frame_files[0])
    geometry: DetectorGeometry | PoniGeometry = frame_geometry.geometry
    if poni is not None:
        geometry = (poni if isinstance(poni, PoniGeometry) else read_poni(poni)).for_binning(
            frame_geometry.geometry.binning
        )
    reducer = FrameReducer.from_geometry(
        geometry,
        frame_geometry.mask,
        q_edges=q_edges,
        absolute_scale=absolute_scale,
        empty_beam_ratio=empty_beam_ratio,
    )
    monitors = per_frame_monitors(run)
    i0 = monitors["i0"]
    bs = monitors["bs_diode"] if i0 is not None else None
    try:
        return reduce_frames(
            run.frames(),
            frame_geometry,
            i0=i0,
            bs_diode=bs,
            exposure=frame_geometry.count_time_s,
            reducer=reducer,
        )
    except (OSError, KeyError) as exc:
        raise ExchangeError(f"frames of run {run.uid} (scan {run.scan_id}) are unreadable: {exc}") from exc
    except ValueError as exc:
        raise ExchangeError(f"run {run.uid} (scan {run.scan_id}) cannot be normalised: {exc}") from exc


def absolute_scale_from_runs(
    water: StoredRun,
    empty_cell: StoredRun,
    *,
    poni: Path | str | PoniGeometry | None = None,
    empty_beam_ratio: float | None = None,
) -> float:
    """The absolute-scale factor (cm⁻¹ per normalised unit) from a water run and an empty-cell run,
    reduced the way sample runs are (same PONI and empty-beam ratio): configure it as the reduction's
    ``absolute_scale`` to get curves in 1/cm (see :func:`.reducer.absolute_scale_from_water`)."""
    reduced = [reduce_run(run, poni=poni, empty_beam_ratio=empty_beam_ratio) for run in (water, empty_cell)]
    try:
        return absolute_scale_from_water(reduced[0].curves, reduced[1].curves)
    except ValueError as exc:
        raise ExchangeError(
            f"water run {water.uid} / empty-cell run {empty_cell.uid} give no calibration: {exc}"
        ) from exc
