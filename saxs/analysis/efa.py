"""Evolving factor analysis (EFA) of co-eluting SEC species: where each one elutes and its own curve
(Maeder 1987; for SEC-SAXS, Meisburger et al. 2016 and BioXTAS RAW).

When SVD (:mod:`sibyls.saxs.analysis.components`) finds n > 1 species across overlapping peaks, a
user gets each species' concentration profile, its own buffer-subtracted curve (from which its Rg,
I(0) and MW follow as for any curve) and, with MALS and RI traces, its molar mass:

* **Windows**: the singular values of the frames seen so far, growing forward and backward over the
  region. The k-th species starts where the forward k-th singular value rises above the noise
  (:data:`WINDOW_NOISE_FACTOR` × the noise's largest, √m + √n); the species elute and leave in the same
  order, so the backward analysis gives where each ends.
* **Rotation**: alternating least squares on the σ-weighted matrix D ≈ S·Cᵀ with C ≥ 0 and each
  species' concentration zero outside its window, started from the windows (:data:`ALS_ITERATIONS`).
* **Curves**: with the profiles fixed, each species' I(q) over the whole q range by least squares,
  with σ propagated from the frames'.
* **Molar mass**: the MALS and RI traces over the region as Σ_k b_k·C_k and Σ_k a_k·C_k; the species'
  mass is K_mals·b_k/a_k (as the single-peak MALS mass K_mals·ΣLS/ΣRI).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict

from sibyls.saxs.analysis.inputs import AnalysisError
from sibyls.saxs.reduction.curves import Curve

#: Highest q (Å⁻¹) of the matrix the windows and rotation use (as the SVD's).
EFA_Q_MAX = 0.2
#: A species is present once its singular value stands this many times above the noise's largest.
WINDOW_NOISE_FACTOR = 1.0
ALS_ITERATIONS = 300
#: A trace's delay is searched this many frames either side of its cross-correlation lag, in steps.
LAG_SEARCH_FRAMES = 3.0
LAG_STEP_FRAMES = 0.1


class EfaSpecies(BaseModel):
    """One species EFA separated: its elution window (0-based frames, inclusive) and profile."""

    model_config = ConfigDict(frozen=True)

    number: int  # 1-based, in elution order
    start_frame: int
    end_frame: int
    apex_frame: int
    profile: list[float]  # concentration profile over the region (I(0) of this species per frame)
    mals_molar_mass_kda: float | None = None


class EfaResult(BaseModel):
    """EFA of one region: its frames, the species, the forward/backward singular values (evidence)."""

    model_config = ConfigDict(frozen=True)

    frames: list[int]
    species: list[EfaSpecies]
    forward: list[list[float]]
    backward: list[list[float]]
    residual_chi2: float  # reduced χ² of D − S·Cᵀ over the region (≈1 when the species explain it)


def _matrix(frames: Sequence[Curve], buffer: Curve, indices: Sequence[int], upto: np.ndarray):
    data = np.column_stack([frames[i].intensity[upto] - buffer.intensity[upto] for i in indices])
    sigma = np.column_stack([np.sqrt(frames[i].sigma[upto] ** 2 + buffer.sigma[upto] ** 2) for i in indices])
    return data, np.maximum(sigma, 1e-300)


def _evolving(weighted: np.ndarray, count: int) -> np.ndarray:
    """Singular values (first ``count``) of the first 1, 2, … columns."""
    out = np.zeros((weighted.shape[1], count))
    for j in range(weighted.shape[1]):
        s = np.linalg.svd(weighted[:, : j + 1], compute_uv=False)
        out[j, : min(count, len(s))] = s[:count]
    return out


def _windows(weighted: np.ndarray, count: int) -> tuple[list[tuple[int, int]], np.ndarray, np.ndarray]:
    m, n = weighted.shape
    forward = _evolving(weighted, count)
    backward = _evolving(weighted[:, ::-1], count)[::-1]
    starts, ends = [], []
    for k in range(count):
        threshold = WINDOW_NOISE_FACTOR * (np.sqrt(m) + np.sqrt(np.arange(1, n + 1)))
        above = np.nonzero(forward[:, k] > threshold)[0]
        starts.append(int(above[0]) if above.size else 0)
        threshold_back = WINDOW_NOISE_FACTOR * (np.sqrt(m) + np.sqrt(np.arange(n, 0, -1)))
        above_back = np.nonzero(backward[:, k] > threshold_back)[0]
        ends.append(int(above_back[-1]) if above_back.size else n - 1)
    # The k-th to appear going backwards is the k-th from the end in elution order.
    ends = ends[::-1]
    windows = [(s, max(s, e)) for s, e in zip(sorted(starts), ends, strict=True)]
    return windows, forward, backward


def _als(weighted: np.ndarray, windows: list[tuple[int, int]]) -> np.ndarray:
    """Concentration profiles C (frames × species), ≥ 0 and zero outside each window, of D ≈ S·Cᵀ."""
    n = weighted.shape[1]
    mask = np.zeros((n, len(windows)), dtype=bool)
    for k, (start, end) in enumerate(windows):
        mask[start : end + 1, k] = True
    # Start: the data's first right singular vectors' magnitude within each window.
    total = np.abs(np.linalg.svd(weighted, full_matrices=False)[2][0])
    c = np.where(mask, total[:, None], 0.0) + mask * 1e-3
    for _ in range(ALS_ITERATIONS):
        s = np.linalg.lstsq(c, weighted.T, rcond=None)[0].T  # m × k
        c_new = np.linalg.lstsq(s, weighted, rcond=None)[0].T  # n × k
        c_new = np.where(mask, np.maximum(c_new, 0.0), 0.0)
        if np.allclose(c_new, c, rtol=1e-6, atol=1e-9 * np.abs(c).max()):
            c = c_new
            break
        c = c_new
    return c


def evolving_factor_analysis(
    frames: Sequence[Curve], buffer: Curve, indices: Sequence[int], count: int
) -> tuple[EfaResult, list[Curve]]:
    """EFA of ``count`` species over the frames ``indices`` (a region of overlapping peaks), each
    minus ``buffer``: their windows and profiles, and each species' subtracted curve (whole q range;
    scaled to the species' highest frame)."""
    indices = list(indices)
    if count < 2:
        raise AnalysisError(f"EFA separates two or more species, {count} asked")
    if len(indices) < 3 * count:
        raise AnalysisError(f"EFA of {count} species needs at least {3 * count} frames, got {len(indices)}")
    upto = buffer.q <= EFA_Q_MAX
    data, sigma = _matrix(frames, buffer, indices, upto)
    weight = 1.0 / np.mean(sigma, axis=1)  # one weight per q, as the SVD's
    weighted = data * weight[:, None]
    windows, forward, backward = _windows(weighted, count)
    c = _als(weighted, windows)
    if np.any(c.max(axis=0) <= 0):
        raise AnalysisError("EFA: a species has no concentration inside its window")
    c = c / c.max(axis=0)  # each species' profile peaks at 1: its curve is that frame's scattering
    full = np.ones_like(buffer.q, dtype=bool)
    data_all, sigma_all = _matrix(frames, buffer, indices, full)
    pinv = np.linalg.pinv(c)  # k × n: S = D·pinv(C)ᵀ
    s = data_all @ pinv.T
    s_sigma = np.sqrt((sigma_all**2) @ (pinv.T**2))
    residual = (data - s[upto] @ c.T) / sigma
    chi2 = float(np.sum(residual**2) / max(1, residual.size - c.size - s[upto].size))
    species, curves = [], []
    for k, (start, end) in enumerate(windows):
        apex = int(np.argmax(c[:, k]))
        species.append(
            EfaSpecies(
                number=k + 1,
                start_frame=indices[start],
                end_frame=indices[end],
                apex_frame=indices[apex],
                profile=[float(v) for v in c[:, k]],
            )
        )
        curves.append(
            Curve(
                buffer.q.copy(),
                s[:, k].copy(),
                s_sigma[:, k].copy(),
                buffer.unit,
                None,
                {"source": f"EFA species {k + 1}"},
            )  # fmt: skip
        )
    result = EfaResult(
        frames=indices,
        species=species,
        forward=forward.T.tolist(),
        backward=backward.T.tolist(),
        residual_chi2=chi2,
    )
    return result, curves


def _fit_trace(c: np.ndarray, trace: np.ndarray, indices: np.ndarray, guess: float) -> np.ndarray:
    """Coefficients of ``trace`` (baseline removed) as Σ coef_k·C_k, its delay to the SAXS frames found
    within ±:data:`LAG_SEARCH_FRAMES` of ``guess`` as the one the profiles fit best."""
    frames = np.arange(len(trace), dtype=float)
    best = None
    for lag in np.arange(guess - LAG_SEARCH_FRAMES, guess + LAG_SEARCH_FRAMES + 1e-9, LAG_STEP_FRAMES):
        values = np.interp(indices + lag, frames, trace)
        coef, residual, *_ = np.linalg.lstsq(c, values, rcond=None)
        cost = float(residual[0]) if residual.size else float(np.sum((c @ coef - values) ** 2))
        if best is None or cost < best[0]:
            best = (cost, coef)
    assert best is not None
    return best[1]


def species_molar_masses(
    result: EfaResult,
    mals: np.ndarray,
    ri: np.ndarray,
    mals_constant: float,
    lags: tuple[float, float] = (0.0, 0.0),
) -> EfaResult:
    """Each species' molar mass K_mals·b_k/a_k from the whole MALS and RI traces (baselines removed,
    one value per SAXS frame) fitted as MALS = Σ b_k·C_k and RI = Σ a_k·C_k over the region, each
    trace's delay found near ``lags`` (frames) as the one the species' profiles fit best (a
    cross-correlation with the SAXS chromatogram is biased when the composition changes across it)."""
    c = np.column_stack([s.profile for s in result.species])
    indices = np.asarray(result.frames, dtype=float)
    if len(mals) != len(ri) or len(mals) <= int(indices.max()):
        raise AnalysisError(
            f"MALS/RI traces have {len(mals)}/{len(ri)} values; frames up to {int(indices.max())}"
        )
    b = _fit_trace(c, np.asarray(mals, float), indices, lags[0])
    a = _fit_trace(c, np.asarray(ri, float), indices, lags[1])
    species = []
    for k, sp in enumerate(result.species):
        mass = float(mals_constant * b[k] / a[k]) if a[k] > 0 and b[k] > 0 else None
        species.append(sp.model_copy(update={"mals_molar_mass_kda": mass}))
    return result.model_copy(update={"species": species})
