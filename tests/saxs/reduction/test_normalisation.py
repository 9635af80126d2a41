"""Normalisation and absolute scale: frames made from a known cross-section (flux, exposure,
transmission, solid angle, polarisation, Poisson noise) come back as that cross-section in cm⁻¹
after a water calibration, whatever the flux, exposure, transmission or binning."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from sibyls.devices.geometry import POLARIZATION_FACTOR, DetectorGeometry, module_gap_mask
from sibyls.metadata.errors import ExchangeError
from sibyls.saxs.reduction.iq import absolute_scale_from_runs, reduce_run
from sibyls.saxs.reduction.reducer import (
    WATER_I0_PER_CM,
    FrameReducer,
    absolute_scale_from_water,
    mean_curve,
    q_resolution,
)

THICKNESS_CM = 0.15
# Ion-chamber counts per photon and beamstop-diode counts per transmitted photon: high enough that the
# monitors' own Poisson noise (not propagated into σ) stays well below the curves' σ.
I0_EFFICIENCY = 1e-3
BS_EFFICIENCY = 1e-4
CELL_PER_CM = 0.002  # quartz walls, flat
RG = 30.0
PROTEIN_I0 = 0.05  # cm⁻¹


def protein_per_cm(q: np.ndarray) -> np.ndarray:
    """The protein's own scattering (a sphere of Rg 30 Å, I(0) 0.05 cm⁻¹)."""
    x = np.maximum(q * RG * np.sqrt(5.0 / 3.0), 1e-6)
    return PROTEIN_I0 * (3.0 * (np.sin(x) - x * np.cos(x)) / x**3) ** 2


@dataclass
class Measurement:
    frames: np.ndarray
    i0: np.ndarray
    bs: np.ndarray
    exposure: float


def measure(geometry, per_cm, transmission, flux, exposure, n, seed) -> Measurement:
    """``n`` frames of a cell whose contents scatter ``per_cm`` (cm⁻¹ at each pixel's q)."""
    rng = np.random.default_rng(seed)
    photons = flux * exposure
    mean = (
        photons
        * transmission
        * geometry.solid_angle()
        * geometry.polarization(POLARIZATION_FACTOR)
        * per_cm
        * THICKNESS_CM
    )
    frames = rng.poisson(np.broadcast_to(mean, (n, *geometry.shape))).astype(np.int32)
    frames[:, module_gap_mask(geometry.binning)] = -1
    i0 = rng.poisson(photons * I0_EFFICIENCY, n).astype(float)
    bs = rng.poisson(photons * transmission * BS_EFFICIENCY, n).astype(float)
    return Measurement(frames, i0, bs, exposure)


def reduce(reducer: FrameReducer, m: Measurement):
    return reducer.reduce(m.frames, m.i0, m.bs, m.exposure)


@pytest.fixture(scope="module", params=[4, 2], ids=["binned-4", "binned-2"])
def setup(request):
    geometry = DetectorGeometry(binning=request.param)
    mask = (module_gap_mask(geometry.binning) | (geometry.radius_mm() <= 2.2)).astype(np.uint32)
    reducer = FrameReducer.from_geometry(
        geometry, mask, bins=120, q_range=(0.01, 0.4), empty_beam_ratio=BS_EFFICIENCY / I0_EFFICIENCY
    )
    q = geometry.q_map()
    water = measure(geometry, WATER_I0_PER_CM + CELL_PER_CM, 0.55, 2e12, 1.0, 4, seed=1)
    empty = measure(geometry, np.full(q.shape, CELL_PER_CM), 0.95, 2e12, 1.0, 4, seed=2)
    k = absolute_scale_from_water(reduce(reducer, water), reduce(reducer, empty))
    return geometry, mask, reducer, k


def test_water_calibration_puts_a_sample_on_absolute_scale(setup):
    geometry, mask, reducer, k = setup
    absolute = FrameReducer.from_geometry(
        geometry,
        mask,
        bins=120,
        q_range=(0.01, 0.4),
        empty_beam_ratio=reducer.empty_beam_ratio,
        absolute_scale=k,
    )
    q = geometry.q_map()
    # Sample and buffer at another flux, exposure and transmission than the water calibration.
    sample = measure(
        geometry, WATER_I0_PER_CM + CELL_PER_CM + protein_per_cm(q), 0.52, 1.2e12, 0.3, 6, seed=3
    )
    buffer = measure(geometry, np.full(q.shape, WATER_I0_PER_CM + CELL_PER_CM), 0.56, 1.5e12, 0.5, 6, seed=4)
    s, b = mean_curve(reduce(absolute, sample)), mean_curve(reduce(absolute, buffer))
    assert s.unit == b.unit == "1/cm"
    # The buffer (water + quartz) is flat at its true level, within its noise.
    assert np.average(b.intensity, weights=b.sigma**-2) == pytest.approx(
        WATER_I0_PER_CM + CELL_PER_CM, rel=0.01
    )
    # Buffer-subtracted protein = its true cross-section where it is well measured.
    diff = s.intensity - b.intensity
    sigma = np.hypot(s.sigma, b.sigma)
    truth = protein_per_cm(s.q)
    strong = truth > 20 * sigma
    assert strong.sum() > 10
    assert np.all(np.abs(diff - truth)[strong] < 4 * sigma[strong] + 0.01 * truth[strong])
    assert np.average(
        (diff[strong] - truth[strong]) / truth[strong], weights=(truth / sigma)[strong] ** 2
    ) == (pytest.approx(0.0, abs=0.01))
    # chi² of the subtraction against truth is Poisson-like: the σ are right, not just the values.
    chi2 = np.mean(((diff - truth) / sigma) ** 2)
    assert 0.7 < chi2 < 1.4


def test_each_frame_is_normalised_by_its_own_monitor_and_transmission(setup):
    geometry, _mask, reducer, _k = setup
    q = geometry.q_map()
    level = np.full(q.shape, WATER_I0_PER_CM)
    # Same contents; frames at half and double flux, and behind different transmissions.
    a = measure(geometry, level, 0.55, 2e12, 1.0, 1, seed=5)
    b = measure(geometry, level, 0.30, 0.5e12, 2.0, 1, seed=6)
    ca, cb = reduce(reducer, a)[0], reduce(reducer, b)[0]
    assert ca.unit == cb.unit == "arbitrary"
    assert ca.meta["monitor"] == "i0" and ca.meta["transmission_reference"] == "empty_beam_ratio"
    assert ca.meta["transmission"] == pytest.approx(0.55, rel=0.01)
    assert cb.meta["transmission"] == pytest.approx(0.30, rel=0.01)
    ratio = np.average(ca.intensity / cb.intensity, weights=ca.sigma**-2)
    assert ratio == pytest.approx(1.0, rel=0.01)
    # Without beam monitors the same frames differ by their exposure-times-flux-times-transmission.
    ra, rb = (
        reducer.reduce(a.frames, exposure=a.exposure)[0],
        reducer.reduce(b.frames, exposure=b.exposure)[0],
    )
    assert ra.meta["monitor"] == "exposure_s"
    raw_ratio = np.average(ra.intensity / rb.intensity, weights=ra.sigma**-2)
    assert raw_ratio == pytest.approx((2e12 * 0.55) / (0.5e12 * 0.30), rel=0.02)


def test_without_an_empty_beam_reference_subtraction_still_holds(setup):
    """No stored (bs/I0) of the empty beam: T is relative, the same constant for every frame."""
    geometry, mask, _reducer, _k = setup
    relative = FrameReducer.from_geometry(geometry, mask, bins=120, q_range=(0.01, 0.4))
    q = geometry.q_map()
    a = measure(geometry, np.full(q.shape, WATER_I0_PER_CM), 0.55, 2e12, 1.0, 1, seed=7)
    b = measure(geometry, np.full(q.shape, WATER_I0_PER_CM), 0.35, 1e12, 1.0, 1, seed=8)
    ca, cb = reduce(relative, a)[0], reduce(relative, b)[0]
    assert ca.meta["transmission_reference"] == "none (bs/I0)"
    assert ca.meta["transmission"] == pytest.approx(0.55 * BS_EFFICIENCY / I0_EFFICIENCY, rel=0.01)
    assert np.average(ca.intensity / cb.intensity, weights=ca.sigma**-2) == pytest.approx(1.0, rel=0.01)


def test_curves_carry_q_resolution_and_share_one_grid(setup):
    geometry, _mask, reducer, _k = setup
    curves = reduce(reducer, measure(geometry, np.full(geometry.shape, 0.02), 0.5, 1e12, 1.0, 3, seed=9))
    assert len(curves) == 3 and all(np.array_equal(c.q, reducer.q) for c in curves)
    assert [c.meta["frame"] for c in curves] == [0, 1, 2]
    qdev = curves[0].qdev
    assert qdev is not None and np.all(qdev > 0)
    # At low q, past the bin width (w/√12), the beam size (0.3 mm) and the pixel width dominate:
    # σ_q ≈ (2π/λD)·√(0.3² + p²/12).
    width = reducer.integrator.bin_width[0]
    spatial = 2 * np.pi / (geometry.wavelength_a * geometry.distance_mm)
    spatial *= np.sqrt(0.3**2 + geometry.binned_pixel_mm**2 / 12)
    assert np.sqrt(qdev[0] ** 2 - width**2 / 12) == pytest.approx(spatial, rel=0.01)
    assert np.all(
        qdev >= q_resolution(reducer.q, geometry.wavelength_a, geometry.distance_mm, 0.0, 0.0) - 1e-12
    )


def test_bad_monitors_are_refused_with_the_frame_named(setup):
    geometry, _mask, reducer, _k = setup
    m = measure(geometry, np.full(geometry.shape, 0.02), 0.5, 1e12, 1.0, 2, seed=10)
    with pytest.raises(ValueError, match="frame 1 has I0 counts 0"):
        reducer.reduce(m.frames, [100.0, 0.0], m.bs)
    with pytest.raises(ValueError, match="3 values for 2 frames"):
        reducer.reduce(m.frames, [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="need I0"):
        reducer.reduce(m.frames, None, m.bs)


def test_water_calibration_refuses_curves_that_are_not_water(setup):
    geometry, _mask, reducer, _k = setup
    same = reduce(reducer, measure(geometry, np.full(geometry.shape, 0.02), 0.9, 1e12, 1.0, 1, seed=11))
    with pytest.raises(ValueError, match="not a water measurement"):
        absolute_scale_from_water(same, same)


def test_water_and_empty_cell_runs_calibrate_stored_runs_to_absolute_scale(stored_run):
    """From stored runs (frame files + I0/diode columns): the factor from a water and an empty-cell run
    puts a buffer run at its true cross-section in 1/cm through reduce_run."""
    geometry = DetectorGeometry(binning=4)
    mask = (module_gap_mask(4) | (geometry.radius_mm() <= 2.2)).astype(np.uint32)
    q = geometry.q_map()
    runs = {}
    for name, per_cm, transmission, seed in (
        ("water", WATER_I0_PER_CM + CELL_PER_CM, 0.55, 21),
        ("empty", np.full(q.shape, CELL_PER_CM), 0.95, 22),
        ("buffer", WATER_I0_PER_CM + CELL_PER_CM, 0.50, 23),
    ):
        m = measure(geometry, per_cm, transmission, 1.5e12, 0.5, 3, seed=seed)
        runs[name] = stored_run(geometry, m.frames, mask, m.i0, m.bs)
    ratio = BS_EFFICIENCY / I0_EFFICIENCY
    k = absolute_scale_from_runs(runs["water"], runs["empty"], empty_beam_ratio=ratio)
    buffer = reduce_run(runs["buffer"], absolute_scale=k, empty_beam_ratio=ratio)
    assert buffer.frames == 3 and len(buffer.curves) == 3 and buffer.curve.unit == "1/cm"
    assert [c.meta["frame"] for c in buffer.curves] == [0, 1, 2]
    assert buffer.curves[0].meta["transmission"] == pytest.approx(0.50, rel=0.01)
    level = np.average(buffer.curve.intensity, weights=buffer.curve.sigma**-2)
    assert level == pytest.approx(WATER_I0_PER_CM + CELL_PER_CM, rel=0.01)
    with pytest.raises(ExchangeError, match="give no calibration"):
        absolute_scale_from_runs(runs["empty"], runs["empty"], empty_beam_ratio=ratio)
