"""The first look's pictures as small PNGs: I(q) log-log, Guinier with residuals, dimensionless
Kratky, P(r), SEC chromatogram with Rg across the peak.

Each plot is its own ``matplotlib.figure.Figure`` drawn by the Agg canvas (no pyplot, no global
state, safe in a service thread) and written atomically; the same inputs give the same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from sibyls.metadata.atomic import atomic_path
from sibyls.saxs.analysis.guinier import GuinierResult
from sibyls.saxs.analysis.kratky import GLOBULAR_PEAK_HEIGHT, GLOBULAR_PEAK_QRG, dimensionless_kratky
from sibyls.saxs.analysis.pr import PrResult
from sibyls.saxs.reduction.curves import Curve

FIGSIZE = (6.0, 4.5)
DPI = 100
MARGINS = {"left": 0.14, "right": 0.88, "bottom": 0.12, "top": 0.92}  # fixed: tight_layout costs a draw
PNG_METADATA = {"Software": None}  # no version string: same inputs, same bytes


def _save(fig: Figure, path: Path | str) -> Path:
    path = Path(path)
    FigureCanvasAgg(fig)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, metadata=PNG_METADATA)
    return path


def plot_iq(path: Path | str, curves: Sequence[tuple[Curve, str]], title: str = "") -> Path:
    """I(q) on log-log axes, one line per (curve, label); points with I ≤ 0 are left out (lines, not
    error bars: hundreds of error bars per curve would cost seconds per plot)."""
    fig = Figure(figsize=FIGSIZE)
    ax = fig.add_subplot()
    for curve, label in curves:
        ok = curve.intensity > 0
        ax.plot(curve.q[ok], curve.intensity[ok], "-", lw=0.8, label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    unit = curves[0][0].unit if curves else "arbitrary"
    ax.set_xlabel("q (Å⁻¹)")
    ax.set_ylabel(f"I(q) ({unit})")
    ax.set_title(title)
    if curves:
        ax.legend(fontsize=8)
    fig.subplots_adjust(**MARGINS)
    return _save(fig, path)


def plot_guinier(path: Path | str, curve: Curve, guinier: GuinierResult, title: str = "") -> Path:
    """ln I against q² over (a little beyond) the Guinier range, the fit line, and its residuals."""
    fig = Figure(figsize=FIGSIZE)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    q_hi = guinier.q_max * 1.3
    shown = (curve.q <= q_hi) & (curve.intensity > 0)
    fit = (curve.q >= guinier.q_min) & (curve.q <= guinier.q_max) & (curve.intensity > 0)
    q2 = curve.q[shown] ** 2
    ln_i = np.log(curve.intensity[shown])
    err = curve.sigma[shown] / curve.intensity[shown]
    top.errorbar(q2, ln_i, yerr=err, fmt=".", ms=3, lw=0.5, color="0.5", label="data")
    line_q2 = np.linspace(0, guinier.q_max**2, 50)
    model = np.log(guinier.i0) - guinier.rg**2 * line_q2 / 3.0
    top.plot(line_q2, model, "r-", lw=1, label=f"Rg = {guinier.rg:.2f} ± {guinier.rg_sigma:.2f} Å")
    top.axvspan(guinier.q_min**2, guinier.q_max**2, color="C0", alpha=0.08)
    top.set_ylabel("ln I")
    top.set_title(title or f"Guinier: qRg {guinier.qrg_min:.2f}–{guinier.qrg_max:.2f}")
    top.legend(fontsize=8)
    q2_fit = curve.q[fit] ** 2
    resid = (np.log(curve.intensity[fit]) - (np.log(guinier.i0) - guinier.rg**2 * q2_fit / 3.0)) / (
        curve.sigma[fit] / curve.intensity[fit]
    )
    bottom.axhline(0, color="r", lw=0.8)
    bottom.plot(q2_fit, resid, ".", ms=3, color="C0")
    bottom.set_xlabel("q² (Å⁻²)")
    bottom.set_ylabel("resid./σ")
    bottom.xaxis.set_major_locator(MaxNLocator(5))  # q² labels are long: four or five fit side by side
    bottom.ticklabel_format(axis="x", style="sci", scilimits=(-3, 3))
    fig.subplots_adjust(**MARGINS)
    return _save(fig, path)


def plot_kratky(path: Path | str, curve: Curve, guinier: GuinierResult, title: str = "") -> Path:
    """Dimensionless Kratky plot with the globular peak (√3, 1.104) marked."""
    fig = Figure(figsize=FIGSIZE)
    ax = fig.add_subplot()
    x, y = dimensionless_kratky(curve, guinier)
    shown = x <= 8
    ax.plot(x[shown], y[shown], ".", ms=2)
    ax.axvline(GLOBULAR_PEAK_QRG, color="0.6", ls="--", lw=0.8)
    ax.axhline(GLOBULAR_PEAK_HEIGHT, color="0.6", ls="--", lw=0.8)
    ax.set_xlabel("q·Rg")
    ax.set_ylabel("(q·Rg)²·I(q)/I(0)")
    ax.set_title(title or "Dimensionless Kratky")
    ax.set_ylim(-0.2, max(2.0, float(np.nanmax(y[shown])) * 1.1 if shown.any() else 2.0))
    fig.subplots_adjust(**MARGINS)
    return _save(fig, path)


def plot_pr(path: Path | str, pr: PrResult, title: str = "") -> Path:
    """P(r) with its Monte-Carlo band, Dmax marked, Rg and Dmax (as the record has them) in the legend."""
    fig = Figure(figsize=FIGSIZE)
    ax = fig.add_subplot()
    r, p, s = np.asarray(pr.r), np.asarray(pr.p), np.asarray(pr.p_sigma)
    ax.fill_between(r, p - s, p + s, color="C0", alpha=0.25, lw=0)
    label = f"P(r): Rg = {pr.rg:.2f} ± {pr.rg_sigma:.2f} Å, Dmax = {pr.dmax:.1f} ± {pr.dmax_sigma:.1f} Å"
    ax.plot(r, p, "-", color="C0", lw=1.2, label=label)
    ax.axvline(pr.dmax, color="0.5", ls="--", lw=0.8)
    ax.axhline(0, color="0.6", lw=0.6)
    ax.set_xlabel("r (Å)")
    ax.set_ylabel("P(r)")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    ax.set_title(title or "P(r) (BIFT)")
    ax.set_ylim(min(0.0, float(np.min(p - s))), float(np.max(p + s)) * 1.3)  # room for the legend
    ax.legend(fontsize=8, loc="upper right")
    fig.subplots_adjust(**MARGINS)
    return _save(fig, path)


def plot_chromatogram(
    path: Path | str,
    signal: np.ndarray,
    rg: np.ndarray | None = None,
    traces: dict[str, np.ndarray] | None = None,
    buffer_frames: Sequence[int] = (),
    peak_frames: Sequence[int] = (),
    title: str = "",
) -> Path:
    """SEC chromatogram: integrated SAXS intensity per frame, Rg across the peak (right axis), other
    detectors' traces scaled to the SAXS signal, the buffer region shaded."""
    fig = Figure(figsize=(8.0, 4.5))
    ax = fig.add_subplot()
    frames = np.arange(len(signal))
    ax.plot(frames, signal, "k-", lw=1, label="SAXS ΣI")
    span = float(np.ptp(signal)) or 1.0
    base = float(np.min(signal))
    for i, (name, trace) in enumerate((traces or {}).items()):
        t = np.asarray(trace, float)
        scaled = base + (t - t.min()) / (float(np.ptp(t)) or 1.0) * span
        ax.plot(np.arange(len(t)), scaled, lw=0.8, color=f"C{i + 1}", label=f"{name} (scaled)")
    if len(buffer_frames):
        ax.axvspan(min(buffer_frames), max(buffer_frames), color="0.8", alpha=0.5, label="buffer")
    for p in peak_frames:
        ax.axvline(p, color="0.5", ls=":", lw=0.8)
    ax.set_xlabel("frame")
    ax.set_ylabel("integrated intensity")
    ax.set_title(title or "SEC-SAXS chromatogram")
    if rg is not None and np.isfinite(rg).any():
        ax2 = ax.twinx()
        ax2.plot(frames[: len(rg)], rg, "o", ms=2, color="C3", label="Rg")
        ax2.set_ylabel("Rg (Å)", color="C3")
        finite = rg[np.isfinite(rg)]
        ax2.set_ylim(0, float(finite.max()) * 1.5)
    ax.legend(fontsize=8, loc="upper left")
    fig.subplots_adjust(**MARGINS)
    return _save(fig, path)
