"""Dimensionless Kratky plot, (q·Rg)²·I/I(0) against q·Rg, and what its peak says about the particle.

A compact globular particle peaks at q·Rg = √3 with height 3/e ≈ 1.104 (the Guinier law's
maximum); a peak shifted right and higher, or a curve that does not come down (a plateau or rise),
marks flexibility or unfolding (Durand et al. 2010, Receveur-Bréchot & Durand 2012).
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict

from sibyls.saxs.analysis.guinier import GuinierResult
from sibyls.saxs.analysis.inputs import AnalysisError, check_curve
from sibyls.saxs.reduction.curves import Curve

GLOBULAR_PEAK_QRG = float(np.sqrt(3.0))
GLOBULAR_PEAK_HEIGHT = float(3.0 / np.e)  # 1.104
# How far the peak may sit from the globular one before the particle is called flexible.
PEAK_QRG_TOLERANCE = 0.3
PEAK_HEIGHT_TOLERANCE = 0.15
# Beyond the peak a folded particle falls to below this fraction of the peak height by q·Rg = 5.
DESCENT_FRACTION = 0.75


class KratkyResult(BaseModel):
    """The Kratky peak position and height, and the verdict: globular or flexible/unfolded."""

    model_config = ConfigDict(frozen=True)

    peak_qrg: float
    peak_height: float
    tail_ratio: float | None  # mean height at q·Rg 4-5 / peak height (None if the data stop earlier)
    flexible: bool
    verdict: str


def dimensionless_kratky(curve: Curve, guinier: GuinierResult) -> tuple[np.ndarray, np.ndarray]:
    """The plot's x = q·Rg and y = (q·Rg)²·I/I(0)."""
    check_curve(curve, "curve")
    x = curve.q * guinier.rg
    return x, x**2 * curve.intensity / guinier.i0


def kratky_analysis(curve: Curve, guinier: GuinierResult) -> KratkyResult:
    """Peak of the dimensionless Kratky plot against the globular one, and a flexibility flag."""
    x, y = dimensionless_kratky(curve, guinier)
    usable = x <= 6.0
    if usable.sum() < 10 or x[usable][-1] < 2.5:
        raise AnalysisError("the curve stops before q·Rg = 2.5: no Kratky peak to judge")
    xs, ys = x[usable], _smooth(y[usable])
    peak = int(np.argmax(ys))
    peak_qrg, peak_height = float(xs[peak]), float(ys[peak])
    tail = (xs >= 4.0) & (xs <= 5.0)
    tail_ratio = float(ys[tail].mean() / peak_height) if tail.sum() >= 3 else None
    reasons = []
    if abs(peak_qrg - GLOBULAR_PEAK_QRG) > PEAK_QRG_TOLERANCE * GLOBULAR_PEAK_QRG:
        reasons.append(f"peak at qRg {peak_qrg:.2f} (globular √3 = 1.73)")
    if abs(peak_height - GLOBULAR_PEAK_HEIGHT) > PEAK_HEIGHT_TOLERANCE * GLOBULAR_PEAK_HEIGHT:
        reasons.append(f"peak height {peak_height:.2f} (globular 1.104)")
    if tail_ratio is not None and tail_ratio > DESCENT_FRACTION:
        reasons.append(f"no descent after the peak (qRg 4-5 at {tail_ratio:.0%} of the peak)")
    flexible = bool(reasons)
    verdict = "flexible or unfolded: " + "; ".join(reasons) if flexible else "compact, globular"
    return KratkyResult(
        peak_qrg=peak_qrg, peak_height=peak_height, tail_ratio=tail_ratio, flexible=flexible, verdict=verdict
    )


def _smooth(y: np.ndarray, width: int = 7) -> np.ndarray:
    """Running mean (edges shortened) so one noisy point does not make the peak."""
    width = max(1, min(width, len(y) // 5 or 1))
    kernel = np.ones(width) / width
    padded = np.pad(y, width // 2, mode="edge")
    return np.convolve(padded, kernel, mode="valid")[: len(y)]
