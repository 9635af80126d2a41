"""The corrected integrator agrees with pyFAI's ``integrate1d`` given the same geometry, mask, bins and
corrections (solid angle, polarisation, Poisson errors), on simulated binned and full-size frames.

Like is compared with like:
* pyFAI's solid angle is relative to the PONI pixel (``solidAngleArray``, cos³2θ here), and so is
  the integrator's output before :mod:`sibyls.saxs.reduction.reducer` divides by the PONI pixel's
  solid angle in sr — so the integrator is compared, not the normalised curve;
* pixel splitting is off in both (``method=("no", "csr", "cython")``: a pixel-centre histogram);
* bins: pyFAI widens the upper end of ``radial_range`` to the next float32 and numbers pixels with a
  truncating division, so its edges are ``lo + k·Δ`` with a Δ a few 1e-7 larger than nominal; the
  integrator is given exactly those edges (from pyFAI's bin centres). The truncation also puts
  pixels up to one bin *below* ``lo`` into pyFAI's first bin: ranges start below the smallest
  unmasked q here (as the integrator's default does), or that first bin is left out.
"""

from __future__ import annotations

import numpy as np
import pytest

from sibyls.devices.geometry import POLARIZATION_FACTOR, DetectorGeometry, module_gap_mask
from sibyls.saxs.reduction.integrate import CorrectedIntegrator, PixelCorrections
from sibyls.saxs.reduction.poni import pyfai_integrator

#: Required agreement over the usable q-range (issue 13: 0.1 %).
RTOL = 1e-3


def _mask(geometry: DetectorGeometry) -> np.ndarray:
    """Module gaps and a 2.2 mm beamstop disc on the beam, nonzero = masked (like a frame file's)."""
    radius_mm = geometry.radius_mm()
    return (module_gap_mask(geometry.binning) | (radius_mm <= 2.2)).astype(np.uint32)


def _frame(geometry: DetectorGeometry, seed: int, scale: float = 1.0) -> np.ndarray:
    """A protein-like pattern (sphere form factor on a flat water background) with the solid angle
    and polarisation of each pixel, Poisson noise and -1 in the module gaps."""
    q = geometry.q_map()
    x = np.maximum(q * 36.0, 1e-6)
    form = (3.0 * (np.sin(x) - x * np.cos(x)) / x**3) ** 2
    omega = geometry.solid_angle() / (geometry.binned_pixel_mm / geometry.distance_mm) ** 2
    mean = scale * (40.0 * form + 2.0) * omega * geometry.polarization(POLARIZATION_FACTOR)
    frame = np.random.default_rng(seed).poisson(mean * geometry.binning**2).astype(np.int32)
    frame[module_gap_mask(geometry.binning)] = -1
    return frame


def _pyfai(ai, frame, mask, npt, radial_range, **extra):
    return ai.integrate1d(
        frame,
        npt,
        unit="q_A^-1",
        radial_range=radial_range,
        mask=mask != 0,
        correctSolidAngle=True,
        polarization_factor=POLARIZATION_FACTOR,
        error_model="poisson",
        method=("no", "csr", "cython"),
        **extra,
    )


def _pyfai_edges(radial: np.ndarray) -> np.ndarray:
    """The bin edges pyFAI used, from its (uniform) bin centres."""
    delta = (radial[-1] - radial[0]) / (len(radial) - 1)
    return np.concatenate([radial - delta / 2.0, [radial[-1] + delta / 2.0]])


def _compare(ours, theirs, first: int = 0) -> tuple[float, float]:
    """Max relative difference of I and σ over bins both filled (from ``first`` on)."""
    filled = theirs.count > 0
    index = np.flatnonzero(filled)
    index = index[index >= first]
    assert np.allclose(ours.q, theirs.radial[filled], rtol=1e-9, atol=0)
    positions = np.searchsorted(ours.q, theirs.radial[index] - 1e-12)
    i_rel = np.max(np.abs(ours.intensity[0][positions] / theirs.intensity[index] - 1))
    s_rel = np.max(np.abs(ours.sigma[0][positions] / theirs.sigma[index] - 1))
    return float(i_rel), float(s_rel)


@pytest.mark.parametrize(
    ("binning", "npt", "scale"),
    [(4, 300, 1.0), (1, 400, 0.5)],
    ids=["binned-4 (419x368)", "full-size (1679x1475)"],
)
def test_corrected_integration_matches_pyfai_integrate1d(binning, npt, scale):
    geometry = DetectorGeometry(binning=binning)
    mask = _mask(geometry)
    frame = _frame(geometry, seed=binning, scale=scale)
    q = geometry.q_map()
    lo, hi = float(q[mask == 0].min()) * 0.999, 0.45  # below the beamstop edge .. past SIBYLS's 0.4
    theirs = _pyfai(pyfai_integrator(geometry), frame, mask, npt, (lo, hi))
    integrator = CorrectedIntegrator(
        PixelCorrections.from_geometry(geometry), mask, _pyfai_edges(theirs.radial), threads=2
    )
    ours = integrator.integrate(frame)
    assert np.array_equal(integrator.pixels, theirs.count[theirs.count > 0].astype(int))
    i_rel, s_rel = _compare(ours, theirs)
    assert i_rel < RTOL and s_rel < RTOL, (i_rel, s_rel)
    # The same pixels in the same bins: agreement is at rounding level, far inside the 0.1 %.
    assert i_rel < 1e-6 and s_rel < 1e-6, (i_rel, s_rel)


def test_sibyls_q_range_agrees_past_pyfais_first_bin():
    """An explicit range 0.01-0.4 Å⁻¹ starting inside the data: every bin but pyFAI's first agrees."""
    geometry = DetectorGeometry(binning=4)
    mask = _mask(geometry)
    frame = _frame(geometry, seed=7)
    theirs = _pyfai(pyfai_integrator(geometry), frame, mask, 250, (0.01, 0.4))
    integrator = CorrectedIntegrator(
        PixelCorrections.from_geometry(geometry), mask, _pyfai_edges(theirs.radial)
    )
    i_rel, s_rel = _compare(integrator.integrate(frame), theirs, first=1)
    assert i_rel < RTOL and s_rel < RTOL, (i_rel, s_rel)
    # pyFAI's first bin holds pixels from below 0.01 that the integrator leaves out, as it should.
    assert theirs.count[0] > integrator.pixels[0]


def test_unexpected_negative_pixels_are_left_out_like_pyfai_dummies():
    """Pixels that turn negative in one frame only (not in the mask) leave that frame's bins, signal and
    normaliser alike — as pyFAI does with ``dummy=-1``; the other frames of the stack are untouched."""
    geometry = DetectorGeometry(binning=4)
    mask = _mask(geometry)
    good = _frame(geometry, seed=3)
    bad = good.copy()
    rng = np.random.default_rng(5)
    hit = rng.choice(np.flatnonzero((mask == 0).ravel()), size=500, replace=False)
    bad.ravel()[hit] = -1
    ai = pyfai_integrator(geometry)
    q = geometry.q_map()
    lo = float(q[mask == 0].min()) * 0.999
    theirs = _pyfai(ai, bad, mask, 200, (lo, 0.45), dummy=-1.0, delta_dummy=0.5)
    integrator = CorrectedIntegrator(
        PixelCorrections.from_geometry(geometry), mask, _pyfai_edges(theirs.radial), threads=2
    )
    stack = integrator.integrate_stack(np.stack([good, bad, good]))
    edges = integrator.q_edges
    in_range = int(np.sum((q.ravel()[hit] >= edges[0]) & (q.ravel()[hit] < edges[-1])))
    assert 0 < in_range <= 500 and list(stack.bad_pixels) == [0, in_range, 0]
    bad_only = type(stack)(stack.q, stack.intensity[1:2], stack.sigma[1:2], stack.normalization[1:2], None)
    i_rel, s_rel = _compare(bad_only, theirs)
    assert i_rel < 1e-6 and s_rel < 1e-6, (i_rel, s_rel)
    assert np.array_equal(stack.intensity[0], stack.intensity[2])
    assert not np.allclose(stack.intensity[0], stack.intensity[1], rtol=1e-9)


def test_float_and_sequence_input_give_the_integer_stack_result():
    geometry = DetectorGeometry(binning=4)
    mask = _mask(geometry)
    frames = np.stack([_frame(geometry, seed=s) for s in (11, 12)])
    integrator = CorrectedIntegrator(PixelCorrections.from_geometry(geometry), mask, bins=200)
    as_array = integrator.integrate_stack(frames)
    as_list = integrator.integrate_stack([frames[0], frames[1].astype(np.float32)])
    halves = integrator.integrate_stack([frames[0] + 0.5])  # a float frame keeps its fractions
    assert np.all(halves.intensity[0] > as_array.intensity[0])
    assert np.allclose(as_array.intensity, as_list.intensity, rtol=1e-12)
    assert np.allclose(as_array.sigma, as_list.sigma, rtol=1e-12)
    with pytest.raises(ValueError, match="match the geometry"):
        integrator.integrate(frames[0][:-1])
