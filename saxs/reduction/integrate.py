"""Azimuthal integration with solid-angle and polarisation corrections, agreeing with pyFAI.

A user gets, for every frame, I(q) ± σ on one fixed q grid, computed exactly as pyFAI's
``integrate1d(frame, npt, unit="q_A^-1", radial_range=..., mask=..., correctSolidAngle=True,
polarization_factor=f, error_model="poisson", method=("no", "csr", "cython"))`` computes it
(``tests/saxs/reduction/test_against_pyfai.py`` checks the agreement), at a few ms per full-size
PILATUS frame:

* each pixel falls, by the q of its centre, into one bin (no pixel splitting);
* ``I = Σ counts / Σ (Ω·P)`` over the bin's pixels, ``σ = √(Σ max(counts, 1)) / Σ (Ω·P)``, where
  ``P`` is the polarisation factor ½(1 + cos²2θ − f·cos2χ·sin²2θ) and ``Ω`` the pixel's solid angle
  **relative to a pixel at the PONI facing the beam** (pyFAI's ``solidAngleArray``: ``cos³2θ`` for
  an untilted detector). Multiply by :attr:`PixelCorrections.reference_solid_angle_sr` (the PONI
  pixel's solid angle, ``pixel²/distance²``) to get counts per steradian — which
  :mod:`.reducer` does when it normalises;
* masked pixels (the frame file's ``pixel_mask``: module gaps and beamstop) are left out once;
  a pixel that is negative or NaN in one frame only (an unexpected bad pixel) is left out of that
  frame's bin, signal and normaliser alike; a bin left without pixels is NaN in that frame;
* the bin's q is its centre, like pyFAI's.

Speed: the bin of every pixel and its ``Ω·P`` are computed once per geometry and mask; frames are
then integrated two at a time in one pass over the pixels in memory order (a numba kernel, GIL
released), pairs of a stack spread over threads.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numba
import numpy as np

from sibyls.devices.geometry import POLARIZATION_FACTOR, DetectorGeometry

if TYPE_CHECKING:
    from pyFAI.integrator.azimuthal import AzimuthalIntegrator

#: Default number of q bins.
DEFAULT_BINS = 400


@dataclass(frozen=True)
class PixelCorrections:
    """What the integrator needs of each pixel: q (Å⁻¹), solid angle relative to the PONI pixel (pyFAI's
    convention) and polarisation factor; plus the PONI pixel's solid angle in sr."""

    q: np.ndarray
    solid_angle: np.ndarray
    polarization: np.ndarray
    reference_solid_angle_sr: float
    polarization_factor: float | None

    @property
    def shape(self) -> tuple[int, int]:
        return self.q.shape

    @classmethod
    def from_geometry(
        cls, geometry: DetectorGeometry, polarization_factor: float | None = POLARIZATION_FACTOR
    ) -> PixelCorrections:
        """From a :class:`DetectorGeometry` (untilted detector): numpy, no pyFAI needed."""
        reference = (geometry.binned_pixel_mm / geometry.distance_mm) ** 2
        pol = (
            geometry.polarization(polarization_factor)
            if polarization_factor is not None
            else np.ones(geometry.shape)
        )
        return cls(geometry.q_map(), geometry.solid_angle() / reference, pol, reference, polarization_factor)

    @classmethod
    def from_pyfai(
        cls, ai: AzimuthalIntegrator, polarization_factor: float | None = POLARIZATION_FACTOR
    ) -> PixelCorrections:
        """From pyFAI's own per-pixel arrays (any PONI geometry, tilted or not)."""
        shape = tuple(ai.detector.shape)
        q = np.asarray(ai.qArray(shape), dtype=np.float64) / 10.0  # pyFAI's qArray is in nm⁻¹
        sa = np.asarray(ai.solidAngleArray(shape), dtype=np.float64)
        if polarization_factor is None:
            pol = np.ones(shape)
        else:
            pol = np.asarray(ai.polarization(shape, factor=polarization_factor), dtype=np.float64)
        reference = ai.detector.pixel1 * ai.detector.pixel2 / ai.dist**2
        return cls(q, sa, pol, float(reference), polarization_factor)


# The per-pixel rule, written out in both kernels (a shared helper taking the arrays costs ~50x here):
# c >= 1: Σc += c; 0 <= c < 1: Σc += c and Σ(max(1, c) − c) += 1 − c; otherwise (negative, or NaN —
# every comparison false) the pixel is left out of this frame: its Ω·P leaves the normaliser.
@numba.njit(nogil=True, cache=True)
def _accumulate(frame, bins, weight, signal, low, neg_norm, neg_count):  # pragma: no cover - compiled
    """One pass over a frame; returns how many unmasked pixels were left out."""
    bad = 0
    for p in range(frame.size):
        k = bins[p]
        if k >= 0:
            c = frame[p]
            if c >= 1:
                signal[k] += c
            elif c >= 0:
                signal[k] += c
                low[k] += 1.0 - c
            else:
                neg_norm[k] += weight[p]
                neg_count[k] += 1
                bad += 1
    return bad


@numba.njit(nogil=True, cache=True)
def _accumulate_pair(a, b, bins, weight, sa, la, na, ca, sb, lb, nb, cb):  # pragma: no cover - compiled
    """Two frames in one pass: the bin map is read once, and the two frames' sums are independent
    chains the CPU overlaps (a histogram's run of equal bins otherwise waits on each add)."""
    bad_a = 0
    bad_b = 0
    for p in range(a.size):
        k = bins[p]
        if k >= 0:
            c = a[p]
            if c >= 1:
                sa[k] += c
            elif c >= 0:
                sa[k] += c
                la[k] += 1.0 - c
            else:
                na[k] += weight[p]
                ca[k] += 1
                bad_a += 1
            d = b[p]
            if d >= 1:
                sb[k] += d
            elif d >= 0:
                sb[k] += d
                lb[k] += 1.0 - d
            else:
                nb[k] += weight[p]
                cb[k] += 1
                bad_b += 1
    return bad_a, bad_b


@dataclass(frozen=True)
class IntegratedStack:
    """Per-frame corrected profiles on one q grid: ``intensity``/``sigma`` are ``(frames, bins)``."""

    q: np.ndarray
    intensity: np.ndarray
    sigma: np.ndarray
    normalization: np.ndarray  # Σ(Ω·P) per frame and bin (pixels actually used)
    bad_pixels: np.ndarray  # per frame: unmasked pixels left out because negative or NaN

    def __len__(self) -> int:
        return self.intensity.shape[0]


class CorrectedIntegrator:
    """Corrected azimuthal integration of many frames with one geometry, mask and q grid.

    ``mask``: nonzero where a pixel must be ignored (the frame file's ``pixel_mask``). ``q_edges``:
    the bin edges in Å⁻¹; default ``bins`` equal bins spanning the unmasked pixels' q (or ``q_range``).
    Bins without any unmasked pixel are dropped from the grid once, so every frame shares it.
    """

    def __init__(
        self,
        corrections: PixelCorrections,
        mask: np.ndarray | None = None,
        q_edges: np.ndarray | None = None,
        *,
        bins: int = DEFAULT_BINS,
        q_range: tuple[float, float] | None = None,
        threads: int | None = None,
    ) -> None:
        q = corrections.q
        usable = np.ones(q.shape, dtype=bool) if mask is None else (np.asarray(mask) == 0)
        if usable.shape != q.shape:
            raise ValueError(f"mask shape {usable.shape} does not match the geometry's {q.shape}")
        if q_edges is None:
            if q_range is not None:
                lo, hi = q_range
            else:  # just past the largest q, so the outermost pixel counts too
                lo, hi = float(q[usable].min()), float(np.nextafter(q[usable].max(), np.inf))
            q_edges = np.linspace(lo, hi, bins + 1)
        edges = np.asarray(q_edges, dtype=np.float64)
        if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
            raise ValueError("q_edges must be at least two increasing values")
        nbins = len(edges) - 1
        if nbins > np.iinfo(np.int16).max:
            raise ValueError(f"at most {np.iinfo(np.int16).max} q bins, got {nbins}")
        index = np.digitize(q.ravel(), edges) - 1
        inside = usable.ravel() & (index >= 0) & (index < nbins)
        weight = (corrections.solid_angle * corrections.polarization).ravel().astype(np.float64)
        count = np.bincount(index[inside], minlength=nbins)
        keep = count > 0
        # Renumber the kept bins 0..n-1 so the kernel writes straight into the output grid.
        new_index = np.cumsum(keep) - 1
        bins_of_pixel = np.full(q.size, -1, dtype=np.int16)
        bins_of_pixel[inside] = new_index[index[inside]]
        self.corrections = corrections
        self.shape = q.shape
        self.q_edges = edges
        self.q = ((edges[:-1] + edges[1:]) / 2.0)[keep]
        self.bin_width = np.diff(edges)[keep]
        self.pixels = count[keep]
        self.nbins = int(keep.sum())
        self._bins = bins_of_pixel
        self._weight = weight
        self._norm = np.bincount(index[inside], weights=weight[inside], minlength=nbins)[keep]
        self.threads = max(1, threads if threads is not None else _available_cores())

    def integrate(self, frame: np.ndarray) -> IntegratedStack:
        """The corrected profile of one ``(rows, cols)`` frame (a stack of one)."""
        return self.integrate_stack(np.asarray(frame)[None])

    def integrate_stack(self, frames) -> IntegratedStack:
        """Corrected profiles of a ``(N, rows, cols)`` array or of a sequence of frames, one row per frame."""
        if isinstance(frames, np.ndarray):
            if frames.ndim != 3 or frames.shape[1:] != self.shape:
                raise ValueError(f"frames of shape {frames.shape} do not match the geometry's {self.shape}")
        else:
            frames = [np.asarray(f) for f in frames]
            for frame in frames:
                if frame.shape != self.shape:
                    raise ValueError(f"frame shape {frame.shape} does not match the geometry's {self.shape}")
        n = len(frames)
        dtypes = [frames.dtype] if isinstance(frames, np.ndarray) else [f.dtype for f in frames]
        integer = all(np.issubdtype(d, np.integer) for d in dtypes)  # exact int64 sums, else float64
        signal = np.zeros((n, self.nbins), dtype=np.int64 if integer else np.float64)
        low = np.zeros((n, self.nbins))
        neg_norm = np.zeros((n, self.nbins))
        neg_count = np.zeros((n, self.nbins), dtype=np.int64)
        bad = np.zeros(n, dtype=np.int64)

        def flat(i: int) -> np.ndarray:
            return np.ascontiguousarray(frames[i]).reshape(-1)

        def task(i: int) -> None:  # frames i and i + 1 together, the last one alone
            if i + 1 < n:
                bad[i], bad[i + 1] = _accumulate_pair(
                    flat(i), flat(i + 1), self._bins, self._weight,
                    signal[i], low[i], neg_norm[i], neg_count[i],
                    signal[i + 1], low[i + 1], neg_norm[i + 1], neg_count[i + 1],
                )  # fmt: skip
            else:
                bad[i] = _accumulate(
                    flat(i), self._bins, self._weight, signal[i], low[i], neg_norm[i], neg_count[i]
                )

        starts = range(0, n, 2)
        if self.threads > 1 and len(starts) > 1:
            with ThreadPoolExecutor(min(self.threads, len(starts))) as pool:
                list(pool.map(task, starts))
        else:
            for i in starts:
                task(i)
        norm = self._norm[None, :] - neg_norm
        empty = (self.pixels[None, :] - neg_count) <= 0
        with np.errstate(invalid="ignore", divide="ignore"):
            intensity = np.where(empty, np.nan, signal / norm)
            sigma = np.where(empty, np.nan, np.sqrt(signal + low) / norm)
        return IntegratedStack(self.q, intensity, sigma, np.where(empty, 0.0, norm), bad)


def _available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1
