"""PNG export: a log I vs q plot of a run's I(q) with error bars, for mail-in users."""

from __future__ import annotations

from pathlib import Path

from sibyls.metadata.atomic import atomic_path
from sibyls.metadata.runs.sources import StoredRun
from sibyls.saxs.reduction.iq import RunProfile, reduce_run


def write_png(run: StoredRun, target: Path, reduced: RunProfile | None = None) -> Path:
    """A log I vs q plot (with error bars) of the run's I(q) for mail-in users."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    reduced = reduced or reduce_run(run)
    p = reduced.profile
    keep = p.intensity > 0
    fig = Figure(figsize=(6, 4.5), dpi=100)
    ax = fig.add_subplot()
    ax.errorbar(p.q[keep], p.intensity[keep], yerr=p.sigma[keep], fmt=".", ms=3, elinewidth=0.6)
    ax.set_yscale("log")
    ax.set_xlabel("q (1/Å)")
    ax.set_ylabel(f"I ({p.unit})")
    start = run.start
    ax.set_title(f"{start.get('sample_code')}  ·  scan {start.get('scan_id')}  ·  {reduced.frames} frames")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png")
    return target
