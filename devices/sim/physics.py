"""Physics of the simulated SIBYLS beamline: what is in the beam, how it scatters, how it elutes.

Scattering is computed in absolute units (cm⁻¹) for a 1.5 mm quartz capillary and turned into
photon counts from the flux, exposure, transmission and each pixel's solid angle.
"""

from __future__ import annotations

import math
import re
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sibyls.devices.geometry import MASK_BEAMSTOP, MASK_GAP, DetectorGeometry, module_gap_mask
from sibyls.metadata import rules

WELL_PATTERN = re.compile(rules.WELL_PATTERN)
CODE_PATTERN = re.compile(rules.CODE_PATTERN.removesuffix("*$") + f"{{0,{rules.CODE_MAX_LENGTH - 1}}}$")
FILE_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

FLUX_AT_500_MA = 2.0e12  # photons/s on the sample with both shutters open
CAPILLARY_THICKNESS_CM = 0.15
CAPILLARY_RADIUS_MM = 0.75
WATER_TRANSMISSION = 0.70  # 1.5 mm of water at ~11 keV
EMPTY_CELL_TRANSMISSION = 0.95  # quartz walls only
WATER_I0_PER_CM = 0.0163  # water's forward scattering at 20 °C
CELL_FLAT_PER_CM = 0.002  # quartz walls
PARASITIC_PER_CM = 1.0e-7  # slit/window scattering, falls as q⁻³
PROTEIN_I0_PER_MG_ML_KDA = 7.2e-4  # I(0)/(c·MW) for a typical protein in water (cm⁻¹)
I0_CHAMBER_EFFICIENCY = 1.0e-5  # counts per incident photon
BS_DIODE_EFFICIENCY = 1.0e-6  # counts per transmitted photon
BEAM_SIGMA_MM = 0.3  # direct beam size at the beamstop (1 σ)
BEAMSTOP_RADIUS_MM = 2.2
BEAMSTOP_ARM_HALF_WIDTH_MM = 0.6
BEAMSTOP_NOMINAL_MM = (0.0, 0.0)  # beamstop X/Y that centres it on the direct beam
A280_PER_MG_ML = 1.0  # absorbance units per mg/mL for a 1 cm path (typical protein)


class ScatteringSample(BaseModel):
    """What a well, a vial or the cell holds, as far as the X-rays are concerned.

    ``kind`` "buffer" is solvent only; "sample" adds particles of radius of gyration ``rg_a``
    at ``concentration_mg_ml`` with molecular weight ``mw_kda`` on top of the same buffer.
    """

    model_config = ConfigDict(extra="forbid")

    sample_code: str
    kind: Literal["buffer", "sample", "standard"] = "sample"
    rg_a: float | None = Field(default=None, gt=0, le=500, description="radius of gyration in Å")
    concentration_mg_ml: float | None = Field(default=None, gt=0, le=500)
    mw_kda: float | None = Field(default=None, gt=0, le=100_000)
    buffer: str = "buffer"
    elution_volume_ml: float | None = Field(default=None, gt=0, le=30, description="SEC peak position")

    @field_validator("sample_code")
    @classmethod
    def _code(cls, value: str) -> str:
        if not CODE_PATTERN.match(value):
            raise ValueError(
                f"{value!r} must start with a letter or digit and use only A-Z a-z 0-9 _ . - (max 40)"
            )
        return value

    @model_validator(mode="after")
    def _particles_need_size(self) -> ScatteringSample:
        if self.kind != "buffer":
            missing = [f for f in ("rg_a", "concentration_mg_ml", "mw_kda") if getattr(self, f) is None]
            if missing:
                raise ValueError(f"a {self.kind} needs {', '.join(missing)}")
        return self

    def with_concentration(self, concentration_mg_ml: float) -> ScatteringSample:
        """The same particles at another concentration (buffer when it drops to ~0)."""
        if concentration_mg_ml <= 1e-6 or self.kind == "buffer":
            return self.model_copy(update={"kind": "buffer", "concentration_mg_ml": None})
        return self.model_copy(update={"concentration_mg_ml": concentration_mg_ml})


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
    def transmission(self) -> float:
        if not self.beam_on_capillary:
            return 1.0
        return WATER_TRANSMISSION if self.contents is not None else EMPTY_CELL_TRANSMISSION

    def beamstop_overlap(self) -> float:
        """Fraction of the direct beam the beamstop diode intercepts."""
        dx, dy = self.beamstop_offset_mm
        return math.exp(-(dx * dx + dy * dy) / (2.0 * BEAM_SIGMA_MM**2)) if BEAM_SIGMA_MM > 0 else 1.0


def sphere_form_factor(q: np.ndarray, rg_a: float) -> np.ndarray:
    """Normalised form factor P(q) (P(0)=1) of a homogeneous sphere with radius of gyration ``rg_a``."""
    radius = rg_a * math.sqrt(5.0 / 3.0)
    x = np.asarray(q, dtype=np.float64) * radius
    out = np.ones_like(x)
    nz = x > 1e-6
    xs = x[nz]
    out[nz] = (3.0 * (np.sin(xs) - xs * np.cos(xs)) / xs**3) ** 2
    return out


def scattering_per_cm(q: np.ndarray, contents: ScatteringSample | None, on_capillary: bool) -> np.ndarray:
    """Differential scattering cross-section × thickness (sr⁻¹) of what is in the beam at each q."""
    q = np.asarray(q, dtype=np.float64)
    background = PARASITIC_PER_CM / np.maximum(q, 1e-3) ** 3
    if not on_capillary:
        return background * CAPILLARY_THICKNESS_CM
    total = background + CELL_FLAT_PER_CM
    if contents is not None:
        total = total + WATER_I0_PER_CM
        if contents.kind != "buffer":
            i0 = PROTEIN_I0_PER_MG_ML_KDA * contents.concentration_mg_ml * contents.mw_kda
            total = total + i0 * sphere_form_factor(q, contents.rg_a)
    return total * CAPILLARY_THICKNESS_CM


def beamstop_shadow(geometry: DetectorGeometry, offset_mm: tuple[float, float]) -> np.ndarray:
    """Pixels hidden by the beamstop disc and the arm holding it (the arm runs to the top edge)."""
    rows, cols = geometry.shape
    b = geometry.binning
    px = geometry.pixel_size_mm
    y_mm = ((np.arange(rows) * b + (b - 1) / 2.0) - geometry.beam_center_y) * px - offset_mm[1]
    x_mm = ((np.arange(cols) * b + (b - 1) / 2.0) - geometry.beam_center_x) * px - offset_mm[0]
    disc = np.hypot(y_mm[:, None], x_mm[None, :]) <= BEAMSTOP_RADIUS_MM
    arm = (np.abs(x_mm)[None, :] <= BEAMSTOP_ARM_HALF_WIDTH_MM) & (y_mm[:, None] <= 0.0)
    return disc | arm


def pixel_mask(geometry: DetectorGeometry, beamstop_offset_mm: tuple[float, float]) -> np.ndarray:
    """NeXus pixel_mask (uint32): bit 0 module gaps, bit 31 beamstop shadow."""
    mask = np.zeros(geometry.shape, dtype=np.uint32)
    mask[module_gap_mask(geometry.binning)] |= MASK_GAP
    mask[beamstop_shadow(geometry, beamstop_offset_mm)] |= np.uint32(MASK_BEAMSTOP)
    return mask


def expected_counts(geometry: DetectorGeometry, state: BeamState, exposure_s: float) -> np.ndarray:
    """Mean photon counts per pixel for one exposure (before Poisson noise, gaps or beamstop)."""
    flux = state.flux
    if flux <= 0.0 or exposure_s <= 0.0:
        return np.zeros(geometry.shape)
    q = geometry.q_map()
    contents = state.effective_contents
    return (
        flux
        * exposure_s
        * state.transmission
        * geometry.solid_angle()
        * scattering_per_cm(q, contents, state.beam_on_capillary)
    )


def simulate_frame(
    geometry: DetectorGeometry, state: BeamState, exposure_s: float, rng: np.random.Generator
) -> np.ndarray:
    """One PILATUS frame (int32): Poisson counts, -1 in module gaps, ~0 behind the beamstop."""
    mean = expected_counts(geometry, state, exposure_s)
    shadow = beamstop_shadow(geometry, state.beamstop_offset_mm)
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
PEAK_SIGMA_ML = 0.25
INJECTION_VOLUME_ML = 0.05
UV_OFFSET_ML = 0.02  # the UV cell sits just after the SAXS capillary
MALS_OFFSET_ML = 0.10
RI_OFFSET_ML = 0.20
UV_PATH_CM = 0.5
UV_BASELINE_MAU = 0.5
MALS_PER_MG_ML_KDA = 2.0e-4  # volts
RI_PER_MG_ML = 1.85e-4  # dn/dc · c in RIU


def elution_volume_ml(sample: ScatteringSample) -> float:
    """Where ``sample`` elutes on a KW-803: its own calibrated volume, or log-linear in MW."""
    if sample.elution_volume_ml is not None:
        return sample.elution_volume_ml
    if sample.mw_kda is None:
        return COLUMN_TOTAL_ML
    # Calibrated from 670 kDa at 6.3 mL to 1.35 kDa at 11.0 mL.
    slope = (11.0 - 6.3) / (math.log10(670.0) - math.log10(1.35))
    volume = 6.3 + (math.log10(670.0) - math.log10(sample.mw_kda)) * slope
    return min(max(volume, COLUMN_VOID_ML), COLUMN_TOTAL_ML)


def eluate_concentration(sample: ScatteringSample, eluted_ml: float) -> float:
    """Protein concentration (mg/mL) leaving the column after ``eluted_ml`` of flow since injection."""
    if sample.kind == "buffer" or sample.concentration_mg_ml is None:
        return 0.0
    mass_mg = sample.concentration_mg_ml * INJECTION_VOLUME_ML
    centre = elution_volume_ml(sample)
    z = (eluted_ml - centre) / PEAK_SIGMA_ML
    return mass_mg / (PEAK_SIGMA_ML * math.sqrt(2.0 * math.pi)) * math.exp(-0.5 * z * z)


def uv280_mau(sample: ScatteringSample | None, eluted_ml: float) -> float:
    """UV absorbance at 280 nm in mAU at the UV cell."""
    if sample is None:
        return UV_BASELINE_MAU
    c = eluate_concentration(sample, eluted_ml - UV_OFFSET_ML)
    return UV_BASELINE_MAU + 1000.0 * A280_PER_MG_ML * c * UV_PATH_CM


def mals_volts(sample: ScatteringSample | None, eluted_ml: float) -> float:
    """90° light scattering signal (V) of the MALS detector."""
    if sample is None or sample.mw_kda is None:
        return 0.01
    return (
        0.01 + MALS_PER_MG_ML_KDA * eluate_concentration(sample, eluted_ml - MALS_OFFSET_ML) * sample.mw_kda
    )


def refractive_index_riu(sample: ScatteringSample | None, eluted_ml: float) -> float:
    """Differential refractive index (RIU) of the RI detector."""
    if sample is None:
        return 0.0
    return RI_PER_MG_ML * eluate_concentration(sample, eluted_ml - RI_OFFSET_ML)


def column_pressure_mpa(flow_ml_min: float) -> float:
    """Back-pressure of the KW-803 at a given flow (~3 MPa at 0.5 mL/min)."""
    return 6.0 * flow_ml_min
