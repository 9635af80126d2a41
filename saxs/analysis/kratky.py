"""Dimensionless Kratky plot, (q·Rg)²·I/I(0) against q·Rg, and what its peak says about the particle.

A compact globular particle peaks at q·Rg = √3 with height 3/e ≈ 1.104 (the Guinier law's
maximum). A peak shifted right and higher alone marks a non-globular shape — an elongated or
multi-domain particle peaks there too (a 150 Å rod at q·Rg ≈ 4.8, a dumbbell at ≈ 3.5) — so it is
reported but is not the flexibility flag. What tells a flexible or unfolded chain from any rigid body
is the tail: a rigid particle's scattering falls as q⁻⁴ (Porod) and its Kratky plot comes down to a
few % of the peak by q = :data:`TAIL_Q_MAX`, a chain's falls as q⁻² and plateaus (Debye: at ~95 % of
its peak) (Durand et al. 2010, Receveur-Bréchot & Durand 2012, Rambo & Tainer 2011).
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
#: The tail is judged over q from TAIL_Q_FRACTION × its end to its end, the end being the data's last
#: q or TAIL_Q_MAX (Å⁻¹), whichever is lower, and only when the end is past q·Rg = TAIL_MIN_QRG.
TAIL_Q_MAX = 0.3
TAIL_Q_FRACTION = 0.8
TAIL_MIN_QRG = 4.0
#: A tail above this fraction of the peak height has not come down: flexible or unfolded (rigid
#: bodies of the simulator's catalogue: 0-13 %; a Gaussian chain: ~95 %).
DESCENT_FRACTION = 0.5


class KratkyResult(BaseModel):
    """The Kratky peak position and height, the tail, and the verdicts: flexible (the flag) and
    non-globular (the peak's shift: elongated or multi-domain when the tail comes down)."""

    model_config = ConfigDict(frozen=True)

    peak_qrg: float
    peak_height: float
    tail_ratio: float | None  # mean height over the tail / peak height (None: data stop before qRg 4)
    flexible: bool
    non_globular: bool = False
    verdict: str


def dimensionless_kratky(curve: Curve, guinier: GuinierResult) -> tuple[np.ndarray, np.ndarray]:
    """The plot's x = q·Rg and y = (q·Rg)²·I/I(0)."""
    check_curve(curve, "curve")
    x = curve.q * guinier.rg
    return x, x**2 * curve.intensity / guinier.i0


def kratky_analysis(curve: Curve, guinier: GuinierResult) -> KratkyResult:
    """Peak of the dimensionless Kratky plot against the globular one, and whether the tail comes down
    (rigid) or plateaus (flexible or unfolded: the flag)."""
    x, y = dimensionless_kratky(curve, guinier)
    usable = x <= 6.0
    if usable.sum() < 10 or x[usable][-1] < 2.5:
        raise AnalysisError("the curve stops before q·Rg = 2.5: no Kratky peak to judge")
    xs, ys = x[usable], _smooth(y[usable])
    peak = int(np.argmax(ys))
    peak_qrg, peak_height = float(xs[peak]), float(ys[peak])
    q_end = min(float(curve.q[-1]), TAIL_Q_MAX)
    tail = (curve.q >= TAIL_Q_FRACTION * q_end) & (curve.q <= q_end)
    tail_ratio = None
    if q_end * guinier.rg >= TAIL_MIN_QRG and tail.sum() >= 3:
        tail_ratio = float(np.mean(y[tail]) / peak_height)
    shifted = []
    if abs(peak_qrg - GLOBULAR_PEAK_QRG) > PEAK_QRG_TOLERANCE * GLOBULAR_PEAK_QRG:
        shifted.append(f"peak at qRg {peak_qrg:.2f} (globular √3 = 1.73)")
    if abs(peak_height - GLOBULAR_PEAK_HEIGHT) > PEAK_HEIGHT_TOLERANCE * GLOBULAR_PEAK_HEIGHT:
        shifted.append(f"peak height {peak_height:.2f} (globular 1.104)")
    flexible = tail_ratio is not None and tail_ratio > DESCENT_FRACTION
    if flexible:
        window = f"q {TAIL_Q_FRACTION * q_end:.2f}-{q_end:.2f} Å⁻¹"
        verdict = "; ".join(
            [f"flexible or unfolded: no descent after the peak (tail at {window} at {tail_ratio:.0%} of it)"]
            + shifted
        )
    elif shifted:
        verdict = "rigid, non-globular (elongated or multi-domain): " + "; ".join(shifted)
    else:
        verdict = "compact, globular"
    if tail_ratio is None:
        verdict += "; the data stop before q·Rg = 4: flexibility not judged"
    return KratkyResult(
        peak_qrg=peak_qrg,
        peak_height=peak_height,
        tail_ratio=tail_ratio,
        flexible=flexible,
        non_globular=bool(shifted),
        verdict=verdict,
    )


def _smooth(y: np.ndarray, width: int = 7) -> np.ndarray:
    """Running mean (edges shortened) so one noisy point does not make the peak."""
    width = max(1, min(width, len(y) // 5 or 1))
    kernel = np.ones(width) / width
    padded = np.pad(y, width // 2, mode="edge")
    return np.convolve(padded, kernel, mode="valid")[: len(y)]
