"""The document log: every run's Bluesky documents as one JSON-lines file, written atomically.

``RE.subscribe(DocumentLog(folder))`` gives ``<folder>/<project>/<scan_id>_<sample>_<uid8>.jsonl``
per run (the record's name with ``.jsonl``); the file appears complete at the run's stop, never
half-written. The folder is a run source for exports and record conversion.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from sibyls.metadata.mapping import record_relpath

log = logging.getLogger(__name__)


def _default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in the document log")


class DocumentLog:
    """Document callback writing one ``.jsonl`` per run; never raises into the RunEngine."""

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)
        self._open: dict[str, tuple[Any, Path, dict]] = {}  # run uid -> (file, temp path, start)
        self._owner: dict[str, str] = {}  # descriptor / resource uid -> run uid
        self.last_path: Path | None = None

    def __call__(self, name: str, doc: dict) -> None:
        try:
            self._route(name, doc)
        except Exception:
            log.exception("document log failed on a %r document; the run goes on", name)

    def _route(self, name: str, doc: dict) -> None:
        if name == "start":
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{doc['uid']}.", suffix=".jsonl.part", dir=self.folder)
            self._open[doc["uid"]] = (os.fdopen(fd, "w", encoding="utf-8"), Path(tmp), doc)
            run = doc["uid"]
        else:
            run = doc.get("run_start") if name in ("descriptor", "stop") else None
            if run is None:
                key = doc.get("descriptor") or doc.get("resource") or doc.get("stream_resource")
                run = self._owner.get(key) if key else None
            if run is None and len(self._open) == 1:
                run = next(iter(self._open))
            if run not in self._open:
                return
        fh, tmp, start = self._open[run]
        if name in ("descriptor", "resource", "stream_resource"):
            self._owner[doc["uid"]] = run
        fh.write(json.dumps([name, doc], default=_default) + "\n")
        if name == "stop":
            del self._open[run]
            fh.flush()
            os.fsync(fh.fileno())
            fh.close()
            target = self.folder / record_relpath(start).with_suffix(".jsonl")
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, target)
            self._owner = {k: v for k, v in self._owner.items() if v != run}
            self.last_path = target


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
    from sibyls.metadata.exchange.atomic import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for name, doc in documents:
            fh.write(json.dumps([name, doc], default=_default) + "\n")
    return path
