"""SVD over a SEC peak: one species gives one significant component, two co-eluting species two."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic_saxs import dumbbell, sec_run, sphere

from sibyls.saxs.analysis.averaging import average_curves
from sibyls.saxs.analysis.components import peak_components
from sibyls.saxs.analysis.inputs import AnalysisError


def _components(species, seed):
    frames, _, conc = sec_run(species, 220, np.random.default_rng(seed))
    buffer = average_curves(frames[:40])
    peak = [i for i in range(len(frames)) if conc[i] > 0.25 * conc.max()]
    return peak_components(frames, buffer, peak)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_one_species_is_one_component(seed):
    result = _components([(sphere(20.0), 130.0, 7.0, 1.0)], seed)
    assert result.components == 1
    assert result.q_autocorrelation[0] > 0.9 and result.frame_autocorrelation[0] > 0.6
    assert result.frame_autocorrelation[1] < 0.6  # the next vector is noise


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_two_overlapping_species_are_two_components(seed):
    # A dimer-like dumbbell and a monomer-like sphere eluting 8 frames apart (one merged peak).
    result = _components([(dumbbell(20.0, 40.0), 126.0, 7.0, 0.5), (sphere(20.0), 134.0, 7.0, 1.0)], seed)
    assert result.components == 2


def test_too_few_frames_are_refused():
    frames, _, _ = sec_run([(sphere(20.0), 30.0, 3.0, 1.0)], 60, np.random.default_rng(0))
    with pytest.raises(AnalysisError, match="at least 4 frames"):
        peak_components(frames, average_curves(frames[:10]), [29, 30, 31])
