"""Bluesky ⇄ Tiled for SIBYLS: the TiledWriter callback the profile subscribes, and runs read back.

A user gets every run (primary, baseline and monitor streams, and the PILATUS HDF5 frames registered
in place, not copied) in Tiled, readable as tables and arrays with the tiled client.
"""

from __future__ import annotations

import atexit
import copy
import logging
import multiprocessing.util
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FRAME_DATASET = "/entry/data/data"
SPEC_TO_MIMETYPE = {"AD_HDF5": "application/x-hdf5"}


def _frame_dataset_patch(resource: dict) -> dict:
    """Name the frame dataset inside the detector's HDF5 files (AD_HDF5 Resources do not say it)."""
    resource = copy.deepcopy(resource)
    kwargs = resource.setdefault("resource_kwargs", {})
    if resource.get("spec") == "AD_HDF5" and not (kwargs.get("path") or kwargs.get("dataset")):
        kwargs["dataset"] = FRAME_DATASET
        kwargs.setdefault("swmr", False)
    return resource


def make_tiled_writer(
    url: str,
    api_key: str | None = None,
    *,
    backup_directory: str | None = None,
    raise_errors: bool = False,
    access_tags: Callable[[dict], list[str]] | None = None,
    **kwargs: Any,
):
    """A ready ``RE.subscribe`` callback writing each run into the Tiled server at ``url``.

    Frame files are registered from their Resource documents (the frames stay where the detector
    wrote them; the server must be allowed to read that folder). Events are written at each run's
    stop (``batch_size`` events at a time); ``backup_directory`` keeps a JSONL copy of any run Tiled
    could not take. Failures are logged and never stop the RunEngine (``raise_errors=True`` for
    tools that must know, like a replay). ``access_tags`` (e.g. :func:`project_access_tags`) gives
    each run's Tiled access tags from its start document.
    """
    from bluesky.callbacks.tiled_writer import TiledWriter
    from tiled.client import from_uri

    client = from_uri(url, api_key=api_key)
    writer = TiledWriter(
        client,
        patches={"resource": _frame_dataset_patch},
        spec_to_mimetype=SPEC_TO_MIMETYPE,
        backup_directory=backup_directory,
        **kwargs,
    )
    if access_tags is not None:
        writer = _Tagged(writer, access_tags)
    return writer if raise_errors else SafeCallback(writer, "Tiled writer")


class _Tagged:
    """A TiledWriter whose runs carry access tags (bluesky's TiledWriter reads ``tiled_access_tags``
    from the start document it is handed; the caller's document is not changed)."""

    def __init__(self, writer: Any, access_tags: Callable[[dict], list[str]]) -> None:
        self.writer, self.access_tags = writer, access_tags

    def __call__(self, name: str, doc: dict) -> None:
        if name == "start":
            doc = {**doc, "tiled_access_tags": self.access_tags(doc)}
        self.writer(name, doc)


def project_access_tags(projects_file: Path | str) -> Callable[[dict], list[str]]:
    """The Tiled access tags of a run from its start document: ``[project_code]`` when the code is a
    project of ``projects_file`` (re-read when it changes), so only that project's people (and staff)
    see the run in Tiled; ``[]`` otherwise (no such project, a malformed file): staff only."""
    from sibyls.metadata.projects import ProjectsFile, ProjectsFileError

    projects = ProjectsFile(Path(projects_file))

    def tags(start: dict) -> list[str]:
        code = start.get("project_code")
        try:
            known = projects.projects()
        except ProjectsFileError:
            return []
        return [code] if isinstance(code, str) and code in known else []

    return tags


class SafeCallback:
    """Wrap a document callback so its failures are logged, never raised into the RunEngine."""

    def __init__(self, callback: Any, label: str) -> None:
        self.callback, self.label = callback, label
        self.failures = 0

    def __call__(self, name: str, doc: dict) -> None:
        try:
            self.callback(name, doc)
        except Exception:
            self.failures += 1
            log.exception("%s failed on a %r document; the run goes on", self.label, name)


class LazyTiledWriter:
    """A Tiled writer that connects at the first run and works off the RunEngine's thread.

    bluesky's TiledWriter does a run's heavy work when the run stops (one request per frame file
    update: about a minute for a 200-frame run here); done in the RunEngine's stop callback it would
    hold the queue for as long. Documents are therefore handed to one background thread, in order,
    and the RunEngine goes on at once. The RE environment opens fast and even while Tiled is down;
    a run that starts while Tiled cannot be reached is logged (and kept in ``backup_directory``) and
    the next run tries to connect again. Never raises into the RunEngine. At process exit, up to
    ``exit_timeout_s`` is spent finishing what was handed over. ``access_tags`` (e.g.
    :func:`project_access_tags`) gives each run's Tiled access tags from its start document.
    """

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        exit_timeout_s: float = 30.0,
        access_tags: Callable[[dict], list[str]] | None = None,
        **kwargs: Any,
    ):
        self.url, self._api_key, self._kwargs = url, api_key, kwargs
        self._access_tags = access_tags
        self.exit_timeout_s = exit_timeout_s
        self._writer: Any = None
        self._documents: queue.Queue[tuple[str, dict] | None] = queue.Queue()
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"LazyTiledWriter({self.url!r})"

    def __call__(self, name: str, doc: dict) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="tiled-writer", daemon=True)
            self._thread.start()
            _register_exit_flush(self)
        # A copy: TiledWriter rewrites documents in place, and the RunEngine hands the same dicts
        # to every other subscriber while this thread works.
        self._documents.put((name, copy.deepcopy(doc)))

    def _work(self) -> None:
        while True:
            entry = self._documents.get()
            try:
                if entry is not None:
                    self._write(*entry)
            except Exception:
                # One run Tiled refused must not end storage for every later run: this run's other
                # documents are skipped and the next start writes afresh (the run stays on disk).
                log.exception("Tiled at %s refused a %s document; the rest of this run is not stored there",
                              self.url, entry[0])  # fmt: skip
                self._writer = None
            finally:
                self._documents.task_done()

    def _write(self, name: str, doc: dict) -> None:
        if self._writer is None:
            if name != "start":
                return  # a run Tiled was not reachable for: skipped as a whole
            try:
                self._writer = make_tiled_writer(
                    self.url, self._api_key, access_tags=self._access_tags, **self._kwargs
                )
            except Exception:
                log.exception("Tiled at %s is not reachable; this run is not stored there", self.url)
                return
        self._writer(name, doc)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every document handed over so far is written (or ``timeout`` s); True if done."""
        if self._thread is None:
            return True
        done = threading.Event()
        threading.Thread(target=lambda: (self._documents.join(), done.set()), daemon=True).start()
        return done.wait(timeout)


def _register_exit_flush(writer: LazyTiledWriter) -> None:
    """Finish handed-over documents at exit (``atexit``, and multiprocessing's hook: a queueserver
    worker ends with ``os._exit``), for at most the writer's ``exit_timeout_s``."""

    def flush_at_exit() -> None:
        if not writer.flush(writer.exit_timeout_s):
            log.warning("Tiled writer: documents not written to %s before exit", writer.url)

    atexit.register(flush_at_exit)
    multiprocessing.util.Finalize(None, flush_at_exit, exitpriority=90)
