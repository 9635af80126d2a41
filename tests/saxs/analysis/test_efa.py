"""Evolving factor analysis of two co-eluting species: their windows, curves and molar masses."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic_saxs import MALS_LAG, RI_LAG, dumbbell, sec_run, sphere

from sibyls.saxs.analysis.averaging import average_curves
from sibyls.saxs.analysis.efa import evolving_factor_analysis, species_molar_masses
from sibyls.saxs.analysis.firstlook import first_look_sec
from sibyls.saxs.analysis.guinier import auto_guinier
from sibyls.saxs.analysis.inputs import AnalysisError
from sibyls.saxs.analysis.standards import MALS_KDA_PER_V_PER_RIU

DIMER, MONOMER = dumbbell(20.0, 40.0), sphere(20.0)


@pytest.mark.parametrize("seed", [1, 2])
def test_two_overlapping_species_separate_with_their_rg_and_mass(seed):
    # 9 frames apart with σ 4 frames: one merged peak with a shoulder.
    species = [(DIMER, 126.0, 4.0, 0.5), (MONOMER, 135.0, 4.0, 1.0)]
    frames, traces, conc = sec_run(species, 220, np.random.default_rng(seed))
    region = [i for i in range(len(frames)) if conc[i] > 0.01 * conc.max()]
    result, curves = evolving_factor_analysis(frames, average_curves(frames[:40]), region, 2)
    lags = (MALS_LAG + 1.5, RI_LAG - 1.5)  # a rough guess: the fit finds the delays
    result = species_molar_masses(result, traces["mals"] - 0.01, traces["ri"], MALS_KDA_PER_V_PER_RIU, lags)
    first, second = result.species
    assert abs(first.apex_frame - 126) <= 2 and abs(second.apex_frame - 135) <= 2
    assert first.mals_molar_mass_kda == pytest.approx(DIMER.mw_kda, rel=0.05)
    assert second.mals_molar_mass_kda == pytest.approx(MONOMER.mw_kda, rel=0.05)
    assert auto_guinier(curves[0]).rg == pytest.approx(DIMER.rg, rel=0.05)
    assert auto_guinier(curves[1]).rg == pytest.approx(MONOMER.rg, rel=0.05)
    assert result.residual_chi2 < 1.5


def test_the_sec_first_look_separates_a_shouldered_peak():
    species = [(DIMER, 126.0, 4.0, 0.5), (MONOMER, 135.0, 4.0, 1.0)]
    frames, traces, _ = sec_run(species, 260, np.random.default_rng(3))
    result = first_look_sec(frames, traces, sample_name="shoulder")
    assert "not-one-species" in result.flags
    (separation,) = result.separations
    masses = [s.mals_molar_mass_kda for s in separation.efa.species]
    assert masses == pytest.approx([DIMER.mw_kda, MONOMER.mw_kda], rel=0.10)
    assert len(result.curves.efa) == 2


def test_one_species_is_not_separated():
    frames, _, _ = sec_run([(MONOMER, 130.0, 4.0, 1.0)], 60, np.random.default_rng(0))
    with pytest.raises(AnalysisError, match="two or more"):
        evolving_factor_analysis(frames, average_curves(frames[:10]), list(range(120, 140)), 1)
