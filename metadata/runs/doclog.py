"""The document log: every run's Bluesky documents as one JSON-lines file, written atomically.

``RE.subscribe(DocumentLog(folder))`` gives ``<folder>/<project>/<scan_id>_<sample>_<uid8>.jsonl``
per run (the record's name with ``.jsonl``); the file appears complete at the run's stop, never
half-written. The folder is a run source for exports and record conversion
(:class:`sibyls.metadata.runs.sources.FolderRunSource`).

While a run is open its documents go, line by line, to ``<folder>/.<uid>.<random>.jsonl.part``,
flushed line by line and locked (``flock``) by the process writing it. When that process dies
mid-run (a killed RE worker) the part file stays behind, unlocked, for
:func:`sibyls.metadata.runs.recovery.recover_unfinished_runs`. (The part file is an append-only log
renamed at the stop with :func:`sibyls.metadata.atomic.publish`, not a one-shot atomic write.)
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from event_model import UnresolvableForeignKeyError

from sibyls.metadata.atomic import atomic_path, publish
from sibyls.metadata.mapping import json_default, record_relpath
from sibyls.metadata.routing import PerRunRouter

log = logging.getLogger(__name__)


PART_SUFFIX = ".jsonl.part"
#: A document-log part file: ``.<run uid>.<random>.jsonl.part``.
PART_PATTERN = re.compile(r"^\.(?P<uid>[^.]+)\.[^.]+\.jsonl\.part$")


class DocumentLog:
    """Document callback writing one ``.jsonl`` per run; never raises into the RunEngine.

    Documents are routed to their run by :class:`~sibyls.metadata.routing.PerRunRouter`; each run
    gets a :class:`_RunLogFile`.
    """

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)
        self._router = PerRunRouter([self._factory])
        self.last_path: Path | None = None

    def __call__(self, name: str, doc: dict) -> None:
        try:
            self._router(name, doc)
        except (KeyError, UnresolvableForeignKeyError) as exc:
            log.debug("document log ignored a %r document of an unknown run (%s)", name, exc)
        except Exception:
            log.exception("document log failed on a %r document; the run goes on", name)

    def _factory(self, name: str, start: dict) -> tuple[list, list]:
        return [_RunLogFile(self, start)], []


class _RunLogFile:
    """One run's part file: created and locked at its start, one line per document, renamed at its stop."""

    def __init__(self, log_: DocumentLog, start: dict) -> None:
        self.log = log_
        self.start = start
        log_.folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{start['uid']}.", suffix=PART_SUFFIX, dir=log_.folder)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # "this run is alive" for recovery
        self.fh = os.fdopen(fd, "w", encoding="utf-8")
        self.tmp = Path(tmp)

    def __call__(self, name: str, doc: dict) -> None:
        fh = self.fh
        fh.write(json.dumps([name, doc], default=json_default) + "\n")
        fh.flush()  # on disk (page cache) line by line: a killed worker leaves every document it emitted
        if name == "stop":
            os.fsync(fh.fileno())
            target = self.log.folder / record_relpath(self.start).with_suffix(".jsonl")
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                publish(self.tmp, target)  # renamed while still locked: recovery never sees it half-done
            finally:
                fh.close()
            self.log.last_path = target


def read_document_log(path: Path | str) -> Iterator[tuple[str, dict]]:
    """The ``(name, doc)`` pairs of one document-log file, in order."""
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                name, doc = json.loads(line)
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: not a document-log line ({exc})") from exc
            yield name, doc


def write_document_log(path: Path | str, documents) -> Path:
    """Write ``(name, doc)`` pairs to ``path`` as a document log, atomically."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for name, doc in documents:
            fh.write(json.dumps([name, doc], default=json_default) + "\n")
    return path


def part_files(folder: Path | str) -> list[Path]:
    """The document-log part files directly in ``folder`` (live or left over)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(".*" + PART_SUFFIX) if PART_PATTERN.match(p.name))
