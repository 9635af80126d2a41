"""Physics of the simulated SIBYLS beamline: what is in the beam, how it scatters, how it elutes.

Scattering is computed in absolute units (cm⁻¹) for a 1.5 mm quartz capillary and turned into
photon counts from the flux, exposure, transmission and each pixel's solid angle.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from sibyls.devices.geometry import MASK_BEAMSTOP, MASK_GAP, DetectorGeometry, module_gap_mask

# The sample model lives in samples.py; these names stay importable from physics as before.
from sibyls.devices.sim.samples import CODE_PATTERN as CODE_PATTERN
from sibyls.devices.sim.samples import PARTIAL_SPECIFIC_VOLUME_ML_G, Q_GRID, Q_GRID_MAX, Particle
from sibyls.devices.sim.samples import PROTEIN_I0_PER_MG_ML_KDA as PROTEIN_I0_PER_MG_ML_KDA
from sibyls.devices.sim.samples import ScatteringSample as ScatteringSample
from sibyls.devices.sim.samples import sphere_form_factor as sphere_form_factor
from sibyls.metadata import rules

WELL_PATTERN = re.compile(rules.WELL_PATTERN)
FILE_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

FLUX_AT_500_MA = 2.0e12  # photons/s on the sample with both shutters open
NOMINAL_ENERGY_KEV = 11.0
CAPILLARY_THICKNESS_CM = 0.15
CAPILLARY_RADIUS_MM = 0.75
#: 1.5 mm of water at 11 keV (μ/ρ ≈ 4.0 cm²/g): exp(−0.6). Water's absorption goes as ~E⁻³.
WATER_TRANSMISSION = 0.55
EMPTY_CELL_TRANSMISSION = 0.95  # quartz walls only
#: A sample absorbs a little more than its buffer (protein and solutes): −0.2 % per 10 mg/mL.
SAMPLE_TRANSMISSION_LOSS_PER_MG_ML = 2.0e-4
WATER_I0_PER_CM = 0.0163  # water's forward scattering at 20 °C
CELL_FLAT_PER_CM = 0.002  # quartz walls
PARASITIC_PER_CM = 1.0e-7  # slit/window scattering, falls as q⁻³
# Ion chamber and beamstop photodiode are current-mode detectors read through voltage-to-frequency
# converters: their counts carry ~0.003 % shot noise at full beam, well below a frame's own, so a
# frame normalised by them is as good as its photon statistics (CorMap sees no false differences).
I0_CHAMBER_EFFICIENCY = 1.0e-3  # counts per incident photon
BS_DIODE_EFFICIENCY = 1.0e-4  # counts per transmitted photon
BEAM_SIGMA_MM = 0.3  # direct beam size at the beamstop (1 σ)
#: Irradiated area on the capillary (0.5 × 0.5 mm): with 2e12 ph/s at 11 keV and 45 % absorbed in
#: 1.5 mm of water (3.75e-7 kg) the liquid takes ~4.2 kGy/s — a static cell reaches the few kGy
#: at which sensitive proteins start to aggregate within the first second or two.
BEAM_AREA_MM2 = 0.25
KEV_TO_J = 1.602176634e-16
BEAMSTOP_RADIUS_MM = 2.2
BEAMSTOP_ARM_HALF_WIDTH_MM = 0.6
BEAMSTOP_NOMINAL_MM = (0.0, 0.0)  # beamstop X/Y that centres it on the direct beam
A280_PER_MG_ML = 1.0  # absorbance units per mg/mL for a 1 cm path (typical protein)


class PlateDefinition(BaseModel):
    """A 96-well plate as the HT robot knows it: which well holds what."""

    model_config = ConfigDict(extra="forbid")

    plate_id: str
    wells: dict[str, ScatteringSample] = Field(min_length=1)

    @field_validator("plate_id")
    @classmethod
    def _plate_id(cls, value: str) -> str:
        if not CODE_PATTERN.match(value):
            raise ValueError(f"plate_id {value!r} must use only A-Z a-z 0-9 _ . - (max 40)")
        return value

    @field_validator("wells")
    @classmethod
    def _well_names(cls, wells: dict[str, ScatteringSample]) -> dict[str, ScatteringSample]:
        bad = [w for w in wells if not WELL_PATTERN.match(w)]
        if bad:
            raise ValueError(f"well names must be A1-H12, got {', '.join(sorted(bad))}")
        return wells


class BeamState(BaseModel):
    """The instantaneous state of the beam and the cell that a detector or counter integrates."""

    ring_current_ma: float
    photon_shutter_open: bool
    fast_shutter_open: bool
    energy_kev: float
    contents: ScatteringSample | None  # None = empty, dry cell
    sample_offset_mm: float = 0.0  # sample stage X from the capillary axis
    beamstop_offset_mm: tuple[float, float] = (0.0, 0.0)
    dose_gy: float = 0.0  # dose the cell's contents absorbed before now (0 for a flowing eluate)

    @property
    def flux(self) -> float:
        """Photons/s reaching the sample."""
        if not (self.photon_shutter_open and self.fast_shutter_open):
            return 0.0
        return FLUX_AT_500_MA * max(self.ring_current_ma, 0.0) / 500.0

    @property
    def beam_on_capillary(self) -> bool:
        return abs(self.sample_offset_mm) <= CAPILLARY_RADIUS_MM

    @property
    def effective_contents(self) -> ScatteringSample | None:
        """What the beam actually goes through (nothing when the stage moved the capillary away)."""
        return self.contents if self.beam_on_capillary else None

    @property
    def liquid_transmission(self) -> float:
        """Transmission of the liquid alone: water at this energy, less for a concentrated sample."""
        if self.effective_contents is None:
            return 1.0
        return liquid_transmission(self.contents, self.energy_kev)

    @property
    def transmission(self) -> float:
        """Transmission of what is in the beam: walls × liquid (1 off the capillary)."""
        if not self.beam_on_capillary:
            return 1.0
        return EMPTY_CELL_TRANSMISSION * self.liquid_transmission

    @property
    def dose_rate_gy_s(self) -> float:
        """Dose (Gy/s) the liquid in the beam absorbs: photon energy absorbed / irradiated mass."""
        if self.effective_contents is None:
            return 0.0
        mass_kg = BEAM_AREA_MM2 * 1e-2 * CAPILLARY_THICKNESS_CM * 1.0e-3  # 1 g/cm³
        absorbed = self.flux * self.energy_kev * KEV_TO_J * (1.0 - self.liquid_transmission)
        return absorbed / mass_kg

    def beamstop_overlap(self) -> float:
        """Fraction of the direct beam the beamstop diode intercepts."""
        dx, dy = self.beamstop_offset_mm
        return math.exp(-(dx * dx + dy * dy) / (2.0 * BEAM_SIGMA_MM**2)) if BEAM_SIGMA_MM > 0 else 1.0


def water_transmission(energy_kev: float) -> float:
    """Transmission of 1.5 mm of water: :data:`WATER_TRANSMISSION` at 11 keV, absorption ∝ E⁻³."""
    return WATER_TRANSMISSION ** ((NOMINAL_ENERGY_KEV / max(energy_kev, 1.0)) ** 3)


def liquid_transmission(contents: ScatteringSample | None, energy_kev: float = NOMINAL_ENERGY_KEV) -> float:
    """Transmission of what fills the capillary (walls not included): its buffer, and its protein."""
    if contents is None:
        return 1.0
    concentration = 0.0 if contents.kind == "buffer" else (contents.concentration_mg_ml or 0.0)
    return water_transmission(energy_kev) * (1.0 - SAMPLE_TRANSMISSION_LOSS_PER_MG_ML * concentration)


def profile_per_cm(contents: ScatteringSample | None, on_capillary: bool, dose_gy: float = 0.0) -> np.ndarray:
    """dΣ/dΩ × thickness (sr⁻¹) on :data:`Q_GRID`: parasitic scattering, walls, the solvent (less the
    volume the protein displaces, 1 − c·v̄) and the particles (after absorbing ``dose_gy``)."""
    background = PARASITIC_PER_CM / np.maximum(Q_GRID, 1e-3) ** 3
    if not on_capillary:
        return background * CAPILLARY_THICKNESS_CM
    total = background + CELL_FLAT_PER_CM
    if contents is not None:
        if contents.kind == "buffer" or contents.concentration_mg_ml is None:
            total = total + WATER_I0_PER_CM
        else:
            displaced = contents.concentration_mg_ml * 1e-3 * PARTIAL_SPECIFIC_VOLUME_ML_G
            total = total + WATER_I0_PER_CM * (1.0 - displaced) + contents.intensity_table(dose_gy)
    return total * CAPILLARY_THICKNESS_CM


def scattering_per_cm(
    q: np.ndarray, contents: ScatteringSample | None, on_capillary: bool, dose_gy: float = 0.0
) -> np.ndarray:
    """Differential scattering cross-section × thickness (sr⁻¹) of what is in the beam at each q."""
    return np.interp(np.asarray(q, dtype=np.float64), Q_GRID, profile_per_cm(contents, on_capillary, dose_gy))


@lru_cache(maxsize=16)
def beamstop_shadow(geometry: DetectorGeometry, offset_mm: tuple[float, float]) -> np.ndarray:
    """Pixels hidden by the beamstop disc and the arm holding it (the arm runs to the top edge)."""
    rows, cols = geometry.shape
    b = geometry.binning
    px = geometry.pixel_size_mm
    y_mm = ((np.arange(rows) * b + (b - 1) / 2.0) - geometry.beam_center_y) * px - offset_mm[1]
    x_mm = ((np.arange(cols) * b + (b - 1) / 2.0) - geometry.beam_center_x) * px - offset_mm[0]
    disc = np.hypot(y_mm[:, None], x_mm[None, :]) <= BEAMSTOP_RADIUS_MM
    arm = (np.abs(x_mm)[None, :] <= BEAMSTOP_ARM_HALF_WIDTH_MM) & (y_mm[:, None] <= 0.0)
    shadow = disc | arm
    shadow.setflags(write=False)
    return shadow


def pixel_mask(geometry: DetectorGeometry, beamstop_offset_mm: tuple[float, float]) -> np.ndarray:
    """NeXus pixel_mask (uint32): bit 0 module gaps, bit 31 beamstop shadow."""
    mask = np.zeros(geometry.shape, dtype=np.uint32)
    mask[module_gap_mask(geometry.binning)] |= MASK_GAP
    mask[beamstop_shadow(geometry, tuple(beamstop_offset_mm))] |= np.uint32(MASK_BEAMSTOP)
    return mask


@lru_cache(maxsize=8)
def _pixel_lookup(geometry: DetectorGeometry) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pixel: the Q_GRID interval its q falls in, the fraction across it, and the pixel's response
    (solid angle × polarisation), so a frame's expected counts are one interpolation and a product."""
    step = Q_GRID[1] - Q_GRID[0]
    position = np.minimum(geometry.q_map(), Q_GRID_MAX) / step
    index = np.minimum(position.astype(np.intp), len(Q_GRID) - 2)
    fraction = position - index
    response = geometry.solid_angle() * geometry.polarization()
    for array in (index, fraction, response):
        array.setflags(write=False)
    return index, fraction, response


def expected_counts(geometry: DetectorGeometry, state: BeamState, exposure_s: float) -> np.ndarray:
    """Mean photon counts per pixel for one exposure (before Poisson noise, gaps or beamstop).

    flux × time × transmission × solid angle × polarisation × dΣ/dΩ·thickness at the pixel's q; the
    sample's radiation damage is taken at the dose it has absorbed half-way through the exposure.
    """
    flux = state.flux
    if flux <= 0.0 or exposure_s <= 0.0:
        return np.zeros(geometry.shape)
    dose = state.dose_gy + 0.5 * state.dose_rate_gy_s * exposure_s
    profile = profile_per_cm(state.effective_contents, state.beam_on_capillary, dose)
    profile *= flux * exposure_s * state.transmission
    index, fraction, response = _pixel_lookup(geometry)
    low = profile[index]
    counts = np.take(np.diff(profile), index)
    counts *= fraction
    counts += low
    counts *= response
    return counts


def simulate_frame(
    geometry: DetectorGeometry, state: BeamState, exposure_s: float, rng: np.random.Generator
) -> np.ndarray:
    """One PILATUS frame (int32): Poisson counts, -1 in module gaps, ~0 behind the beamstop."""
    mean = expected_counts(geometry, state, exposure_s)
    shadow = beamstop_shadow(geometry, tuple(state.beamstop_offset_mm))
    mean[shadow] *= 1e-4  # a little scatter off the beamstop edge
    frame = rng.poisson(mean).astype(np.int32)
    frame[module_gap_mask(geometry.binning)] = -1
    return frame


def i0_counts(state: BeamState, time_s: float, rng: np.random.Generator) -> float:
    """Counts of the upstream ion chamber over ``time_s``."""
    mean = state.flux * I0_CHAMBER_EFFICIENCY * time_s
    return float(rng.poisson(mean)) if mean > 0 else 0.0


def bs_diode_counts(state: BeamState, time_s: float, rng: np.random.Generator) -> float:
    """Counts of the photodiode in the beamstop over ``time_s`` (follows the sample's transmission)."""
    mean = state.flux * state.transmission * state.beamstop_overlap() * BS_DIODE_EFFICIENCY * time_s
    return float(rng.poisson(mean)) if mean > 0 else 0.0


# --- SEC: Shodex KW-803 (8 x 300 mm) ------------------------------------------------------------
COLUMN_VOID_ML = 5.5
COLUMN_TOTAL_ML = 12.0
PEAK_SIGMA_ML = 0.15  # ~15k plates at ~8 mL plus extra-column spread: monomer and dimer resolve
INJECTION_VOLUME_ML = 0.05
UV_OFFSET_ML = 0.02  # the UV cell sits just after the SAXS capillary
MALS_OFFSET_ML = 0.10
RI_OFFSET_ML = 0.20
UV_PATH_CM = 0.5
UV_BASELINE_MAU = 0.5
MALS_BASELINE_V = 0.01
MALS_PER_MG_ML_KDA = 2.0e-4  # volts of 90° light scattering per (mg/mL · kDa): ∝ c·M
DN_DC_ML_G = 0.185  # refractive index increment of a protein
RI_PER_MG_ML = DN_DC_ML_G * 1e-3  # dn/dc · c in RIU per mg/mL


def elution_volume_ml(particle: Particle) -> float:
    """Where a species elutes on a KW-803: its own calibrated volume, or log-linear in MW."""
    if particle.elution_volume_ml is not None:
        return particle.elution_volume_ml
    if particle.mw_kda is None:
        return COLUMN_TOTAL_ML
    # Calibrated from 670 kDa at 6.3 mL to 1.35 kDa at 11.0 mL.
    slope = (11.0 - 6.3) / (math.log10(670.0) - math.log10(1.35))
    volume = 6.3 + (math.log10(670.0) - math.log10(particle.mw_kda)) * slope
    return min(max(volume, COLUMN_VOID_ML), COLUMN_TOTAL_ML)


def _species(sample: ScatteringSample) -> list[tuple[Particle, float]]:
    """The species of an injected sample with their injected concentrations (mg/mL)."""
    if sample.kind == "buffer" or sample.concentration_mg_ml is None:
        return []
    if sample.shape == "mixture":
        return [(s, sample.concentration_mg_ml * s.mass_fraction) for s in sample.species or ()]
    return [(sample, sample.concentration_mg_ml)]


def _peak(concentration_mg_ml: float, centre_ml: float, eluted_ml: float) -> float:
    mass_mg = concentration_mg_ml * INJECTION_VOLUME_ML
    z = (eluted_ml - centre_ml) / PEAK_SIGMA_ML
    return mass_mg / (PEAK_SIGMA_ML * math.sqrt(2.0 * math.pi)) * math.exp(-0.5 * z * z)


def species_concentrations(sample: ScatteringSample, eluted_ml: float) -> list[tuple[Particle, float]]:
    """Each species of ``sample`` with its concentration (mg/mL) leaving the column after ``eluted_ml``."""
    return [(p, _peak(c, elution_volume_ml(p), eluted_ml)) for p, c in _species(sample)]


def eluate_concentration(sample: ScatteringSample, eluted_ml: float) -> float:
    """Protein concentration (mg/mL) leaving the column after ``eluted_ml`` of flow since injection."""
    return sum(c for _, c in species_concentrations(sample, eluted_ml))


def eluate(sample: ScatteringSample, eluted_ml: float) -> ScatteringSample:
    """What flows through the SAXS capillary after ``eluted_ml``: the species at their instantaneous
    concentrations (a mixture's mass fractions and weight-average MW follow), or buffer between peaks."""
    parts = species_concentrations(sample, eluted_ml)
    total = sum(c for _, c in parts)
    if sample.shape != "mixture" or total <= 1e-6:
        return sample.with_concentration(total)
    species = [p.model_copy(update={"mass_fraction": c / total}) for p, c in parts]
    mw = sum(s.mass_fraction * float(s.mw_kda or 0.0) for s in species)
    # Validated anew: the mixture's Rg follows from the eluting composition (the injected one's differs).
    fields = sample.model_dump(exclude_none=True, exclude={"rg_a", "species"})
    return type(sample).model_validate(
        {**fields, "species": [s.model_dump(exclude_none=True) for s in species],
         "concentration_mg_ml": total, "mw_kda": mw}
    )  # fmt: skip


def uv280_mau(sample: ScatteringSample | None, eluted_ml: float) -> float:
    """UV absorbance at 280 nm in mAU at the UV cell."""
    if sample is None:
        return UV_BASELINE_MAU
    c = eluate_concentration(sample, eluted_ml - UV_OFFSET_ML)
    return UV_BASELINE_MAU + 1000.0 * A280_PER_MG_ML * c * UV_PATH_CM


def mals_volts(sample: ScatteringSample | None, eluted_ml: float) -> float:
    """90° light scattering signal (V) of the MALS detector: baseline + K_LS·Σ c·M over the species."""
    if sample is None:
        return MALS_BASELINE_V
    parts = species_concentrations(sample, eluted_ml - MALS_OFFSET_ML)
    return MALS_BASELINE_V + MALS_PER_MG_ML_KDA * sum(c * float(p.mw_kda or 0.0) for p, c in parts)


def refractive_index_riu(sample: ScatteringSample | None, eluted_ml: float) -> float:
    """Differential refractive index (RIU) of the RI detector: dn/dc · c."""
    if sample is None:
        return 0.0
    return DN_DC_ML_G * 1e-3 * eluate_concentration(sample, eluted_ml - RI_OFFSET_ML)


def mals_molar_mass_kda(mals_v: float, ri_riu: float) -> float:
    """Weight-average molar mass (kDa) from a MALS and an RI reading of the same slice of eluate
    (signals aligned by the detectors' offsets): MW = (MALS − baseline)/RI × dn/dc / K_LS."""
    return (mals_v - MALS_BASELINE_V) / ri_riu * DN_DC_ML_G * 1e-3 / MALS_PER_MG_ML_KDA


def column_pressure_mpa(flow_ml_min: float) -> float:
    """Back-pressure of the KW-803 at a given flow (~3 MPa at 0.5 mL/min)."""
    return 6.0 * flow_ml_min
