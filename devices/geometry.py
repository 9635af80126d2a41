"""SAXS geometry of the SIBYLS PILATUS3 X 2M: pixel q-map, solid angle, polarisation, module-gap mask
and a plain azimuthal average.

Shared by the simulated IOC (to paint frames) and by analysis code (to reduce them), so the
two always agree on where q lands on the detector. The reduction's corrected, fast integrator is
:mod:`sibyls.saxs.reduction.integrate`; :func:`azimuthal_average` stays as the simple reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

HC_KEV_ANGSTROM = 12.398419843320026

# PILATUS3 X 2M: 3 x 8 modules of 487 x 195 pixels, 7 px gaps between module columns and
# 17 px gaps between module rows, 172 um pixels.
MODULE_SHAPE = (195, 487)  # rows, columns
MODULE_GRID = (8, 3)
MODULE_GAP = (17, 7)
FULL_SHAPE = (
    MODULE_GRID[0] * MODULE_SHAPE[0] + (MODULE_GRID[0] - 1) * MODULE_GAP[0],
    MODULE_GRID[1] * MODULE_SHAPE[1] + (MODULE_GRID[1] - 1) * MODULE_GAP[1],
)  # (1679, 1475)
PIXEL_SIZE_MM = 0.172
# Degree of linear polarisation of the beam in the horizontal (detector-column) plane, in pyFAI's
# convention (1 = fully horizontal, 0 = unpolarised): a bending-magnet beam such as 12.3.1's.
POLARIZATION_FACTOR = 0.95

# NeXus NXdetector/pixel_mask bits.
MASK_GAP = 1 << 0
MASK_BEAMSTOP = 1 << 31


def energy_to_wavelength(energy_kev: float) -> float:
    """X-ray wavelength in Å for a photon energy in keV."""
    return HC_KEV_ANGSTROM / energy_kev


@dataclass(frozen=True)
class DetectorGeometry:
    """Where the direct beam hits a (possibly binned) detector and how far away it is.

    ``beam_center_x/y`` are in full-resolution pixels (column, row); ``binning`` sums
    ``binning x binning`` blocks of full-resolution pixels into one.
    """

    wavelength_a: float = 1.127
    distance_mm: float = 2105.0
    # Beam in the middle of the detector's width, inside a module row just below mid-height: full
    # rings to q ≈ 0.336 Å⁻¹ at 2105 mm and 1.127 Å, ≥ half a ring to ~0.4, the corners to ~0.52.
    beam_center_x: float = 737.0
    beam_center_y: float = 900.0
    binning: int = 1
    pixel_size_mm: float = PIXEL_SIZE_MM

    def __post_init__(self) -> None:
        if self.binning < 1:
            raise ValueError(f"binning must be >= 1, got {self.binning}")
        if self.wavelength_a <= 0 or self.distance_mm <= 0:
            raise ValueError("wavelength_a and distance_mm must be positive")

    @property
    def shape(self) -> tuple[int, int]:
        """Frame shape (rows, columns) after binning; the remainder rows/columns are dropped."""
        return FULL_SHAPE[0] // self.binning, FULL_SHAPE[1] // self.binning

    @property
    def binned_pixel_mm(self) -> float:
        """Edge length of one binned pixel in mm."""
        return self.pixel_size_mm * self.binning

    def radius_mm(self) -> np.ndarray:
        """Distance of each (binned) pixel centre from the direct beam, in mm."""
        return _radius_mm(self)

    def q_map(self) -> np.ndarray:
        """Momentum transfer q = 4π sin(θ)/λ in Å⁻¹ at each (binned) pixel centre."""
        return _q_map(self)

    def solid_angle(self) -> np.ndarray:
        """Solid angle (sr) each (binned) pixel subtends, including the cos³(2θ) obliquity factor."""
        return _solid_angle(self)

    def polarization(self, factor: float = POLARIZATION_FACTOR) -> np.ndarray:
        """Polarisation factor of each (binned) pixel, as pyFAI defines it:
        ½(1 + cos²2θ − f·cos2χ·sin²2θ), with χ the azimuth from the horizontal."""
        return _polarization(self, float(factor))

    def q_to_radius_mm(self, q: float) -> float:
        """Radius on the detector (mm) where scattering at ``q`` lands."""
        two_theta = 2.0 * np.arcsin(q * self.wavelength_a / (4.0 * np.pi))
        return float(self.distance_mm * np.tan(two_theta))


def write_detector_geometry(group: Any, geometry: DetectorGeometry, *, distance_name: str = "SDD") -> None:
    """Write a detector's geometry into an HDF5 ``NXdetector`` group, each value with its units.

    Sample-detector distance (``SDD`` in NXcanSAS, ``distance`` in a NeXus frame file), pixel sizes
    in mm and the beam centre in (binned) pixels. One block for both: the simulated IOC's frame
    files (:mod:`sibyls.devices.sim.frame_writer`) and the NXcanSAS export
    (:mod:`sibyls.saxs.exports.nxcansas`), so what a reduction reads back is what was written.
    """
    g = geometry
    for key, value, unit in (
        (distance_name, g.distance_mm, "mm"),
        ("x_pixel_size", g.binned_pixel_mm, "mm"),
        ("y_pixel_size", g.binned_pixel_mm, "mm"),
        ("beam_center_x", g.beam_center_x / g.binning, "pixel"),
        ("beam_center_y", g.beam_center_y / g.binning, "pixel"),
    ):
        group[key] = value
        group[key].attrs["units"] = unit


@lru_cache(maxsize=16)
def _radius_mm(geometry: DetectorGeometry) -> np.ndarray:
    rows, cols = geometry.shape
    b = geometry.binning
    # Centre of each binned pixel in full-resolution pixel coordinates.
    y = (np.arange(rows) * b + (b - 1) / 2.0) - geometry.beam_center_y
    x = (np.arange(cols) * b + (b - 1) / 2.0) - geometry.beam_center_x
    radius = np.hypot(y[:, None], x[None, :]) * geometry.pixel_size_mm
    radius.setflags(write=False)
    return radius


@lru_cache(maxsize=16)
def _q_map(geometry: DetectorGeometry) -> np.ndarray:
    two_theta = np.arctan(_radius_mm(geometry) / geometry.distance_mm)
    q = 4.0 * np.pi * np.sin(two_theta / 2.0) / geometry.wavelength_a
    q.setflags(write=False)
    return q


@lru_cache(maxsize=16)
def _solid_angle(geometry: DetectorGeometry) -> np.ndarray:
    cos_2theta = np.cos(np.arctan(_radius_mm(geometry) / geometry.distance_mm))
    omega = (geometry.binned_pixel_mm / geometry.distance_mm) ** 2 * cos_2theta**3
    omega.setflags(write=False)
    return omega


@lru_cache(maxsize=16)
def _polarization(geometry: DetectorGeometry, factor: float) -> np.ndarray:
    rows, cols = geometry.shape
    b = geometry.binning
    y = (np.arange(rows) * b + (b - 1) / 2.0) - geometry.beam_center_y
    x = (np.arange(cols) * b + (b - 1) / 2.0) - geometry.beam_center_x
    x2, y2 = (x**2)[None, :], (y**2)[:, None]
    r2 = x2 + y2
    cos_2chi = np.divide(x2 - y2, r2, out=np.ones(r2.shape), where=r2 > 0)
    two_theta = np.arctan(_radius_mm(geometry) / geometry.distance_mm)
    sin2 = np.sin(two_theta) ** 2
    p = 0.5 * (1.0 + np.cos(two_theta) ** 2 - factor * cos_2chi * sin2)
    p.setflags(write=False)
    return p


@lru_cache(maxsize=8)
def module_gap_mask(binning: int = 1) -> np.ndarray:
    """Boolean mask (True = no sensor) of the inter-module gaps; a binned pixel touching a gap is masked."""
    full = np.zeros(FULL_SHAPE, dtype=bool)
    for i in range(1, MODULE_GRID[0]):
        start = i * MODULE_SHAPE[0] + (i - 1) * MODULE_GAP[0]
        full[start : start + MODULE_GAP[0], :] = True
    for j in range(1, MODULE_GRID[1]):
        start = j * MODULE_SHAPE[1] + (j - 1) * MODULE_GAP[1]
        full[:, start : start + MODULE_GAP[1]] = True
    rows, cols = FULL_SHAPE[0] // binning, FULL_SHAPE[1] // binning
    cropped = full[: rows * binning, : cols * binning]
    mask = cropped.reshape(rows, binning, cols, binning).any(axis=(1, 3))
    mask.setflags(write=False)
    return mask


@dataclass(frozen=True)
class AzimuthalProfile:
    """A radially averaged SAXS profile with Poisson uncertainties."""

    q: np.ndarray  # Å⁻¹, mean q of the pixels in each bin
    intensity: np.ndarray  # mean counts per pixel
    sigma: np.ndarray  # standard error of the mean from Poisson statistics
    pixels: np.ndarray  # number of pixels averaged


def azimuthal_average(
    frame: np.ndarray,
    geometry: DetectorGeometry,
    mask: np.ndarray | None = None,
    q_edges: np.ndarray | None = None,
) -> AzimuthalProfile:
    """Average a frame over rings of equal q; masked and negative (gap) pixels are left out.

    Empty bins are dropped. ``mask`` is True (or non-zero) where a pixel must be ignored.
    """
    q = geometry.q_map()
    if frame.shape != q.shape:
        raise ValueError(f"frame shape {frame.shape} does not match the geometry's {q.shape}")
    valid = frame >= 0
    if mask is not None:
        valid &= ~(np.asarray(mask) != 0)
    if q_edges is None:
        q_edges = np.linspace(0.0, float(q[valid].max()), 400)
    q_valid = q[valid]
    counts = frame[valid].astype(np.float64)
    index = np.digitize(q_valid, q_edges) - 1
    inside = (index >= 0) & (index < len(q_edges) - 1)
    index, q_valid, counts = index[inside], q_valid[inside], counts[inside]
    nbins = len(q_edges) - 1
    pixels = np.bincount(index, minlength=nbins)
    total = np.bincount(index, weights=counts, minlength=nbins)
    q_sum = np.bincount(index, weights=q_valid, minlength=nbins)
    filled = pixels > 0
    n = pixels[filled]
    return AzimuthalProfile(
        q=q_sum[filled] / n,
        intensity=total[filled] / n,
        sigma=np.sqrt(np.maximum(total[filled], 1.0)) / n,
        pixels=n,
    )
