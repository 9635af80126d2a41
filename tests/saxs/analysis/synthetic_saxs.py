"""Synthetic SAXS data with known truth for the first-look tests: analytic form factors (sphere,
ellipsoids and cylinders averaged over orientations, a two-sphere dumbbell, a Gaussian chain) on
absolute scale, turned into frames with Poisson counting noise on top of a buffer.

I(q) = c · MW · K · P(q) with K = 7.2e-4 cm⁻¹/(mg/mL·kDa) and MW from the particle volume at the
protein partial specific volume 0.73 cm³/g, so I(0)/c and Rg have exact true values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import j1

from sibyls.saxs.reduction.curves import Curve

K_PROTEIN = 7.2e-4  # the tests' own statement of the constant; test_standards compares both copies
DA_PER_A3 = 0.6022 / 0.73  # protein: 1 Å³ of particle holds 0.825 Da
Q = np.arange(0.008, 0.40, 0.0005)  # SIBYLS's published q-range, 0.5e-3 Å⁻¹ bins
BUFFER_PER_CM = 0.0163 + 0.002  # water + quartz walls
COUNTS_PER_CM_AT_Q01 = 2.0e6  # counts per (cm⁻¹) in the q = 0.1 Å⁻¹ bin per frame; ∝ q (ring pixels)
_MU, _MU_W = np.polynomial.legendre.leggauss(96)
_MU, _MU_W = 0.5 * (_MU + 1.0), 0.5 * _MU_W  # orientation cosine on [0, 1]


def sphere_amplitude(x: np.ndarray) -> np.ndarray:
    """Normalised sphere amplitude 3(sin x − x cos x)/x³ (→ 1 at x = 0)."""
    x = np.asarray(x, float)
    out = np.ones_like(x)
    nz = x > 1e-6
    out[nz] = 3.0 * (np.sin(x[nz]) - x[nz] * np.cos(x[nz])) / x[nz] ** 3
    return out


@dataclass(frozen=True)
class Particle:
    """A particle with its true Rg (Å), volume (Å³) and normalised form factor P(q)."""

    name: str
    rg: float
    volume: float
    kind: str
    dims: tuple[float, ...]

    @property
    def mw_kda(self) -> float:
        return self.volume * DA_PER_A3 / 1000.0

    def form(self, q: np.ndarray) -> np.ndarray:
        q = np.asarray(q, float)
        if self.kind == "sphere":
            (r,) = self.dims
            return sphere_amplitude(q * r) ** 2
        if self.kind == "ellipsoid":
            a, c = self.dims
            radius = np.sqrt(a**2 * (1 - _MU**2) + c**2 * _MU**2)
            return (sphere_amplitude(np.outer(q, radius)) ** 2) @ _MU_W
        if self.kind == "cylinder":
            r, length = self.dims
            sin_a = np.sqrt(1 - _MU**2)
            xr = np.maximum(np.outer(q, r * sin_a), 1e-9)
            xl = np.outer(q, length * _MU / 2.0)
            amp = 2.0 * j1(xr) / xr * np.sinc(xl / np.pi)
            return (amp**2) @ _MU_W
        if self.kind == "dumbbell":
            r, d = self.dims
            qd = np.maximum(q * d, 1e-9)
            return sphere_amplitude(q * r) ** 2 * (1.0 + np.sin(qd) / qd) / 2.0
        if self.kind == "chain":  # Debye function of a Gaussian chain: an unfolded protein
            x = (q * self.rg) ** 2
            return 2.0 * (np.expm1(-x) + x) / x**2
        raise ValueError(self.kind)


def sphere(r: float) -> Particle:
    return Particle(f"sphere_R{r:g}", float(np.sqrt(0.6) * r), 4 / 3 * np.pi * r**3, "sphere", (r,))


def ellipsoid(a: float, c: float) -> Particle:
    """Ellipsoid of revolution with semi-axes a, a, c."""
    return Particle(
        f"ellipsoid_{a:g}_{c:g}",
        float(np.sqrt((2 * a**2 + c**2) / 5)),
        4 / 3 * np.pi * a * a * c,
        "ellipsoid",
        (a, c),
    )


def cylinder(r: float, length: float) -> Particle:
    return Particle(
        f"cylinder_{r:g}_{length:g}",
        float(np.sqrt(r**2 / 2 + length**2 / 12)),
        np.pi * r**2 * length,
        "cylinder",
        (r, length),
    )


def dumbbell(r: float, d: float) -> Particle:
    """Two spheres of radius r, centres d apart (d ≥ 2r: touching or apart)."""
    return Particle(
        f"dumbbell_{r:g}_{d:g}",
        float(np.sqrt(0.6 * r**2 + d**2 / 4)),
        2 * 4 / 3 * np.pi * r**3,
        "dumbbell",
        (r, d),
    )


def chain(rg: float, mw_kda: float) -> Particle:
    return Particle(f"chain_{rg:g}", rg, mw_kda * 1000 / DA_PER_A3, "chain", ())


def intensity(particle: Particle, concentration_mg_ml: float, q: np.ndarray = Q) -> np.ndarray:
    """Absolute I(q) in cm⁻¹ of the particles alone."""
    return concentration_mg_ml * particle.mw_kda * K_PROTEIN * particle.form(q)


def counts_scale(q: np.ndarray = Q, exposure: float = 1.0) -> np.ndarray:
    """Counts per cm⁻¹ in each q bin of one frame."""
    return COUNTS_PER_CM_AT_Q01 * exposure * q / 0.1


def noisy(
    i_cm: np.ndarray,
    rng: np.random.Generator,
    q: np.ndarray = Q,
    exposure: float = 1.0,
    meta: dict | None = None,
) -> Curve:
    """One frame of ``i_cm`` (cm⁻¹, buffer included) with Poisson noise, back in cm⁻¹ with σ."""
    scale = counts_scale(q, exposure)
    counts = rng.poisson(i_cm * scale).astype(float)
    return Curve(q.copy(), counts / scale, np.sqrt(np.maximum(counts, 1.0)) / scale, "1/cm", None, meta or {})


def buffer_frames(n: int, rng: np.random.Generator, q: np.ndarray = Q) -> list[Curve]:
    return [noisy(np.full_like(q, BUFFER_PER_CM), rng, q, meta={"source": "buffer"}) for _ in range(n)]


def sample_frames(
    particle: Particle, concentration_mg_ml: float, n: int, rng: np.random.Generator, q: np.ndarray = Q
) -> list[Curve]:
    signal = intensity(particle, concentration_mg_ml, q) + BUFFER_PER_CM
    return [noisy(signal, rng, q) for _ in range(n)]


def damaged_frames(
    particle: Particle,
    concentration_mg_ml: float,
    n: int,
    onset: int,
    rate: float,
    rng: np.random.Generator,
    q: np.ndarray = Q,
) -> list[Curve]:
    """Frames where, from frame ``onset`` on (0-based), a growing mass fraction (``rate`` per frame)
    of the particles has aggregated into 20-mers (spheres of 20× the volume)."""
    aggregate = sphere((20 * particle.volume * 3 / (4 * np.pi)) ** (1 / 3))
    frames = []
    for i in range(n):
        f = 0.0 if i < onset else min(1.0, rate * (i - onset + 1))
        mono = intensity(particle, concentration_mg_ml * (1 - f), q)
        agg = concentration_mg_ml * f * 20 * particle.mw_kda * K_PROTEIN * aggregate.form(q)
        frames.append(noisy(mono + agg + BUFFER_PER_CM, rng, q))
    return frames


# Six protein-like particles, Rg 14-57 Å, none spherical: the Guinier law (qRg ≤ 1.3) holds for
# them within ~1.5 %. A homogeneous sphere (SPHERE) sits ~+2 % above its true Rg at qRg 1.3 and a
# long rod (L/D = 4) ~-5 %: the law's own error, tested apart.
PARTICLES = [
    ellipsoid(15.0, 24.0),
    ellipsoid(20.0, 40.0),
    dumbbell(20.0, 40.0),
    cylinder(20.0, 80.0),
    ellipsoid(55.0, 25.0),
    ellipsoid(85.0, 40.0),
]
SPHERE = sphere(18.2)


# SEC-SAXS-MALS: Gaussian elution peaks sampled once per frame; MALS and RI after the cell.
MALS_V_PER_MG_ML_KDA = 2.0e-4  # as the simulator's MALS_PER_MG_ML_KDA
RI_PER_MG_ML = 1.85e-4  # dn/dc · c, as the simulator's
MALS_LAG, RI_LAG = 3, 6  # frames from the SAXS cell to each detector


def sec_run(
    species: list[tuple[Particle, float, float, float]], n: int, rng: np.random.Generator, q: np.ndarray = Q
) -> tuple[list[Curve], dict[str, np.ndarray], np.ndarray]:
    """Frames and traces of a SEC run; ``species`` = (particle, apex frame, σ in frames, apex mg/mL).
    Returns the frames, the traces (uv, mals, ri, conc per SAXS frame) and the total concentration."""
    t = np.arange(n, dtype=float)
    conc = [c * np.exp(-0.5 * ((t - apex) / width) ** 2) for _, apex, width, c in species]
    forms = [intensity(p, 1.0, q) for p, *_ in species]
    frames = [
        noisy(BUFFER_PER_CM + sum(ci[i] * fi for ci, fi in zip(conc, forms, strict=True)), rng, q)
        for i in range(n)
    ]

    def delayed(values: np.ndarray, lag: int) -> np.ndarray:
        return np.concatenate([np.full(lag, values[0]), values[: n - lag]])

    ls = 0.01 + MALS_V_PER_MG_ML_KDA * sum(ci * p.mw_kda for ci, (p, *_) in zip(conc, species, strict=True))
    ri = RI_PER_MG_ML * sum(conc)
    traces = {
        "uv": sum(conc) + rng.normal(0, 1e-4, n),
        "mals": delayed(ls, MALS_LAG) + rng.normal(0, 2e-5, n),
        "ri": delayed(ri, RI_LAG) + rng.normal(0, 5e-8, n),
        "conc": sum(conc).copy(),
    }
    return frames, traces, sum(conc)
