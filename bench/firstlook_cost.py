"""What the first look's science costs a run, in process (no stack): the first figures of ``python -m
bench processing`` (``BENCH_PROCESSING_COST_ONLY=1`` runs only these, for a machine shared with others).

* **Batch sample, 10 frames of 400 q points** (the reducer's bins, the simulator's BSA at 2 mg/mL,
  counting noise): ``first_look_batch`` in full (CorMap, Guinier, Vc, I(0)/c, Kratky, then P(r) by
  BIFT with its Monte-Carlo errors, the Porod volume, the consensus MW, the expected-MW check) against
  the same without P(r) — today's stop → results plus what P(r) and the rest add; target ≤ 1 s added.
* **SEC, 600 frames** with two co-eluting species (SVD finds two, EFA separates them, MALS per
  species): ``first_look_sec``; target ≤ 10 s.

Median of ``REPEATS``; the machine is 2 cores shared with other work: figures may be noisy.
"""

from __future__ import annotations

import os
import statistics
import time

import numpy as np

from bench.common import Figure

REPEATS = int(os.environ.get("BENCH_FIRSTLOOK_REPEATS", "3"))
Q = np.linspace(0.008, 0.4, 400)
BUFFER_PER_CM = 0.03
COUNTS_PER_CM = 4.0e6  # counts per cm⁻¹ in a q bin at q = 0.1 Å⁻¹ for one frame (∝ q: ring area)


def _noisy(signal: np.ndarray, rng: np.random.Generator):
    from sibyls.saxs.reduction.curves import Curve

    scale = COUNTS_PER_CM * Q / 0.1
    counts = rng.poisson(signal * scale)
    return Curve(Q, counts / scale, np.sqrt(np.maximum(counts, 1)) / scale, "1/cm")


def _median_time(call) -> float:
    times = []
    for _ in range(REPEATS):
        began = time.perf_counter()
        call()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def _batch() -> Figure:
    from sibyls.devices.sim.samples import Q_GRID, catalogue_sample
    from sibyls.saxs.analysis.firstlook import first_look_batch

    rng = np.random.default_rng(1)
    sample = catalogue_sample("BSA", concentration_mg_ml=2.0)
    signal = np.interp(Q, Q_GRID, sample.intensity_table()) + BUFFER_PER_CM
    frames = [_noisy(signal, rng) for _ in range(10)]
    buffer = [_noisy(np.full_like(Q, BUFFER_PER_CM), rng) for _ in range(10)]
    first_look_batch(frames, buffer, 2.0, expected_mw_kda=66.5)  # warm: imports, compiled kernels

    def run(with_pr: bool):
        return lambda: first_look_batch(frames, buffer, 2.0, with_pr=with_pr, expected_mw_kda=66.5)

    without = _median_time(run(False))
    full = _median_time(run(True))
    added = full - without
    return Figure(
        name="first look, batch 10 frames: time P(r)/Porod/consensus add",
        ours=added,
        baseline=1.0,
        unit="s",
        target_ratio=1.0,
        baseline_name="target 1 s",
        note=f"without P(r) {without:.2f} s (today's part), in full {full:.2f} s; median of {REPEATS}",
    )


def _sec() -> Figure:
    from sibyls.devices.sim.samples import Q_GRID, catalogue_sample
    from sibyls.saxs.analysis.sec import first_look_sec

    rng = np.random.default_rng(2)
    n = 600
    t = np.arange(n, dtype=float)
    parts = []
    for name, apex, mass in (("dumbbell", 300.0, 0.5), ("lysozyme", 309.0, 1.0)):
        sample = catalogue_sample(name, concentration_mg_ml=1.0)
        form = np.interp(Q, Q_GRID, sample.intensity_table())
        parts.append((sample.mw_kda, mass * np.exp(-0.5 * ((t - apex) / 4.0) ** 2), form))
    frames = [_noisy(BUFFER_PER_CM + sum(c[i] * f for _, c, f in parts), rng) for i in range(n)]
    traces = {
        "mals": 0.01 + 2.0e-4 * sum(mw * c for mw, c, _ in parts),
        "ri": 1.85e-4 * sum(c for _, c, _ in parts),
    }
    result = first_look_sec(frames, traces, sample_name="bench_sec")
    seconds = _median_time(lambda: first_look_sec(frames, traces, sample_name="bench_sec"))
    masses = [s.mals_molar_mass_kda for sep in result.separations for s in sep.efa.species]
    return Figure(
        name="first look, SEC 600 frames (SVD + EFA of 2 co-eluting species)",
        ours=seconds,
        baseline=10.0,
        unit="s",
        target_ratio=1.0,
        baseline_name="target 10 s",
        note=f"EFA MALS masses {', '.join(f'{m:.1f}' for m in masses if m)} kDa; median of {REPEATS}",
    )


def run() -> list[Figure]:
    return [_batch(), _sec()]
