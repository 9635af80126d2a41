"""Reduction of SAXS frames: per-frame I(q) with solid-angle and polarisation corrections (agreeing
with pyFAI), normalised by I0, transmission and exposure, optionally on absolute scale; the
geometry from the frame files or a pyFAI PONI file.

A user gets the scattering profile of a run from its own frame files (geometry and pixel mask as
the detector wrote them), with Poisson uncertainties.
"""

from sibyls.saxs.reduction.integrate import CorrectedIntegrator, IntegratedStack, PixelCorrections
from sibyls.saxs.reduction.iq import (
    FrameGeometry,
    RunProfile,
    absolute_scale_from_runs,
    read_frame_geometry,
    reduce_frames,
    reduce_run,
    run_monitors,
)
from sibyls.saxs.reduction.poni import PoniGeometry, read_poni, write_poni
from sibyls.saxs.reduction.reducer import (
    WATER_I0_PER_CM,
    FrameReducer,
    ReducedStack,
    absolute_scale_from_water,
    mean_curve,
    q_resolution,
)

__all__ = [
    "WATER_I0_PER_CM",
    "CorrectedIntegrator",
    "FrameGeometry",
    "FrameReducer",
    "IntegratedStack",
    "PixelCorrections",
    "PoniGeometry",
    "ReducedStack",
    "RunProfile",
    "absolute_scale_from_runs",
    "absolute_scale_from_water",
    "mean_curve",
    "q_resolution",
    "read_frame_geometry",
    "read_poni",
    "reduce_frames",
    "reduce_run",
    "run_monitors",
    "write_poni",
]
