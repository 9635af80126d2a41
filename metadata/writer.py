"""The record writer: a RunEngine callback writing one lambda-ber YAML record at each run's stop.

A user gets ``<records>/<project>/<scan_id>_<sample>_<uid8>.yaml`` for every run (also aborted, halted,
stopped and failed ones), written atomically. When the records folder cannot be written the record
is spooled to a fallback folder (or kept in memory) and moved in on the next stop or
``retry_spooled()``. The writer never raises into the RunEngine.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from sibyls.metadata.mapping import RunSummary, record_relpath

log = logging.getLogger(__name__)


def default_spool_dir() -> Path:
    """Fallback folder for records that could not be written: ``~/.local/state/sibyls/record-spool``."""
    return Path.home() / ".local" / "state" / "sibyls" / "record-spool"


def dump_record(record: dict) -> str:
    """YAML text of a record (key order kept)."""
    return yaml.safe_dump(record, sort_keys=False, allow_unicode=True, width=100)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temp file in the same folder, fsync, rename; no partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class RecordWriter:
    """``RE.subscribe(RecordWriter(records_dir))``: one lambda-ber record per run, written at stop."""

    def __init__(self, records_dir: Path | str, spool_dir: Path | str | None = None):
        self.records_dir = Path(records_dir)
        self.spool_dir = Path(spool_dir) if spool_dir is not None else default_spool_dir()
        self._runs: dict[str, RunSummary] = {}
        self._descriptor_run: dict[str, str] = {}
        self._resource_run: dict[str, str] = {}
        #: Records neither written nor spooled: (relative path, YAML text), retried later.
        self.pending: list[tuple[Path, str]] = []
        self.last_record_path: Path | None = None
        self.last_status: str | None = None  # "written", "spooled" or "pending"
        self.last_record: dict | None = None

    # ---- document routing -------------------------------------------------------------------------

    def __call__(self, name: str, doc: dict) -> None:
        """Ingest one document; never raises (errors are logged)."""
        try:
            self._route(name, doc)
        except Exception:
            log.exception("record writer failed on a %r document; the run continues", name)

    def _route(self, name: str, doc: dict) -> None:
        if name == "start":
            self._runs[doc["uid"]] = summary = RunSummary()
            summary(name, doc)
            return
        run_uid = self._run_of(name, doc)
        summary = self._runs.get(run_uid) if run_uid else None
        if summary is None:
            return
        summary(name, doc)
        if name == "descriptor":
            self._descriptor_run[doc["uid"]] = run_uid
        elif name in ("resource", "stream_resource"):
            self._resource_run[doc["uid"]] = run_uid
        elif name == "stop":
            self._finish(self._runs.pop(run_uid))

    def _run_of(self, name: str, doc: dict) -> str | None:
        if name in ("descriptor", "stop", "resource", "stream_resource") and "run_start" in doc:
            return doc["run_start"]
        if name in ("event", "event_page"):
            return self._descriptor_run.get(doc["descriptor"])
        if name in ("datum", "datum_page"):
            return self._resource_run.get(doc["resource"])
        if name == "resource" and len(self._runs) == 1:
            return next(iter(self._runs))
        return None

    # ---- writing ----------------------------------------------------------------------------------

    def _finish(self, summary: RunSummary) -> None:
        start = summary.start or {}
        for key in [k for k, v in self._descriptor_run.items() if v == start.get("uid")]:
            del self._descriptor_run[key]
        for key in [k for k, v in self._resource_run.items() if v == start.get("uid")]:
            del self._resource_run[key]
        record = summary.to_dataset().to_dict()
        self.last_record = record
        self.store(record_relpath(start), dump_record(record))
        self.retry_spooled()

    def store(self, relpath: Path, text: str) -> Path:
        """Write a record below the records folder; on failure spool it (or keep it in memory)."""
        target = self.records_dir / relpath
        try:
            self._write(target, text)
        except Exception as exc:
            log.error("could not write lambda-ber record %s (%s); spooling it", target, exc)
        else:
            log.info("lambda-ber record written: %s", target)
            self.last_record_path, self.last_status = target, "written"
            return target
        spooled = self.spool_dir / relpath
        try:
            atomic_write_text(spooled, text)
        except Exception as exc:
            log.error("could not spool record %s either (%s); keeping it in memory for retry", spooled, exc)
            self.pending.append((relpath, text))
            self.last_record_path, self.last_status = None, "pending"
            return target
        log.warning("lambda-ber record spooled to %s; it moves to %s once writable", spooled, target)
        self.last_record_path, self.last_status = spooled, "spooled"
        return spooled

    def _write(self, target: Path, text: str) -> None:
        atomic_write_text(target, text)

    def retry_spooled(self) -> list[Path]:
        """Move spooled and in-memory records into the records folder; returns the paths that landed."""
        landed: list[Path] = []
        still: list[tuple[Path, str]] = []
        for relpath, text in self.pending:
            try:
                self._write(self.records_dir / relpath, text)
                landed.append(self.records_dir / relpath)
            except Exception:
                still.append((relpath, text))
        self.pending = still
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
        for target in landed:
            log.info("spooled lambda-ber record landed: %s", target)
            if self.last_status != "written":
                self.last_record_path, self.last_status = target, "written"
        return landed

    def status(self) -> dict[str, Any]:
        """Counts of runs in progress, records pending in memory and in the spool folder."""
        spooled = len(list(self.spool_dir.rglob("*.yaml"))) if self.spool_dir.is_dir() else 0
        return {"open_runs": len(self._runs), "pending": len(self.pending), "spooled": spooled}
