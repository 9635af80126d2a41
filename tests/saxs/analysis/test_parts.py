"""The first look's parts on their own: inputs refused with reasons, σ propagation, subtraction on
other grids, MW routes and calibration constants, Guinier fallback, CorMap's false-alarm rate."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic_saxs import (
    BUFFER_PER_CM,
    K_PROTEIN,
    Q,
    buffer_frames,
    ellipsoid,
    intensity,
    noisy,
    sample_frames,
)

from sibyls.devices.sim import physics
from sibyls.saxs.analysis import standards
from sibyls.saxs.analysis.averaging import average_curves
from sibyls.saxs.analysis.firstlook import first_look_batch, write_products
from sibyls.saxs.analysis.guinier import AUTORG, FALLBACK, auto_guinier
from sibyls.saxs.analysis.inputs import AnalysisError
from sibyls.saxs.analysis.mw import calibration_from_standard, mw_from_i0, mw_from_vc
from sibyls.saxs.analysis.screening import screen_frames
from sibyls.saxs.analysis.subtraction import subtract_buffer
from sibyls.saxs.reduction.curves import Curve


def _curve(q, i, s=None, unit="1/cm"):
    q = np.asarray(q, float)
    i = np.asarray(i, float)
    return Curve(q, i, np.full_like(q, 0.01) if s is None else np.asarray(s, float), unit)


def test_constants_agree_with_the_simulator():
    assert standards.PROTEIN_I0_PER_MG_ML_KDA == physics.PROTEIN_I0_PER_MG_ML_KDA == K_PROTEIN
    # the simulated MALS: LS − baseline = MALS_PER_MG_ML_KDA·c·MW, RI = RI_PER_MG_ML·c
    assert standards.MALS_KDA_PER_V_PER_RIU == pytest.approx(
        physics.RI_PER_MG_ML / physics.MALS_PER_MG_ML_KDA
    )


def test_bad_inputs_are_refused_with_reasons():
    good = sample_frames(ellipsoid(20, 40), 2.0, 2, np.random.default_rng(0))
    with pytest.raises(AnalysisError, match="no frames given"):
        first_look_batch([], None, 1.0)
    with pytest.raises(AnalysisError, match="at least 3 are needed"):
        first_look_batch([_curve([], [])], None, 1.0)
    nan = Curve(good[0].q, np.where(np.arange(len(Q)) == 7, np.nan, good[0].intensity), good[0].sigma, "1/cm")
    with pytest.raises(
        AnalysisError, match=r"frames\[1\] has 1 non-finite intensity values \(first at index 7\)"
    ):
        first_look_batch([good[0], nan], None, 1.0)
    other_grid = good[1].restricted(0.01, 0.3)
    with pytest.raises(AnalysisError, match=r"frames\[1\] is on another q grid"):
        first_look_batch([good[0], other_grid], None, 1.0)
    arbitrary = Curve(good[1].q, good[1].intensity, good[1].sigma, "arbitrary")
    with pytest.raises(AnalysisError, match="intensity is in 'arbitrary'"):
        first_look_batch([good[0], arbitrary], None, 1.0)
    with pytest.raises(AnalysisError, match="not strictly increasing"):
        first_look_batch([_curve([0.1, 0.05, 0.2], [1, 1, 1])], None, 1.0)
    with pytest.raises(AnalysisError, match="sample name"):
        first_look_batch(good, None, 1.0, sample_name="../etc")
    with pytest.raises(AnalysisError, match="buffer is a list"):
        subtract_buffer(good[0], [good[1]])  # type: ignore[arg-type]


def test_average_propagates_sigma_and_refuses_bad_weights():
    q = np.linspace(0.01, 0.3, 50)
    frames = [_curve(q, np.full(50, v), np.full(50, 0.2)) for v in (1.0, 2.0, 3.0, 6.0)]
    avg = average_curves(frames)
    np.testing.assert_allclose(avg.intensity, 3.0)
    np.testing.assert_allclose(avg.sigma, 0.1)  # 0.2/√4
    weighted = average_curves(frames, weights=[1, 1, 1, 0])
    np.testing.assert_allclose(weighted.intensity, 2.0)
    np.testing.assert_allclose(weighted.sigma, 0.2 / np.sqrt(3))
    with pytest.raises(AnalysisError, match="3 weights for 4 frames"):
        average_curves(frames, weights=[1, 1, 1])
    with pytest.raises(AnalysisError, match="not all zero"):
        average_curves(frames, weights=[0, 0, 0, 0])


def test_subtraction_interpolates_another_grid_and_refuses_no_overlap():
    q = np.linspace(0.01, 0.3, 300)
    sample = _curve(q, 2.0 + q, np.full_like(q, 0.03))
    bq = np.linspace(0.005, 0.2, 157)
    buffer = _curve(bq, 1.0 + bq, np.full_like(bq, 0.04))
    sub = subtract_buffer(sample, buffer)
    assert sub.q[0] == pytest.approx(0.01) and sub.q[-1] <= 0.2
    np.testing.assert_allclose(sub.intensity, 1.0, atol=1e-12)
    np.testing.assert_allclose(sub.sigma, 0.05)  # 0.03 ⊕ 0.04
    far = _curve(np.linspace(0.5, 0.8, 50), np.ones(50))
    with pytest.raises(AnalysisError, match="does not overlap"):
        subtract_buffer(sample, far)
    with pytest.raises(AnalysisError, match="sample intensity is in '1/cm', buffer in 'arbitrary'"):
        subtract_buffer(sample, _curve(q, np.ones_like(q), unit="arbitrary"))


def test_mw_from_vc_matches_the_analytic_invariant():
    """For I = I0·exp(−q²Rg²/3), Vc = 2Rg²/3 exactly: MW = (Vc²/Rg)/0.1231 Da."""
    rg, i0 = 30.0, 0.05
    q = np.arange(0.005, 0.4, 0.0005)
    curve = _curve(q, i0 * np.exp(-((q * rg) ** 2) / 3), 1e-4 * i0 * np.ones_like(q))
    guinier = auto_guinier(curve)
    assert guinier.rg == pytest.approx(rg, rel=1e-3)
    estimate = mw_from_vc(curve, guinier)
    vc = 2 * rg**2 / 3
    assert estimate.parameters["vc_a2"] == pytest.approx(vc, rel=0.01)
    assert estimate.mw_kda == pytest.approx(vc**2 / rg / 0.1231 / 1000, rel=0.02)
    assert estimate.method == "vc"


def test_mw_from_i0_against_a_standard_in_arbitrary_units():
    """Off absolute scale: calibrate on BSA measured the same way, then weigh the sample."""
    rng = np.random.default_rng(4)
    counts_per_cm = 5000.0  # an uncalibrated detector: "arbitrary" = cm⁻¹ × this
    bsa = ellipsoid(20.0, 55.0)  # stands in for BSA: its own MW is the standard's
    sample = ellipsoid(20.0, 40.0)

    def measured(particle, c):
        i = (intensity(particle, c) + BUFFER_PER_CM) * counts_per_cm
        frames = [noisy(i / counts_per_cm, rng) for _ in range(5)]
        frames = [
            Curve(f.q, f.intensity * counts_per_cm, f.sigma * counts_per_cm, "arbitrary") for f in frames
        ]
        buffer = [
            Curve(b.q, b.intensity * counts_per_cm, b.sigma * counts_per_cm, "arbitrary")
            for b in buffer_frames(5, rng)
        ]
        return subtract_buffer(average_curves(frames), average_curves(buffer))

    g_bsa = auto_guinier(measured(bsa, 5.0))
    k = calibration_from_standard(g_bsa.i0, 5.0, bsa.mw_kda)
    assert k == pytest.approx(K_PROTEIN * counts_per_cm, rel=0.05)
    g = auto_guinier(measured(sample, 2.0))
    with pytest.raises(AnalysisError, match="not on absolute scale"):
        mw_from_i0(g, 2.0, "arbitrary")
    estimate = mw_from_i0(g, 2.0, "arbitrary", k)
    assert estimate.mw_kda == pytest.approx(sample.mw_kda, rel=0.10)
    assert estimate.parameters["calibration"] == "standard"
    with pytest.raises(AnalysisError, match="no concentration"):
        mw_from_i0(g, None, "1/cm")
    with pytest.raises(AnalysisError, match="positive"):
        mw_from_i0(g, -1.0, "1/cm")


def test_guinier_fallback_is_recorded():
    """A short curve (30 points, qRg ≤ 0.72) gives autoRg no region; the project's fit stands in."""
    q = np.linspace(0.01, 0.06, 30)
    i = 0.1 * np.exp(-((q * 12.0) ** 2) / 3)
    result = auto_guinier(_curve(q, i, i * 0.01))
    assert result.method == FALLBACK and "autoRg" in result.fallback_reason
    assert result.rg == pytest.approx(12.0, rel=1e-3) and result.i0 == pytest.approx(0.1, rel=1e-3)
    assert result.rg_sigma > 0 and result.quality is None
    normal = auto_guinier(
        _curve(Q, intensity(ellipsoid(20, 40), 2.0), intensity(ellipsoid(20, 40), 2.0) * 0.01)
    )
    assert normal.method == AUTORG
    with pytest.raises(AnalysisError, match="no Guinier fit"):
        auto_guinier(
            _curve(np.linspace(0.01, 0.2, 20), np.exp(-((np.linspace(0.01, 0.2, 20) * 30) ** 2) / 3))
        )


def test_cormap_false_alarms_stay_near_alpha():
    """Undamaged runs: CorMap at adjusted P 0.01 flags about 1 % of 10-frame runs (≤ 3 of 60)."""
    rng = np.random.default_rng(99)
    signal = intensity(ellipsoid(20, 40), 2.0) + BUFFER_PER_CM
    flagged = sum(
        screen_frames([noisy(signal, rng) for _ in range(10)]).first_rejected is not None for _ in range(60)
    )
    assert flagged <= 3


def test_screening_with_a_reference_set_and_q_window():
    rng = np.random.default_rng(8)
    frames = sample_frames(ellipsoid(20, 40), 2.0, 8, rng)
    result = screen_frames(frames, reference_frames=3, q_min=0.01, q_max=0.2)
    assert result.kept == list(range(8)) and result.reference_frames == 3
    assert result.q_min >= 0.01 and result.q_max <= 0.2
    with pytest.raises(AnalysisError, match="alpha"):
        screen_frames(frames, alpha=0)
    with pytest.raises(AnalysisError, match="q-window holds"):
        screen_frames(frames, q_min=0.3, q_max=0.301)


def test_products_refuse_a_bad_name(tmp_path):
    rng = np.random.default_rng(1)
    result = first_look_batch(sample_frames(ellipsoid(20, 40), 2.0, 3, rng), buffer_frames(3, rng), 2.0)
    with pytest.raises(AnalysisError, match="sample name"):
        write_products(result, tmp_path, "a/b")
    assert not list(tmp_path.iterdir())
