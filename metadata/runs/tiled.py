"""Bluesky ⇄ Tiled for SIBYLS: the TiledWriter callback the profile subscribes, and runs read back.

A user gets every run (primary, baseline and monitor streams, and the PILATUS HDF5 frames registered
in place, not copied) in Tiled, readable as tables and arrays with the tiled client.
"""

from __future__ import annotations

import copy
import logging
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
    **kwargs: Any,
):
    """A ready ``RE.subscribe`` callback writing each run into the Tiled server at ``url``.

    Frame files are registered from their Resource documents (the frames stay where the detector
    wrote them; the server must be allowed to read that folder). Events are written at each run's
    stop (``batch_size`` events at a time); ``backup_directory`` keeps a JSONL copy of any run Tiled
    could not take. Failures are logged and never stop the RunEngine (``raise_errors=True`` for
    tools that must know, like a replay).
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
    return writer if raise_errors else SafeCallback(writer, "Tiled writer")


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
    """A Tiled writer that connects at the first run, not when the profile loads.

    The RE environment then opens fast and even while Tiled is down; a run that starts while
    Tiled cannot be reached is logged (and kept in ``backup_directory``) and the next run tries
    to connect again. Never raises into the RunEngine.
    """

    def __init__(self, url: str, api_key: str | None = None, **kwargs: Any) -> None:
        self.url, self._api_key, self._kwargs = url, api_key, kwargs
        self._writer: Any = None

    def __repr__(self) -> str:
        return f"LazyTiledWriter({self.url!r})"

    def __call__(self, name: str, doc: dict) -> None:
        if self._writer is None:
            if name != "start":
                return  # a run Tiled was not reachable for: skipped as a whole
            try:
                self._writer = make_tiled_writer(self.url, self._api_key, **self._kwargs)
            except Exception:
                log.exception("Tiled at %s is not reachable; this run is not stored there", self.url)
                return
        self._writer(name, doc)
