"""How a RunEngine is set up to run SIBYLS plans: contract guard, baseline, records, progress.

:func:`setup_run_engine` is called once per RunEngine by the composition root (the profile, or a
test). The :class:`ProgressTracker` it subscribes belongs to that RunEngine: :func:`plan_progress`
takes the RunEngine and reads its tracker (the profile offers a no-argument ``plan_progress`` bound
to its own RunEngine to queue clients).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from bluesky.plan_stubs import declare_stream, trigger_and_read
from bluesky.preprocessors import plan_mutator, set_run_key_wrapper

from sibyls.devices.beamline import SibylsBeamline
from sibyls.metadata import RecordWriter
from sibyls.metadata.contract import install_contract
from sibyls.plans.errors import device_errors

logger = logging.getLogger(__name__)

#: The attribute of a set-up RunEngine that holds its ProgressTracker.
PROGRESS_ATTRIBUTE = "sibyls_progress"


class Baseline:
    """RunEngine preprocessor: a ``baseline`` stream read after ``open_run`` and before ``close_run``.

    As bluesky's ``SupplementalData(baseline=...)``, except that a run which already failed closes
    with its own reason even when the closing baseline cannot be read (an IOC that died mid-run
    took its devices with it): the user reads "pilatus: lost connection", not "ring_current is not
    connected". A closing baseline that fails on a run that succeeded still fails the run.
    """

    def __init__(self, devices: list, name: str = "baseline") -> None:
        self.devices, self.name = list(devices), name

    def __call__(self, plan):
        devices, name = self.devices, self.name

        def opening():
            yield from declare_stream(*devices, name=name)
            yield from trigger_and_read(devices, name=name)

        def closing(msg):
            try:
                yield from trigger_and_read(devices, name=name)
            except Exception as exc:
                if (msg.kwargs.get("exit_status") or "success") == "success":
                    raise
                logger.warning("closing baseline not read (the run already failed): %s", exc)
            return (yield msg)

        def insert(msg):
            if msg.command == "open_run":
                head = opening()
                return None, (set_run_key_wrapper(head, msg.run) if msg.run is not None else head)
            if msg.command == "close_run":
                tail = closing(msg)
                return (set_run_key_wrapper(tail, msg.run) if msg.run is not None else tail), None
            return None, None

        return (yield from plan_mutator(plan, insert))


class ProgressTracker:
    """Document callback that knows where the running plan is and how long it has left.

    A run's RunStart carries ``num_points`` (frames) and, for plates, ``plate_position``
    ({"index": 17, "total": 96}); primary events count the frames done.
    """

    def __init__(self) -> None:
        self._start: dict[str, Any] | None = None
        self._done = 0
        self._t0 = 0.0
        self._last: dict[str, Any] = {"state": "idle"}
        self._primary: set[str] = set()

    def __call__(self, name: str, doc: dict) -> None:
        if name == "start":
            self._start, self._done, self._t0 = doc, 0, time.time()
            self._primary.clear()
        elif name == "descriptor" and doc.get("name") == "primary":
            self._primary.add(doc["uid"])
        elif name == "event" and doc.get("descriptor") in self._primary:
            self._done += 1
        elif name == "event_page" and doc.get("descriptor") in self._primary:
            self._done += len(doc.get("seq_num", []))
        elif name == "stop":
            self._last = {**self.snapshot(), "state": "finished", "exit_status": doc.get("exit_status")}
            self._start = None

    def snapshot(self) -> dict[str, Any]:
        """Plain dict: plan, sample, frame i/N, well i/N, elapsed and estimated seconds remaining."""
        if self._start is None:
            return dict(self._last)
        start = self._start
        total = start.get("num_points")
        elapsed = time.time() - self._t0
        done = self._done
        frames = start.get("num_frames")
        exposure = start.get("exposure_time_s")
        if total and frames and frames > total and exposure:
            # All frames in one acquisition per event (a plate well's one file): the frames taken so far
            # follow from the exposure time, as the detector's own image counter would show them.
            per_event = frames // total
            running = 0
            if done < total:
                running = min(per_event - 1, int((elapsed - done * per_event * exposure) / exposure))
            done, total = min(done * per_event + max(running, 0), frames), frames
        remaining = None
        if total and done:
            remaining = elapsed / done * (total - done)
        report = {
            "state": "running",
            "plan_name": start.get("plan_name"),
            "plan_type": start.get("plan_type"),
            "sample_code": start.get("sample_code"),
            "scan_id": start.get("scan_id"),
            "frame": done,
            "frames": total,
            "elapsed_s": round(elapsed, 3),
            "run_remaining_s": None if remaining is None else round(remaining, 3),
        }
        position = start.get("plate_position")
        if position:
            report["well"] = f"{position['index']}/{position['total']}"
            report["well_id"] = start.get("well")
        return report


def plan_progress(run_engine: Any) -> dict[str, Any]:
    """Where ``run_engine``'s plan is (frame i/N, well i/N, time left): for queue clients and consoles."""
    tracker = getattr(run_engine, PROGRESS_ATTRIBUTE, None)
    if tracker is None:
        raise RuntimeError("this RunEngine was not set up with sibyls.plans.setup_run_engine")
    return tracker.snapshot()


def setup_run_engine(
    run_engine: Any,
    beamline: SibylsBeamline,
    records_dir: Path | str,
    spool_dir: Path | str | None = None,
    record_retry_s: float = 30.0,
) -> RecordWriter:
    """Make ``run_engine`` SIBYLS-ready: contract guard, baseline of ``beamline``, records, progress.

    Records that cannot be written are spooled and retried every ``record_retry_s`` seconds. The
    RunEngine gets its own :class:`ProgressTracker` (see :func:`plan_progress`).
    """
    install_contract(run_engine)
    run_engine.preprocessors.append(Baseline(beamline.baseline()))
    # Outside the baseline: every plan, also a bare one from a console, fails with the device's own
    # reason (robot, detector, motor), never with a FailedStatus that hides it.
    run_engine.preprocessors.append(device_errors)
    writer = RecordWriter(records_dir, spool_dir=spool_dir, retry_interval_s=record_retry_s)
    run_engine.subscribe(writer)
    tracker = ProgressTracker()
    run_engine.subscribe(tracker)
    setattr(run_engine, PROGRESS_ATTRIBUTE, tracker)
    return writer
