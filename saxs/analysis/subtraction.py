"""Buffer subtraction: sample minus buffer, σ added in quadrature.

When the buffer was measured on another q grid it is interpolated (linearly, σ too) onto the
sample's q; the result covers only the overlap of both q-ranges, and a buffer whose q-range does
not overlap the sample's is refused.
"""

from __future__ import annotations

import numpy as np

from sibyls.saxs.analysis.inputs import AnalysisError, check_curve
from sibyls.saxs.reduction.curves import Curve

MIN_OVERLAP_POINTS = 10


def on_grid(curve: Curve, q: np.ndarray) -> Curve:
    """``curve`` linearly interpolated onto ``q`` (which must lie within the curve's q-range)."""
    if q[0] < curve.q[0] - 1e-12 or q[-1] > curve.q[-1] + 1e-12:
        raise AnalysisError(
            f"cannot interpolate a curve covering q {curve.q[0]:.4g}-{curve.q[-1]:.4g} "
            f"onto q {q[0]:.4g}-{q[-1]:.4g}"
        )
    intensity = np.interp(q, curve.q, curve.intensity)
    sigma = np.interp(q, curve.q, curve.sigma)
    qdev = None if curve.qdev is None else np.interp(q, curve.q, curve.qdev)
    return Curve(q.copy(), intensity, sigma, curve.unit, qdev, dict(curve.meta))


def subtract_buffer(sample: Curve, buffer: Curve, buffer_scale: float = 1.0) -> Curve:
    """The particles' scattering: ``sample − buffer_scale·buffer`` on the sample's q (overlap only)."""
    check_curve(sample, "sample")
    check_curve(buffer, "buffer")
    if sample.unit != buffer.unit:
        raise AnalysisError(f"sample intensity is in {sample.unit!r}, buffer in {buffer.unit!r}")
    if not np.isfinite(buffer_scale) or buffer_scale <= 0:
        raise AnalysisError(f"buffer scale must be a positive number, got {buffer_scale}")
    same_grid = len(sample) == len(buffer) and np.allclose(sample.q, buffer.q, rtol=1e-6, atol=0)
    if not same_grid:
        lo, hi = max(sample.q[0], buffer.q[0]), min(sample.q[-1], buffer.q[-1])
        inside = (sample.q >= lo) & (sample.q <= hi)
        if hi <= lo or inside.sum() < MIN_OVERLAP_POINTS:
            raise AnalysisError(
                f"buffer q-range {buffer.q[0]:.4g}-{buffer.q[-1]:.4g} Å⁻¹ does not overlap the sample's "
                f"{sample.q[0]:.4g}-{sample.q[-1]:.4g} Å⁻¹ (need at least {MIN_OVERLAP_POINTS} common points)"
            )
        sample = sample.restricted(float(sample.q[inside][0]), float(sample.q[inside][-1]))
        buffer = on_grid(buffer, sample.q)
    meta = dict(sample.meta)
    meta["buffer_scale"] = buffer_scale
    if "source" in buffer.meta:
        meta["buffer"] = buffer.meta["source"]
    return Curve(
        sample.q.copy(),
        sample.intensity - buffer_scale * buffer.intensity,
        np.hypot(sample.sigma, buffer_scale * buffer.sigma),
        sample.unit,
        None if sample.qdev is None else sample.qdev.copy(),
        meta,
    )
