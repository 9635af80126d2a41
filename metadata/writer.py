"""The record writer: a RunEngine callback giving one lambda-ber YAML record per run, never blocking.

A user gets ``<records>/<project>/<scan_id>_<sample>_<uid8>.yaml`` for every run (also aborted,
halted, stopped and failed ones), written atomically and in run order. The RunEngine does not wait
for it: frame files are checksummed in a background thread as their events are emitted, the stop
callback only hands the run's summary to a background writer thread, which assembles the record
and writes it (temp file, fsync, rename).

Nothing is lost: when the records folder cannot be written the record goes to the spool folder
(or, if that fails too, stays in memory) and is moved in by a timer (every ``retry_interval_s``),
at each later stop, or by ``retry_spooled()``. At process exit (``atexit``, and multiprocessing's
exit hook for the queueserver worker) the writer waits up to ``exit_timeout_s`` for queued records;
a run whose record is not finished by then is spooled as a summary (``<name>.run.json``) and its
record is completed from the spool later. ``flush(timeout)`` waits for the queue (tests, shutdown);
``status()`` counts open runs, queued records, records pending in memory and spooled files.
The writer never raises into the RunEngine.

(Over 400 lines on purpose: one class whose RunEngine side, writer thread, spool, retry timer and
exit hooks share one lock discipline; split, the locking would be spread over modules.)
"""

from __future__ import annotations

import atexit
import json
import logging
import multiprocessing.util
import os
import queue
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from event_model import DocumentRouter

from sibyls.metadata.atomic import atomic_write_text
from sibyls.metadata.hashing import Cancelled, FileFacts, FileHasher
from sibyls.metadata.mapping import RunSummary, json_default, record_relpath
from sibyls.metadata.record_results import record_lock, with_waiting_results
from sibyls.metadata.record_yaml import dump_record
from sibyls.metadata.routing import PerRunRouter

log = logging.getLogger(__name__)

#: ``exit_reason`` of a record written for a run that never got its stop document.
EXITED_REASON = "the process exited before the run stopped (no stop document)"
#: Suffix of a spooled run summary whose record is still to be assembled.
SUMMARY_SUFFIX = ".run.json"


def default_spool_dir() -> Path:
    """Fallback folder for records that could not be written: ``~/.local/state/sibyls/record-spool``."""
    return Path.home() / ".local" / "state" / "sibyls" / "record-spool"


def summary_relpath(relpath: Path) -> Path:
    """Spool name of a run summary whose record is ``relpath``: ``<project>/<name>.run.json``."""
    return relpath.with_name(relpath.stem + SUMMARY_SUFFIX)


@dataclass
class _Job:
    """One run handed to the writer thread: its summary and any checksums already known."""

    summary: RunSummary
    relpath: Path
    known: dict[str, FileFacts] = field(default_factory=dict)


_STOP = object()


class _RunRecorder(DocumentRouter):
    """One run's documents → its :class:`RunSummary`; frame files go to the hasher as they are final."""

    def __init__(self, writer: RecordWriter) -> None:
        super().__init__()
        self.writer = writer
        self.summary = RunSummary()
        self._dirty: dict[str, str] = {}  # resource uid -> file path with data not yet hashed
        # Monitor events (bps.monitor: the SEC detectors) arrive on Channel Access threads while the
        # RunEngine thread marks new datums: the two meet here.
        self._dirty_lock = threading.Lock()

    def start(self, doc):
        self.summary("start", doc)
        self.writer._open[doc["uid"]] = self

    def descriptor(self, doc):
        self.summary("descriptor", doc)

    def resource(self, doc):
        self.summary("resource", doc)
        self._mark(doc["uid"])

    def stream_resource(self, doc):
        self.summary("stream_resource", doc)
        self._mark(doc["uid"])

    def datum(self, doc):
        self.summary("datum", doc)
        self._mark(doc["resource"])

    def datum_page(self, doc):
        self.summary("datum_page", doc)
        self._mark(doc["resource"])

    def stream_datum(self, doc):
        # The file may still grow; hashing now is a head start, checked again at assembly.
        self._mark(doc["stream_resource"])
        self.submit_dirty()

    def event(self, doc):
        self.summary("event", doc)
        # The detector has closed the files this event references: hash them now.
        self.submit_dirty()

    def event_page(self, doc):
        self.summary("event_page", doc)
        self.submit_dirty()

    def stop(self, doc):
        self.summary("stop", doc)
        self.submit_dirty()
        self.writer._open.pop(doc["run_start"], None)
        self.writer._hand_off(self.summary)

    def _mark(self, resource_uid: str) -> None:
        res = self.summary.resources.get(resource_uid)
        if res is not None and res.path:
            with self._dirty_lock:
                self._dirty[resource_uid] = res.path

    def submit_dirty(self) -> None:
        with self._dirty_lock:
            dirty, self._dirty = self._dirty, {}
        for path in dirty.values():
            self.writer._hasher.submit(path)


_open_writers: set[RecordWriter] = set()
_exit_hook_pid: int | None = None


def _close_all_writers() -> None:
    """At process exit: every open writer flushes (bounded) and spools what is left."""
    for writer in list(_open_writers):
        try:
            writer.close(writer.exit_timeout_s)
        except Exception:
            log.exception("record writer did not close cleanly")


def _ensure_exit_hook() -> None:
    """``atexit`` plus multiprocessing's exit hook: a queueserver worker ends with ``os._exit``."""
    global _exit_hook_pid
    if _exit_hook_pid == os.getpid():
        return
    _exit_hook_pid = os.getpid()
    atexit.register(_close_all_writers)
    multiprocessing.util.Finalize(None, _close_all_writers, exitpriority=100)


class RecordWriter:
    """``RE.subscribe(RecordWriter(records_dir))``: one lambda-ber record per run, written off the RE thread.

    ``retry_interval_s``: how often spooled records are retried; ``exit_timeout_s``: how long the
    exit hook waits for queued records before spooling them.
    """

    def __init__(
        self,
        records_dir: Path | str,
        spool_dir: Path | str | None = None,
        *,
        retry_interval_s: float = 30.0,
        exit_timeout_s: float = 10.0,
    ):
        self.records_dir = Path(records_dir)
        self.spool_dir = Path(spool_dir) if spool_dir is not None else default_spool_dir()
        self.retry_interval_s = retry_interval_s
        self.exit_timeout_s = exit_timeout_s
        self._router = PerRunRouter([self._factory])
        self._open: dict[str, _RunRecorder] = {}
        self._hasher = FileHasher()
        self._queue: queue.Queue = queue.Queue()
        self._cond = threading.Condition()
        self._unfinished = 0  # jobs handed off and not yet written or spooled
        self._in_flight: set[Path] = set()  # their record paths
        self._retry_lock = threading.Lock()  # one retry_spooled at a time
        self._pending_lock = threading.Lock()  # pending and last_*
        self._abandon = threading.Event()
        self._closed = False
        #: Records neither written nor spooled: (relative path, YAML text), retried later.
        self.pending: list[tuple[Path, str]] = []
        self.last_record_path: Path | None = None
        self.last_status: str | None = None  # "written", "spooled" or "pending"
        self.last_record: dict | None = None
        self._thread = threading.Thread(target=self._loop, name="sibyls-record-writer", daemon=True)
        _ensure_exit_hook()
        _open_writers.add(self)
        self._thread.start()

    # ---- the RunEngine side: cheap, never raises ----------------------------------------------------

    def __call__(self, name: str, doc: dict) -> None:
        """Ingest one document; never raises (errors are logged)."""
        try:
            self._router(name, doc)
        except KeyError as exc:
            log.debug("record writer ignored a %r document of an unknown run (%s)", name, exc)
        except Exception:
            log.exception("record writer failed on a %r document; the run continues", name)

    def _factory(self, name: str, start: dict) -> tuple[list, list]:
        return [_RunRecorder(self)], []

    def _hand_off(self, summary: RunSummary, known: dict[str, FileFacts] | None = None) -> None:
        self._enqueue(_Job(summary, record_relpath(summary.start or {}), known or {}))

    def _enqueue(self, job: _Job) -> None:
        with self._cond:
            self._unfinished += 1
            self._in_flight.add(job.relpath)
        self._queue.put(job)

    def submit_summary(self, summary: RunSummary) -> bool:
        """Queue a finished (or closed-by-recovery) run's record; False if it is already on its way."""
        relpath = record_relpath(summary.start or {})
        if self.has_record(relpath):
            return False
        self._hand_off(summary)
        return True

    def has_record(self, relpath: Path) -> bool:
        """Whether the record ``relpath`` exists, is spooled, pending or queued."""
        with self._cond:
            if relpath in self._in_flight:
                return True
        with self._pending_lock:
            if any(p == relpath for p, _ in self.pending):
                return True
        return any(
            p.exists()
            for p in (
                self.records_dir / relpath,
                self.spool_dir / relpath,
                self.spool_dir / summary_relpath(relpath),
            )
        )

    # ---- the writer thread ----------------------------------------------------------------------------

    def _loop(self) -> None:
        next_retry = time.monotonic()  # spooled records of an earlier process are retried at once
        while True:
            try:
                job = self._queue.get(timeout=max(0.0, next_retry - time.monotonic()))
            except queue.Empty:
                self._retry_quietly()
                next_retry = time.monotonic() + self.retry_interval_s
                continue
            if job is _STOP:
                return
            try:
                self._process(job)
                if not self._abandon.is_set() and self._queue.empty():
                    self._retry_quietly()  # a record landed: the folder may be writable again
            except Exception:
                log.exception("record of %s could not be written", job.relpath)
            finally:
                with self._cond:
                    self._unfinished -= 1
                    self._in_flight.discard(job.relpath)
                    self._cond.notify_all()

    def _process(self, job: _Job) -> None:
        if self._abandon.is_set():
            self._spool_summary(job)
            return
        try:
            record = job.summary.to_dataset(facts=lambda p: self._hasher.result(p, job.known.get(str(p))))
        except Cancelled:
            self._spool_summary(job)
            return
        self._hasher.forget(job.summary.file_paths().values())
        record_dict = record.to_dict()
        target = self.records_dir / job.relpath
        with ExitStack() as held:
            try:
                held.enter_context(record_lock(target))
            except OSError:  # the records folder is not writable: the record goes to the spool
                pass
            else:
                try:
                    record_dict = with_waiting_results(target, record_dict)
                except Exception:
                    log.exception("first-look results waiting beside %s could not be merged", target)
            self.last_record = record_dict
            self.store(job.relpath, dump_record(record_dict))

    def _spool_summary(self, job: _Job) -> None:
        """Spool a run whose record could not be assembled in time; it is completed on a later retry."""
        known = dict(job.known)
        for path in job.summary.file_paths().values():
            facts = self._hasher.known(path)
            if facts is not None:
                known[str(path)] = facts
        state = {
            "relpath": str(job.relpath),
            "summary": job.summary.to_state(),
            "facts": {k: v.to_state() for k, v in known.items()},
        }
        target = self.spool_dir / summary_relpath(job.relpath)
        try:
            atomic_write_text(target, json.dumps(state, default=json_default))
        except Exception as exc:
            log.error("record of run %s is lost: its summary cannot be spooled to %s (%s)",
                      (job.summary.start or {}).get("uid"), target, exc)  # fmt: skip
            return
        log.warning("record %s not finished in time; its run summary is spooled to %s", job.relpath, target)

    def _retry_quietly(self) -> None:
        try:
            self.retry_spooled()
        except Exception:
            log.exception("retrying spooled records failed")

    # ---- writing ----------------------------------------------------------------------------------------

    def store(self, relpath: Path, text: str) -> Path:
        """Write a record below the records folder; on failure spool it (or keep it in memory)."""
        target = self.records_dir / relpath
        try:
            self._write(target, text)
        except Exception as exc:
            log.error("could not write lambda-ber record %s (%s); spooling it", target, exc)
        else:
            log.info("lambda-ber record written: %s", target)
            with self._pending_lock:
                self.last_record_path, self.last_status = target, "written"
            return target
        spooled = self.spool_dir / relpath
        try:
            atomic_write_text(spooled, text)
        except Exception as exc:
            log.error("could not spool record %s either (%s); keeping it in memory", spooled, exc)
            with self._pending_lock:
                self.pending.append((relpath, text))
                self.last_record_path, self.last_status = None, "pending"
            return target
        log.warning("lambda-ber record spooled to %s; it moves to %s once writable", spooled, target)
        with self._pending_lock:
            self.last_record_path, self.last_status = spooled, "spooled"
        return spooled

    def _write(self, target: Path, text: str) -> None:
        atomic_write_text(target, text)

    def retry_spooled(self) -> list[Path]:
        """Move spooled and in-memory records into the records folder; returns the paths that landed.

        Spooled run summaries (``*.run.json``) are assembled into records first (hashing any frame
        file not hashed yet).
        """
        landed: list[Path] = []
        with self._retry_lock:
            with self._pending_lock:
                waiting, self.pending = self.pending, []
            still: list[tuple[Path, str]] = []
            for relpath, text in waiting:
                try:
                    self._write(self.records_dir / relpath, text)
                    landed.append(self.records_dir / relpath)
                except Exception:
                    still.append((relpath, text))
            with self._pending_lock:
                self.pending[:0] = still
            if self.spool_dir.is_dir():
                for spooled in sorted(self.spool_dir.rglob("*.yaml")):
                    if spooled.name.startswith("."):
                        continue
                    relpath = spooled.relative_to(self.spool_dir)
                    target = self.records_dir / relpath
                    try:
                        self._write(target, spooled.read_text(encoding="utf-8"))
                        spooled.unlink()
                    except Exception as exc:
                        log.debug("spooled record %s still cannot be written: %s", spooled, exc)
                        continue
                    landed.append(target)
                for state_file in sorted(self.spool_dir.rglob("*" + SUMMARY_SUFFIX)):
                    if state_file.name.startswith(".") or self._abandon.is_set():
                        continue
                    path = self._complete_summary(state_file)
                    if path is not None and path.is_relative_to(self.records_dir):
                        landed.append(path)
        for target in landed:
            log.info("spooled lambda-ber record landed: %s", target)
        with self._pending_lock:
            if landed and self.last_status != "written":
                self.last_record_path, self.last_status = landed[-1], "written"
        return landed

    def _complete_summary(self, state_file: Path) -> Path | None:
        """Assemble and store the record of a spooled run summary; the summary file goes once stored."""
        try:
            state = json.loads(state_file.read_text(encoding="utf-8"))
            summary = RunSummary.from_state(state["summary"])
            relpath = Path(state["relpath"])
            known = {k: FileFacts.from_state(v) for k, v in state.get("facts", {}).items()}
        except Exception as exc:
            bad = state_file.with_name(state_file.name + ".invalid")
            log.error("spooled run summary %s is unreadable (%s); renamed to %s", state_file, exc, bad)
            state_file.rename(bad)
            return None
        if (self.records_dir / relpath).exists():
            state_file.unlink()
            return None
        try:
            record = summary.to_dataset(facts=lambda p: self._hasher.result(p, known.get(str(p))))
        except Cancelled:
            return None
        path = self.store(relpath, dump_record(record.to_dict()))
        state_file.unlink(missing_ok=True)
        return path

    # ---- control ----------------------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every handed-off record is written (or spooled); False if ``timeout`` passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._unfinished:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def close(self, timeout: float | None = 10.0) -> bool:
        """Finish: runs still open get a ``fail`` record, queued records get ``timeout`` seconds to be
        written, whatever is left is spooled, and both threads end. True if nothing had to be spooled.
        """
        if self._closed:
            return True
        self._closed = True
        _open_writers.discard(self)
        for recorder in list(self._open.values()):
            start = recorder.summary.start or {}
            stop = {"uid": f"{start.get('uid')}-exited", "run_start": start.get("uid"), "time": time.time(),
                    "exit_status": "fail", "reason": EXITED_REASON}  # fmt: skip
            recorder.summary("stop", stop)
            recorder.submit_dirty()
            self._hand_off(recorder.summary)
        self._open.clear()
        drained = self.flush(timeout)
        # What is left is spooled; a retry of an earlier spooled summary under way stops hashing and
        # leaves it in the spool for the next process.
        self._abandon.set()
        self._hasher.close(timeout=0)
        self._queue.put(_STOP)
        self._thread.join(5.0)
        self._hasher.close(5.0)
        if self._thread.is_alive():
            log.error("record writer thread did not end; %d record(s) may be unwritten", self._unfinished)
        return drained

    def status(self) -> dict[str, Any]:
        """Runs in progress, records queued for writing, pending in memory, and files in the spool folder."""
        spooled = 0
        if self.spool_dir.is_dir():
            spooled = sum(
                1
                for p in self.spool_dir.rglob("*")
                if not p.name.startswith(".") and (p.suffix == ".yaml" or p.name.endswith(SUMMARY_SUFFIX))
            )
        return {
            "open_runs": len(self._open),
            "queued": self._unfinished,
            "pending": len(self.pending),
            "spooled": spooled,
            "hashing": self._hasher.backlog(),
        }
