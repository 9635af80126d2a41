"""Average of a run's kept frames, with σ propagated.

Frames are weighted by their exposure (``weights``, equal by default), not by 1/σ²: with Poisson
errors σ² ∝ I, so inverse-variance weights would favour frames that fluctuated low and bias the
average down where counts are few. σ of the mean is √(Σ wᵢ²σᵢ²)/Σ wᵢ (BioXTAS RAW and BM29 do the
same for equal weights).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sibyls.saxs.analysis.inputs import AnalysisError, check_frames
from sibyls.saxs.reduction.curves import Curve


def average_curves(
    frames: Sequence[Curve], weights: Sequence[float] | None = None, meta: dict | None = None
) -> Curve:
    """One curve from several frames on the same q grid: the weighted mean I and its σ."""
    frames = check_frames(frames)
    w = np.ones(len(frames)) if weights is None else np.asarray(weights, dtype=float)
    if w.shape != (len(frames),):
        raise AnalysisError(f"{len(w)} weights for {len(frames)} frames")
    if np.any(~np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise AnalysisError("averaging weights must be finite, non-negative and not all zero")
    intensity = np.array([f.intensity for f in frames])
    sigma = np.array([f.sigma for f in frames])
    total = w.sum()
    mean = (w[:, None] * intensity).sum(axis=0) / total
    err = np.sqrt(((w[:, None] * sigma) ** 2).sum(axis=0)) / total
    first = frames[0]
    info = dict(first.meta)
    info.update(meta or {})
    info["frames_averaged"] = len(frames)
    return Curve(
        first.q.copy(), mean, err, first.unit, None if first.qdev is None else first.qdev.copy(), info
    )
