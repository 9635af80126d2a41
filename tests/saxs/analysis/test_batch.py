"""First look at batch runs against truth: synthetic particles with known Rg, I(0) and MW."""

from __future__ import annotations

import json

import numpy as np
import pytest
from synthetic_saxs import (
    PARTICLES,
    SPHERE,
    Q,
    buffer_frames,
    chain,
    damaged_frames,
    ellipsoid,
    intensity,
    sample_frames,
)

from sibyls.saxs.analysis.averaging import average_curves
from sibyls.saxs.analysis.firstlook import first_look_batch, write_products
from sibyls.saxs.analysis.flags import FLAG_DAMAGE, FLAG_FLEXIBLE, FLAG_NO_BUFFER
from sibyls.saxs.analysis.guinier import AUTORG, auto_guinier
from sibyls.saxs.analysis.subtraction import subtract_buffer
from sibyls.saxs.reduction.curves import read_dat

CONCENTRATION = 2.0


@pytest.fixture(scope="module")
def results():
    rng = np.random.default_rng(7)
    return {
        p.name: first_look_batch(
            sample_frames(p, CONCENTRATION, 10, rng),
            buffer_frames(10, rng),
            CONCENTRATION,
            sample_name=p.name,
            buffer_name="buff_" + p.name,
        )
        for p in PARTICLES
    }


def test_particles_span_the_required_range():
    rgs = [p.rg for p in PARTICLES]
    assert min(rgs) <= 15 and max(rgs) >= 55
    assert sum(p.kind != "sphere" for p in PARTICLES) >= 3


@pytest.mark.parametrize("particle", PARTICLES, ids=lambda p: p.name)
def test_rg_i0_mw_against_truth(results, particle):
    result = results[particle.name]
    g = result.guinier
    assert g.method == AUTORG and g.fallback_reason is None
    assert g.rg == pytest.approx(particle.rg, rel=0.02)
    assert g.i0 == pytest.approx(intensity(particle, CONCENTRATION, np.array([1e-9]))[0], rel=0.05)
    assert result.mw_i0.mw_kda == pytest.approx(particle.mw_kda, rel=0.10)
    assert result.mw_i0.method == "i0_over_c"
    assert 0 < g.qrg_min < g.qrg_max <= 1.35
    assert g.rg_sigma > 0 and g.i0_sigma > 0 and 0 < g.quality <= 1
    assert result.frames_kept == result.frames_total == 10  # undamaged: CorMap keeps every frame
    assert FLAG_DAMAGE not in result.flags and "aggregation" not in result.flags
    assert result.mw_vc is not None and result.mw_vc.mw_kda > 0


def test_homogeneous_sphere_shows_the_guinier_laws_own_error():
    """A homogeneous sphere's ln I bends down before qRg 1.3: autoRg sits ~+2 % above the truth."""
    rng = np.random.default_rng(5)
    result = first_look_batch(
        sample_frames(SPHERE, CONCENTRATION, 10, rng), buffer_frames(10, rng), CONCENTRATION
    )
    assert result.guinier.rg == pytest.approx(SPHERE.rg * 1.02, rel=0.01)
    assert result.mw_i0.mw_kda == pytest.approx(SPHERE.mw_kda, rel=0.05)


def test_damaged_series_frames_excluded_and_rg_from_kept_frames():
    particle = ellipsoid(20.0, 40.0)
    rng = np.random.default_rng(11)
    frames = damaged_frames(particle, CONCENTRATION, n=15, onset=6, rate=0.01, rng=rng)
    buffer = buffer_frames(10, rng)
    result = first_look_batch(frames, buffer, CONCENTRATION, sample_name="damaged")
    screening = result.screening
    assert FLAG_DAMAGE in result.flags
    assert screening.kept == list(range(screening.first_rejected))
    assert 6 <= screening.first_rejected <= 9  # from the onset, within a few frames of growth
    assert screening.rejected == list(range(screening.first_rejected, 15))
    assert all(p < 0.01 for p in screening.p_reference[screening.first_rejected :])
    assert result.guinier.rg == pytest.approx(particle.rg, rel=0.02)
    assert result.mw_i0.mw_kda == pytest.approx(particle.mw_kda, rel=0.10)
    # averaging every frame instead would have been wrong: the screening matters
    naive = auto_guinier(subtract_buffer(average_curves(frames), average_curves(buffer)))
    assert naive.rg > particle.rg * 1.03
    assert result.parameters["frames_rejected"] == [i + 1 for i in screening.rejected]


def test_kratky_tells_unfolded_from_globular(results):
    compact = results[ellipsoid(20.0, 40.0).name]
    assert not compact.kratky.flexible and FLAG_FLEXIBLE not in compact.flags
    assert compact.kratky.peak_qrg == pytest.approx(np.sqrt(3), abs=0.3)
    assert compact.kratky.peak_height == pytest.approx(1.104, abs=0.12)
    rng = np.random.default_rng(2)
    unfolded = chain(30.0, 50.0)
    result = first_look_batch(
        sample_frames(unfolded, 4.0, 10, rng), buffer_frames(10, rng), 4.0, sample_name="unfolded"
    )
    assert result.kratky.flexible and FLAG_FLEXIBLE in result.flags
    assert result.kratky.peak_qrg > 2.2


def test_without_buffer_the_result_says_so():
    rng = np.random.default_rng(3)
    result = first_look_batch(sample_frames(PARTICLES[1], CONCENTRATION, 5, rng), None, CONCENTRATION)
    assert FLAG_NO_BUFFER in result.flags
    assert result.curves.subtracted is None
    assert result.parameters["buffer_subtraction"] == "none"


def test_record_entries_for_lambda_ber(results):
    result = results[PARTICLES[2].name]
    metrics = result.quality_metrics()
    # The record's Rg is the standard Guinier Rg: autoRg's straight line over its range.
    rg = result.guinier.rg
    assert metrics["rg"] == {"numeric_value": pytest.approx(rg, abs=1e-3), "unit": "Angstroms"}
    assert metrics["i_zero"]["unit"] == "1/cm"
    assert metrics["signal_to_noise"]["numeric_value"] > 10
    run = result.workflow_run()
    assert run["workflow_type"] == "saxs_analysis"
    assert "freesas 2026.10.0" in run["additional_software"]
    params = run["processing_parameters"]
    for needle in (
        "cormap_alpha=0.01",
        "frames_kept=10",
        f"buffer=buff_{PARTICLES[2].name}",
        "q_range=0.008",
    ):
        assert needle in params
    assert run["started_at"] <= run["completed_at"]
    as_json = json.loads(json.dumps(result.to_dict()))
    assert as_json["guinier"]["rg"] == pytest.approx(result.guinier.rg)
    assert "curves" not in as_json


def test_products_in_sibyls_naming(results, tmp_path):
    result = results[PARTICLES[0].name]
    paths = write_products(result, tmp_path, "GluRS_1")
    names = sorted(p.name for p in paths)
    assert names == sorted(
        [f"GluRS_1_{i:05d}.dat" for i in range(1, 11)]
        + [
            "A_GluRS_1.dat",
            "A_S_GluRS_1.dat",
            "GluRS_1_Iq_plot.png",
            "GluRS_1_Guinier_plot.png",
            "GluRS_1_Kratky_plot.png",
            "GluRS_1_Pr_plot.png",
            "GluRS_1_pr.dat",
            "GluRS_1_firstlook.json",
        ]
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == names  # no temp files left
    subtracted = read_dat(tmp_path / "A_S_GluRS_1.dat")
    np.testing.assert_allclose(subtracted.intensity, result.curves.subtracted.intensity, rtol=1e-7)
    assert subtracted.unit == "1/cm"
    first = read_dat(tmp_path / "GluRS_1_00001.dat")
    np.testing.assert_allclose(first.q, Q, rtol=1e-7)
    header = (tmp_path / "A_S_GluRS_1.dat").read_text()
    assert f"Rg_A: {result.guinier.rg:.4f}" in header and "frames_kept: 10/10" in header
    pr = result.shape.pr
    assert f"Rg_Pr_A: {pr.rg:.4f}" in header and f"Dmax_A: {pr.dmax:.2f}" in header
    pr_file = np.loadtxt(tmp_path / "GluRS_1_pr.dat")
    np.testing.assert_allclose(pr_file[:, 0], pr.r, rtol=1e-4)
    # 4π∫P(r)dr is I(0), in the curve's unit (GNOM's normalisation).
    assert 4 * np.pi * np.trapezoid(pr_file[:, 1], pr_file[:, 0]) == pytest.approx(pr.i0, rel=0.02)
    for plot in ("Iq", "Guinier", "Kratky", "Pr"):
        png = f"GluRS_1_{plot}_plot.png"
        data = (tmp_path / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and 5_000 < len(data) < 200_000
    assert json.loads((tmp_path / "GluRS_1_firstlook.json").read_text())["sample_name"] == PARTICLES[0].name
    again = write_products(result, tmp_path / "again", "GluRS_1")
    for p in again:
        if p.suffix == ".png":
            assert p.read_bytes() == (tmp_path / p.name).read_bytes()  # deterministic
