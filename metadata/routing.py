"""Per-run routing of Bluesky documents on event_model's ``RunRouter``, for the package's callbacks.

The record writer and the document log each keep one small callback per run; this router hands
every document to the callbacks of its own run. A beamline user gets records and document logs
that never mix runs, and a RunEngine thread that pays little per frame: unlike upstream, events and
datums go to the callbacks as single documents (upstream packs each into a page and back), no
external data is ever loaded (no Filler), and a run's resources are forgotten at its stop
(upstream keeps them for the life of the process).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from event_model import DocumentRouter, RunRouter

#: ``factory("start", start_doc) -> (callbacks, subfactories)``, as :class:`event_model.RunRouter` takes.
Factory = Callable[[str, dict], tuple[list, list]]


class _PassThrough(DocumentRouter):
    """Stands in for RunRouter's Filler: our callbacks never load external data."""

    def __init__(self, handler_registry: dict | None = None, *, root_map: Any = None, inplace: bool = False):
        super().__init__()

    def descriptor(self, doc):
        return doc

    def resource(self, doc):
        return doc

    def stream_resource(self, doc):
        return doc

    def event_page(self, doc):
        return doc

    def datum_page(self, doc):
        return doc

    def stream_datum(self, doc):
        return doc


class PerRunRouter(RunRouter):
    """``RunRouter(factories)`` that routes single events and datums as they are and never fills.

    A document of a run it never saw start raises ``KeyError`` (or event_model's
    ``UnresolvableForeignKeyError`` for a datum page of an unknown resource), as upstream does.
    """

    def __init__(self, factories: list[Factory]) -> None:
        super().__init__(factories, filler_class=_PassThrough)
        self._run_resources: defaultdict[str, list[str]] = defaultdict(list)

    def resource(self, doc):
        super().resource(doc)
        if "run_start" in doc:
            self._run_resources[doc["run_start"]].append(doc["uid"])

    def stream_resource(self, doc):
        super().stream_resource(doc)
        self._run_resources[doc["run_start"]].append(doc["uid"])

    def stop(self, doc):
        try:
            super().stop(doc)
        finally:
            for uid in self._run_resources.pop(doc["run_start"], ()):
                self._resources.pop(uid, None)
                self._stream_resources.pop(uid, None)

    def event(self, doc):
        descriptor_uid = doc["descriptor"]
        if descriptor_uid not in self._descriptor_to_start:
            raise KeyError(f"event of unknown descriptor {descriptor_uid}")
        for callback in self._factory_cbs_by_descriptor[descriptor_uid]:
            callback("event", doc)
        for callback in self._subfactory_cbs_by_descriptor[descriptor_uid]:
            callback("event", doc)

    def datum(self, doc):
        start_uid = self._resources.get(doc["resource"])
        if start_uid is None:
            return NotImplemented  # an unlabeled resource's datum: upstream's datum_page path fans it out
        for callback in self._factory_cbs_by_start[start_uid]:
            callback("datum", doc)
        for callback in self._subfactory_cbs_by_start[start_uid]:
            callback("datum", doc)
