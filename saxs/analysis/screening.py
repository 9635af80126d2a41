"""CorMap screening of a run's frames: which frames are the same sample as the first ones, and which
changed (radiation damage, a bubble, a late aggregate) and must stay out of the average.

Each frame is compared with the reference (the first frame, or the mean of the first few) by
FreeSAS's CorMap goodness of fit (``freesas.cormap.gof``: the longest run of same-sign differences,
Franke et al., Nat. Methods 2015). P-values are Bonferroni-adjusted for the number of frames
compared; the first frame whose adjusted P falls below ``alpha`` and every frame after it are
rejected, as ESRF BM29's online processing does — damage only grows with dose.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from freesas.cormap import gof
from pydantic import BaseModel, ConfigDict

from sibyls.saxs.analysis.inputs import AnalysisError, check_frames
from sibyls.saxs.analysis.standards import CORMAP_ALPHA
from sibyls.saxs.reduction.curves import Curve

METHOD = "CorMap (freesas.cormap.gof), Bonferroni-adjusted, frames from the first differing one rejected"


class ScreeningResult(BaseModel):
    """Frames kept and rejected (0-based indices into the run's frames) with the CorMap P-values."""

    model_config = ConfigDict(frozen=True)

    kept: list[int]
    rejected: list[int]
    p_reference: list[float]  # adjusted P of frame i against the reference (1.0 for reference frames)
    p_previous: list[float]  # adjusted P of frame i against frame i−1 (1.0 for frame 0), for diagnosis
    alpha: float
    comparisons: int
    reference_frames: int
    first_rejected: int | None
    q_min: float
    q_max: float
    method: str = METHOD

    @property
    def total(self) -> int:
        """Number of frames screened."""
        return len(self.kept) + len(self.rejected)


def cormap_p(a: Curve | np.ndarray, b: Curve | np.ndarray) -> float:
    """FreeSAS CorMap probability (unadjusted) that two curves on one q grid are the same."""
    ia = a.intensity if isinstance(a, Curve) else np.asarray(a, float)
    ib = b.intensity if isinstance(b, Curve) else np.asarray(b, float)
    if ia.shape != ib.shape:
        raise AnalysisError(f"CorMap needs curves on one q grid ({ia.shape[0]} vs {ib.shape[0]} points)")
    return float(gof(np.asarray(ia, float), np.asarray(ib, float)).P)


def screen_frames(
    frames: Sequence[Curve],
    alpha: float = CORMAP_ALPHA,
    reference_frames: int = 1,
    q_min: float | None = None,
    q_max: float | None = None,
) -> ScreeningResult:
    """Screen a run's frames with CorMap: the frames the average may use, the ones it must not.

    ``reference_frames`` early frames are averaged into the reference (they are kept unless they
    differ from each other); ``q_min``/``q_max`` restrict the comparison to part of the curve.
    """
    frames = check_frames(frames)
    if not 0 < alpha < 1:
        raise AnalysisError(f"CorMap alpha must be between 0 and 1, got {alpha}")
    if reference_frames < 1:
        raise AnalysisError(f"reference_frames must be at least 1, got {reference_frames}")
    n = len(frames)
    reference_frames = min(reference_frames, n)
    window = np.ones(len(frames[0]), dtype=bool)
    if q_min is not None:
        window &= frames[0].q >= q_min
    if q_max is not None:
        window &= frames[0].q <= q_max
    if window.sum() < 10:
        raise AnalysisError(f"the CorMap q-window holds {int(window.sum())} points; at least 10 are needed")
    stack = np.array([frame.intensity[window] for frame in frames])
    reference = stack[:reference_frames].mean(axis=0)
    comparisons = max(1, n - 1)

    p_reference = [1.0] * n
    p_previous = [1.0] * n
    for i in range(n):
        if i >= reference_frames or reference_frames > 1:
            p_reference[i] = min(1.0, cormap_p(stack[i], reference) * comparisons)
        if i > 0:
            p_previous[i] = min(1.0, cormap_p(stack[i], stack[i - 1]) * comparisons)
    first_rejected = next((i for i in range(n) if p_reference[i] < alpha), None)
    if first_rejected == 0:
        # the reference itself is not self-consistent: keep the first frame, judge the rest by it
        first_rejected = next((i for i in range(1, n) if p_reference[i] < alpha), None)
    stop = n if first_rejected is None else first_rejected
    return ScreeningResult(
        kept=list(range(stop)),
        rejected=list(range(stop, n)),
        p_reference=p_reference,
        p_previous=p_previous,
        alpha=alpha,
        comparisons=comparisons,
        reference_frames=reference_frames,
        first_rejected=first_rejected,
        q_min=float(frames[0].q[window][0]),
        q_max=float(frames[0].q[window][-1]),
    )
