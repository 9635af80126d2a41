"""Concentration series on synthetic curves with known dilute truth (issue 22 item 5)."""

from __future__ import annotations

import numpy as np
import pytest

from sibyls.saxs.analysis.flags import FLAG_SERIES_ATTRACTION, FLAG_SERIES_REPULSION
from sibyls.saxs.analysis.series import (
    SeriesError,
    SeriesMember,
    analyse_series,
    merge_curves,
    series_stem,
)
from sibyls.saxs.reduction.curves import Curve
from tests.saxs.analysis.synthetic_saxs import BUFFER_PER_CM, K_PROTEIN, Q, ellipsoid, noisy, sphere

PARTICLE = ellipsoid(20.0, 40.0)
CONCENTRATIONS = (1.0, 2.0, 5.0)
# B = 2·A2·M·c per mg/mL: 0.03 is A2 ≈ 3e-4 mol·mL/g² for this 20 kDa particle (S(0) = 0.87 at 5 mg/mL)
B_PER_MG_ML = 0.03


def subtracted(i_cm: np.ndarray, rng: np.random.Generator, exposure: float = 20.0) -> Curve:
    """A buffer-subtracted curve: the noisy sample frame minus the exact buffer level."""
    frame = noisy(i_cm + BUFFER_PER_CM, rng, Q, exposure=exposure)
    return Curve(frame.q, frame.intensity - BUFFER_PER_CM, frame.sigma, frame.unit)


def ideal(c: float) -> np.ndarray:
    return c * PARTICLE.mw_kda * K_PROTEIN * PARTICLE.form(Q)


def with_a2(c: float, b_per_mg_ml: float) -> np.ndarray:
    """I(q)·S(q) with S(q) ≈ 1/(1 + 2·A2·M·c·P(q))."""
    return ideal(c) / (1.0 + b_per_mg_ml * c * PARTICLE.form(Q))


def aggregating(c: float) -> np.ndarray:
    """A mass fraction 0.004·c of the particles sits in 20-mers."""
    aggregate = sphere((20 * PARTICLE.volume * 3 / (4 * np.pi)) ** (1 / 3))
    f = 0.004 * c
    return ideal(c * (1 - f)) + c * f * 20 * PARTICLE.mw_kda * K_PROTEIN * aggregate.form(Q)


def members(curves: dict[float, Curve]) -> list[SeriesMember]:
    return [SeriesMember(f"lyso_{c:g}mg", c, curve) for c, curve in curves.items()]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(22)


def test_repulsive_series_extrapolates_to_dilute_rg_and_is_flagged(rng):
    result = analyse_series(
        "lyso", members({c: subtracted(with_a2(c, B_PER_MG_ML), rng) for c in CONCENTRATIONS})
    )
    apparent = [p.rg for p in result.points]
    assert apparent[0] > apparent[-1]  # Rg(c) shrinks with repulsion
    assert abs(result.rg_extrapolated.intercept / PARTICLE.rg - 1) < 0.02
    assert abs(apparent[-1] / PARTICLE.rg - 1) > 0.04  # the highest c alone would miss by more
    assert result.dependence.flag == FLAG_SERIES_REPULSION
    assert result.dependence.relative_change < -result.dependence.tolerance
    i0c_truth = PARTICLE.mw_kda * K_PROTEIN
    assert abs(result.i0_over_c_extrapolated.intercept / i0c_truth - 1) < 0.03
    assert result.merged is not None and result.notes == []


def test_aggregating_series_is_flagged(rng):
    result = analyse_series("agg", members({c: subtracted(aggregating(c), rng) for c in CONCENTRATIONS}))
    assert result.dependence.flag == FLAG_SERIES_ATTRACTION
    assert result.points[-1].rg > result.points[0].rg
    assert any("not that of the free particle" in note for note in result.notes)


def test_ideal_series_has_no_flag(rng):
    result = analyse_series("ideal", members({c: subtracted(ideal(c), rng) for c in CONCENTRATIONS}))
    assert result.dependence.flag is None
    assert abs(result.dependence.relative_change) < result.dependence.tolerance
    assert abs(result.rg_extrapolated.intercept / PARTICLE.rg - 1) < 0.02


def test_merged_curve_takes_low_q_from_dilute_and_high_q_scaled_from_concentrated(rng):
    curves = {c: subtracted(with_a2(c, B_PER_MG_ML), rng) for c in (1.0, 5.0)}
    merged = analyse_series("lyso", members(curves)).merged
    assert merged is not None and (merged.low_code, merged.high_code) == ("lyso_1mg", "lyso_5mg")
    assert merged.scale == pytest.approx(1 / 5, rel=0.03)
    low = merged.curve.q < merged.q_split
    np.testing.assert_array_equal(merged.curve.intensity[low], curves[1.0].intensity[low])
    np.testing.assert_allclose(merged.curve.intensity[~low], merged.scale * curves[5.0].intensity[~low])


def test_stem_groups_sample_codes():
    assert [series_stem(s) for s in ("lyso_1mg", "lyso-2.5mgml", "lyso_5", "bsa")] == ["lyso"] * 3 + ["bsa"]


def test_one_concentration_is_a_named_error(rng):
    with pytest.raises(SeriesError, match=r"series 'lyso': 1 usable member"):
        analyse_series("lyso", members({2.0: subtracted(ideal(2.0), rng)}))


def test_missing_concentration_is_skipped_with_a_note(rng):
    given = members({c: subtracted(ideal(c), rng) for c in CONCENTRATIONS})
    given.append(SeriesMember("lyso_xmg", None, subtracted(ideal(3.0), rng)))
    result = analyse_series("lyso", given)
    assert len(result.points) == 3
    assert any("lyso_xmg" in note and "concentration" in note for note in result.notes)


def test_all_concentrations_missing_is_a_named_error(rng):
    given = [SeriesMember(f"lyso_{i}", None, subtracted(ideal(1.0), rng)) for i in range(3)]
    with pytest.raises(SeriesError, match="lyso_0: skipped, concentration is None"):
        analyse_series("lyso", given)


def test_member_without_guinier_fit_is_skipped_with_a_note(rng):
    given = members({c: subtracted(ideal(c), rng) for c in CONCENTRATIONS})
    flat = Curve(Q.copy(), np.zeros_like(Q), np.full_like(Q, 1e-4), "1/cm")
    given.append(SeriesMember("lyso_bad", 3.0, flat))
    result = analyse_series("lyso", given)
    assert [p.sample_code for p in result.points] == ["lyso_1mg", "lyso_2mg", "lyso_5mg"]
    assert any(note.startswith("lyso_bad: skipped") for note in result.notes)


def test_mismatched_q_grids_give_no_merge_but_a_note(rng):
    curves = {c: subtracted(ideal(c), rng) for c in CONCENTRATIONS}
    coarse = curves[5.0]
    curves[5.0] = Curve(coarse.q[::2], coarse.intensity[::2], coarse.sigma[::2], coarse.unit)
    result = analyse_series("lyso", members(curves))
    assert result.merged is None
    assert any("another q grid" in note for note in result.notes)
    with pytest.raises(SeriesError, match="lyso_5mg is on another q grid"):
        merge_curves(*members(curves)[::2], (0.1, 0.2))
