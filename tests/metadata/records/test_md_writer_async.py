"""The record writer never blocks the RunEngine, keeps run order, and loses no record at exit."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import bluesky.plans as bp
import pytest
import yaml
from ophyd import Signal

from sibyls.metadata import RunMetadata, inject_run_metadata
from sibyls.metadata import hashing as hashing_module
from sibyls.metadata.writer import SUMMARY_SUFFIX, RecordWriter

pytestmark = pytest.mark.slow

META = RunMetadata(
    sample_code="GluRS_1", project_code="PRJ-7", plan_type="saxs_exposure", sample_type="protein"
)
REPO = Path(__file__).resolve().parents[2]


def _sha(path: Path | str) -> str:
    return "sha256:" + hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _record(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


@pytest.fixture
def gate(monkeypatch):
    """Frame-file hashing waits until the test opens the gate (a slow disk, made deterministic)."""
    opened = threading.Event()
    real = hashing_module.file_facts

    def gated(path, *args, **kwargs):
        opened.wait(30)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(hashing_module, "file_facts", gated)
    yield opened
    opened.set()


@pytest.fixture
def closing():
    """Writers made by a test, closed at its end (no threads left behind)."""
    writers: list[RecordWriter] = []
    yield writers.append
    for w in writers:
        w.close(5)


class Timed:
    """Wraps the writer as the RunEngine's callback and times each document it takes."""

    def __init__(self, writer: RecordWriter) -> None:
        self.writer = writer
        self.stop_seconds: list[float] = []

    def __call__(self, name: str, doc: dict) -> None:
        t = time.perf_counter()
        self.writer(name, doc)
        if name == "stop":
            self.stop_seconds.append(time.perf_counter() - t)


def test_stop_returns_while_files_are_still_hashing_and_the_record_lands(
    RE, beamline, tmp_path, gate, closing
):
    writer = RecordWriter(tmp_path / "records", spool_dir=tmp_path / "spool")
    closing(writer)
    timed = Timed(writer)
    RE.subscribe(timed)
    (uid,) = RE(inject_run_metadata(bp.count([beamline["pilatus"]], num=4), META))
    # The run is over although not one frame file has been hashed yet.
    assert timed.stop_seconds[0] < 0.05, timed.stop_seconds
    assert writer.status()["queued"] == 1 and not list((tmp_path / "records").rglob("*.yaml"))
    assert writer.flush(0.2) is False
    gate.set()
    assert writer.flush(30)
    (path,) = (tmp_path / "records").rglob("*.yaml")
    assert uid[:8] in path.name and writer.last_status == "written"
    (data_file,) = _record(path)["data_files"]
    frame = Path(data_file["file_path"])
    assert data_file["checksum"] == _sha(frame)  # the file grew with each event: the final bytes count
    assert data_file["file_size_bytes"]["numeric_value"] == frame.stat().st_size
    assert writer.status() == {"open_runs": 0, "queued": 0, "pending": 0, "spooled": 0, "hashing": 0}


class OrderedWriter(RecordWriter):
    """Notes the order in which records reach the disk."""

    def __init__(self, *args, **kwargs) -> None:
        self.order: list[str] = []
        super().__init__(*args, **kwargs)

    def _write(self, target: Path, text: str) -> None:
        super()._write(target, text)
        self.order.append(target.name)


def test_records_are_written_in_run_order(RE, beamline, tmp_path, gate, closing):
    writer = OrderedWriter(tmp_path / "records", spool_dir=tmp_path / "spool")
    closing(writer)
    RE.subscribe(writer)
    # The first run has frame files to hash (held at the gate); the later ones have none and
    # would be ready first.
    uids = list(RE(inject_run_metadata(bp.count([beamline["pilatus"]], num=3), META)))
    counter = Signal(name="i0_counts", value=1.0)
    for i in range(3):
        uids += RE(inject_run_metadata(bp.count([counter]), META.model_copy(update={"sample_code": f"S{i}"})))
    assert writer.status()["queued"] == 4 and writer.order == []
    gate.set()
    assert writer.flush(30)
    assert [name.rsplit("_", 1)[1][:8] for name in writer.order] == [u[:8] for u in uids]


SCRIPT = textwrap.dedent(
    """
    import hashlib, multiprocessing, os, sys, time
    from pathlib import Path

    import event_model

    import sibyls.metadata.hashing as hashing
    from sibyls.metadata.writer import RecordWriter

    base, mode, n = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    real_file_facts = hashing.file_facts


    def slow_file_facts(*args, **kwargs):  # a slow disk: hashing is still going on at the stop
        time.sleep(0.01)
        return real_file_facts(*args, **kwargs)


    hashing.file_facts = slow_file_facts


    def run():
        frames = base / "data"
        frames.mkdir(parents=True, exist_ok=True)
        writer = RecordWriter(base / "records", spool_dir=base / "spool",
                              exit_timeout_s=0.0 if mode == "timeout" else 30.0)
        bundle = event_model.compose_run(metadata={"scan_id": 7, "sample_code": "S1", "project_code": "P",
                                                   "plan_type": "sec_saxs"})
        writer("start", bundle.start_doc)
        desc = bundle.compose_descriptor(name="primary", data_keys={
            "pilatus_image": {"source": "sim", "dtype": "array", "shape": [], "external": "FILESTORE:"}})
        writer("descriptor", desc.descriptor_doc)
        for i in range(n):
            path = frames / f"S1_{i + 1:05d}.h5"
            path.write_bytes(os.urandom(1 << 20) * 4)
            res = bundle.compose_resource(spec="AD_HDF5", root="/", resource_path=str(path).lstrip("/"),
                                          resource_kwargs={})
            writer("resource", res.resource_doc)
            datum = res.compose_datum(datum_kwargs={})
            writer("datum", datum)
            writer("event", desc.compose_event(data={"pilatus_image": datum["datum_id"]},
                                               timestamps={"pilatus_image": time.time()}))
        writer("stop", bundle.compose_stop())
        print(writer.status()["queued"], flush=True)  # the record is still on its way


    if mode == "multiprocessing":  # like the queueserver's RE worker: a child process ended by os._exit
        child = multiprocessing.get_context("fork").Process(target=run)
        child.start()
        child.join()
        sys.exit(child.exitcode)
    run()
    """
)


def _exit_right_after_stop(tmp_path: Path, mode: str, frames: int) -> subprocess.CompletedProcess:
    script = tmp_path / "short_run.py"
    script.write_text(SCRIPT)
    return subprocess.run(
        [sys.executable, str(script), str(tmp_path), mode, str(frames)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )


def _check_complete(record: dict, frames: int) -> None:
    files = record["data_files"]
    assert len(files) == frames
    for data_file in files:
        assert data_file["checksum"] == _sha(data_file["file_path"]), data_file["file_name"]
    assert record["experiment_runs"][0]["exit_status"] == "success"


def _no_temp_files(*folders: Path) -> None:
    for folder in folders:
        assert not [p for p in folder.rglob(".*") if p.is_file()], list(folder.rglob(".*"))


@pytest.mark.parametrize("mode", ["atexit", "multiprocessing"])
def test_exit_right_after_stop_still_writes_the_complete_record(tmp_path, mode):
    result = _exit_right_after_stop(tmp_path, mode, frames=24)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1", result.stdout  # the process exited with the record queued
    (path,) = (tmp_path / "records").rglob("*.yaml")
    _check_complete(_record(path), 24)
    assert not (tmp_path / "spool").exists()
    _no_temp_files(tmp_path / "records")


def test_exit_without_time_to_finish_spools_the_run_and_a_later_writer_completes_it(tmp_path, closing):
    result = _exit_right_after_stop(tmp_path, "timeout", frames=24)
    assert result.returncode == 0, result.stderr
    assert "spooled" in result.stderr
    assert not list((tmp_path / "records").rglob("*.yaml"))
    (summary,) = (tmp_path / "spool").rglob("*" + SUMMARY_SUFFIX)
    _no_temp_files(tmp_path / "spool")
    # The next process (the next environment) picks it up at once, without a run.
    writer = RecordWriter(tmp_path / "records", spool_dir=tmp_path / "spool")
    closing(writer)
    deadline = time.monotonic() + 30
    while not list((tmp_path / "records").rglob("*.yaml")) and time.monotonic() < deadline:
        time.sleep(0.05)
    (path,) = (tmp_path / "records").rglob("*.yaml")
    assert path.name == summary.name.removesuffix(SUMMARY_SUFFIX) + ".yaml"
    _check_complete(_record(path), 24)
    assert writer.flush(5) and not summary.exists()


def _wait_for(predicate, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_spooled_record_lands_by_the_timer_without_another_run(RE, beamline, tmp_path, closing):
    blocker = tmp_path / "records"
    blocker.write_text("not a directory")  # unwritable even for root, unlike chmod
    writer = RecordWriter(blocker, spool_dir=tmp_path / "spool", retry_interval_s=0.2)
    closing(writer)
    RE.subscribe(writer)
    (uid,) = RE(inject_run_metadata(bp.count([beamline["pilatus"]]), META))
    assert writer.flush(30) and writer.last_status == "spooled"
    assert writer.status()["spooled"] == 1
    blocker.unlink()
    assert _wait_for(lambda: list(blocker.rglob("*.yaml")))  # no run, no call: the timer moved it
    (path,) = blocker.rglob("*.yaml")
    assert _record(path)["studies"][0]["bluesky_uid"] == uid
    assert _wait_for(lambda: writer.status()["spooled"] == 0)


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, text=True)


def test_read_only_records_mount_spools_then_lands_by_the_timer(RE, beamline, tmp_path, closing):
    records = tmp_path / "records"
    records.mkdir()
    try:
        _mount("--bind", str(records), str(records))
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(
            f"bind mounts are not permitted here ({getattr(exc, 'stderr', exc)}); "
            "test_spooled_record_lands_by_the_timer_without_another_run covers the same with a file"
        )
    try:
        _mount("-o", "remount,bind,ro", str(records))
        writer = RecordWriter(records, spool_dir=tmp_path / "spool", retry_interval_s=0.2)
        closing(writer)
        RE.subscribe(writer)
        (uid,) = RE(inject_run_metadata(bp.count([beamline["pilatus"]]), META))
        assert writer.flush(30) and writer.last_status == "spooled"
        assert not list(records.rglob("*"))
        _mount("-o", "remount,bind,rw", str(records))
        assert _wait_for(lambda: list(records.rglob("*.yaml")))
        (path,) = records.rglob("*.yaml")
        assert _record(path)["studies"][0]["bluesky_uid"] == uid
    finally:
        subprocess.run(["umount", "-l", str(records)], capture_output=True)


def test_close_gives_a_run_still_open_a_fail_record(tmp_path):
    import event_model

    writer = RecordWriter(tmp_path / "records", spool_dir=tmp_path / "spool")
    bundle = event_model.compose_run(metadata={"scan_id": 3, "sample_code": "S", "project_code": "P"})
    writer("start", bundle.start_doc)
    assert writer.status()["open_runs"] == 1
    assert writer.close(10)
    (path,) = (tmp_path / "records").rglob("*.yaml")
    run = _record(path)["experiment_runs"][0]
    assert run["exit_status"] == "fail" and "exited before the run stopped" in run["exit_reason"]
    assert not writer._thread.is_alive()  # no thread left running


def test_racy_file_is_hashed_after_its_last_change(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"a" * 100)
    facts = hashing_module.file_facts(path)
    assert facts.sha256 == hashlib.sha256(b"a" * 100).hexdigest()
    assert facts.matches(os.stat(path))
    with open(path, "ab") as fh:
        fh.write(b"b")
    assert not facts.matches(os.stat(path))


def test_events_from_another_thread_while_datums_arrive_lose_no_file(tmp_path):
    """Monitor events come on Channel Access threads while the RunEngine thread emits datums: the
    writer's set of files to hash is shared by both and must not break ('dictionary changed size')."""
    import threading

    from sibyls.metadata.writer import _RunRecorder

    class Hasher:
        def __init__(self):
            self.paths = []

        def submit(self, path):
            self.paths.append(path)

    class Writer:
        _open: dict = {}
        _hasher = Hasher()

    recorder = _RunRecorder(Writer())
    recorder.summary.resources = {}
    from types import SimpleNamespace

    for i in range(2000):
        recorder.summary.resources[f"r{i}"] = SimpleNamespace(path=f"/data/f{i}.h5")
    errors = []

    def events():
        try:
            for _ in range(20000):
                recorder.submit_dirty()
        except Exception as exc:  # pragma: no cover - the failure being tested
            errors.append(exc)

    import sys

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
    try:
        thread = threading.Thread(target=events)
        thread.start()
        for i in range(2000):
            recorder._mark(f"r{i}")
        thread.join()
    finally:
        sys.setswitchinterval(interval)
    recorder.submit_dirty()
    assert errors == []
    assert sorted(set(Writer._hasher.paths)) == sorted(f"/data/f{i}.h5" for i in range(2000))
