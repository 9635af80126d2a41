"""The simulator's truth beyond Rg and I(0): the pair-distance distribution P(r) of every sample, and
the Dmax a measurement can resolve.

P(r) is what an indirect Fourier transform of a perfect curve would give, so a test can hold BIFT's
P(r), Rg and Dmax against it:

* **Bead models** exactly: the Debye sum the simulator scatters with is n spheres of one radius; the
  P(r) of two such spheres whose centres are d apart is the single sphere's own P(u) spread over
  |d − u| … d + u (density r/(2ud)), summed over the model's distance histogram (self pairs: P(u)).
* **Analytic bodies** (sphere, ellipsoid, cylinder, dumbbell, core-shell), hydration shell in at its
  contrast and a hollow core at its own: the same contrast map the form factor integrates, sampled on
  a scrambled Sobol point set (:data:`PR_POINTS` points inside) whose weighted pair distances are
  histogrammed. Its Rg agrees with the form factor's within ~0.5 %.
* **Mixtures**: the species' P(r), each normalised, weighted by their share of I(0).
* A size spread: P(r) of each size (r scaled) weighted like its scattering; a measured curve: none.

:func:`resolvable_dmax_a` is the distance holding :data:`RESOLVABLE_FRACTION` of P(r): where P(r)
ends as far as data can tell (the last 0.1 % — a hydration shell's tips at a third of the contrast —
sits below any curve's noise). None when it lies beyond π/q_min of the measured range (the data
cannot see that far).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from scipy.stats import qmc

from sibyls.devices.sim import samples as s

if TYPE_CHECKING:
    from sibyls.devices.sim.samples import Particle

#: Bin width (Å) of the P(r) the simulator states.
PR_BIN_A = 0.5
#: Points of an analytic body's contrast map (its P(r) sums their ~PR_POINTS²/2 pairs).
PR_POINTS = 3000
#: The fraction of P(r) a measurement resolves (the rest: the tails below any curve's noise).
RESOLVABLE_FRACTION = 0.999


def _inside(particle: Particle, xyz: np.ndarray, grow: float) -> np.ndarray:
    """How many times each point lies inside the particle's envelope grown by ``grow`` Å (a dumbbell's
    two domains count separately, as the form factor adds their amplitudes)."""
    x, y, z = xyz.T
    r = particle._radius()
    shape = particle.shape
    if shape in ("sphere", "core_shell"):
        outer = r + (particle.shell_thickness_a or 0.0 if shape == "core_shell" else 0.0) + grow
        return (x * x + y * y + z * z <= outer**2).astype(float)
    if shape == "ellipsoid":
        a, c = r + grow, r * (particle.axial_ratio or 1.0) + grow
        return ((x * x + y * y) / a**2 + z * z / c**2 <= 1.0).astype(float)
    if shape == "cylinder":
        half = (particle.length_a or 0.0) / 2.0 + grow
        return ((x * x + y * y <= (r + grow) ** 2) & (np.abs(z) <= half)).astype(float)
    if shape == "dumbbell":
        d = (particle.separation_a or 0.0) / 2.0
        rr = (r + grow) ** 2
        return (x * x + y * y + (z - d) ** 2 <= rr).astype(float) + (x * x + y * y + (z + d) ** 2 <= rr)
    raise ValueError(f"shape {shape} has no contrast map")


def _contrast(particle: Particle, xyz: np.ndarray) -> np.ndarray:
    """The excess scattering density at each point: body 1 (a core-shell's core its core_contrast), the
    hydration shell HYDRATION_SHELL_CONTRAST, solvent 0."""
    body = _inside(particle, xyz, 0.0)
    if particle.shape == "core_shell":
        core = (np.einsum("ij,ij->i", xyz, xyz) <= particle._radius() ** 2).astype(float)
        body = body + ((particle.core_contrast or 0.0) - 1.0) * core
    if particle.hydration_shell:
        shell = _inside(particle, xyz, s.HYDRATION_SHELL_A) - _inside(particle, xyz, 0.0)
        body = body + s.HYDRATION_SHELL_CONTRAST * shell
    return body


def _bounding_half_extents(particle: Particle) -> np.ndarray:
    g = s.HYDRATION_SHELL_A if particle.hydration_shell else 0.0
    r = particle._radius()
    shape = particle.shape
    if shape == "ellipsoid":
        return np.array([r + g, r + g, r * (particle.axial_ratio or 1.0) + g])
    if shape == "cylinder":
        return np.array([r + g, r + g, (particle.length_a or 0.0) / 2.0 + g])
    if shape == "dumbbell":
        return np.array([r + g, r + g, (particle.separation_a or 0.0) / 2.0 + r + g])
    outer = r + (particle.shell_thickness_a or 0.0 if shape == "core_shell" else 0.0) + g
    return np.array([outer, outer, outer])


def _edges(dmax: float) -> np.ndarray:
    return np.arange(0.0, dmax + 2.0 * PR_BIN_A, PR_BIN_A)


def _analytic_pr(particle: Particle) -> tuple[np.ndarray, np.ndarray]:
    half = _bounding_half_extents(particle)
    sobol = qmc.Sobol(d=3, scramble=True, seed=7)
    xyz = (sobol.random_base2(15) * 2.0 - 1.0) * half
    weight = _contrast(particle, xyz)
    keep = weight != 0.0
    xyz, weight = xyz[keep][:PR_POINTS], weight[keep][:PR_POINTS]
    edges = _edges(float(2.0 * np.linalg.norm(half)))
    hist = np.zeros(len(edges) - 1)
    for i in range(len(xyz) - 1):  # one row of pairs at a time: memory stays at n points
        d = np.linalg.norm(xyz[i + 1 :] - xyz[i], axis=1)
        hist += np.histogram(d, bins=edges, weights=weight[i] * weight[i + 1 :])[0]
    return 0.5 * (edges[1:] + edges[:-1]), hist


def _sphere_pr(u: np.ndarray, radius: float) -> np.ndarray:
    """The normalised P(u) of a homogeneous sphere (∫ = 1 over 0..2R)."""
    x = u / radius
    p = 3.0 * x**2 / radius * (1.0 - 0.75 * x + x**3 / 16.0)
    return np.where((u >= 0) & (u <= 2.0 * radius), p, 0.0)


def _bead_pr(particle: Particle) -> tuple[np.ndarray, np.ndarray]:
    distances, counts = s._bead_distance_histogram(tuple(particle.beads or ()))
    n = len(particle.beads or ())
    radius = float(particle.bead_radius_a or 0.0)
    edges = _edges(float(distances.max(initial=0.0)) + 2.0 * radius)
    r = 0.5 * (edges[1:] + edges[:-1])
    u = np.linspace(0.0, 2.0 * radius, 201)[1:]  # the sphere's own distances (0 carries no weight)
    du = u[1] - u[0]
    fu = _sphere_pr(u, radius) * du
    pr = n * _sphere_pr(r, radius) * PR_BIN_A  # self pairs
    for d, count in zip(distances, counts, strict=True):
        # |u + d| for an isotropic u of length u: uniform in r over |d − u| … d + u, density r/(2ud)
        inside = (r[:, None] >= np.abs(d - u)[None, :]) & (r[:, None] <= (d + u)[None, :])
        kernel = np.where(inside, r[:, None] / (2.0 * u[None, :] * d), 0.0)
        pr += count * (kernel @ fu) * PR_BIN_A
    return r, pr


def _particle_pr(particle: Particle) -> tuple[np.ndarray, np.ndarray]:
    if particle.shape == "beads":
        r, p = _bead_pr(particle)
    else:
        r, p = _analytic_pr(particle)
    p = p / (p.sum() * PR_BIN_A)
    if particle.polydispersity > 0.0:
        scales, weights = s._size_distribution(particle.polydispersity)
        grid = np.arange(0.0, r[-1] * scales.max() + PR_BIN_A, PR_BIN_A) + PR_BIN_A / 2.0
        p = sum(w * np.interp(grid / sc, r, p, right=0.0) / sc for sc, w in zip(scales, weights, strict=True))
        r = grid
    for array in (r, p):
        array.setflags(write=False)
    return r, p


def pair_distribution(particle: Particle) -> tuple[np.ndarray, np.ndarray] | None:
    """The sample's P(r): r (Å) and P(r) normalised to ∫P dr = 1 (I(0)-weighted over a mixture's
    species); None for a measured curve."""
    if particle.shape == "curve":
        return None
    if particle.shape == "mixture":
        parts = [(pair_distribution(sp), w) for sp, w in particle._species_weights()]  # type: ignore[attr-defined]
        if any(part is None for part, _ in parts):
            return None
        longest = max(float(part[0][-1]) for part, _ in parts)  # type: ignore[index]
        r = np.arange(PR_BIN_A / 2.0, longest + PR_BIN_A, PR_BIN_A)
        p = sum(w * np.interp(r, part[0], part[1], right=0.0) for part, w in parts)  # type: ignore[index]
        return r, p / (p.sum() * PR_BIN_A)
    key = particle.key()
    if key not in _PR_CACHE:
        if len(_PR_CACHE) >= 64:
            _PR_CACHE.clear()
        _PR_CACHE[key] = _particle_pr(particle)
    return _PR_CACHE[key]


_PR_CACHE: dict[str, tuple[np.ndarray, np.ndarray]] = {}


def pr_rg_a(r: np.ndarray, p: np.ndarray) -> float:
    """Rg (Å) of a P(r): Rg² = ∫r²P dr / (2∫P dr)."""
    return math.sqrt(float(np.sum(r * r * p) / (2.0 * np.sum(p))))


def resolvable_dmax_a(particle: Particle, q_min: float | None = None) -> float | None:
    """The distance (Å) holding :data:`RESOLVABLE_FRACTION` of P(r): the Dmax a measurement of the
    sample can tell; None for a measured curve, or when it lies beyond π/``q_min`` (Å⁻¹)."""
    pr = pair_distribution(particle)
    if pr is None:
        return None
    r, p = pr
    cumulative = np.cumsum(np.abs(p))
    cumulative /= cumulative[-1]
    index = int(np.searchsorted(cumulative, RESOLVABLE_FRACTION))
    dmax = float(r[min(index, len(r) - 1)] + PR_BIN_A / 2.0)
    if q_min is not None and q_min > 0 and dmax > math.pi / q_min:
        return None
    return dmax
