"""A record for every run that opened, also when the RE worker died before the run's stop."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from sibyls.metadata.replay.records import validate_documents
from sibyls.metadata.runs.doclog import DocumentLog, part_files, read_document_log, write_document_log
from sibyls.metadata.runs.recovery import WORKER_DIED_REASON, recover_unfinished_runs
from sibyls.metadata.runs.sources import FolderRunSource
from sibyls.metadata.writer import RecordWriter

REPO = Path(__file__).resolve().parents[2]

WORKER = textwrap.dedent(
    """
    import itertools, sys, uuid
    from pathlib import Path

    import bluesky.plan_stubs as bps
    import bluesky.plans as bp
    import h5py
    import numpy as np
    from bluesky import RunEngine
    from ophyd import Component as Cpt, Device, Signal
    from ophyd.status import StatusBase

    from sibyls.metadata.runs.doclog import DocumentLog
    from sibyls.metadata.writer import RecordWriter

    var, mode = Path(sys.argv[1]), sys.argv[2]
    if mode == "after_stop":  # a slow disk: the record is still being made when the worker dies
        import time

        import sibyls.metadata.hashing as hashing

        real_file_facts = hashing.file_facts

        def slow_file_facts(*args, **kwargs):
            time.sleep(5)
            return real_file_facts(*args, **kwargs)

        hashing.file_facts = slow_file_facts


    class Frames(Device):
        \"\"\"One HDF5 file per trigger, closed before the event, like the IOC.\"\"\"

        image = Cpt(Signal, value="")

        def stage(self):
            self._assets, self._n = [], itertools.count(1)
            return super().stage()

        def trigger(self):
            path = var / "data" / f"S_{uuid.uuid4().hex[:6]}_{next(self._n):05d}.h5"
            path.parent.mkdir(parents=True, exist_ok=True)
            with h5py.File(path, "w") as fh:
                fh["entry/data/data"] = np.random.default_rng().integers(0, 99, (1, 16, 16), dtype="i4")
            res = str(uuid.uuid4())
            resource = {"uid": res, "spec": "AD_HDF5", "root": "/", "resource_kwargs": {},
                        "resource_path": str(path).lstrip("/"), "path_semantics": "posix"}
            datum = {"resource": res, "datum_id": f"{res}/0", "datum_kwargs": {}}
            self._assets += [("resource", resource), ("datum", datum)]
            self.image.put(f"{res}/0")
            status = StatusBase()
            status.set_finished()
            return status

        def describe(self):
            desc = super().describe()
            desc[self.image.name].update(external="FILESTORE:", dtype="array", shape=[1, 16, 16])
            return desc

        def collect_asset_docs(self):
            yield from self._assets
            self._assets = []


    det = Frames(name="pilatus")
    RE = RunEngine({})
    RE.subscribe(RecordWriter(var / "records", spool_dir=var / "spool"))
    RE.subscribe(DocumentLog(var / "runs"))
    md = {"project_code": "P", "sample_type": "protein", "plan_type": "saxs_exposure"}
    RE(bp.count([det], num=2), sample_code="done", **md)
    if mode == "after_stop":
        print("STOPPED", flush=True)
        time.sleep(600)


    def dies_mid_run():
        yield from bps.stage(det)
        yield from bps.open_run(md={"sample_code": "dies", **md})
        for _ in range(3):
            yield from bps.trigger_and_read([det])
        print("RUN OPEN", flush=True)
        yield from bps.sleep(600)


    RE(dies_mid_run())
    """
)


def _sha(path: str) -> str:
    return "sha256:" + hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _records(folder: Path) -> dict[str, dict]:
    return {p.name: yaml.safe_load(p.read_text()) for p in folder.rglob("*.yaml")}


@pytest.fixture
def writer(tmp_path):
    w = RecordWriter(tmp_path / "var" / "records", spool_dir=tmp_path / "var" / "spool")
    yield w
    w.close(10)


def _kill_worker(var: Path, mode: str, when: str) -> None:
    """Run the worker script and SIGKILL it once it prints ``when``."""
    script = var.parent / "worker.py"
    script.write_text(WORKER)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(var), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        line = proc.stdout.readline()
        assert line.strip() == when, line + proc.stderr.read()
        os.kill(proc.pid, signal.SIGKILL)  # the RE worker dies: no stop document, no exit hook
    finally:
        proc.kill()
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL


def test_runs_whose_worker_died_get_exactly_one_fail_record(tmp_path, writer):
    var = tmp_path / "var"
    runs = var / "runs"
    _kill_worker(var, "mid_run", "RUN OPEN")
    (left,) = part_files(runs)  # the dead worker's open run
    before = _records(var / "records")  # the finished run's record (unless the kill came first)
    assert [r["experiment_runs"][0]["sample_code"] for r in before.values()] in ([], ["done"])

    # A stored run without stop (another writer's log), and a run open right now in this process.
    stopless = [("start", {"uid": "6f1c2a3b-0000-4000-8000-0000000000c1", "time": 5.0, "scan_id": 9,
                           "sample_code": "nostop", "project_code": "P", "plan_type": "count"})]  # fmt: skip
    write_document_log(runs / "P" / "00009_nostop_6f1c2a3b.jsonl", stopless)
    live = DocumentLog(runs)
    live_uid = "5e0b1a2c-0000-4000-8000-0000000000d1"
    live("start", {"uid": live_uid, "time": 6.0, "scan_id": 10, "sample_code": "live", "project_code": "P"})

    handed = recover_unfinished_runs(runs, writer)
    assert writer.flush(30)
    after = _records(var / "records")
    assert sorted(r["experiment_runs"][0]["sample_code"] for r in after.values()) == [
        "dies",
        "done",
        "nostop",
    ]
    new = {name: rec for name, rec in after.items() if rec["experiment_runs"][0]["sample_code"] != "done"}
    assert len(handed) == len(after) - len(before) and stopless[0][1]["uid"] in handed
    for rec in new.values():
        run = rec["experiment_runs"][0]
        assert run["exit_status"] == "fail" and run["exit_reason"] == WORKER_DIED_REASON
        assert run["processing_status"] == "failed"
    (died,) = [r for r in new.values() if r["experiment_runs"][0]["sample_code"] == "dies"]
    assert len(died["data_files"]) == 3  # the frames taken before the worker died, checksums and all
    assert all(f["checksum"] == _sha(f["file_path"]) for f in died["data_files"])
    primary = [s for s in died["experiment_runs"][0]["bluesky_streams"] if s["stream_name"] == "primary"]
    assert primary[0]["event_count"] == 3

    # The dead run's documents now end with a stop saying why, in their usual place.
    assert not left.exists()
    uid = died["experiment_runs"][0]["bluesky_uid"]
    (log_file,) = runs.rglob(f"*{uid[:8]}.jsonl")
    documents = list(read_document_log(log_file))
    assert documents[-1][0] == "stop" and documents[-1][1]["reason"] == WORKER_DIED_REASON
    validate_documents(documents)
    assert FolderRunSource(runs).load(uid).start["uid"] == uid

    # Idempotent: a second pass (the next environment open) writes nothing new.
    mtimes = {p: p.stat().st_mtime_ns for p in (var / "records").rglob("*.yaml")}
    assert recover_unfinished_runs(runs, writer) == []
    assert writer.flush(30)
    assert {p: p.stat().st_mtime_ns for p in (var / "records").rglob("*.yaml")} == mtimes
    assert not (var / "spool").exists()
    # The live run was left alone.
    assert len(part_files(runs)) == 1 and not any(live_uid[:8] in name for name in after)


def test_half_written_last_line_is_dropped(tmp_path, writer):
    runs = tmp_path / "var" / "runs"
    runs.mkdir(parents=True)
    uid = "6f1c2a3b-0000-4000-8000-0000000000e1"
    start = {"uid": uid, "time": 1.0, "scan_id": 4, "sample_code": "S", "project_code": "P"}
    desc = {"uid": "d1", "run_start": uid, "time": 1.5, "name": "primary", "data_keys": {}}
    part = runs / f".{uid}.abc123.jsonl.part"
    part.write_text(
        json.dumps(["start", start]) + "\n" + json.dumps(["descriptor", desc]) + '\n["event", {"uid"'
    )
    assert recover_unfinished_runs(runs, writer) == [uid]
    assert writer.flush(30)
    (record,) = _records(tmp_path / "var" / "records").values()
    assert record["experiment_runs"][0]["exit_status"] == "fail"
    (log_file,) = runs.rglob("*.jsonl")
    assert [name for name, _ in read_document_log(log_file)] == ["start", "descriptor", "stop"]
    assert recover_unfinished_runs(runs, writer) == []


def test_records_already_queued_are_not_recovered_twice(tmp_path, writer):
    runs = tmp_path / "var" / "runs"
    uid = "6f1c2a3b-0000-4000-8000-0000000000f1"
    write_document_log(
        runs / "P" / "x.jsonl",
        [("start", {"uid": uid, "time": 1.0, "scan_id": 5, "sample_code": "S", "project_code": "P"})],
    )
    assert recover_unfinished_runs(runs, writer) == [uid]
    assert recover_unfinished_runs(runs, writer) == []  # still queued (or written): not again
    assert writer.flush(30)
    assert len(_records(tmp_path / "var" / "records")) == 1


def test_run_that_stopped_just_before_the_worker_died_gets_its_record(tmp_path, writer):
    var = tmp_path / "var"
    _kill_worker(var, "after_stop", "STOPPED")
    assert not _records(var / "records") and not part_files(var / "runs")  # log complete, record not
    (handed,) = recover_unfinished_runs(var / "runs", writer)
    assert writer.flush(30)
    (record,) = _records(var / "records").values()
    run = record["experiment_runs"][0]
    assert run["bluesky_uid"] == handed and run["exit_status"] == "success" and run["sample_code"] == "done"
    assert len(record["data_files"]) == 2
    assert all(f["checksum"] == _sha(f["file_path"]) for f in record["data_files"])
    assert recover_unfinished_runs(var / "runs", writer) == []
