"""First-look results in the run's record after its stop, and the plate's pace with processing on.

Everything runs as in ``sibyls up``: the RunEngine (with the project's record writer) publishes every
document with bluesky's ``Publisher`` into a ``bluesky-0MQ-proxy``; the processing service
(``python -m sibyls.startup.stack.processing``, its own process) reads the proxy with a
``RemoteDispatcher`` and merges each run's numbers into the record the RunEngine's writer wrote. A
latency is measured end to end: from the ``time`` of the run's stop document until the record file on
disk holds ``quality_metrics`` (the file is watched from the moment the stop document is emitted).
Its baseline, in the same runs, is the record writer's own latency: stop → the raw record on disk.

* **10-frame batch sample** (full-size 1475×1679 frames from the simulated IOC): a buffer_blank run,
  then the sample subtracted with it (``buffer_run_uid``); median over ``SAMPLES`` pairs;
  target ≤ 2 s.
* **600-frame full-size SEC run** (``sec_saxs``, 3 s frames over 30 min, the published SIBYLS
  method): one real run through the IOC with the service processing live (time-scaled so that the
  simulator, ~0.4 s per full frame, keeps pace with the HPLC clock: a frame every 1 s, ~10 min),
  then its documents are *replayed* ``SEC_REPLAYS`` times (fresh uids, times of now) into the same
  Publisher and a fresh record writer, the frames' events ``SEC_SPACING_S`` apart (default 0.1 s:
  30× denser than the 3 s frames, 10× denser than 1 s frames; the replays read the frame files the
  IOC wrote). Replays give several samples of a run that takes minutes to acquire; denser than that
  the record writer (sha256 of 10 MB per frame) and the service (read + reduce) fall behind on this
  loaded 2-core machine, and the figure would measure their backlog, not the work left at the stop.
  Figure: median over the replays, the live run in the note; target ≤ 2 s.
* **sibyls process of 200 stored runs on Dask** (1 vs 2 workers, and through ``tcp://``):
  :mod:`bench.processing_dask`.
* **ht_plate wall time / physical minimum**, processing off and on (the Publisher subscribed and
  the service consuming on this machine), same plate as ``bench_plans`` (binned-8 frames, time
  scale 4); target ≤ 1.02× for both.

First, in process, what the first look's science costs (:mod:`bench.firstlook_cost`): the time P(r),
the Porod volume and the consensus add to a batch sample (≤ 1 s) and a 600-frame SEC first look with
two co-eluting species (≤ 10 s); ``BENCH_PROCESSING_COST_ONLY=1`` stops there.

The machine is 2 cores shared with other work: figures may be noisy; the note says so.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from bench.common import Figure, run_documents

SAMPLES = int(os.environ.get("BENCH_PROCESSING_SAMPLES", "5"))
BATCH_FRAMES = 10
SEC_FRAMES = int(os.environ.get("BENCH_SEC_FRAMES", "600"))
#: The published SIBYLS SEC method: 30 min of elution recorded (3 s frames when 600 frames).
SEC_DURATION_MIN = 30.0
SEC_FRAME_PERIOD_S = SEC_DURATION_MIN * 60.0 / SEC_FRAMES
SEC_REPLAYS = int(os.environ.get("BENCH_SEC_REPLAYS", "3"))
SEC_SPACING_S = float(os.environ.get("BENCH_SEC_SPACING_S", "0.1"))
#: Simulated seconds per wall second for the live SEC run: a frame every 1 s of wall time, so the
#: simulator (~0.4 s per full frame, up to ~0.9 s on this loaded machine) keeps pace with the HPLC
#: clock: each frame must show the eluate of its own moment, and the HPLC run ends 1 min after the
#: last frame is due.
SEC_TIME_SCALE = SEC_FRAME_PERIOD_S / 1.0
LATENCY_TARGET_S = 2.0
RECORD_TIMEOUT_S = 120.0
POLL_S = 0.005
PROTEIN = {"kind": "sample", "rg_a": 28.0, "concentration_mg_ml": 5.0, "mw_kda": 60.0}
PARTS = os.environ.get("BENCH_PROCESSING_PARTS", "live,reprocess").split(",")


def run() -> list[Figure]:
    """The live first look's figures, then ``sibyls process`` of an archive on Dask
    (:mod:`bench.processing_dask`); ``BENCH_PROCESSING_PARTS`` picks some (``live``, ``reprocess``)."""
    from bench import processing_dask

    figures = _live() if "live" in PARTS else []
    return figures + (processing_dask.run() if "reprocess" in PARTS else [])


def _live() -> list[Figure]:
    from bench.common import ca_port
    from bench.firstlook_cost import run as analysis_cost
    from sibyls.devices.sim.launcher import start_ioc

    cost = analysis_cost()  # the science alone (bench/firstlook_cost.py): P(r) etc. ≤ 1 s, SEC ≤ 10 s
    if os.environ.get("BENCH_PROCESSING_COST_ONLY"):
        return cost

    workdir = Path(tempfile.mkdtemp(prefix="sibyls-bench-processing-"))
    prefix = f"BQ{uuid.uuid4().hex[:4]}:"
    ioc = start_ioc(prefix, ca_port(), workdir / "ioc.log", binning=1, time_scale=10.0)
    pipeline = None
    try:
        pipeline = _Pipeline(workdir)
        figures = cost + _measure(prefix, pipeline)
    finally:
        if pipeline is not None:
            pipeline.stop()
        ioc.stop()
        shutil.rmtree(workdir / "data", ignore_errors=True)  # ~6 GB of full-size SEC frames
    shutil.rmtree(workdir, ignore_errors=True)  # kept (logs, records) only when the benchmark failed
    return figures


class _Pipeline:
    """The document proxy and the processing service, as ``sibyls up`` starts them."""

    def __init__(self, workdir: Path) -> None:
        from bluesky.callbacks.zmq import Publisher

        from sibyls.devices.epics_env import free_tcp_port
        from sibyls.devices.sim.launcher import ManagedProcess, spawn_service
        from sibyls.startup.config import ProfileConfig
        from sibyls.startup.stack.processing import READY_FILE
        from sibyls.startup.stack.services import child_env, console_script

        ports = free_tcp_port(), free_tcp_port()
        self.config = ProfileConfig.given(
            var_dir=workdir,
            document_proxy=f"127.0.0.1:{ports[0]}",
            document_feed=f"127.0.0.1:{ports[1]}",
        )
        env = {**child_env(), **self.config.as_env()}
        logs = workdir / "logs"
        proxy_cmd = [console_script("bluesky-0MQ-proxy"), "--in-address", f"tcp://127.0.0.1:{ports[0]}",
                     "--out-address", f"tcp://127.0.0.1:{ports[1]}"]  # fmt: skip
        proxy = spawn_service(proxy_cmd, logs / "proxy.log", env)
        self.processes = [ManagedProcess("proxy", proxy, logs / "proxy.log")]
        try:
            ready = self.config.state_dir / READY_FILE
            command = [sys.executable, "-m", "sibyls.startup.stack.processing"]
            service = spawn_service(command, logs / "processing.log", env)
            self.processes.append(ManagedProcess("processing", service, logs / "processing.log"))
            deadline = time.monotonic() + 120.0
            while not (ready.is_file() and ready.read_text().strip() == str(service.pid)):
                if service.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"processing service did not start; see {logs / 'processing.log'}")
                time.sleep(0.1)
            self.publisher = Publisher(self.config.document_proxy)
        except BaseException:
            self.stop()
            raise

    def status(self) -> dict:
        from sibyls.startup.stack.processing import read_status

        return read_status(self.config.state_dir) or {}

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()


class _RecordWatch:
    """Document callback: at the stop of each run it is ``active`` for, watch the run's record file.

    ``latencies[uid]`` becomes (stop → raw record on disk, stop → record with ``quality_metrics``,
    stop → record ``processing_status: completed`` i.e. with the plots), seconds from the stop
    document's ``time``; None where it did not happen within the timeout. Buffer runs get no
    ``quality_metrics``; for them only the first and last are watched.
    """

    def __init__(self, records_dir: Path) -> None:
        self.records_dir = records_dir
        self.active = True
        self.starts: dict[str, dict] = {}
        self.latencies: dict[str, tuple[float | None, float | None, float | None]] = {}
        self._threads: dict[str, threading.Thread] = {}

    def __call__(self, name: str, doc: dict) -> None:
        from sibyls.metadata.mapping import record_relpath

        if name == "start" and self.active:
            self.starts[doc["uid"]] = doc
        elif name == "stop" and doc["run_start"] in self.starts:
            start = self.starts.pop(doc["run_start"])
            path = self.records_dir / record_relpath(start)
            metrics = start.get("sample_role") != "buffer_blank"
            thread = threading.Thread(target=self._watch, args=(start["uid"], path, doc["time"], metrics),
                                      daemon=True)  # fmt: skip
            self._threads[start["uid"]] = thread
            thread.start()

    def result(self, uid: str) -> tuple[float | None, float | None, float | None]:
        """The run's latencies, once all are known (or the watch timed out)."""
        self._threads[uid].join()
        return self.latencies[uid]

    def wait_all(self) -> None:
        """Until every watched run has its plots in its record (or timed out)."""
        for thread in list(self._threads.values()):
            thread.join()

    def _watch(self, uid: str, path: Path, stop_time: float, metrics: bool) -> None:
        raw = results = completed = None
        seen = None
        deadline = time.monotonic() + RECORD_TIMEOUT_S
        while completed is None and time.monotonic() < deadline:
            try:
                stat = path.stat()
            except FileNotFoundError:
                time.sleep(POLL_S)
                continue
            if raw is None:
                raw = time.time() - stop_time
            if (stat.st_ino, stat.st_mtime_ns) != seen:  # written anew (records are replaced atomically)
                seen = stat.st_ino, stat.st_mtime_ns
                text = path.read_text(encoding="utf-8")
                if results is None and metrics and "quality_metrics:" in text:
                    results = time.time() - stop_time
                if "processing_status: completed" in text:
                    completed = time.time() - stop_time
            time.sleep(POLL_S)
        self.latencies[uid] = (raw, results, completed)


def _measure(prefix: str, pipeline: _Pipeline) -> list[Figure]:
    from bluesky import RunEngine
    from ophyd import EpicsSignal

    from bench.bench_plans import PLATE_TIME_SCALE, PLATE_WELLS, plate_wall_time
    from sibyls.devices.beamline import build_beamline
    from sibyls.devices.sim.control import build_simulation_control
    from sibyls.plans import configure_plans, setup_run_engine

    beamline = build_beamline(prefix)
    simulation = build_simulation_control(prefix)
    binning = EpicsSignal(f"{prefix}Pilatus:Binning", name="binning")
    binning.wait_for_connection(timeout=10)
    configure_plans(beamline, pipeline.config.data_dir)
    RE = RunEngine({}, call_returns_result=True)
    setup_run_engine(RE, beamline, pipeline.config.records_dir, spool_dir=pipeline.config.spool_dir)
    watch = _RecordWatch(pipeline.config.records_dir)
    RE.subscribe(watch)
    publishing = RE.subscribe(pipeline.publisher)

    binning.put(1, wait=True)
    simulation.time_scale.put(10.0, wait=True)
    batch = _batch_latencies(RE, simulation, watch)
    sec_live, sec_replays, sec_note = _sec_latencies(RE, beamline, simulation, watch, pipeline)

    # The plate as bench_plans measures it (binned-8 frames), without and then with the first look.
    binning.put(8, wait=True)
    simulation.time_scale.put(PLATE_TIME_SCALE, wait=True)
    watch.wait_all()
    RE.unsubscribe(publishing)
    watch.active = False
    off_wall, minimum = plate_wall_time(RE, beamline, "BENCH_PLATE_OFF", "BENCH_OFF")
    RE.subscribe(pipeline.publisher)
    watch.active = True
    watched = set(watch.latencies)
    on_wall, _ = plate_wall_time(RE, beamline, "BENCH_PLATE_ON", "BENCH_ON")
    watch.wait_all()
    plate_runs = [watch.latencies[uid] for uid in set(watch.latencies) - watched]
    plate_done = sum(1 for *_, completed in plate_runs if completed is not None)
    failures = pipeline.status().get("failed", 0)

    batch_raw = statistics.median(r for r, _, _ in batch)
    batch_results = statistics.median(q for _, q, _ in batch)
    batch_plots = statistics.median(c for _, _, c in batch)
    sec_raw = statistics.median(r for r, _, _ in sec_replays)
    sec_results = statistics.median(q for _, q, _ in sec_replays)
    sec_plots = statistics.median(c for _, _, c in sec_replays)
    loaded = f"load avg {os.getloadavg()[0]:.1f} on {os.cpu_count()} shared cores: may be noisy"
    return [
        Figure(
            f"results in record after stop, {BATCH_FRAMES}-frame batch (median)",
            batch_results,
            batch_raw,
            "s",
            None,
            "record writer: stop → raw record",
            note=f"target ≤ {LATENCY_TARGET_S:g} s: {_verdict(batch_results)}; full-size frames; each "
            + ", ".join(f"{q:.2f}" for _, q, _ in batch)
            + f" s; plots in the record {batch_plots:.2f} s; {loaded}",
        ),
        Figure(
            f"results in record after stop, {SEC_FRAMES}-frame SEC (median)",
            sec_results,
            sec_raw,
            "s",
            None,
            "record writer: stop → raw record",
            note=f"target ≤ {LATENCY_TARGET_S:g} s: {_verdict(sec_results)}; {sec_note}; plots in the "
            f"record {sec_plots:.2f} s; live run through the IOC: results {_fmt(sec_live[1])} s, raw "
            f"record {_fmt(sec_live[0])} s, plots {_fmt(sec_live[2])} s",
        ),
        Figure(
            f"ht_plate {PLATE_WELLS} wells at {PLATE_TIME_SCALE:g}x, processing off (wall)",
            off_wall,
            minimum,
            "s",
            1.02,
            "simulated robot + exposure time",
            note="no Publisher on the RunEngine",
        ),
        Figure(
            f"ht_plate {PLATE_WELLS} wells at {PLATE_TIME_SCALE:g}x, processing on (wall)",
            on_wall,
            minimum,
            "s",
            1.02,
            "simulated robot + exposure time",
            note=f"on/off {on_wall / off_wall:.3f}; {plate_done}/{len(plate_runs)} wells' records "
            f"completed by the service; service failures {failures}; {loaded}",
        ),
    ]


def _verdict(seconds: float) -> str:
    return "ok" if seconds <= LATENCY_TARGET_S else "MISSED"


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _checked(latencies: tuple[float | None, ...], what: str) -> tuple[float, float, float]:
    if any(value is None for value in latencies):
        raise RuntimeError(f"{what}: the record did not get its first look within {RECORD_TIMEOUT_S:g} s "
                           f"(raw, results, plots: {latencies})")  # fmt: skip
    return latencies  # type: ignore[return-value]


def _batch_latencies(RE, simulation, watch: _RecordWatch) -> list[tuple[float, float, float]]:
    """Buffer then sample, ``SAMPLES`` times; the sample runs' (raw, results, plots) latencies."""
    from sibyls.plans import saxs_exposure

    measured = []
    for i in range(SAMPLES + 1):  # the first pair warms up connections, files and the service
        simulation.put_in_cell({"sample_code": f"buf{i}", "kind": "buffer"})
        (buffer_uid,) = RE(saxs_exposure(f"buf{i}", "BENCH_BATCH", exposure_time=1.0, num_frames=BATCH_FRAMES,
                                         sample_role="buffer_blank")).run_start_uids  # fmt: skip
        simulation.put_in_cell({"sample_code": f"prot{i}", **PROTEIN})
        sample = saxs_exposure(f"prot{i}", "BENCH_BATCH", exposure_time=1.0, num_frames=BATCH_FRAMES,
                               concentration_mg_ml=5.0, buffer_run_uid=buffer_uid)  # fmt: skip
        (uid,) = RE(sample).run_start_uids
        latencies = _checked(watch.result(uid), f"batch sample {i}")
        if i:
            measured.append(latencies)
    return measured


def _sec_latencies(RE, beamline, simulation, watch: _RecordWatch, pipeline: _Pipeline):
    """One live SEC run through the IOC, then its documents replayed; (live, replays, note)."""
    from sibyls.devices.sim.samples import catalogue_sample
    from sibyls.metadata.mapping import KEY_IMAGE
    from sibyls.metadata.writer import RecordWriter
    from sibyls.plans import sec_saxs

    duration_min = SEC_DURATION_MIN
    flow = 0.5
    sample = catalogue_sample("GluRS", sample_code="GluRS_sec", concentration_mg_ml=8.0)
    beamline.sec.load_vial(sample.model_dump(mode="json", exclude_none=True))
    simulation.time_scale.put(SEC_TIME_SCALE, wait=True)
    recorded: list[tuple[str, dict]] = []
    token = RE.subscribe(lambda name, doc: recorded.append((name, doc)))
    began = time.monotonic()
    try:
        (uid,) = RE(sec_saxs(sample.sample_code, "BENCH_SEC", flow_rate=flow, frame_period=SEC_FRAME_PERIOD_S,
                             exposure_time=min(2.5, SEC_FRAME_PERIOD_S - 0.5),
                             duration=duration_min)).run_start_uids  # fmt: skip
    finally:
        RE.unsubscribe(token)
    acquired_s = time.monotonic() - began
    live = watch.result(uid)  # reported as measured, also if it timed out

    documents = run_documents(recorded, uid)
    frames = sum(1 for name, doc in documents if name == "event" and KEY_IMAGE in doc["data"])
    replays = []
    for i in range(SEC_REPLAYS):
        writer = RecordWriter(pipeline.config.records_dir, spool_dir=pipeline.config.spool_dir)
        try:
            targets = (writer, pipeline.publisher, watch)
            new_uid, stream_s = _replay(documents, targets)
            replays.append(_checked(watch.result(new_uid), f"SEC replay {i}"))
        finally:
            writer.close()
    note = (
        f"replays of one real run ({frames} full-size frames; live acquisition took {acquired_s:.0f} s), "
        f"frames {SEC_SPACING_S * 1e3:g} ms apart ({stream_s:.1f} s per replay); each "
        + ", ".join(f"{q:.2f}" for _, q, _ in replays)
        + " s"
    )
    return live, replays, note


def _replay(documents: list[tuple[str, dict]], targets) -> tuple[str, float]:
    """Send a run's documents again as a new run (every uid new, every time now) to ``targets``,
    the frames' events ``SEC_SPACING_S`` apart; the new run's uid and the seconds it took."""
    from sibyls.metadata.mapping import KEY_IMAGE

    old = [doc["uid"] for _, doc in documents if "uid" in doc]
    text = json.dumps(documents)
    for uid in old:
        text = text.replace(uid, str(uuid.uuid4()))
    renewed = json.loads(text)
    began = time.monotonic()
    next_frame = began
    for name, doc in renewed:
        if name == "event" and KEY_IMAGE in doc["data"]:
            pause = next_frame - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            next_frame += SEC_SPACING_S
        doc["time"] = time.time()
        if name == "event":
            doc["timestamps"] = dict.fromkeys(doc["timestamps"], doc["time"])
        for target in targets:
            target(name, doc)
    return renewed[0][1]["uid"], time.monotonic() - began
