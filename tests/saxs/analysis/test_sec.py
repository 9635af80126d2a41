"""SEC-SAXS-MALS first look against truth: peak, buffer region, Rg across the peak, MALS molar mass,
two species for a monomer/dimer mixture, products and refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
from synthetic_saxs import MALS_LAG, RI_LAG, buffer_frames, dumbbell, ellipsoid, noisy, sec_run, sphere

from sibyls.saxs.analysis import sec
from sibyls.saxs.analysis.firstlook import first_look_sec, write_products
from sibyls.saxs.analysis.flags import FLAG_DAMAGED_BUFFER
from sibyls.saxs.analysis.inputs import AnalysisError
from sibyls.saxs.reduction.curves import read_dat

N = 300


@pytest.fixture(scope="module")
def monodisperse():
    particle = ellipsoid(20.0, 40.0)
    frames, traces, conc = sec_run([(particle, 150.0, 8.0, 1.0)], N, np.random.default_rng(21))
    return particle, conc, first_look_sec(frames, traces, sample_name="GluRS_1", concentration_trace="conc")


def test_monodisperse_peak_buffer_rg_and_mals(monodisperse):
    particle, conc, result = monodisperse
    assert len(result.species) == 1
    species = result.species[0]
    assert abs(species.apex_frame - 150) <= 2
    assert species.start_frame < 150 - 2 * 8 and species.end_frame > 150 + 2 * 8
    # buffer region: before the peak's foot, at baseline, many frames
    assert max(result.buffer_frames) < species.start_frame
    assert len(result.buffer_frames) >= 60 and conc[result.buffer_frames].max() < 1e-3
    # Rg across the peak is flat and right
    rgs = np.array([result.rg_per_frame[i] for i in species.fwhm_frames])
    assert np.all(np.isfinite(rgs))
    assert rgs.std() / rgs.mean() < 0.02
    assert np.all(np.abs(rgs / particle.rg - 1) < 0.05)
    assert species.rg_across_peak_rel_std < 0.02 and "rg-not-flat" not in result.flags
    assert species.averaged_frames == species.fwhm_frames
    assert species.guinier.rg == pytest.approx(particle.rg, rel=0.02)
    # MALS molar mass (traces delayed by their plumbing)
    assert result.trace_lags_frames["mals"] == MALS_LAG and result.trace_lags_frames["ri"] == RI_LAG
    assert species.mw_mals.method == "mals"
    assert species.mw_mals.mw_kda == pytest.approx(particle.mw_kda, rel=0.05)
    assert species.mw_i0.mw_kda == pytest.approx(particle.mw_kda, rel=0.10)
    assert result.main_species is species
    assert species.components.components == 1 and "not-one-species" not in result.flags


def test_monomer_dimer_mixture_shows_two_species():
    monomer = sphere(20.0)
    dimer = dumbbell(20.0, 40.0)  # two monomers touching
    frames, traces, _ = sec_run(
        [(dimer, 135.0, 7.0, 0.5), (monomer, 175.0, 7.0, 1.0)], N, np.random.default_rng(5)
    )
    result = first_look_sec(frames, traces, sample_name="mix")
    assert len(result.species) == 2
    first, second = result.species
    assert abs(first.apex_frame - 135) <= 3 and abs(second.apex_frame - 175) <= 3
    assert first.guinier.rg == pytest.approx(dimer.rg, rel=0.03)
    assert second.guinier.rg == pytest.approx(monomer.rg, rel=0.03)
    assert first.mw_mals.mw_kda == pytest.approx(dimer.mw_kda, rel=0.05)
    assert second.mw_mals.mw_kda == pytest.approx(monomer.mw_kda, rel=0.05)
    assert first.mw_mals.mw_kda / second.mw_mals.mw_kda == pytest.approx(2.0, rel=0.08)
    assert result.main_species is second
    # Resolved peaks: one species each by SVD over its FWHM.
    assert [sp.components.components for sp in result.species] == [1, 1]


def test_co_eluting_species_are_found_by_svd_and_flagged():
    """A dimer and a monomer 8 frames apart elute as one peak: SVD over its FWHM finds two species."""
    species = [(dumbbell(20.0, 40.0), 146.0, 7.0, 0.5), (sphere(20.0), 154.0, 7.0, 1.0)]
    frames, traces, _ = sec_run(species, N, np.random.default_rng(6))
    result = first_look_sec(frames, traces, sample_name="coelute")
    (species,) = result.species
    assert species.components.components == 2
    assert "not-one-species" in species.flags and "not-one-species" in result.flags


def test_inconsistent_buffer_frames_are_left_out():
    particle = ellipsoid(20.0, 40.0)
    rng = np.random.default_rng(8)
    frames, traces, _ = sec_run([(particle, 150.0, 8.0, 1.0)], N, rng)
    q = frames[0].q
    bubble = frames[40].intensity * (1.0 + 0.02 * np.exp(-q / 0.02))  # low-q excess: the chromatogram sees it
    frames[40] = noisy(bubble, rng, q)
    high_q = frames[60].intensity * np.where(
        q > 0.2, 1.01, 1.0
    )  # beyond the chromatogram's q: CorMap sees it
    frames[60] = noisy(high_q, rng, q)
    result = first_look_sec(frames, traces, sample_name="bubble")
    assert 40 not in result.buffer_frames and 60 not in result.buffer_frames
    assert FLAG_DAMAGED_BUFFER in result.flags
    assert any("frames 41 are off the baseline" in n for n in result.notes)
    assert any("CorMap finds frames 61 differ" in n for n in result.notes)
    assert len(result.buffer_frames) == result.buffer_candidates - 2
    assert result.species[0].guinier.rg == pytest.approx(particle.rg, rel=0.02)


def test_sec_record_entries_and_products(monodisperse, tmp_path):
    _, _, result = monodisperse
    assert result.quality_metrics()["rg"]["unit"] == "Angstroms"
    run = result.workflow_run()
    assert run["workflow_type"] == "saxs_analysis" and "scipy" in run["additional_software"]
    assert "collection_mode=sec_saxs" in run["processing_parameters"]
    assert "buffer_frames=" in run["processing_parameters"]
    paths = write_products(result, tmp_path)
    names = {p.name for p in paths}
    assert {
        "GluRS_1_00001.dat",
        f"GluRS_1_{N:05d}.dat",
        "A_buff_GluRS_1.dat",
        "A_S_GluRS_1_1.dat",
        "GluRS_1_SEC_chromatogram.png",
        "GluRS_1_1_Guinier_plot.png",
        "GluRS_1_1_Kratky_plot.png",
        "GluRS_1_firstlook.json",
    } <= names
    assert len(names) == N + 6
    assert {p.name for p in tmp_path.iterdir()} == names
    peak = read_dat(tmp_path / "A_S_GluRS_1_1.dat")
    np.testing.assert_allclose(peak.intensity, result.curves.species[0].intensity, rtol=1e-7)
    png = (tmp_path / "GluRS_1_SEC_chromatogram.png").read_bytes()
    assert png[:4] == b"\x89PNG" and len(png) > 5_000
    data = json.loads((tmp_path / "GluRS_1_firstlook.json").read_text())
    assert data["species"][0]["mw_mals"]["method"] == "mals"
    assert len(data["rg_per_frame"]) == N


def test_sec_refuses_bad_inputs():
    rng = np.random.default_rng(3)
    flat = first_look_sec(buffer_frames(60, rng))  # nothing eluted: all buffer, no species, said why
    assert flat.species == [] and flat.main_species is None and flat.quality_metrics() == {}
    assert any(note.startswith("no elution peak") for note in flat.notes) and len(flat.buffer_frames) >= 3
    particle = ellipsoid(20.0, 40.0)
    frames, traces, _ = sec_run([(particle, 150.0, 8.0, 1.0)], N, rng)
    with pytest.raises(AnalysisError, match="trace 'mals' has 299 values for 300 frames"):
        first_look_sec(frames, {"mals": traces["mals"][:-1]})
    with pytest.raises(AnalysisError, match="non-finite"):
        first_look_sec(frames, {"ri": np.where(np.arange(N) == 3, np.nan, traces["ri"])})
    with pytest.raises(AnalysisError, match="concentration trace 'uv280'"):
        first_look_sec(frames, traces, concentration_trace="uv280")
    early, _, _ = sec_run([(particle, 12.0, 4.0, 1.0)], 80, rng)
    with pytest.raises(AnalysisError, match="buffer frames before the first peak"):
        first_look_sec(early)
    with pytest.raises(AnalysisError, match="at least 20 frames"):
        first_look_sec(frames[:10])


def test_a_drained_cell_after_the_run_does_not_hide_the_buffer_region():
    """Frames after the HPLC run ended (the cell drained: far less scattering) must not move the
    buffer level: the frames before the peak decide it."""
    particle = ellipsoid(20.0, 40.0)
    rng = np.random.default_rng(9)
    frames, traces, _ = sec_run([(particle, 150.0, 8.0, 1.0)], N, rng)
    for i in range(N - 30, N):
        frames[i] = noisy(frames[i].intensity * 0.4, rng, frames[i].q)
    result = first_look_sec(frames, traces, sample_name="drained")
    assert len(result.buffer_frames) >= 100
    assert result.species[0].guinier.rg == pytest.approx(particle.rg, rel=0.02)


@pytest.mark.parametrize(
    ("stall_frames", "stall_factor", "jitter"),
    [(0, 1.0, 0.0), (5, 3.0, 0.0), (10, 3.0, 0.0), (0, 1.0, 1.0), (5, 3.0, 0.5)],
)
def test_mals_mass_aligns_ls_and_ri_by_eluted_volume_when_frames_fall_behind(
    stall_frames, stall_factor, jitter
):
    # Frames that fall behind the HPLC clock (a busy computer) are unevenly spaced in eluted volume;
    # the MALS and RI detectors sit 0.05 and 0.15 mL after the SAXS cell.
    rng = np.random.default_rng(7)
    steps = np.full(300, 0.5 / 60 * 5) * (1 + jitter * rng.random(300))  # 0.5 mL/min, 5 s frames
    steps[140 : 140 + stall_frames] *= stall_factor  # on the peak's rising flank
    volume = np.concatenate([[0.0], np.cumsum(steps)])[:300]
    mass = 54.0

    def peak(at):
        return np.exp(-0.5 * ((at - 6.2) / 0.15) ** 2)

    saxs, ls, ri = peak(volume), 0.02 + mass * peak(volume - 0.05), peak(volume - 0.15)
    fwhm = [i for i in range(300) if saxs[i] >= 0.5]
    lags = sec.trace_lag(saxs, ls), sec.trace_lag(saxs, ri)
    estimate = sec.mals_molar_mass(ls, ri, fwhm, *lags, list(range(50)), 1.0, volume)
    assert estimate.mw_kda == pytest.approx(mass, rel=0.01)
    if stall_frames:  # whole-frame lags alone put LS and RI on different slices of the peak
        by_frames = sec.mals_molar_mass(ls, ri, fwhm, *lags, list(range(50)), 1.0)
        assert abs(by_frames.mw_kda / mass - 1) > 0.015
