"""Frames → normalised I(q) curves: corrections, normalisation, transmission and absolute scale.

A user (and the processing service) gets one :class:`Curve` per frame from
``FrameReducer.from_frame_file(path, poni=None, absolute_scale=None).reduce(frames, i0, bs_diode,
exposure)``.

Normalisation of frame ``i`` (per bin, after :mod:`.integrate`'s corrected average ``Ĩ``, which is
in pyFAI's convention: counts per PONI-pixel solid angle, polarisation removed)::

    I = K · Ĩ / (Ω_ref · M · T)

* ``Ω_ref`` — the solid angle (sr) of a pixel at the PONI facing the beam (``pixel²/distance²``):
  ``Ĩ/Ω_ref`` is counts per steradian, independent of binning and distance;
* ``M`` — the monitor: the I0 ion-chamber counts of the frame. The chamber counts over the same
  exposure, so ``M`` already carries the exposure time; only when no I0 counts are given is ``M``
  the exposure time in s (intensity per second) — the curve's ``meta["monitor"]`` says which;
* ``T`` — the transmission, from the beamstop diode:
  ``T = (bs/I0)_frame / (bs/I0)_empty beam``, with ``(bs/I0)_empty beam`` the ratio measured with no
  cell in the beam (``empty_beam_ratio``, a stored calibration constant). Without that constant
  ``T = (bs/I0)_frame`` — the true transmission times a constant of the diodes, the same for every
  frame, so subtraction is still right and a water calibration made the same way absorbs it;
  ``meta["transmission_reference"]`` says which. No diode counts: ``T = 1``;
* ``K`` — the absolute-scale factor (cm⁻¹ per normalised unit) from a water measurement
  (:func:`absolute_scale_from_water`); the curve's unit is then ``"1/cm"``, else ``"arbitrary"``.
  ``K`` includes the sample thickness: it holds for samples in the same capillary as the water.

σ is the Poisson σ of the counts scaled the same way (the monitors' own noise is not propagated).
``qdev`` is a simple 1σ q-resolution (:func:`q_resolution`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sibyls.devices.geometry import POLARIZATION_FACTOR, DetectorGeometry
from sibyls.saxs.reduction.curves import Curve
from sibyls.saxs.reduction.integrate import (
    DEFAULT_BINS,
    CorrectedIntegrator,
    IntegratedStack,
    PixelCorrections,
)
from sibyls.saxs.reduction.poni import PoniGeometry, read_poni

#: Differential scattering cross-section of water at 20 °C, cm⁻¹ (Orthaber, Bergmann & Glatter 2000).
WATER_I0_PER_CM = 0.0163
#: q-range (Å⁻¹) over which water's scattering is flat enough to calibrate against.
WATER_Q_RANGE = (0.03, 0.30)
#: Size (1σ, mm) of the direct beam on the detector, and relative wavelength spread (Si(111)).
BEAM_SIGMA_MM = 0.3
WAVELENGTH_SPREAD = 1.0e-4

UNIT_ABSOLUTE = "1/cm"
UNIT_RELATIVE = "arbitrary"


def q_resolution(
    q: np.ndarray,
    wavelength_a: float,
    distance_mm: float,
    pixel_mm: float,
    bin_width: np.ndarray | float,
    beam_sigma_mm: float = BEAM_SIGMA_MM,
    wavelength_spread: float = WAVELENGTH_SPREAD,
) -> np.ndarray:
    """1σ q-resolution (Å⁻¹) at each ``q``: beam size and pixel width seen through dq/dr, the
    wavelength spread, and the bin width (uniform, ``w/√12``), added in quadrature."""
    q = np.asarray(q, dtype=np.float64)
    two_theta = 2.0 * np.arcsin(np.clip(q * wavelength_a / (4.0 * np.pi), 0.0, 1.0))
    dq_dr = (2.0 * np.pi / wavelength_a) * np.cos(two_theta / 2.0) * np.cos(two_theta) ** 2 / distance_mm
    sigma_r2 = beam_sigma_mm**2 + pixel_mm**2 / 12.0
    width = np.broadcast_to(np.asarray(bin_width, dtype=np.float64), q.shape)
    return np.sqrt(dq_dr**2 * sigma_r2 + (q * wavelength_spread) ** 2 + width**2 / 12.0)


@dataclass(frozen=True)
class ReducedStack:
    """Normalised per-frame profiles on one q grid (``intensity``, ``sigma``: ``(frames, bins)``)."""

    q: np.ndarray
    intensity: np.ndarray
    sigma: np.ndarray
    qdev: np.ndarray | None
    unit: str
    meta: list[dict]

    def __len__(self) -> int:
        return self.intensity.shape[0]

    def curves(self) -> list[Curve]:
        """One :class:`Curve` per frame."""
        return [
            Curve(self.q, self.intensity[i], self.sigma[i], self.unit, self.qdev, self.meta[i])
            for i in range(len(self))
        ]


class FrameReducer:
    """Reduces frames of one geometry, mask and q grid to normalised curves (see the module doc)."""

    def __init__(
        self,
        integrator: CorrectedIntegrator,
        geometry: DetectorGeometry | None = None,
        *,
        empty_beam_ratio: float | None = None,
        absolute_scale: float | None = None,
        qdev: np.ndarray | None = None,
    ) -> None:
        if empty_beam_ratio is not None and not empty_beam_ratio > 0:
            raise ValueError(f"empty_beam_ratio must be > 0, got {empty_beam_ratio}")
        if absolute_scale is not None and not absolute_scale > 0:
            raise ValueError(f"absolute_scale must be > 0, got {absolute_scale}")
        self.integrator = integrator
        self.geometry = geometry
        self.empty_beam_ratio = empty_beam_ratio
        self.absolute_scale = absolute_scale
        if qdev is None and geometry is not None:
            qdev = q_resolution(
                integrator.q,
                geometry.wavelength_a,
                geometry.distance_mm,
                geometry.binned_pixel_mm,
                integrator.bin_width,
            )
        self.qdev = qdev

    @property
    def q(self) -> np.ndarray:
        """The q grid (Å⁻¹, bin centres) every curve of this reducer shares."""
        return self.integrator.q

    @property
    def unit(self) -> str:
        return UNIT_ABSOLUTE if self.absolute_scale is not None else UNIT_RELATIVE

    @classmethod
    def from_geometry(
        cls,
        geometry: DetectorGeometry | PoniGeometry,
        mask: np.ndarray | None,
        *,
        q_edges: np.ndarray | None = None,
        bins: int = DEFAULT_BINS,
        q_range: tuple[float, float] | None = None,
        polarization_factor: float | None = POLARIZATION_FACTOR,
        empty_beam_ratio: float | None = None,
        absolute_scale: float | None = None,
        threads: int | None = None,
    ) -> FrameReducer:
        """A reducer for a :class:`DetectorGeometry` or a PONI geometry (tilted ones via pyFAI's arrays)."""
        if isinstance(geometry, PoniGeometry):
            if geometry.geometry is None:
                corrections = PixelCorrections.from_pyfai(geometry.integrator, polarization_factor)
                plain = None
            else:
                plain = geometry.geometry
                corrections = PixelCorrections.from_geometry(plain, polarization_factor)
        else:
            plain = geometry
            corrections = PixelCorrections.from_geometry(plain, polarization_factor)
        integrator = CorrectedIntegrator(
            corrections, mask, q_edges, bins=bins, q_range=q_range, threads=threads
        )
        qdev = None
        if plain is None:  # tilted: resolution from the PONI's distance and pixel
            ai = geometry.integrator  # type: ignore[union-attr]
            qdev = q_resolution(
                integrator.q,
                ai.wavelength * 1e10,
                ai.dist * 1e3,
                ai.detector.pixel1 * 1e3,
                integrator.bin_width,
            )
        return cls(
            integrator, plain, empty_beam_ratio=empty_beam_ratio, absolute_scale=absolute_scale, qdev=qdev
        )

    @classmethod
    def from_frame_file(
        cls,
        path: Path | str,
        poni: Path | str | PoniGeometry | None = None,
        absolute_scale: float | None = None,
        **options,
    ) -> FrameReducer:
        """A reducer for the frames of ``path``: its pixel mask, and its geometry — or the PONI file's
        (calibration), adapted to the frames' binning. ``options`` as :meth:`from_geometry`."""
        from sibyls.saxs.reduction.iq import read_frame_geometry

        frame_geometry = read_frame_geometry(path)
        geometry: DetectorGeometry | PoniGeometry = frame_geometry.geometry
        if poni is not None:
            poni_geometry = poni if isinstance(poni, PoniGeometry) else read_poni(poni)
            geometry = poni_geometry.for_binning(frame_geometry.geometry.binning)
        return cls.from_geometry(geometry, frame_geometry.mask, absolute_scale=absolute_scale, **options)

    def reduce_stack(
        self,
        frames,
        i0: Sequence[float] | np.ndarray | None = None,
        bs_diode: Sequence[float] | np.ndarray | None = None,
        exposure: Sequence[float] | np.ndarray | float | None = None,
    ) -> ReducedStack:
        """Normalised profiles of ``frames`` (array ``(N, rows, cols)`` or a sequence of frames), with the
        frames' I0 and beamstop-diode counts and exposure times (s) — each one value per frame."""
        integrated = self.integrator.integrate_stack(frames)
        return self.normalise(integrated, i0, bs_diode, exposure)

    def reduce(self, frames, i0=None, bs_diode=None, exposure=None) -> list[Curve]:
        """One normalised :class:`Curve` per frame (see :meth:`reduce_stack`)."""
        return self.reduce_stack(frames, i0, bs_diode, exposure).curves()

    def normalise(self, integrated: IntegratedStack, i0=None, bs_diode=None, exposure=None) -> ReducedStack:
        """Apply ``K / (Ω_ref · M · T)`` to corrected profiles, frame by frame."""
        n = len(integrated)
        i0_v = _per_frame(i0, n, "i0")
        bs_v = _per_frame(bs_diode, n, "bs_diode")
        exp_v = _per_frame(exposure, n, "exposure")
        if i0_v is not None and np.any(~(i0_v > 0)):
            bad = int(np.flatnonzero(~(i0_v > 0))[0])
            raise ValueError(f"frame {bad} has I0 counts {i0_v[bad]}: no beam to normalise by")
        if i0_v is None and exp_v is not None and np.any(~(exp_v > 0)):
            raise ValueError("exposure times must be > 0")
        if bs_v is not None and i0_v is None:
            raise ValueError("beamstop-diode counts need I0 counts to give a transmission")
        if bs_v is not None and np.any(~(bs_v > 0)):
            bad = int(np.flatnonzero(~(bs_v > 0))[0])
            raise ValueError(f"frame {bad} has beamstop-diode counts {bs_v[bad]}: transmission unknown")
        if i0_v is not None:
            monitor, monitor_name = i0_v, "i0"
        elif exp_v is not None:
            monitor, monitor_name = exp_v, "exposure_s"
        else:
            monitor, monitor_name = np.ones(n), "none"
        if bs_v is not None:
            ratio = bs_v / i0_v
            transmission = ratio / self.empty_beam_ratio if self.empty_beam_ratio else ratio
            reference = "empty_beam_ratio" if self.empty_beam_ratio else "none (bs/I0)"
        else:
            transmission, reference = np.ones(n), "not corrected"
        omega = self.integrator.corrections.reference_solid_angle_sr
        scale = (self.absolute_scale or 1.0) / (omega * monitor * transmission)
        meta = [
            {
                "frame": i,
                "monitor": monitor_name,
                "i0": None if i0_v is None else float(i0_v[i]),
                "bs_diode": None if bs_v is None else float(bs_v[i]),
                "exposure_s": None if exp_v is None else float(exp_v[i]),
                "transmission": float(transmission[i]),
                "transmission_reference": reference,
                "absolute_scale": self.absolute_scale,
                "bad_pixels": int(integrated.bad_pixels[i]),
                "polarization_factor": self.integrator.corrections.polarization_factor,
            }
            for i in range(n)
        ]
        return ReducedStack(
            integrated.q,
            integrated.intensity * scale[:, None],
            integrated.sigma * scale[:, None],
            self.qdev,
            self.unit,
            meta,
        )


def _per_frame(values, n: int, name: str) -> np.ndarray | None:
    if values is None:
        return None
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 0:
        return np.full(n, float(array))
    if array.shape != (n,):
        raise ValueError(f"{name} has {array.size} values for {n} frames")
    return array


def mean_curve(curves: Sequence[Curve]) -> Curve:
    """The mean of curves on one q grid; σ = √(Σσ²)/N. Bins not finite in every curve are dropped."""
    if not curves:
        raise ValueError("no curves to average")
    intensity = np.mean([c.intensity for c in curves], axis=0)
    sigma = np.sqrt(np.sum([np.square(c.sigma) for c in curves], axis=0)) / len(curves)
    first = curves[0]
    keep = np.isfinite(intensity) & np.isfinite(sigma)
    return Curve(
        first.q[keep],
        intensity[keep],
        sigma[keep],
        first.unit,
        None if first.qdev is None else first.qdev[keep],
        {"frames": len(curves)},
    )


def absolute_scale_from_water(
    water: Curve | Sequence[Curve],
    empty_cell: Curve | Sequence[Curve],
    q_range: tuple[float, float] = WATER_Q_RANGE,
    water_i0_per_cm: float = WATER_I0_PER_CM,
) -> float:
    """The factor ``K`` (cm⁻¹ per normalised unit) that puts curves on absolute scale: water's
    flat scattering (water-filled minus empty cell, both normalised the same way, relative scale)
    averaged over ``q_range`` (σ-weighted) equals ``water_i0_per_cm`` (0.0163 cm⁻¹ at 20 °C)."""
    w = mean_curve([water] if isinstance(water, Curve) else list(water))
    e = mean_curve([empty_cell] if isinstance(empty_cell, Curve) else list(empty_cell))
    for curve, name in ((w, "water"), (e, "empty cell")):
        if curve.unit != UNIT_RELATIVE:
            raise ValueError(f"the {name} curve is in {curve.unit!r}; calibrate with relative-scale curves")
    if len(w.q) != len(e.q) or not np.allclose(w.q, e.q, rtol=1e-9):
        raise ValueError("water and empty-cell curves are on different q grids")
    sel = (w.q >= q_range[0]) & (w.q <= q_range[1])
    if sel.sum() < 3:
        raise ValueError(f"fewer than 3 points of the curves lie in q {q_range}")
    diff = w.intensity[sel] - e.intensity[sel]
    var = w.sigma[sel] ** 2 + e.sigma[sel] ** 2
    level = float(np.sum(diff / var) / np.sum(1.0 / var))
    if not (math.isfinite(level) and level > 0):
        raise ValueError(f"water minus empty cell is {level:g} over q {q_range}: not a water measurement")
    return water_i0_per_cm / level
