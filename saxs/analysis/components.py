"""How many species scatter across a SEC peak: singular value decomposition of the peak's
buffer-subtracted frames (the test BioXTAS RAW and its predecessors use, Henry & Hofrichter 1992).

The frames of a peak (q up to :data:`SVD_Q_MAX`, each q divided by the peak's mean σ there so that
noise weighs the same everywhere) form a matrix whose rank is the number of species with different
scattering. A singular vector is significant when its q profile (left vector) is smooth, its lag-1
autocorrelation above :data:`SIGNIFICANT_AUTOCORRELATION` (noise is ~0), and its singular value stands
above the noise's (√m + √n for an m × n matrix of unit σ) by :data:`NOISE_FACTOR`; the elution
profile's autocorrelation is reported too (over a FWHM of a few frames it is too short to judge by).
One significant component: one species; more: the peak is a mixture (co-eluting oligomers, a
shoulder, aggregates), which the averaged curve and its Rg/MW then describe only as an average.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict

from sibyls.saxs.analysis.inputs import AnalysisError
from sibyls.saxs.reduction.curves import Curve

#: Highest q (Å⁻¹) of the matrix: where the species' curves differ most and the signal is strong.
SVD_Q_MAX = 0.2
#: A singular vector is signal when both its profiles' lag-1 autocorrelation exceed this.
SIGNIFICANT_AUTOCORRELATION = 0.6
#: ... and its singular value this many times above pure noise's largest (√m + √n for unit σ).
NOISE_FACTOR = 1.5
#: Singular vectors examined.
MAX_COMPONENTS = 6


class ComponentsResult(BaseModel):
    """The number of significant SVD components of a peak, with the evidence for it."""

    model_config = ConfigDict(frozen=True)

    components: int
    frames: list[int]
    singular_values: list[float]
    q_autocorrelation: list[float]
    frame_autocorrelation: list[float]


def _autocorrelation(vector: np.ndarray) -> float:
    v = vector - vector.mean()
    denominator = float(np.dot(v, v))
    return float(np.dot(v[:-1], v[1:]) / denominator) if denominator > 0 else 0.0


def peak_components(frames: Sequence[Curve], buffer: Curve, indices: Sequence[int]) -> ComponentsResult:
    """Significant SVD components of the frames ``indices`` (a peak), each minus ``buffer``."""
    indices = list(indices)
    if len(indices) < 4:
        raise AnalysisError(f"SVD needs at least 4 frames of the peak, got {len(indices)}")
    upto = buffer.q <= SVD_Q_MAX
    subtracted = np.column_stack([frames[i].intensity[upto] - buffer.intensity[upto] for i in indices])
    # One weight per q for every frame (the peak's mean σ): a weight per frame would scale each column
    # by its own √I and make even one species look like two.
    sigma = np.mean([frames[i].sigma[upto] for i in indices], axis=0)
    matrix = subtracted / np.maximum(sigma, 1e-300)[:, None]
    u, s, vt = np.linalg.svd(matrix, full_matrices=False)
    count = min(MAX_COMPONENTS, len(s))
    q_ac = [_autocorrelation(u[:, k]) for k in range(count)]
    frame_ac = [_autocorrelation(vt[k]) for k in range(count)]
    # Pure noise of unit σ in an m × n matrix has singular values up to about √m + √n.
    noise = float(np.sqrt(matrix.shape[0]) + np.sqrt(matrix.shape[1]))
    significant = 0
    for k in range(count):
        if q_ac[k] > SIGNIFICANT_AUTOCORRELATION and s[k] > NOISE_FACTOR * noise:
            significant += 1
        else:
            break
    return ComponentsResult(
        components=significant,
        frames=indices,
        singular_values=[float(v) for v in s[:count]],
        q_autocorrelation=q_ac,
        frame_autocorrelation=frame_ac,
    )
