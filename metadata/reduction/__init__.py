"""Reduction of SAXS frames: the run's I(q) by azimuthal averaging, and its Guinier Rg.

A user gets the scattering profile of a run from its own frame files (geometry and pixel mask as
the detector wrote them), with Poisson uncertainties, and a radius of gyration from it.
"""

from sibyls.metadata.reduction.guinier import GuinierFit, guinier_fit
from sibyls.metadata.reduction.iq import (
    FrameGeometry,
    RunProfile,
    read_frame_geometry,
    reduce_frames,
    reduce_run,
)

__all__ = [
    "FrameGeometry",
    "GuinierFit",
    "RunProfile",
    "guinier_fit",
    "read_frame_geometry",
    "reduce_frames",
    "reduce_run",
]
