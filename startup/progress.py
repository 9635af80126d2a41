"""Progress of the running plan outside the RE worker: published to the stack's Redis, read everywhere.

The RE worker knows frame i/N and well i/N (:class:`sibyls.plans.run_engine.ProgressTracker`). The
profile subscribes a :class:`ProgressPublisher` to its RunEngine: on each document it only sets a
flag (the RunEngine thread never waits for Redis); a background thread then publishes the tracker's
snapshot (at most every ``min_interval_s``) and, once a second, the beamline's readings (ring
current, shutters, cell temperature) when they changed. Each goes to a Redis key (the latest value)
and to the channel :data:`EVENTS_CHANNEL` (``{"kind": "progress"|"beamline", "data": {...}}``).

The HTTP side (the page's Server-Sent Events, ``GET /api/sibyls/progress``) and ``sibyls watch``
subscribe to that channel: no client asks the worker. :func:`queue_eta` turns a snapshot and the
queue into the running item's and the whole queue's time left; the terminal bar of ``sibyls watch``
and ``sibyls demo`` is drawn by :mod:`sibyls.startup.watch`.
"""

from __future__ import annotations

import ast
import json
import logging
import threading
import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any

logger = logging.getLogger(__name__)

#: Redis pub/sub channel of progress and beamline updates.
EVENTS_CHANNEL = "sibyls:events"
#: Redis keys holding the latest progress snapshot and beamline readings (JSON).
PROGRESS_KEY = "sibyls:progress"
BEAMLINE_KEY = "sibyls:beamline"
#: Start-document keys copied into every snapshot of a run.
RUN_IDENTITY = ("queue_item_uid", "submitted_by", "project_code")


def redis_client(redis_addr: str, timeout: float = 1.0):
    """A redis-py client of ``host:port`` that gives up within ``timeout`` seconds."""
    import redis

    host, _, port = redis_addr.rpartition(":")
    return redis.Redis(
        host=host or "127.0.0.1", port=int(port), socket_timeout=timeout, socket_connect_timeout=timeout
    )


class ProgressPublisher:
    """RunEngine callback publishing where the plan is (and the beamline's state) into Redis.

    ``snapshot`` returns the tracker's dict (the profile's ``plan_progress``); ``beamline`` returns
    the readings to show (see :func:`beamline_reader`). The callback costs the RunEngine thread one
    flag; Redis being down is logged once and retried, never raised.
    """

    def __init__(
        self,
        redis_addr: str,
        snapshot: Callable[[], dict[str, Any]],
        beamline: Callable[[], dict[str, Any]] | None = None,
        min_interval_s: float = 0.05,
        beamline_period_s: float = 1.0,
    ) -> None:
        self.redis_addr = redis_addr
        self._snapshot = snapshot
        self._beamline = beamline
        self.min_interval_s = min_interval_s
        self.beamline_period_s = beamline_period_s
        self._dirty = threading.Event()
        self._closed = threading.Event()
        self._run: dict[str, Any] = {}  # identity and exposure time of the open run
        self._pace: float | None = None  # wall seconds per second of exposure, last measured
        self._last_beamline: dict[str, Any] | None = None
        self._client = None
        self._failing = False
        self._thread = threading.Thread(target=self._loop, name="sibyls-progress", daemon=True)

    def __call__(self, name: str, doc: dict) -> None:
        if name == "start":
            exposure = (doc.get("plan_args") or {}).get("exposure_time")
            self._run = {key: doc.get(key) for key in RUN_IDENTITY}
            self._run["exposure_time"] = exposure if isinstance(exposure, int | float) else None
        self._dirty.set()

    def start(self) -> ProgressPublisher:
        """Start the publishing thread (a daemon; ``close`` ends it)."""
        self._thread.start()
        return self

    def close(self, timeout: float = 2.0) -> None:
        """Publish the last state and end the thread."""
        self._closed.set()
        self._dirty.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def current(self) -> dict[str, Any]:
        """The snapshot as published: the tracker's, the run's submitter and item, the measured pace."""
        report = {**self._snapshot(), **self._run}
        exposure, frame = self._run.get("exposure_time"), report.get("frame")
        if report.get("state") == "running" and exposure and frame:
            self._pace = report["elapsed_s"] / (frame * exposure)
        report["pace"] = None if self._pace is None else round(self._pace, 4)
        report["published_at"] = time.time()
        return report

    def _loop(self) -> None:
        next_beamline = time.monotonic()
        while True:
            timeout = max(0.0, next_beamline - time.monotonic()) if self._beamline else None
            woke = self._dirty.wait(timeout)
            if woke:
                self._dirty.clear()
                self._publish(PROGRESS_KEY, "progress", self.current())
            if self._closed.is_set():
                return
            if self._beamline is not None and time.monotonic() >= next_beamline:
                next_beamline = time.monotonic() + self.beamline_period_s
                readings = self._beamline()
                if readings != self._last_beamline:
                    self._last_beamline = readings
                    self._publish(BEAMLINE_KEY, "beamline", {**readings, "published_at": time.time()})
            if woke:
                self._closed.wait(self.min_interval_s)  # at most 1/min_interval_s updates a second

    def _publish(self, key: str, kind: str, data: dict[str, Any]) -> None:
        text = json.dumps(data, default=str)
        try:
            if self._client is None:
                self._client = redis_client(self.redis_addr)
            pipe = self._client.pipeline(transaction=False)
            pipe.set(key, text)
            pipe.publish(EVENTS_CHANNEL, json.dumps({"kind": kind, "data": data}, default=str))
            pipe.execute()
            if self._failing:
                logger.warning("progress: Redis at %s answers again", self.redis_addr)
            self._failing = False
        except Exception as exc:
            if not self._failing:
                logger.warning("progress: cannot publish to Redis at %s (%s); retrying", self.redis_addr, exc)
            self._failing = True
            self._client = None


def beamline_reader(beamline: Any) -> Callable[[], dict[str, Any]]:
    """What the status bar shows of the beamline: ring current (mA), both shutters, cell temperature (°C).

    A signal that cannot be read gives None (the page shows "?"), never an error.
    """

    def read(signal: Any) -> Any:
        try:
            value = signal.get()
        except Exception:
            return None
        return round(value, 3) if isinstance(value, float) else value

    def readings() -> dict[str, Any]:
        return {
            "ring_current_ma": read(beamline.ring.current),
            "photon_shutter": read(beamline.photon_shutter.status),
            "fast_shutter": read(beamline.fast_shutter.status),
            "cell_temperature_c": read(beamline.cell_temperature.readback),
        }

    return readings


# ---- time left -----------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def plan_defaults() -> dict[str, dict[str, Any]]:
    """Each queue plan's parameter defaults, from the plan list the RE Manager serves."""
    from importlib import resources

    import yaml

    text = (resources.files("sibyls.startup") / "existing_plans_and_devices.yaml").read_text()
    defaults: dict[str, dict[str, Any]] = {}
    for name, plan in (yaml.safe_load(text).get("existing_plans") or {}).items():
        values = {}
        for parameter in plan.get("parameters", []):
            if "default" in parameter:
                try:
                    values[parameter["name"]] = ast.literal_eval(str(parameter["default"]))
                except (ValueError, SyntaxError):
                    continue
        defaults[name] = values
    return defaults


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _exposure_seconds(values: dict[str, Any]) -> float:
    time_s, frames = _number(values.get("exposure_time")), _number(values.get("num_frames"))
    return (time_s or 0.0) * (frames or 0.0)


def _well_defaults() -> dict[str, Any]:
    from sibyls.metadata.plate_spec import PlateWell

    return {name: field.default for name, field in PlateWell.model_fields.items() if not field.is_required()}


def well_seconds(item: dict[str, Any]) -> list[float]:
    """Exposure seconds of each well of an ``ht_plate`` item, in the order they are measured."""
    plate = (item.get("kwargs") or {}).get("plate") or {}
    wells = plate.get("wells") if isinstance(plate, dict) else None
    if not isinstance(wells, list):
        return []
    defaults = _well_defaults()
    return [_exposure_seconds({**defaults, **w}) if isinstance(w, dict) else 0.0 for w in wells]


def nominal_seconds(item: dict[str, Any]) -> float:
    """Seconds of exposure an item asks for (frames × exposure time; per well for plates; SEC's elution)."""
    name = item.get("name")
    values = {**plan_defaults().get(name, {}), **(item.get("kwargs") or {})}
    if name == "ht_plate":
        return sum(well_seconds(item))
    if name == "sec_saxs":
        return (_number(values.get("duration")) or 0.0) * 60.0
    if name == "temperature_series":
        steps = values.get("temperatures") if isinstance(values.get("temperatures"), list) else []
        return len(steps) * ((_number(values.get("equilibration_time")) or 0.0) + _exposure_seconds(values))
    return _exposure_seconds(values)


def _well_index(progress: dict[str, Any]) -> tuple[int, int] | None:
    try:
        index, total = str(progress["well"]).split("/")
        return int(index), int(total)
    except (KeyError, ValueError):
        return None


def queue_eta(
    progress: dict[str, Any], running_item: dict[str, Any] | None, queued: list[dict[str, Any]]
) -> dict[str, Any]:
    """Seconds left for the running item and for the whole queue, and the item's fraction done.

    Exposure seconds still to come (this run's, the plate's later wells', every queued item's) times
    the pace measured on the running plan (wall seconds per exposure second; 1 until measured).
    """
    pace = _number(progress.get("pace")) or 1.0
    running = bool(running_item) and progress.get("state") == "running"
    item_left: float | None = None
    fraction: float | None = None
    if running_item:
        frames, frame = _number(progress.get("frames")), _number(progress.get("frame")) or 0.0
        run_fraction = min(1.0, frame / frames) if frames else 0.0
        run_left = _number(progress.get("run_remaining_s"))
        position = _well_index(progress) if running else None
        if running_item.get("name") == "ht_plate" and position:
            index, total = position
            later = well_seconds(running_item)[index:]
            if run_left is None:
                run_left = (
                    (well_seconds(running_item)[index - 1 : index] or [0.0])[0] * pace * (1 - run_fraction)
                )
            item_left = run_left + sum(later) * pace
            fraction = (index - 1 + run_fraction) / total
        elif running:
            item_left = run_left if run_left is not None else nominal_seconds(running_item) * pace
            fraction = run_fraction
        else:
            item_left = nominal_seconds(running_item) * pace
            fraction = 0.0
    queue_left = (item_left or 0.0) + sum(nominal_seconds(item) for item in queued) * pace
    return {
        "item_remaining_s": None if item_left is None else round(item_left, 1),
        "item_fraction": None if fraction is None else round(fraction, 4),
        "queue_remaining_s": round(queue_left, 1),
        "items_queued": len(queued),
    }
