"""The first look on the simulator's own samples (devices/sim/samples.py): hydrated ellipsoids, a
bead model, a rod, a dumbbell, a hollow cage, with the truth the simulator states."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic_saxs import BUFFER_PER_CM, Q, buffer_frames, noisy

from sibyls.devices.sim.samples import CATALOGUE, Q_GRID, catalogue_sample
from sibyls.saxs.analysis.firstlook import first_look_batch

NAMES = [name for name, fields in CATALOGUE.items() if fields["shape"] != "mixture"]
# autoRg's straight-line Rg meets the truth within 2 % where the particle's ln I stays straight to
# qRg 1.3; elongated and hollow ones bend (BSA −3 %, rod −6 %, cage +6 %), which the second-order Rg
# takes up.
STRAIGHT_GUINIER = {"lysozyme", "GluRS"}


@pytest.fixture(scope="module")
def looks():
    rng = np.random.default_rng(17)
    out = {}
    for name in NAMES:
        sample = catalogue_sample(name, concentration_mg_ml=2.0)
        signal = np.interp(Q, Q_GRID, sample.intensity_table()) + BUFFER_PER_CM
        frames = [noisy(signal, rng) for _ in range(10)]
        out[name] = (sample, first_look_batch(frames, buffer_frames(10, rng), 2.0, sample_name=name))
    return out


def test_catalogue_covers_the_acceptance_range():
    rgs = [catalogue_sample(n).true_rg_a() for n in NAMES]
    assert len(NAMES) >= 5 and min(rgs) <= 15 and max(rgs) >= 55
    assert sum(CATALOGUE[n]["shape"] != "sphere" for n in NAMES) >= 3


@pytest.mark.parametrize("name", NAMES)
def test_rg_and_mw_against_the_simulators_truth(looks, name):
    sample, result = looks[name]
    g = result.guinier
    truth = sample.apparent_rg_a()  # the truth at 2 mg/mL (second-virial effect included)
    # The cage (Rg 56 Å) has ~30 points in its Guinier range (q 0.008-0.023): its second-order Rg
    # scatters by ±1.2 % between noise draws (measured over repeats), so it gets 3 %.
    assert g.rg_second_order == pytest.approx(truth, rel=0.03 if name == "cage" else 0.02)
    assert g.rg_second_order_sigma < 0.015 * truth
    if name in STRAIGHT_GUINIER:
        assert g.rg == pytest.approx(truth, rel=0.02)
    assert result.mw_i0.mw_kda == pytest.approx(sample.mw_kda, rel=0.10)
    assert g.i0 == pytest.approx(sample.apparent_i0_per_cm(), rel=0.10)
    assert result.frames_kept == 10


def test_radiation_damage_of_the_simulator_is_screened_out():
    """Frames after the damage dose carry the simulator's aggregates: CorMap stops there."""
    sample = catalogue_sample("GluRS", concentration_mg_ml=2.0, damage_dose_gy=2000.0)
    rng = np.random.default_rng(4)
    doses = np.arange(15) * 400.0  # Gy absorbed by the start of each frame
    frames = [noisy(np.interp(Q, Q_GRID, sample.intensity_table(d)) + BUFFER_PER_CM, rng) for d in doses]
    result = first_look_batch(frames, buffer_frames(10, rng), 2.0, sample_name="GluRS_dose")
    onset = int(np.argmax(doses > 2000.0))
    assert "damage" in result.flags
    assert onset <= result.screening.first_rejected <= onset + 4
    assert result.guinier.rg_second_order == pytest.approx(sample.apparent_rg_a(), rel=0.02)
    assert result.guinier.rg == pytest.approx(sample.apparent_rg_a(), rel=0.02)
