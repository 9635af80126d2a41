"""The consensus MW against the sheet's expected MW: flagged beyond 10 % (or its own 2σ)."""

from __future__ import annotations

from sibyls.saxs.analysis.mw import MwConsensus, mw_unexpected


def _consensus(mw: float, sigma: float) -> MwConsensus:
    methods = {"i0_over_c": mw}
    return MwConsensus(mw_kda=mw, mw_sigma_kda=sigma, spread_kda=0.0, methods=methods, disagreeing=[])


def test_within_ten_percent_is_expected_and_a_dimer_mix_is_not():
    assert mw_unexpected(_consensus(57.0, 2.5), 54.0) is None
    note = mw_unexpected(_consensus(70.2, 3.5), 54.0)
    assert note is not None and "+30%" in note and "54 kDa" in note


def test_a_loose_consensus_widens_the_tolerance_and_unknowns_are_not_judged():
    assert mw_unexpected(_consensus(64.0, 6.0), 54.0) is None  # 2σ = 12 kDa > 10 % of 54
    assert mw_unexpected(_consensus(64.0, 2.0), None) is None
    assert mw_unexpected(None, 54.0) is None
