"""Guinier analysis of an I(q): radius of gyration Rg and forward scattering I0 of the sample."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GuinierFit:
    """ln I = ln I0 − (q Rg)²/3 fitted over ``q_min``..``q_max``."""

    rg: float
    i0: float
    q_min: float
    q_max: float
    points: int


def guinier_fit(
    q: np.ndarray, intensity: np.ndarray, sigma: np.ndarray | None = None, qrg_max: float = 1.3
) -> GuinierFit:
    """Radius of gyration (Å) by an iterated weighted Guinier fit up to q·Rg = ``qrg_max``."""
    q, intensity = np.asarray(q, float), np.asarray(intensity, float)
    sigma = np.ones_like(q) if sigma is None else np.asarray(sigma, float)
    ok = (intensity > 0) & (q > 0)
    q, intensity, sigma = q[ok], intensity[ok], sigma[ok]
    q_max = q[min(len(q) - 1, 20)]
    rg = i0 = float("nan")
    for _ in range(20):
        sel = q <= q_max
        if sel.sum() < 5:
            raise ValueError("too few points for a Guinier fit")
        weights = (intensity[sel] / sigma[sel]) ** 2
        slope, intercept = np.polyfit(q[sel] ** 2, np.log(intensity[sel]), 1, w=np.sqrt(weights))
        if slope >= 0:
            raise ValueError("no Guinier region: ln I does not fall with q²")
        new_rg = float(np.sqrt(-3.0 * slope))
        i0 = float(np.exp(intercept))
        if np.isclose(new_rg, rg, rtol=1e-4):
            break
        rg = new_rg
        q_max = qrg_max / rg
    sel = q <= q_max
    return GuinierFit(rg, i0, float(q[sel].min()), float(q[sel].max()), int(sel.sum()))
