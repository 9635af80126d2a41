"""The overnight soak: plates of wells and a SEC run through the queue of a real stack, processing on.

``python -m bench soak`` starts a stack (time scale ``BENCH_SOAK_TIME_SCALE``, default 50), queues a
SEC run and the first plate (the warm-up), then the other plates (``BENCH_SOAK_PLATES`` plates of
``BENCH_SOAK_WELLS`` wells, buffer/sample pairs; default 4 × 96), and waits for every first look.
It checks that every item completed and every run has its record and first look, and samples the
resident memory of the manager, RE worker, HTTP server, processing service and IOC (psutil) at the
start, after the warm-up and at the end: the end must stay within 1.1 × the after-warm-up figure.
Redis memory (``INFO``), log bytes and var-folder bytes per run are reported, as a table printed
before the figures. A short one: ``BENCH_SOAK_PLATES=1 BENCH_SOAK_WELLS=16``.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from bench.common import Figure

PLATES = int(os.environ.get("BENCH_SOAK_PLATES", "4"))
WELLS = int(os.environ.get("BENCH_SOAK_WELLS", "96"))
TIME_SCALE = float(os.environ.get("BENCH_SOAK_TIME_SCALE", "50"))
PROJECT = "SOAK"
#: The end's memory must stay within this factor of the after-warm-up figure.
RSS_GROWTH = 1.1
MIB = 1024 * 1024


def run() -> list[Figure]:
    from sibyls.metadata.projects import Project, ProjectsFile
    from sibyls.startup.stack import down, manager_api, profile_config, up
    from sibyls.startup.stack.soak import (
        missing,
        plate_item,
        project_records,
        run_queue,
        runs_of,
        sec_item,
        wait_for_first_looks,
    )
    from sibyls.startup.stack.usage import sample

    var_dir = Path(tempfile.mkdtemp(prefix="sibyls-bench-soak-"))
    state = up(var_dir, ioc_prefix="BSK:", time_scale=TIME_SCALE, binning=8, timeout=180)
    try:
        ProjectsFile(profile_config(state).projects).add(Project(PROJECT, "soak", ("user",)))
        api = manager_api(state, timeout=30)
        records = project_records(state, PROJECT)
        plates = [plate_item(state, f"SOAK_P{n + 1}", PROJECT, WELLS) for n in range(PLATES)]
        time.sleep(2.5)  # the simulated robot re-reads the plate registry every second
        started = time.monotonic()
        at_start = sample(state)
        warm_up = [sec_item(state, "SOAK_SEC", PROJECT), *plates[:1]]
        rest = plates[1:]
        uids = run_queue(api, warm_up, timeout=60 + 30 * runs_of(warm_up))
        wait_for_first_looks(records, runs_of(warm_up), timeout=120 + 10 * runs_of(warm_up))
        after_warm_up = sample(state)
        if rest:
            uids += run_queue(api, rest, timeout=60 + 30 * runs_of(rest))
        runs = runs_of(warm_up + rest)
        wait_for_first_looks(records, runs, timeout=120 + 10 * runs)
        wall = time.monotonic() - started
        at_end = sample(state)
        problems = missing(api, uids, records, runs)
        api.close()
    finally:
        down(var_dir)
    for problem in problems[:20]:
        print(f"  MISSING {problem}")
    print(_table(len(uids), runs, wall, at_start, after_warm_up, at_end))
    figures = [
        Figure(
            f"soak: runs with record and first look ({len(uids)} items)",
            runs - len([p for p in problems if not p.startswith("item ")]),
            runs,
            "",
            1.0,
            "runs queued",
            lower_is_better=False,
            note=f"{len(problems)} problems" if problems else "every item completed",
        ),
        Figure(f"soak: wall time of {runs} runs", wall, runs, "s", None, "runs", note="per run: ratio"),
    ]
    for name, end in at_end.rss.items():
        warm = after_warm_up.rss.get(name, 0)
        figures.append(
            Figure(f"soak: RSS {name} at the end", end / MIB, warm / MIB, "Mi", RSS_GROWTH, "after warm-up")
        )
    figures.append(
        Figure(
            "soak: Redis used memory at the end",
            at_end.redis_memory / MIB,
            after_warm_up.redis_memory / MIB,
            "Mi",
            None,
            "after warm-up",
        )
    )
    figures.append(
        Figure(
            "soak: log bytes at the end",
            at_end.log_bytes / MIB,
            at_start.log_bytes / MIB,
            "Mi",
            None,
            "start",
        )
    )
    figures.append(
        Figure("soak: var-folder bytes per run", at_end.var_bytes / runs / MIB, 1, "Mi", None, "1 MiB")
    )
    return figures


def _table(items: int, runs: int, wall: float, at_start, after_warm_up, at_end) -> str:
    """The soak's table: items, wall, RSS start / after warm-up / end per process, Redis, logs, bytes."""
    lines = [
        f"soak: {items} items, {runs} runs, wall {wall:.0f} s ({wall / runs:.2f} s per run), "
        f"time scale {TIME_SCALE:g}",
        f"{'':<22} {'start':>10} {'warm-up':>10} {'end':>10} {'end/warm':>9}",
    ]
    for name in at_end.rss:
        start, warm, end = (s.rss.get(name, 0) for s in (at_start, after_warm_up, at_end))
        ratio = end / warm if warm else float("inf")
        label = f"RSS {name} MiB"
        lines.append(f"{label:<22} {start / MIB:>10.1f} {warm / MIB:>10.1f} {end / MIB:>10.1f} {ratio:>9.3f}")
    for label, attr in (
        ("Redis used MiB", "redis_memory"),
        ("logs MiB", "log_bytes"),
        ("var MiB", "var_bytes"),
    ):
        start, warm, end = (getattr(s, attr) / MIB for s in (at_start, after_warm_up, at_end))
        lines.append(
            f"{label:<22} {start:>10.2f} {warm:>10.2f} {end:>10.2f} {end / warm if warm else 0:>9.3f}"
        )
    grown = (at_end.var_bytes - at_start.var_bytes) / runs
    lines.append(
        f"{'var bytes per run':<22} {grown / 1024:>10.1f} KiB (growth from the start over {runs} runs)"
    )
    return "\n".join(lines)
