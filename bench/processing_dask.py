"""``sibyls process`` of a whole archive on Dask: stored runs re-processed on 1 vs 2 workers.

Runs are made once through the simulated IOC (full-size 1475×1679 frames, ``FRAMES`` per run): a
buffer_blank and a sample subtracted with it, their document logs as the RunEngine wrote them. The
archive is ``BENCH_REPROCESS_RUNS`` (default 200) runs: copies of those two document logs, every uid
new (samples name their own buffer copy), the frame files shared. Each figure is the wall time of
:func:`sibyls.saxs.processing.reprocess.reprocess` of the whole project (frames read and reduced,
CorMap, subtraction, Guinier, P(r), MW, plots, results beside the records, summaries), the cluster
started and its workers warmed up beforehand; products go to a fresh folder each time.

* a ``LocalCluster`` of 2 worker processes vs 1 (baseline in the same run): throughput ratio,
  target ≥ 1.6× on 2 cores;
* the same through ``dask scheduler`` + ``dask worker --nworkers 2`` started as separate processes
  on loopback (``tcp://``) vs the 1-worker ``LocalCluster``: target ≥ 1.6×.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

from bench.common import Figure, run_documents

RUNS = int(os.environ.get("BENCH_REPROCESS_RUNS", "200"))
FRAMES = 5
PROJECT = "BENCH_REPROCESS"
TARGET = 1.6
PROTEIN = {"kind": "sample", "rg_a": 28.0, "concentration_mg_ml": 5.0, "mw_kda": 60.0}


def run() -> list[Figure]:
    """The figures (see the module docstring)."""
    from sibyls.saxs.processing.cluster import FirstLookCluster, scheduler_processes

    workdir = Path(tempfile.mkdtemp(prefix="sibyls-bench-reprocess-"))
    try:
        runs_dir = _archive(workdir)
        timings = {}
        for workers in (1, 2):
            with FirstLookCluster(workers=workers) as cluster:
                timings[workers] = _reprocess(cluster, runs_dir, workdir / f"local{workers}")
        with scheduler_processes(workdir, workers=2) as (address, _):
            with FirstLookCluster(address) as cluster:
                cluster.client().wait_for_workers(2, timeout=120)
                timings["tcp"] = _reprocess(cluster, runs_dir, workdir / "tcp")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    load = os.getloadavg()
    loaded = (
        f"load avg {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f} (1/5/15 min) on {os.cpu_count()} shared cores"
    )
    base = RUNS / timings[1]
    return [
        Figure(
            f"sibyls process {RUNS} stored runs, 2 Dask workers",
            RUNS / timings[2],
            base,
            "/s",
            TARGET,
            "1 Dask worker (LocalCluster)",
            lower_is_better=False,
            note=f"runs/s; wall {timings[2]:.1f} s vs {timings[1]:.1f} s; {FRAMES} full-size frames a run; "
            f"{loaded}",
        ),
        Figure(
            f"sibyls process {RUNS} stored runs, tcp:// 2 workers",
            RUNS / timings["tcp"],
            base,
            "/s",
            TARGET,
            "1 Dask worker (LocalCluster)",
            lower_is_better=False,
            note=f"runs/s; dask scheduler + dask worker --nworkers 2 as processes; wall "
            f"{timings['tcp']:.1f} s; {loaded}",
        ),
    ]


def _reprocess(cluster, runs_dir: Path, out: Path) -> float:
    """Wall seconds of re-processing the archive on ``cluster`` (warmed up first); every run must succeed."""
    from sibyls.metadata.runs.sources import FolderRunSource
    from sibyls.saxs.processing.reprocess import reprocess

    cluster.warm_up()
    began = time.perf_counter()
    outcome = reprocess(FolderRunSource(runs_dir), out / "records", out / "processed", project=PROJECT,
                        cluster=cluster)  # fmt: skip
    seconds = time.perf_counter() - began
    if outcome.failures or len(outcome.done) != RUNS:
        raise RuntimeError(
            f"reprocess on {cluster.where}: {len(outcome.done)} done, failures {outcome.failures[:3]}"
        )
    print(f"  {RUNS} runs on {cluster.where}: {seconds:.1f} s", flush=True)
    return seconds


def _archive(workdir: Path) -> Path:
    """``RUNS`` stored runs: a buffer and a sample measured through the IOC, copied with new uids."""
    from bench.common import ca_port
    from sibyls.devices.beamline import build_beamline
    from sibyls.devices.sim.control import build_simulation_control
    from sibyls.devices.sim.launcher import start_ioc
    from sibyls.metadata.mapping import json_default
    from sibyls.plans import configure_plans, saxs_exposure

    recorded: list[tuple[str, dict]] = []
    prefix = f"BR{uuid.uuid4().hex[:4]}:"
    ioc = start_ioc(prefix, ca_port(), workdir / "ioc.log", binning=1, time_scale=20.0)
    try:
        from bluesky import RunEngine

        beamline = build_beamline(prefix)
        simulation = build_simulation_control(prefix)
        configure_plans(beamline, workdir / "data")
        RE = RunEngine({}, call_returns_result=True)
        RE.subscribe(
            lambda name, doc: recorded.append((name, json.loads(json.dumps(doc, default=json_default))))
        )
        simulation.put_in_cell({"sample_code": "buf", "kind": "buffer"})
        (buffer_uid,) = RE(saxs_exposure("buf", PROJECT, exposure_time=1.0, num_frames=FRAMES,
                                         sample_role="buffer_blank")).run_start_uids  # fmt: skip
        simulation.put_in_cell({"sample_code": "prot", **PROTEIN})
        plan = saxs_exposure("prot", PROJECT, exposure_time=1.0, num_frames=FRAMES, concentration_mg_ml=5.0,
                             buffer_run_uid=buffer_uid)  # fmt: skip
        (sample_uid,) = RE(plan).run_start_uids
        simulation.put_in_cell(None)
    finally:
        ioc.stop()
    runs_dir = workdir / "runs"
    runs_dir.mkdir()
    buffer_text, sample_text = (json.dumps(run_documents(recorded, uid)) for uid in (buffer_uid, sample_uid))
    for pair in range(RUNS // 2):
        buffer = _renewed(buffer_text, {}, 2 * pair)
        sample = _renewed(sample_text, {buffer_uid: buffer[0][1]["uid"]}, 2 * pair + 1)
        for documents in (buffer, sample):
            start = documents[0][1]
            lines = "\n".join(json.dumps(d) for d in documents) + "\n"
            (runs_dir / f"{start['scan_id']}_{start['uid'][:8]}.jsonl").write_text(lines)
    return runs_dir


def _renewed(text: str, fixed: dict[str, str], index: int) -> list:
    """A copy of a run's documents: every uid new (``fixed`` maps old uids to given new ones), its
    scan id, time and sample code by ``index``."""
    import re

    for old in set(re.findall(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", text)):
        text = text.replace(old, fixed.get(old) or str(uuid.uuid4()))
    documents = json.loads(text)
    start = documents[0][1]
    start.update(
        scan_id=1000 + index, time=start["time"] + index, sample_code=f"{start['sample_code']}{index}"
    )
    return documents
