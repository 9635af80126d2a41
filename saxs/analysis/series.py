"""Concentration series: wells of one sample at several concentrations, analysed together.

A user gets Rg(c) and I(0)/c(c), Rg extrapolated to zero concentration (weighted straight line in c,
with σ), a merged curve (low q from the lowest concentration, high q from the highest, scaled onto
each other in their overlap) and a flag for concentration dependence: I(0)/c falling with c is
repulsion (A2 > 0), rising is attraction or aggregation. Members that cannot be used (no
concentration, no Guinier fit) are skipped with a note; too few usable members is a
:class:`SeriesError`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from sibyls.saxs.analysis.flags import FLAG_SERIES_ATTRACTION, FLAG_SERIES_REPULSION
from sibyls.saxs.analysis.guinier import auto_guinier
from sibyls.saxs.analysis.inputs import AnalysisError, check_curve
from sibyls.saxs.reduction.curves import Curve

#: I(0)/c may change by this fraction over the series' concentration range, and by no more than
#: DEPENDENCE_SIGMAS standard errors, before the series is flagged as concentration dependent.
DEPENDENCE_TOLERANCE = 0.05
DEPENDENCE_SIGMAS = 3.0
#: The curves are scaled onto each other over q·Rg₀ in this range (past the structure-factor dip,
#: before the high-q noise of the dilute curve).
MERGE_OVERLAP_QRG = (2.0, 4.0)
# sample codes like lyso_1mg, lyso-2.5mgml, lyso_5 → stem "lyso"
_STEM = re.compile(r"^(?P<stem>.+?)[_-]\d+(?:[.p]\d+)?(?:mg(?:_?ml)?|mgml)?$", re.IGNORECASE)


class SeriesError(AnalysisError):
    """The series cannot be analysed (too few usable members); the message says which and why."""


@dataclass(frozen=True)
class SeriesMember:
    """One well of a series: its sample code, concentration (mg/mL; None if the sheet had none)
    and its buffer-subtracted curve."""

    sample_code: str
    concentration: float | None
    curve: Curve


class SeriesPoint(BaseModel):
    """Guinier Rg and I(0)/c of one member at its concentration."""

    model_config = ConfigDict(frozen=True)

    sample_code: str
    concentration: float
    rg: float
    rg_sigma: float
    i0_over_c: float
    i0_over_c_sigma: float


class LinearInC(BaseModel):
    """y = intercept + slope·c, weighted by 1/σ², with 1σ errors (intercept = value at c → 0)."""

    model_config = ConfigDict(frozen=True)

    intercept: float
    intercept_sigma: float
    slope: float
    slope_sigma: float


class Dependence(BaseModel):
    """How I(0)/c changes over the series: the relative change from lowest to highest c, its σ,
    and the flag (None when within DEPENDENCE_TOLERANCE or within DEPENDENCE_SIGMAS σ)."""

    model_config = ConfigDict(frozen=True)

    relative_change: float
    relative_change_sigma: float
    tolerance: float
    flag: Literal["repulsion", "attraction-or-aggregation"] | None


class MergedCurve(BaseModel):
    """The merged curve (low q from ``low_code``, high q from ``high_code`` × ``scale``)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    low_code: str
    high_code: str
    scale: float
    q_split: float
    curve: Curve


class SeriesResult(BaseModel):
    """Everything a user gets for one series; ``notes`` say what was skipped and why."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    name: str
    points: list[SeriesPoint]
    rg_extrapolated: LinearInC
    i0_over_c_extrapolated: LinearInC
    dependence: Dependence
    merged: MergedCurve | None
    notes: list[str]


def series_stem(sample_code: str) -> str:
    """The series a sample code belongs to: ``lyso_2mg`` → ``lyso``; a code without a trailing
    concentration is its own series."""
    match = _STEM.match(sample_code)
    return match.group("stem") if match else sample_code


def series_points(members: Sequence[SeriesMember]) -> tuple[list[SeriesPoint], list[str]]:
    """Rg and I(0)/c of each usable member (sorted by c) and a note for each member skipped."""
    points, notes = [], []
    for member in members:
        c = member.concentration
        if c is None or not np.isfinite(c) or c <= 0:
            notes.append(f"{member.sample_code}: skipped, concentration is {c!r} (a value > 0 is needed)")
            continue
        try:
            check_curve(member.curve, f"{member.sample_code} curve", min_points=10)
            fit = auto_guinier(member.curve)
        except AnalysisError as exc:
            notes.append(f"{member.sample_code}: skipped, {exc}")
            continue
        try:
            rg, rg_sigma, i0, i0_sigma = guinier_in_range(member.curve, fit.first_point, fit.last_point)
        except SeriesError as exc:
            notes.append(f"{member.sample_code}: skipped, {exc}")
            continue
        points.append(
            SeriesPoint(
                sample_code=member.sample_code,
                concentration=float(c),
                rg=rg,
                rg_sigma=rg_sigma,
                i0_over_c=i0 / c,
                i0_over_c_sigma=i0_sigma / c,
            )
        )
    return sorted(points, key=lambda p: p.concentration), notes


def guinier_in_range(curve: Curve, first: int, last: int) -> tuple[float, float, float, float]:
    """Rg, σ(Rg), I(0), σ(I(0)) of a weighted ln I = ln I0 − (q Rg)²/3 over points ``first..last``.

    The σ here is the counting-statistics error of this fit; FreeSAS's σ(Rg) is the spread over
    candidate ranges, common to all members of a series, and would hide a real trend in c.
    """
    part = slice(first, last + 1)
    q2, intensity, sigma = curve.q[part] ** 2, curve.intensity[part], curve.sigma[part]
    if last - first + 1 < 5 or np.any(intensity <= 0) or np.any(sigma <= 0):
        raise SeriesError(f"Guinier range {first}..{last} has too few points or I ≤ 0")
    (slope, intercept), cov = np.polyfit(q2, np.log(intensity), 1, w=intensity / sigma, cov="unscaled")
    if slope >= 0:
        raise SeriesError("no Guinier region: ln I does not fall with q²")
    rg, i0 = float(np.sqrt(-3.0 * slope)), float(np.exp(intercept))
    return rg, float(1.5 * np.sqrt(cov[0, 0]) / rg), i0, float(i0 * np.sqrt(cov[1, 1]))


def fit_linear_in_c(c: np.ndarray, y: np.ndarray, sigma: np.ndarray) -> LinearInC:
    """Weighted straight line through (c, y ± σ); its intercept is the value at zero concentration."""
    c, y, sigma = (np.asarray(v, float) for v in (c, y, sigma))
    if len(np.unique(c)) < 2:
        raise SeriesError(f"a fit in c needs two different concentrations, got {sorted(set(c.tolist()))}")
    sigma = np.where(np.isfinite(sigma) & (sigma > 0), sigma, np.nanmax(np.abs(y)) * 1e-3)
    w = 1.0 / sigma**2
    s, sc, scc = w.sum(), (w * c).sum(), (w * c * c).sum()
    sy, scy = (w * y).sum(), (w * c * y).sum()
    det = s * scc - sc**2
    slope = (s * scy - sc * sy) / det
    intercept = (scc * sy - sc * scy) / det
    return LinearInC(
        intercept=float(intercept),
        intercept_sigma=float(np.sqrt(scc / det)),
        slope=float(slope),
        slope_sigma=float(np.sqrt(s / det)),
    )


def concentration_dependence(points: Sequence[SeriesPoint], fit: LinearInC) -> Dependence:
    """Flag repulsion (I(0)/c falls with c) or attraction/aggregation (rises) when the fitted change
    over the series' range exceeds both DEPENDENCE_TOLERANCE and DEPENDENCE_SIGMAS σ."""
    span = points[-1].concentration - points[0].concentration
    change = fit.slope * span / fit.intercept
    change_sigma = abs(fit.slope_sigma * span / fit.intercept)
    flag = None
    if abs(change) > DEPENDENCE_TOLERANCE and abs(change) > DEPENDENCE_SIGMAS * change_sigma:
        flag = FLAG_SERIES_REPULSION if change < 0 else FLAG_SERIES_ATTRACTION
    return Dependence(
        relative_change=float(change),
        relative_change_sigma=float(change_sigma),
        tolerance=DEPENDENCE_TOLERANCE,
        flag=flag,
    )


def merge_curves(low: SeriesMember, high: SeriesMember, q_overlap: tuple[float, float]) -> MergedCurve:
    """Low q from the ``low`` curve, high q from ``high`` scaled onto it by a weighted least-squares
    factor over ``q_overlap``; the split is the overlap's middle. Curves must share their q grid."""
    a, b = low.curve, high.curve
    if len(a) != len(b) or not np.allclose(a.q, b.q, rtol=1e-6, atol=0):
        raise SeriesError(
            f"{high.sample_code} is on another q grid than {low.sample_code} ({len(b)} vs {len(a)} points)"
        )
    sel = (a.q >= q_overlap[0]) & (a.q <= q_overlap[1]) & (a.sigma > 0) & (b.sigma > 0)
    if sel.sum() < 5:
        raise SeriesError(
            f"only {int(sel.sum())} points in the overlap q {q_overlap[0]:.4g}..{q_overlap[1]:.4g}"
        )
    guess = (low.concentration or 1.0) / (high.concentration or 1.0)
    w = 1.0 / (a.sigma[sel] ** 2 + (guess * b.sigma[sel]) ** 2)
    scale = float((w * a.intensity[sel] * b.intensity[sel]).sum() / (w * b.intensity[sel] ** 2).sum())
    q_split = 0.5 * (q_overlap[0] + q_overlap[1])
    use_low = a.q < q_split
    curve = Curve(
        a.q.copy(),
        np.where(use_low, a.intensity, scale * b.intensity),
        np.where(use_low, a.sigma, abs(scale) * b.sigma),
        a.unit,
        None,
        {"merged_from": [low.sample_code, high.sample_code], "scale": scale, "q_split": q_split},
    )
    return MergedCurve(
        low_code=low.sample_code, high_code=high.sample_code, scale=scale, q_split=q_split, curve=curve
    )


def analyse_series(name: str, members: Sequence[SeriesMember]) -> SeriesResult:
    """Rg(c), I(0)/c(c), Rg and I(0)/c at c → 0, the concentration-dependence flag and the merged
    curve of one series; raises SeriesError when fewer than two members at different c can be used."""
    points, notes = series_points(members)
    if len({p.concentration for p in points}) < 2:
        raise SeriesError(
            f"series {name!r}: {len(points)} usable member(s) of {len(members)}; "
            "two or more at different concentrations are needed" + (f" ({'; '.join(notes)})" if notes else "")
        )
    c = np.array([p.concentration for p in points])
    rg_fit = fit_linear_in_c(c, np.array([p.rg for p in points]), np.array([p.rg_sigma for p in points]))
    i0c_fit = fit_linear_in_c(
        c, np.array([p.i0_over_c for p in points]), np.array([p.i0_over_c_sigma for p in points])
    )
    by_code = {m.sample_code: m for m in members}
    low, high = by_code[points[0].sample_code], by_code[points[-1].sample_code]
    overlap = (MERGE_OVERLAP_QRG[0] / rg_fit.intercept, MERGE_OVERLAP_QRG[1] / rg_fit.intercept)
    merged = None
    try:
        merged = merge_curves(low, high, overlap)
    except SeriesError as exc:
        notes.append(f"no merged curve: {exc}")
    dependence = concentration_dependence(points, i0c_fit)
    if dependence.flag == FLAG_SERIES_ATTRACTION:
        notes.append(
            "I(0)/c rises with c: Rg at c → 0 is not that of the free particle; check for aggregates"
        )
    return SeriesResult(
        name=name,
        points=points,
        rg_extrapolated=rg_fit,
        i0_over_c_extrapolated=i0c_fit,
        dependence=dependence,
        merged=merged,
        notes=notes,
    )
