"""Simulated samples against their truth: shapes, hydration, concentration, damage, transmission, SEC."""

from __future__ import annotations

import math

import numpy as np
import pytest
from beamline_helpers import beam
from pydantic import ValidationError

from sibyls.devices.geometry import FULL_SHAPE, DetectorGeometry
from sibyls.devices.sim import physics
from sibyls.devices.sim.samples import (
    CATALOGUE,
    HYDRATION_SHELL_A,
    HYDRATION_SHELL_CONTRAST,
    PROTEIN_I0_PER_MG_ML_KDA,
    Q_GRID,
    ScatteringSample,
    catalogue_sample,
    guinier_rg,
)


def sample(**fields) -> ScatteringSample:
    return ScatteringSample.model_validate(
        {"sample_code": "s", "concentration_mg_ml": 2.0, "mw_kda": 50.0} | fields
    )


def guinier_fit(
    q: np.ndarray, intensity: np.ndarray, rg_guess: float, qrg_max: float = 1.0
) -> tuple[float, float]:
    """Rg, I(0) of a plain Guinier fit up to ``qrg_max`` (the analysis engineers' job, done simply)."""
    keep = (q > 0) & (q * rg_guess <= qrg_max)
    slope, intercept = np.polyfit(q[keep] ** 2, np.log(intensity[keep]), 1)
    return math.sqrt(-3.0 * slope), math.exp(intercept)


def shell_sphere_rg(r_in: float, r_out: float, inner: float, outer: float) -> float:
    """Rg of a sphere of contrast ``inner`` inside a shell of contrast ``outer`` (textbook moments)."""
    num = outer * r_out**5 + (inner - outer) * r_in**5
    den = outer * r_out**3 + (inner - outer) * r_in**3
    return math.sqrt(0.6 * num / den)


# --- shapes and their Rg ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fields", "analytic"),
    [
        ({"radius_a": 30.0}, math.sqrt(3 / 5) * 30.0),
        ({"shape": "ellipsoid", "radius_a": 20.0, "axial_ratio": 2.5}, math.sqrt((2 * 20**2 + 50**2) / 5)),
        ({"shape": "ellipsoid", "radius_a": 40.0, "axial_ratio": 0.3}, math.sqrt((2 * 40**2 + 12**2) / 5)),
        ({"shape": "cylinder", "radius_a": 12.0, "length_a": 150.0}, math.sqrt(12**2 / 2 + 150**2 / 12)),
        ({"shape": "dumbbell", "radius_a": 20.0, "separation_a": 50.0}, math.sqrt(0.6 * 20**2 + 25**2)),
        (
            {"shape": "core_shell", "radius_a": 30.0, "shell_thickness_a": 15.0, "core_contrast": 0.4},
            shell_sphere_rg(30.0, 45.0, 0.4, 1.0),
        ),
        (
            {"shape": "core_shell", "radius_a": 45.0, "shell_thickness_a": 21.0, "core_contrast": 0.0},
            shell_sphere_rg(45.0, 66.0, 0.0, 1.0),
        ),
    ],
)
def test_each_shape_has_its_textbook_rg_and_p0_of_one(fields, analytic):
    particle = sample(**fields)
    # The Rg comes from the form factor's low-q expansion, computed numerically.
    assert particle.rg_a == pytest.approx(analytic, rel=1e-4)
    assert particle.true_rg_a() == pytest.approx(analytic, rel=1e-4)
    assert particle.form_factor(np.array([0.0]))[0] == pytest.approx(1.0, abs=1e-12)
    assert particle.form_factor_table()[0] == pytest.approx(1.0, abs=1e-12)


def test_a_bead_model_has_the_rg_of_its_beads():
    beads = [(0.0, 0.0, 0.0), (10.0, 0.0, 0.0), (0.0, 12.0, 0.0), (3.0, 4.0, 20.0), (-8.0, 1.0, 5.0)]
    particle = sample(shape="beads", beads=beads, bead_radius_a=4.0)
    xyz = np.array(beads)
    analytic = math.sqrt(((xyz - xyz.mean(axis=0)) ** 2).sum(axis=1).mean() + 0.6 * 4.0**2)
    # The Debye sum runs over a distance histogram (0.25 Å bins, rms distance per bin).
    assert particle.true_rg_a() == pytest.approx(analytic, rel=1e-6)
    assert particle.rg_a == pytest.approx(analytic, rel=1e-5)
    assert particle.form_factor(np.array([0.0]))[0] == pytest.approx(1.0)


def test_the_hydration_shell_raises_rg_like_a_denser_water_layer():
    bare = sample(radius_a=20.0)
    wet = sample(radius_a=20.0, hydration_shell=True)
    expected = shell_sphere_rg(20.0, 20.0 + HYDRATION_SHELL_A, 1.0, HYDRATION_SHELL_CONTRAST)
    assert wet.true_rg_a() == pytest.approx(expected, rel=1e-4)
    assert wet.rg_a == bare.rg_a  # rg_a is the bare body's
    assert 1.02 < wet.true_rg_a() / bare.true_rg_a() < 1.10
    assert wet.true_i0_per_cm() == bare.true_i0_per_cm()  # I(0) = K·c·MW either way (P(0) = 1)


def test_polydispersity_gives_the_z_average_rg_and_smears_the_minima():
    mono = sample(radius_a=30.0)
    poly = sample(radius_a=30.0, polydispersity=0.15)
    assert poly.true_rg_a() > mono.true_rg_a() * 1.03
    assert poly.form_factor(np.array([0.0]))[0] == pytest.approx(1.0)
    first_minimum = 4.4934 / 30.0  # qR of a sphere's first zero
    assert mono.form_factor(np.array([first_minimum]))[0] < 1e-8
    assert poly.form_factor(np.array([first_minimum]))[0] > 1e-4


def test_every_catalogue_sample_has_consistent_truth():
    for name in CATALOGUE:
        s = catalogue_sample(name, concentration_mg_ml=3.0)
        assert s.true_i0_per_cm() == pytest.approx(PROTEIN_I0_PER_MG_ML_KDA * 3.0 * s.mw_kda)
        assert 13.0 < s.true_rg_a() < 62.0, name
        assert s.form_factor_table()[0] == pytest.approx(1.0), name
        # The truth Rg is what an ideal Guinier fit of the dilute form factor reads.
        assert guinier_rg(s.form_factor) == pytest.approx(s.true_rg_a(), rel=1e-6)
        # JSON round trip (how the IOC receives it) keeps the truth.
        again = ScatteringSample.model_validate_json(s.model_dump_json())
        assert again.true_rg_a() == pytest.approx(s.true_rg_a())
    assert catalogue_sample("lysozyme").true_rg_a() == pytest.approx(14.0, abs=0.5)
    assert catalogue_sample("cage").true_rg_a() == pytest.approx(58.0, abs=2.0)


# --- the JSON model ------------------------------------------------------------------------------
def test_old_sphere_samples_stay_valid():
    s = ScatteringSample(sample_code="GluRS_1", rg_a=30.0, concentration_mg_ml=5.0, mw_kda=54.0)
    assert s.shape == "sphere"
    assert s.true_rg_a() == pytest.approx(30.0, rel=1e-6)
    assert ScatteringSample(sample_code="b", kind="buffer").true_i0_per_cm() == 0.0


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"shape": "ellipsoid", "radius_a": 20.0, "axial_ratio": 2.0, "rg_a": 30.0}, "rg_a"),
        ({"radius_a": 20.0, "rg_a": 20.0}, "rg_a"),
        ({"shape": "cylinder", "radius_a": 10.0}, "length_a"),
        ({"shape": "sphere", "rg_a": 20.0, "length_a": 50.0}, "length_a"),
        (
            {"shape": "beads", "beads": [(0.0, 0.0, 0.0)], "bead_radius_a": 3.0, "hydration_shell": True},
            "hydration",
        ),
        (
            {"shape": "core_shell", "radius_a": 30.0, "shell_thickness_a": 1.0, "core_contrast": -2.0},
            "core_contrast",
        ),
        ({"shape": "curve", "curve_file": "/nonexistent/curve.dat"}, "curve_file"),
        ({"shape": "mixture", "species": [{"rg_a": 20.0, "mw_kda": 50.0, "mass_fraction": 0.5}]}, "species"),
        ({"shape": "mixture", "species": [{"shape": "mixture", "mass_fraction": 1.0}]}, "species"),
        (
            {
                "shape": "mixture",
                "species": [{"rg_a": 20, "mass_fraction": 0.5}, {"rg_a": 30, "mass_fraction": 0.5}],
            },
            "species.0.mw_kda",
        ),
        (
            {
                "shape": "mixture",
                "mw_kda": 99.0,
                "species": [
                    {"rg_a": 20, "mw_kda": 50, "mass_fraction": 0.5},
                    {"rg_a": 30, "mw_kda": 100, "mass_fraction": 0.5},
                ],
            },
            "mw_kda",
        ),
        ({"rg_a": 20.0, "polydispersity": 0.5}, "polydispersity"),
        ({"sample_code": "no spaces", "rg_a": 20.0}, "sample_code"),
    ],
)
def test_inconsistent_samples_are_refused_naming_the_field(fields, named):
    with pytest.raises(ValidationError) as info:
        sample(**fields)
    assert named in str(info.value)


def test_a_given_rg_that_agrees_with_the_dimensions_is_accepted():
    derived = sample(shape="cylinder", radius_a=12.0, length_a=150.0).rg_a
    assert sample(shape="cylinder", radius_a=12.0, length_a=150.0, rg_a=derived * 1.004).rg_a == derived


# --- absolute scale, concentration, damage -------------------------------------------------------
def test_truth_i0_is_k_c_mw_and_the_simulated_curve_starts_there():
    s = sample(rg_a=25.0, mw_kda=66.0, concentration_mg_ml=4.0, second_virial_mol_ml_g2=0.0)
    assert s.true_i0_per_cm() == pytest.approx(PROTEIN_I0_PER_MG_ML_KDA * 4.0 * 66.0)
    assert s.intensity_table()[0] == pytest.approx(s.true_i0_per_cm())


def test_a_concentrated_sample_reads_a_little_smaller():
    def apparent(c: float) -> tuple[float, float]:
        s = catalogue_sample("BSA", concentration_mg_ml=c)
        b = s.structure_factor_strength()
        exact = lambda q: s.form_factor(q) / (1.0 + b * s.form_factor(q)) * (1.0 + b)  # noqa: E731
        assert guinier_rg(exact) == pytest.approx(s.apparent_rg_a(), rel=1e-6)
        rg, i0 = guinier_fit(Q_GRID, s.intensity_table(), s.true_rg_a())
        return rg, i0 / c

    rg_1, i0_1 = apparent(1.0)
    rg_10, i0_10 = apparent(10.0)
    assert rg_10 < rg_1 and i0_10 < i0_1
    assert 0.005 < 1.0 - rg_10 / rg_1 < 0.03  # realistic but small
    bsa = catalogue_sample("BSA", concentration_mg_ml=10.0)
    assert bsa.apparent_i0_per_cm() == pytest.approx(bsa.intensity_table()[0])


def test_damage_starts_at_its_dose_and_grows_with_it():
    s = catalogue_sample("lysozyme", concentration_mg_ml=5.0, damage_dose_gy=2000.0)
    doses = [0.0, 1000.0, 2000.0, 3000.0, 6000.0, 12000.0, 24000.0]
    fractions = [s.aggregate_fraction(d) for d in doses]
    assert fractions[:3] == [0.0, 0.0, 0.0]
    assert all(b > a for a, b in zip(fractions[2:], fractions[3:], strict=False))
    i0 = [s.intensity_table(d)[0] for d in doses]
    rg = [guinier_fit(Q_GRID, s.intensity_table(d), 14.0)[0] for d in doses]
    assert i0[0] == i0[2] and rg[0] == rg[2]
    assert all(b > a for a, b in zip(i0[2:], i0[3:], strict=False))
    assert all(b > a for a, b in zip(rg[2:], rg[3:], strict=False))
    assert i0[3] / i0[0] > 1.02  # 1 kGy past the threshold already shows
    buffer = ScatteringSample(sample_code="b", kind="buffer", damage_dose_gy=0.0)
    assert buffer.aggregate_fraction(1e6) == 0.0
    assert catalogue_sample("lysozyme").aggregate_fraction(1e6) == 0.0  # no threshold: no damage


def test_frames_of_a_damaged_series_differ_and_the_dose_rate_is_kgy_per_second():
    s = catalogue_sample("lysozyme", concentration_mg_ml=5.0, damage_dose_gy=500.0)
    geometry = DetectorGeometry(binning=8)
    state = beam(s)
    assert 2000.0 < state.dose_rate_gy_s < 8000.0
    exposure = 0.2
    frames = [
        physics.expected_counts(geometry, beam(s, dose_gy=i * state.dose_rate_gy_s * exposure), exposure)
        for i in range(4)
    ]
    low_q = geometry.q_map() < 0.03
    totals = [f[low_q].sum() for f in frames]
    # Frame 0 ends at ~850 Gy but is taken at its mid-exposure dose (~420 Gy): still undamaged.
    undamaged = physics.expected_counts(
        geometry, beam(s.model_copy(update={"damage_dose_gy": None})), exposure
    )
    assert totals[0] == pytest.approx(undamaged[low_q].sum(), rel=1e-12)
    assert all(b > a * 1.001 for a, b in zip(totals, totals[1:], strict=False))


# --- transmission and solvent ------------------------------------------------------------------
def test_transmissions_are_realistic_and_a_sample_absorbs_a_little_more():
    buffer = ScatteringSample(sample_code="b", kind="buffer")
    protein = sample(rg_a=20.0, concentration_mg_ml=10.0)
    assert physics.liquid_transmission(buffer) == pytest.approx(0.55)
    assert physics.liquid_transmission(protein) == pytest.approx(0.55 * 0.998)
    assert beam(buffer).transmission == pytest.approx(0.55 * physics.EMPTY_CELL_TRANSMISSION)
    assert beam(None).transmission == pytest.approx(physics.EMPTY_CELL_TRANSMISSION)
    assert (
        physics.water_transmission(15.0) > physics.water_transmission(11.0) > physics.water_transmission(9.0)
    )
    # The beamstop diode follows what is in the cell.
    ratio = beam(protein).transmission / beam(buffer).transmission
    rng = np.random.default_rng(0)
    diode = [physics.bs_diode_counts(beam(x), 1000.0, rng) for x in (protein, buffer)]
    assert diode[0] / diode[1] == pytest.approx(ratio, abs=3e-4)


def test_the_sample_displaces_buffer():
    protein = sample(rg_a=20.0, concentration_mg_ml=10.0)
    buffer = protein.with_concentration(0.0)
    own = physics.profile_per_cm(protein, True) - protein.intensity_table() * physics.CAPILLARY_THICKNESS_CM
    solvent = physics.profile_per_cm(buffer, True) - own
    expected = physics.WATER_I0_PER_CM * 10.0e-3 * 0.74 * physics.CAPILLARY_THICKNESS_CM
    assert np.allclose(solvent, expected)


# --- geometry: q-range and polarisation -------------------------------------------------------
def test_default_geometry_gives_the_sibyls_q_range():
    geometry = DetectorGeometry()
    edge_mm = physics.BEAMSTOP_RADIUS_MM
    q_min = 4 * math.pi * math.sin(math.atan(edge_mm / geometry.distance_mm) / 2) / geometry.wavelength_a
    assert q_min <= 0.012
    rows, cols = FULL_SHAPE
    nearest_edge_px = min(
        geometry.beam_center_x,
        cols - 1 - geometry.beam_center_x,
        geometry.beam_center_y,
        rows - 1 - geometry.beam_center_y,
    )
    r = nearest_edge_px * geometry.pixel_size_mm
    q_full = 4 * math.pi * math.sin(math.atan(r / geometry.distance_mm) / 2) / geometry.wavelength_a
    # At the published 2105 mm a complete ring reaches 0.336 Å⁻¹ (the detector is 1475 px wide);
    # at least half of the 0.4 Å⁻¹ ring is on the detector.
    assert 0.33 <= q_full <= 0.5
    q = geometry.q_map()
    ring = np.abs(q - 0.4) < 0.002
    radius = geometry.q_to_radius_mm(0.4) / geometry.pixel_size_mm
    assert ring.sum() > 0.45 * 2 * math.pi * radius * (0.004 * radius / 0.4)


def test_frames_carry_polarisation_and_solid_angle():
    geometry = DetectorGeometry(binning=4)
    counts = physics.expected_counts(geometry, beam(ScatteringSample(sample_code="b", kind="buffer")), 1.0)
    response = geometry.solid_angle() * geometry.polarization()
    flat = counts / response  # what is left depends on q only
    q = geometry.q_map()
    ring = np.abs(q - 0.3) < 0.002
    assert flat[ring].std() / flat[ring].mean() < 1e-3
    polarization = geometry.polarization()[ring]
    most, least = np.argmax(polarization), np.argmin(polarization)
    # Small at SAXS angles (~0.3 % at 0.3 Å⁻¹) but there: pixels across the polarisation plane get more.
    assert counts[ring][most] / counts[ring][least] > 1.002
    assert counts[ring][most] / counts[ring][least] == pytest.approx(
        polarization[most] / polarization[least], rel=5e-4
    )
    # Normalised by flux, time, transmission and each pixel's response, sample − buffer is the
    # particles' absolute scattering less the buffer they displace (what the reduction must recover).
    protein = sample(rg_a=25.0, concentration_mg_ml=5.0)
    normalised = [
        physics.expected_counts(geometry, state, 1.0) / (state.flux * state.transmission * response)
        for state in (beam(protein), beam(protein.with_concentration(0.0)))
    ]
    particles = np.interp(q, Q_GRID, protein.intensity_table()) - physics.WATER_I0_PER_CM * 5e-3 * 0.74
    assert np.allclose(
        normalised[0] - normalised[1], particles * physics.CAPILLARY_THICKNESS_CM, rtol=1e-6, atol=1e-12
    )


# --- SEC -----------------------------------------------------------------------------------------
def test_mals_over_ri_gives_the_molar_mass_exactly():
    for mw in (14.3, 66.5, 450.0):
        s = sample(rg_a=25.0, mw_kda=mw, concentration_mg_ml=5.0, elution_volume_ml=8.0)
        volume = 8.05
        mals = physics.mals_volts(s, volume + physics.MALS_OFFSET_ML)
        ri = physics.refractive_index_riu(s, volume + physics.RI_OFFSET_ML)
        assert physics.mals_molar_mass_kda(mals, ri) == pytest.approx(mw, rel=1e-9)
        assert ri == pytest.approx(0.185e-3 * physics.eluate_concentration(s, volume))


def test_a_monomer_dimer_mixture_elutes_as_two_species():
    mix = catalogue_sample("GluRS_dimer_mix", concentration_mg_ml=8.0)
    volumes = np.linspace(5.5, 11.0, 1101)
    uv = np.array([physics.uv280_mau(mix, v) for v in volumes])
    high = uv > physics.UV_BASELINE_MAU + 10.0  # well above the baseline (no rounding wiggles)
    peaks = [i for i in range(1, len(uv) - 1) if high[i] and uv[i] > uv[i - 1] and uv[i] >= uv[i + 1]]
    assert len(peaks) == 2
    dimer_peak, monomer_peak = (volumes[i] - physics.UV_OFFSET_ML for i in peaks)
    monomer, dimer = mix.species
    for volume, species in ((monomer_peak, monomer), (dimer_peak, dimer)):
        eluate = physics.eluate(mix, volume)
        assert eluate.concentration_mg_ml == pytest.approx(physics.eluate_concentration(mix, volume))
        molar = physics.mals_molar_mass_kda(
            physics.mals_volts(mix, volume + physics.MALS_OFFSET_ML),
            physics.refractive_index_riu(mix, volume + physics.RI_OFFSET_ML),
        )
        assert molar == pytest.approx(eluate.mw_kda)  # the weight average of what elutes there
        assert abs(eluate.true_rg_a() - species.true_rg_a()) < abs(eluate.true_rg_a() - mix.true_rg_a()) + 1.0
    assert physics.eluate(mix, monomer_peak).mw_kda < physics.eluate(mix, dimer_peak).mw_kda
    # The eluate scatters as the sum over its species at their concentrations.
    middle = physics.eluate(mix, (monomer_peak + dimer_peak) / 2)
    parts = physics.species_concentrations(mix, (monomer_peak + dimer_peak) / 2)
    ideal = middle.model_copy(update={"second_virial_mol_ml_g2": 0.0}).intensity_table()
    summed = sum(PROTEIN_I0_PER_MG_ML_KDA * c * p.mw_kda * p.form_factor_table() for p, c in parts)
    assert np.allclose(ideal, summed)


# --- a measured curve ---------------------------------------------------------------------------
@pytest.mark.parametrize("header", [True, False])
def test_a_measured_curve_is_a_sample(tmp_path, header):
    model = catalogue_sample("BSA")
    q = np.linspace(0.008, 0.45, 300)
    intensity = 123.0 * model.form_factor(q)
    lines = ["# BSA measured at SIBYLS (simulated)"]
    if header:
        lines += [f"# Rg = {model.true_rg_a():.4f}", "# I0 = 123.0", "# MW = 66.5"]
    lines += ["# q I sigma"] + [f"{a:.6e} {b:.6e} {0.01 * b:.6e}" for a, b in zip(q, intensity, strict=True)]
    path = tmp_path / "bsa.dat"
    path.write_text("\n".join(lines) + "\n")
    fields = {"shape": "curve", "curve_file": str(path)}
    s = (
        sample(**fields)
        if not header
        else ScatteringSample(sample_code="c", concentration_mg_ml=2.0, **fields)
    )
    # With a header the truth is the header's; without, a Guinier fit of the curve's start.
    assert s.true_rg_a() == pytest.approx(model.true_rg_a(), rel=1e-4 if header else 0.015)
    assert s.true_i0_per_cm() == pytest.approx(PROTEIN_I0_PER_MG_ML_KDA * 2.0 * s.mw_kda)
    assert s.mw_kda == (66.5 if header else 50.0)
    inside = (Q_GRID > 0.01) & (Q_GRID < 0.4)
    assert np.allclose(
        s.form_factor_table()[inside], model.form_factor(Q_GRID[inside]), rtol=0.02 if not header else 1e-3
    )
