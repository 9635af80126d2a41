"""P(r), the pair-distance distribution, of a subtracted curve by FreeSAS's Bayesian indirect Fourier
transform (BIFT, Hansen 2000): Dmax, and Rg and I(0) from the whole curve rather than its first points.

``freesas.bift.auto_bift`` searches Dmax and the regularisation α by the Bayesian evidence; a short
Monte-Carlo sampling around the optimum (``BIFT.monte_carlo_sampling``, which returns FreeSAS's
``calc_stats()``) gives each number's spread. FreeSAS reads q in nm⁻¹ (so r and Dmax come back in nm);
the curve is handed over from its Guinier region's first point to :data:`PR_Q_MAX`, averaged into at
most :data:`PR_MAX_POINTS` points (BIFT's cost grows with points × P(r) points²; the evidence does not
need the detector's fine binning).
"""

from __future__ import annotations

import numpy as np
from freesas.autorg import InsufficientDataError, NoGuinierRegionError
from freesas.bift import auto_bift
from pydantic import BaseModel, ConfigDict

from sibyls.saxs.analysis.guinier import NM_PER_A_INV, GuinierResult
from sibyls.saxs.analysis.inputs import AnalysisError, check_curve
from sibyls.saxs.reduction.curves import Curve

METHOD = "freesas.bift.auto_bift"
#: Highest q (Å⁻¹) handed to BIFT: past it the subtracted curve of a protein is mostly noise.
PR_Q_MAX = 0.3
#: The curve is averaged into at most this many points before BIFT.
PR_MAX_POINTS = 120
#: Points of the P(r) curve.
PR_POINTS = 50
#: Monte-Carlo samples of Dmax and α around the optimum, and how far out (in σ) they go.
PR_MONTE_CARLO_SAMPLES = 20
PR_MONTE_CARLO_SIGMAS = 2.0


class PrResult(BaseModel):
    """P(r) with its Dmax, Rg and I(0) (Å, Å, the curve's unit) and their Monte-Carlo spreads (1σ)."""

    model_config = ConfigDict(frozen=True)

    dmax: float
    dmax_sigma: float
    rg: float
    rg_sigma: float
    i0: float
    i0_sigma: float
    chi2_reduced: float
    alpha: float
    q_min: float
    q_max: float
    points: int
    r: list[float]  # Å
    p: list[float]  # P(r) per Å, as GNOM: I(q) = 4π∫P(r)·sin(qr)/(qr)dr, so I(0) = 4π∫P(r)dr
    p_sigma: list[float]
    method: str = METHOD


def _binned(curve: Curve, first: int, q_max: float, max_points: int) -> np.ndarray:
    """(q nm⁻¹, I, σ) from point ``first`` to ``q_max``, averaged in runs of equal length."""
    upto = int(np.searchsorted(curve.q, q_max, side="right"))
    q, intensity, sigma = curve.q[first:upto], curve.intensity[first:upto], curve.sigma[first:upto]
    size = int(np.ceil(len(q) / max_points)) if len(q) > max_points else 1
    usable = len(q) // size * size
    if size > 1:
        q = q[:usable].reshape(-1, size).mean(axis=1)
        intensity = intensity[:usable].reshape(-1, size).mean(axis=1)
        sigma = np.sqrt((sigma[:usable] ** 2).reshape(-1, size).sum(axis=1)) / size
    return np.ascontiguousarray(np.column_stack([q * NM_PER_A_INV, intensity, sigma]), dtype=np.float64)


def pair_distribution(
    curve: Curve,
    guinier: GuinierResult,
    q_max: float = PR_Q_MAX,
    max_points: int = PR_MAX_POINTS,
    points: int = PR_POINTS,
) -> PrResult:
    """P(r), Dmax, Rg and I(0) of a buffer-subtracted curve by BIFT, with Monte-Carlo errors."""
    check_curve(curve, "curve", min_points=10)
    data = _binned(curve, guinier.first_point, q_max, max_points)
    if len(data) < 20:
        raise AnalysisError(f"only {len(data)} points between the Guinier region and q={q_max} Å⁻¹ for P(r)")
    try:
        with np.errstate(all="ignore"):
            bift = auto_bift(data, npt=points)
            stats = bift.monte_carlo_sampling(PR_MONTE_CARLO_SAMPLES, PR_MONTE_CARLO_SIGMAS, points)
    except (InsufficientDataError, NoGuinierRegionError, ValueError, IndexError, RuntimeError) as exc:
        raise AnalysisError(f"BIFT failed: {type(exc).__name__}: {exc}") from exc
    numbers = (stats.Dmax_avg, stats.Rg_avg, stats.I0_avg)
    if not all(v is not None and np.isfinite(v) and v > 0 for v in numbers):
        raise AnalysisError(f"BIFT gave no usable P(r) (Dmax={stats.Dmax_avg}, Rg={stats.Rg_avg})")
    # P(r) from FreeSAS is per nm of r: per Å it is ten times smaller, so 4π∫P dr stays I(0).
    return PrResult(
        dmax=float(stats.Dmax_avg) * NM_PER_A_INV,
        dmax_sigma=float(stats.Dmax_std) * NM_PER_A_INV,
        rg=float(stats.Rg_avg) * NM_PER_A_INV,
        rg_sigma=float(stats.Rg_std) * NM_PER_A_INV,
        i0=float(stats.I0_avg),
        i0_sigma=float(stats.I0_std),
        chi2_reduced=float(stats.chi2r_avg),
        alpha=float(stats.alpha_avg),
        q_min=float(data[0, 0] / NM_PER_A_INV),
        q_max=float(data[-1, 0] / NM_PER_A_INV),
        points=len(data),
        r=[float(v) * NM_PER_A_INV for v in stats.radius],
        p=[float(v) / NM_PER_A_INV for v in stats.density_avg],
        p_sigma=[float(v) / NM_PER_A_INV for v in stats.density_std],
    )


def pr_curve_text(pr: PrResult, header: dict[str, str]) -> str:
    """P(r) as a three-column text file (r Å, P(r), σ) with ``#`` header lines (``<sample>_pr.dat``)."""
    lines = [f"# {key}: {value}" for key, value in header.items()]
    lines += [
        f"# Dmax_A: {pr.dmax:.2f} +- {pr.dmax_sigma:.2f}",
        f"# Rg_A: {pr.rg:.3f} +- {pr.rg_sigma:.3f}",
        f"# I0: {pr.i0:.6g} +- {pr.i0_sigma:.3g}",
        f"# chi2_reduced: {pr.chi2_reduced:.3f}",
        f"# method: {pr.method} (q {pr.q_min:.4f}-{pr.q_max:.4f} 1/A, {pr.points} points)",
        "# r_A P(r) sigma",
    ]
    lines += [f"{r:.4f} {p:.6e} {s:.6e}" for r, p, s in zip(pr.r, pr.p, pr.p_sigma, strict=True)]
    return "\n".join(lines) + "\n"
