"""Recovery of unfinished runs: every run that opened gets its record, even when its RE worker died.

A beamline user gets, for a run whose RE worker died (killed, crashed, host power-cycled), a
lambda-ber record from the same mapping as every other record, with exit status ``fail`` and the
reason "the RE worker ended before the run stopped (no stop document)", and its document log closed
by that stop document and moved to its usual place. Call :func:`recover_unfinished_runs` when the
environment opens; :func:`stale_part_files` names the part files nothing can be recovered from
(:func:`sibyls.metadata.housekeeping.cleanup_leftovers` removes them).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sibyls.metadata.mapping import RunSummary, record_relpath
from sibyls.metadata.runs.doclog import part_files

if TYPE_CHECKING:
    from sibyls.metadata.writer import RecordWriter

log = logging.getLogger(__name__)

#: ``exit_reason`` of the record of a run whose worker died before the run stopped.
WORKER_DIED_REASON = "the RE worker ended before the run stopped (no stop document)"


@dataclass
class _Intact:
    documents: list[tuple[str, dict]]
    size: int  # bytes of complete, readable lines


def _read_intact(path: Path) -> _Intact:
    """The documents of a log up to its first incomplete or unreadable line (a killed writer's tail)."""
    documents: list[tuple[str, dict]] = []
    size = 0
    with open(path, "rb") as fh:
        for line in fh:
            if not line.endswith(b"\n"):
                break
            try:
                name, doc = json.loads(line)
            except ValueError:
                break
            documents.append((name, doc))
            size += len(line)
    return _Intact(documents, size)


def closing_stop(start: dict, documents: list[tuple[str, dict]], when: float) -> dict:
    """The stop document a run whose worker died never got: exit status ``fail`` and the reason."""
    names = {d["uid"]: d.get("name", "primary") for n, d in documents if n == "descriptor"}
    counts: dict[str, int] = {name: 0 for name in names.values()}
    for name, doc in documents:
        if name == "event" and doc.get("descriptor") in names:
            counts[names[doc["descriptor"]]] += 1
        elif name == "event_page" and doc.get("descriptor") in names:
            counts[names[doc["descriptor"]]] += len(doc.get("seq_num", []))
    return {
        "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"sibyls:recovered-stop:{start['uid']}")),
        "time": when,
        "run_start": start["uid"],
        "exit_status": "fail",
        "reason": WORKER_DIED_REASON,
        "num_events": counts,
    }


def _summary(documents: list[tuple[str, dict]]) -> RunSummary:
    summary = RunSummary()
    for name, doc in documents:
        summary(name, doc)
    return summary


def _is_locked(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    return False


def stale_part_files(folder: Path | str) -> list[Path]:
    """Part files no live process holds and nothing can be recovered from.

    That is: no intact start document, or the run's complete log already exists. Part files that
    still hold an unfinished run are left for :func:`recover_unfinished_runs`.
    """
    stale = []
    folder = Path(folder)
    for part in part_files(folder):
        try:
            fd = os.open(part, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            if _is_locked(fd):
                continue
            with open(part, "rb") as fh:
                first = fh.readline()
            try:
                name, start = json.loads(first) if first.endswith(b"\n") else (None, None)
            except ValueError:
                name, start = None, None
            if name != "start" or (folder / record_relpath(start).with_suffix(".jsonl")).exists():
                stale.append(part)
        finally:
            os.close(fd)
    return stale


def recover_unfinished_runs(folder: Path | str, writer: RecordWriter) -> list[str]:
    """Give every run that opened and has no record its record; returns the run uids handed to ``writer``.

    A beamline user gets, for a run whose RE worker died (killed, crashed, host power-cycled), a
    lambda-ber record from the same mapping as every other record (frame files, checksums and
    all): with exit status ``fail`` and the reason "the RE worker ended before the run stopped (no
    stop document)" when the run never stopped, or as the run ended when the worker died after
    the stop but before its record was written. Looked at: part files left in ``folder`` by a dead
    :class:`DocumentLog` (their documents are then closed with that stop document and moved to
    ``<folder>/<project>/<name>.jsonl``) and the complete logs below ``folder``. Runs that already
    have a record (written, spooled or queued) are skipped, so calling this again writes nothing
    new; a part file locked by a live process is never touched. ``writer`` writes the records in
    the background (``writer.flush()`` waits for them).
    """
    folder = Path(folder)
    handed: list[str] = []
    for part in part_files(folder):
        try:
            uid = _recover_part(part, folder, writer)
        except Exception:
            log.exception("could not recover the run in %s", part)
            continue
        if uid:
            handed.append(uid)
    if not folder.is_dir():
        return handed
    for path in sorted(folder.rglob("*.jsonl")):
        if path.name.startswith("."):
            continue
        try:
            if writer.has_record(path.relative_to(folder).with_suffix(".yaml")):
                continue  # the usual case: a DocumentLog file has its record's name
            documents = _read_intact(path).documents
            if not documents or documents[0][0] != "start":
                continue
            start = documents[0][1]
            stopped = any(name == "stop" for name, _ in documents)
            if not stopped:
                documents.append(("stop", closing_stop(start, documents, path.stat().st_mtime)))
            if writer.submit_summary(_summary(documents)):
                why = "has no record" if stopped else "never stopped: writing its fail record"
                log.warning("run %s in %s %s", start["uid"], path, why)
                handed.append(start["uid"])
        except Exception:
            log.exception("could not check the document log %s", path)
    return handed


def _recover_part(part: Path, folder: Path, writer: RecordWriter) -> str | None:
    try:
        fd = os.open(part, os.O_RDWR)
    except FileNotFoundError:
        return None
    try:
        if _is_locked(fd):
            return None  # a live DocumentLog is writing this run
        intact = _read_intact(part)
        documents = intact.documents
        if not documents or documents[0][0] != "start":
            return None  # nothing to recover; cleanup_leftovers removes it
        start = documents[0][1]
        if not any(name == "stop" for name, _ in documents):
            stop = closing_stop(start, documents, os.fstat(fd).st_mtime)
            os.ftruncate(fd, intact.size)  # drop a half-written last line
            os.lseek(fd, intact.size, os.SEEK_SET)
            os.write(fd, (json.dumps(["stop", stop]) + "\n").encode())
            os.fsync(fd)
            documents.append(("stop", stop))
        handed = writer.submit_summary(_summary(documents))
        if handed:
            log.warning("run %s was left open by a dead RE worker: writing its fail record", start["uid"])
        target = folder / record_relpath(start).with_suffix(".jsonl")
        if target.exists():
            part.unlink()
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(part, target)
        return start["uid"] if handed else None
    finally:
        os.close(fd)
