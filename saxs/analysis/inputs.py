"""Checks every first-look function runs on the curves it receives, so bad input fails with a reason."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sibyls.saxs.reduction.curves import Curve


class AnalysisError(ValueError):
    """The first look cannot run on these inputs; the message says which input and why."""


def check_curve(curve: Curve, name: str = "curve", min_points: int = 3) -> Curve:
    """Return ``curve`` if it is usable (enough points, finite values, q > 0 and increasing)."""
    if not isinstance(curve, Curve):
        raise AnalysisError(f"{name} is a {type(curve).__name__}, expected a Curve")
    if len(curve) < min_points:
        raise AnalysisError(f"{name} has {len(curve)} points; at least {min_points} are needed")
    for field in ("q", "intensity", "sigma"):
        values = np.asarray(getattr(curve, field), dtype=float)
        bad = ~np.isfinite(values)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise AnalysisError(
                f"{name} has {int(bad.sum())} non-finite {field} values (first at index {first})"
            )
    if np.any(curve.q <= 0):
        raise AnalysisError(f"{name} has q <= 0")
    if np.any(np.diff(curve.q) <= 0):
        raise AnalysisError(f"{name} q values are not strictly increasing")
    if np.any(curve.sigma < 0):
        raise AnalysisError(f"{name} has negative sigma")
    return curve


def check_frames(frames: Sequence[Curve], name: str = "frames") -> list[Curve]:
    """Return ``frames`` as a list if there is at least one, each usable and all on one q grid."""
    frames = list(frames)
    if not frames:
        raise AnalysisError(f"no {name} given")
    for index, frame in enumerate(frames):
        check_curve(frame, f"{name}[{index}]")
    first = frames[0]
    for index, frame in enumerate(frames[1:], start=1):
        if len(frame) != len(first) or not np.allclose(frame.q, first.q, rtol=1e-6, atol=0):
            raise AnalysisError(
                f"{name}[{index}] is on another q grid than {name}[0] "
                f"({len(frame)} vs {len(first)} points); frames of one run must share their q grid"
            )
        if frame.unit != first.unit:
            raise AnalysisError(
                f"{name}[{index}] intensity is in {frame.unit!r}, {name}[0] in {first.unit!r}"
            )
    return frames
