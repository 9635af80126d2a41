"""Reduction benchmark: full-size PILATUS3 X 2M frames (1679×1475 int32) to normalised I(q) with
solid-angle and polarisation corrections, gap/beamstop mask and Poisson σ.

Ours: :class:`sibyls.saxs.reduction.reducer.FrameReducer` on a stack (corrected integration,
I0/transmission normalisation, q-resolution), all cores. Baseline, in the same run on the same
frames: pyFAI ``integrate1d`` with the same geometry, mask and corrections (``method=("no", "csr",
"cython")``, ``error_model="poisson"``, ``safe=False``; its CSR matrix built before timing), frame by
frame. Target: ≥ 250 frames/s — the detector's top frame rate — and faster than pyFAI. Both figures
depend on what else the machine runs: the kernel is bound by memory bandwidth (~3 ms per frame and
core on an idle 2-core machine, about as long as ``numpy.sum`` of the frame).
"""

from __future__ import annotations

import numpy as np

from bench.common import Figure, median_seconds
from sibyls.devices.geometry import POLARIZATION_FACTOR, DetectorGeometry, module_gap_mask
from sibyls.saxs.reduction.poni import pyfai_integrator
from sibyls.saxs.reduction.reducer import FrameReducer

FRAMES = 24
PYFAI_FRAMES = 6
DETECTOR_RATE_HZ = 250.0
BINS = 400


def _frames(geometry: DetectorGeometry, count: int) -> np.ndarray:
    rng = np.random.default_rng(1)
    mean = 40.0 * geometry.solid_angle() / geometry.solid_angle().max()
    frames = rng.poisson(mean, size=(count, *geometry.shape)).astype(np.int32)
    frames[:, module_gap_mask(1)] = -1
    return frames


def run() -> list[Figure]:
    geometry = DetectorGeometry(binning=1)
    mask = (module_gap_mask(1) | (geometry.radius_mm() <= 2.2)).astype(np.uint32)
    frames = _frames(geometry, FRAMES)
    i0 = np.full(FRAMES, 2.0e7)
    bs = np.full(FRAMES, 1.1e6)
    reducer = FrameReducer.from_geometry(geometry, mask, bins=BINS, empty_beam_ratio=0.1)
    reducer.reduce_stack(frames[:2], i0[:2], bs[:2], 1.0)  # compiles the kernel (cached on disk after)
    ours_s = median_seconds(lambda: reducer.reduce_stack(frames, i0, bs, 1.0), 5) / FRAMES

    ai = pyfai_integrator(geometry)
    edges = reducer.integrator.q_edges
    masked = mask != 0  # computed once, and safe=False: pyFAI's fastest repeated call

    def pyfai_one(frame):
        return ai.integrate1d(
            frame,
            BINS,
            unit="q_A^-1",
            radial_range=(float(edges[0]), float(edges[-1])),
            mask=masked,
            correctSolidAngle=True,
            polarization_factor=POLARIZATION_FACTOR,
            error_model="poisson",
            method=("no", "csr", "cython"),
            safe=False,
        )

    pyfai_one(frames[0])  # builds pyFAI's CSR matrix, outside the timing
    base_s = median_seconds(lambda: [pyfai_one(f) for f in frames[:PYFAI_FRAMES]], 3) / PYFAI_FRAMES
    # The floor on this machine right now: reading every frame once (numpy.sum, one core).
    floor_s = median_seconds(lambda: [f.sum(dtype=np.int64) for f in frames], 3) / FRAMES
    threads = reducer.integrator.threads
    return [
        Figure(
            "reduce full 1679x1475 frames, corrected, vs pyFAI",
            1.0 / ours_s,
            1.0 / base_s,
            "/s",
            1.0,
            "pyFAI integrate1d csr no-split, same corrections",
            lower_is_better=False,
            note=f"{threads} threads",
        ),
        Figure(
            "reduce full 1679x1475 frames vs detector rate",
            1.0 / ours_s,
            DETECTOR_RATE_HZ,
            "/s",
            1.0,
            "PILATUS3 X 2M top frame rate (250 Hz)",
            lower_is_better=False,
            note=f"{threads} threads",
        ),
        Figure(
            "reduce full frames vs reading them once",
            1.0 / ours_s,
            1.0 / floor_s,
            "/s",
            None,
            "numpy.sum of each frame, one core (memory floor now)",
            lower_is_better=False,
        ),
    ]
