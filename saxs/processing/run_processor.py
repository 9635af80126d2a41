"""One run's documents → its frames reduced as they arrive → its first look at stop.

A :class:`RunProcessor` is an event_model ``DocumentRouter`` for one run. Every primary event's
frames are read from their HDF5 file (found through the Resource/Datum documents) and reduced at
once with the run's geometry (pyFAI-checked corrections, normalised by the event's I0, beamstop
diode and exposure), so at the stop only the first look itself is left. SEC runs also keep the
UV/MALS/RI readings and the buffer/sample label of every frame.

The same router serves the live stream (the processing service) and a stored run (``sibyls
process``): both feed it the run's documents in order.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from event_model import DocumentRouter

from sibyls.metadata.mapping import KEY_ACQUIRE_TIME, KEY_IMAGE
from sibyls.saxs.reduction.curves import Curve

log = logging.getLogger(__name__)

KEY_I0 = "i0_counts"
KEY_BS_DIODE = "bs_diode_counts"
#: SEC readings kept per frame (primary stream key → name in the SEC trace table).
SEC_KEYS = {
    "sec_uv280": "uv280_mau",
    "sec_mals": "mals_v",
    "sec_refractive_index": "ri_riu",
    "sec_eluted_volume": "eluted_ml",
    "sec_frame_role": "frame_role",
}
#: Plans whose runs get a first look, by the kind of analysis.
BATCH_PLAN_TYPES = frozenset({"saxs_exposure", "ht_plate", "temperature_series", "mail_in"})
SEC_PLAN_TYPES = frozenset({"sec_saxs"})


def analysis_kind(start: dict[str, Any]) -> str | None:
    """``"batch"``, ``"sec"`` or None (no first look: scans, alignment, counts)."""
    plan_type = start.get("plan_type")
    if plan_type in SEC_PLAN_TYPES:
        return "sec"
    if plan_type in BATCH_PLAN_TYPES:
        return "batch"
    return None


#: Why a run without a first look has none, by its plan_type (what its record says).
NO_FIRST_LOOK = {
    "alignment": "an alignment scan: its result is the axis position, not a SAXS curve",
}


def no_first_look_reason(start: dict[str, Any]) -> str:
    """Why the run gets no first look, in words for its record (``not applicable: ...``)."""
    plan = start.get("plan_name") or start.get("plan_type") or "this plan"
    why = NO_FIRST_LOOK.get(start.get("plan_type") or "") or (
        "a standard scan or count: its data are the readings table (export csv, json or spec)"
    )
    return f"first look not applicable to {plan}: {why}"


@dataclass
class ReducedRun:
    """What a run's stream gave the first look: one curve per frame, and per frame its readings."""

    start: dict[str, Any]
    stop: dict[str, Any] | None = None
    curves: list[Curve] = field(default_factory=list)
    traces: dict[str, list] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def uid(self) -> str:
        return self.start["uid"]


class RunProcessor(DocumentRouter):
    """Reduces one run's frames as its events arrive; ``result`` holds them, ``done`` is set at stop.

    ``reducer_for(path)`` gives the frame reducer of a frame file (the service caches one per
    geometry). A frame that cannot be read or reduced is named in ``result.problems`` (the first
    look then says so) instead of stopping the run's processing.
    """

    def __init__(self, start: dict[str, Any], reducer_for, on_frames=None) -> None:
        super().__init__()
        self.result = ReducedRun(start=start)
        self._reducer_for = reducer_for
        self._on_frames = on_frames  # on_frames(index of the first, curves): e.g. write their .dat files
        self._primary: set[str] = set()
        self._resources: dict[str, dict] = {}
        self._datums: dict[str, tuple[str, dict]] = {}
        self._exposure: float | None = start.get("exposure_time_s")
        self.done = False

    def descriptor(self, doc):
        if doc.get("name") == "primary":
            self._primary.add(doc["uid"])
            for reading in (doc.get("configuration") or {}).get("pilatus", {}).get("data", {}).items():
                if reading[0] == KEY_ACQUIRE_TIME:
                    self._exposure = float(reading[1])

    def resource(self, doc):
        self._resources[doc["uid"]] = doc

    def datum(self, doc):
        self._datums[doc["datum_id"]] = (doc["resource"], doc.get("datum_kwargs") or {})

    def datum_page(self, doc):
        for datum_id, resource, index in zip(doc["datum_id"], [doc["resource"]] * len(doc["datum_id"]),
                                             range(len(doc["datum_id"])), strict=True):  # fmt: skip
            kwargs = {k: v[index] for k, v in (doc.get("datum_kwargs") or {}).items()}
            self._datums[datum_id] = (resource, kwargs)

    def event(self, doc):
        if doc["descriptor"] not in self._primary:
            return
        data = doc["data"]
        for key, name in SEC_KEYS.items():
            if key in data:
                self.result.traces.setdefault(name, []).append(data[key])
        datum_id = data.get(KEY_IMAGE)
        if datum_id is None:
            return
        try:
            curves = self._reduce(datum_id, data)
            first = len(self.result.curves)
            self.result.curves.extend(curves)
            if self._on_frames is not None:
                self._on_frames(first, curves)
        except Exception as exc:  # one unreadable frame must not lose the run's other frames
            message = f"event {doc.get('seq_num')}: frames not reduced ({exc})"
            log.warning("run %s: %s", self.result.uid, message)
            self.result.problems.append(message)

    def event_page(self, doc):
        from event_model import unpack_event_page

        for event in unpack_event_page(doc):
            self.event(event)

    def stop(self, doc):
        self.result.stop = doc
        self.done = True

    def _frame_file(self, datum_id: str) -> tuple[Path, dict]:
        resource_uid, kwargs = self._datums[datum_id]
        resource = self._resources[resource_uid]
        return Path(resource.get("root") or "/") / resource["resource_path"], kwargs

    def _reduce(self, datum_id: str, data: dict) -> list[Curve]:
        import h5py

        path, _ = self._frame_file(datum_id)
        with h5py.File(path, "r") as fh:
            frames = np.asarray(fh["entry/data/data"][()])
        n = len(frames)
        reducer = self._reducer_for(path)
        # Counters integrate over the whole trigger: a file of n frames shares them evenly.
        i0 = data.get(KEY_I0)
        bs = data.get(KEY_BS_DIODE)
        return reducer.reduce(
            frames,
            i0=None if i0 is None else float(i0) / n,
            bs_diode=None if bs is None else float(bs) / n,
            exposure=self._exposure,
        )
