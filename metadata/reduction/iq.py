"""Frames → I(q): the SIBYLS geometry read from the PILATUS HDF5 files, then azimuthal averaging.

A user gets the run's scattering profile (mean counts per pixel per frame vs q in Å⁻¹, with Poisson
uncertainties), computed with the wavelength, distance, pixel size, beam centre and pixel mask
(module gaps and beamstop) stored in the frame files themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sibyls.devices.geometry import AzimuthalIntegrator, AzimuthalProfile, DetectorGeometry
from sibyls.metadata.errors import ExchangeError
from sibyls.metadata.runs.sources import StoredRun


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
    """A run's I(q) (mean over its primary frames) and the geometry it was reduced with."""

    profile: AzimuthalProfile
    frames: int
    frame_geometry: FrameGeometry


def reduce_frames(frames, frame_geometry: FrameGeometry, q_edges: np.ndarray | None = None) -> RunProfile:
    """Sum ``frames`` and average azimuthally; a pixel negative in any frame (gap) is left out."""
    total = bad = None
    n = 0
    for frame in frames:
        frame = np.asarray(frame)
        if total is None:
            total = np.zeros(frame.shape, dtype=np.int64)
            bad = np.zeros(frame.shape, dtype=bool)
        bad |= frame < 0
        total += frame
        n += 1
    if n == 0:
        raise ExchangeError("the run has no frames to reduce")
    total[bad] = -1
    integrator = AzimuthalIntegrator(frame_geometry.geometry, frame_geometry.mask, q_edges)
    return RunProfile(integrator.integrate(total, frames=n), n, frame_geometry)


def reduce_run(run: StoredRun, q_edges: np.ndarray | None = None) -> RunProfile:
    """The run's I(q) from all its primary-stream frames; clear errors for missing or corrupt files."""
    if not run.frame_files:
        raise ExchangeError(f"run {run.uid} (scan {run.scan_id}) has no frame files")
    for path in run.frame_files:
        if not Path(path).is_file():
            raise ExchangeError(f"frame file {path} of run {run.uid} (scan {run.scan_id}) is missing")
    frame_geometry = read_frame_geometry(run.frame_files[0])
    try:
        return reduce_frames(run.frames(), frame_geometry, q_edges)
    except (OSError, KeyError) as exc:
        raise ExchangeError(f"frames of run {run.uid} (scan {run.scan_id}) are unreadable: {exc}") from exc
