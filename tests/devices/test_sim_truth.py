"""The simulator's stated P(r) and resolvable Dmax (devices/sim/truth.py) against its own form factors."""

from __future__ import annotations

import numpy as np
import pytest

from sibyls.devices.sim.samples import CATALOGUE, catalogue_sample
from sibyls.devices.sim.truth import pr_rg_a


def _transform(r: np.ndarray, p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """I(q)/I(0) = ∫P(r)·sin(qr)/(qr) dr of a normalised P(r)."""
    return (p[None, :] * np.sinc(q[:, None] * r[None, :] / np.pi)).sum(axis=1) / p.sum()


@pytest.mark.parametrize("name", list(CATALOGUE))
def test_pr_of_every_catalogue_sample_carries_its_rg_and_its_scattering(name):
    sample = catalogue_sample(name)
    r, p = sample.true_pr()
    assert p.sum() * (r[1] - r[0]) == pytest.approx(1.0)
    exact = CATALOGUE[name]["shape"] == "beads"
    assert pr_rg_a(r, p) == pytest.approx(sample.true_rg_a(), rel=0.001 if exact else 0.006)
    q = np.linspace(0.01, 0.25, 25)
    assert _transform(r, p, q) == pytest.approx(sample.form_factor(q), rel=0.02 if exact else 0.05, abs=2e-3)
    dmax = sample.resolvable_dmax_a()
    assert 0.8 * sample.true_dmax_a() < dmax <= sample.true_dmax_a()


def test_resolvable_dmax_is_none_beyond_the_measured_range():
    cage = catalogue_sample("cage")
    dmax = cage.resolvable_dmax_a()
    assert cage.resolvable_dmax_a(q_min=np.pi / (dmax + 1.0)) == pytest.approx(dmax)
    assert cage.resolvable_dmax_a(q_min=np.pi / (dmax - 5.0)) is None


def test_a_measured_curve_states_no_pr(tmp_path):
    path = tmp_path / "curve.dat"
    q = np.linspace(0.01, 0.3, 50)
    path.write_text("# Rg = 20\n# I0 = 1\n" + "\n".join(f"{a} {np.exp(-((a * 20) ** 2) / 3)}" for a in q))
    sample = catalogue_sample("lysozyme").model_validate(
        {
            "sample_code": "c",
            "shape": "curve",
            "curve_file": str(path),
            "mw_kda": 20,
            "concentration_mg_ml": 1,
        }  # fmt: skip
    )
    assert sample.true_pr() is None and sample.resolvable_dmax_a() is None
