"""Progress outside the RE worker: the publisher (a real redis-server), time left, the terminal line."""

from __future__ import annotations

import json
import socket
import subprocess
import time

import pytest

from sibyls.plans.run_engine import ProgressTracker
from sibyls.startup.progress import (
    EVENTS_CHANNEL,
    PROGRESS_KEY,
    ProgressPublisher,
    nominal_seconds,
    queue_eta,
    redis_client,
)
from sibyls.startup.stack.starters import _redis_server
from sibyls.startup.watch import progress_line

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def redis_addr(tmp_path_factory):
    port = free_port()
    folder = tmp_path_factory.mktemp("redis")
    command = [
        _redis_server(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--dir",
        str(folder),
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    addr = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                if redis_client(addr).ping():
                    break
            except Exception:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        yield addr
    finally:
        process.terminate()
        process.wait(10)


def documents(frames: int, exposure: float = 2.0, plate_position: dict | None = None):
    start = {
        "uid": "run-1",
        "num_points": frames,
        "plan_name": "saxs_exposure",
        "sample_code": "lys",
        "queue_item_uid": "item-1",
        "submitted_by": "alice",
        "plan_args": {"exposure_time": exposure},
    }
    if plate_position:
        start.update(plate_position=plate_position, well="A3")
    yield "start", start
    yield "descriptor", {"uid": "d-1", "name": "primary"}
    for n in range(frames):
        yield "event", {"descriptor": "d-1", "seq_num": n + 1}
    yield "stop", {"exit_status": "success"}


def test_the_publisher_sends_each_state_to_redis_and_ends_with_the_finished_run(redis_addr):
    tracker = ProgressTracker()
    publisher = ProgressPublisher(redis_addr, tracker.snapshot, min_interval_s=0.01).start()
    listener = redis_client(redis_addr).pubsub(ignore_subscribe_messages=True)
    listener.subscribe(EVENTS_CHANNEL)
    try:
        for name, doc in documents(5):
            tracker(name, doc)
            publisher(name, doc)
            time.sleep(0.03)
        received = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and (not received or received[-1]["state"] != "finished"):
            message = listener.get_message(timeout=0.2)
            if message:
                received.append(json.loads(message["data"])["data"])
    finally:
        publisher.close()
        listener.close()
    running = [r for r in received if r["state"] == "running"]
    assert running and all(r["submitted_by"] == "alice" and r["frames"] == 5 for r in running)
    assert [r["frame"] for r in running] == sorted(r["frame"] for r in running)
    assert received[-1]["state"] == "finished" and received[-1]["frame"] == 5
    assert received[-1]["exit_status"] == "success"
    latest = json.loads(redis_client(redis_addr).get(PROGRESS_KEY))
    assert latest["state"] == "finished" and latest["queue_item_uid"] == "item-1"


def test_the_runengine_side_never_waits_for_a_redis_that_is_down():
    tracker = ProgressTracker()
    publisher = ProgressPublisher(f"127.0.0.1:{free_port()}", tracker.snapshot).start()
    try:
        for name, doc in documents(50):
            tracker(name, doc)
            publisher(name, doc)  # a flag only; the thread logs the outage and retries
    finally:
        publisher.close()
    assert tracker.snapshot()["state"] == "finished"


def test_time_left_counts_this_run_the_plates_later_wells_and_the_queue_at_the_measured_pace():
    wells = [
        {"well": f"A{i}", "sample_code": f"s{i}", "exposure_time": 1.0, "num_frames": 10} for i in range(1, 9)
    ]
    plate = {"name": "ht_plate", "kwargs": {"plate": {"plate_id": "P", "wells": wells}}, "item_uid": "item-1"}
    queued = [{"name": "saxs_exposure", "kwargs": {"exposure_time": 2.0, "num_frames": 5}}]
    progress = {
        "state": "running",
        "frame": 4,
        "frames": 10,
        "run_remaining_s": 3.0,
        "well": "3/8",
        "pace": 0.5,
    }
    eta = queue_eta(progress, plate, queued)
    assert eta["item_remaining_s"] == 3.0 + 5 * 10.0 * 0.5  # this well, then wells 4..8
    assert eta["queue_remaining_s"] == eta["item_remaining_s"] + 10.0 * 0.5
    assert eta["item_fraction"] == pytest.approx((2 + 0.4) / 8)
    assert nominal_seconds({"name": "saxs_exposure", "kwargs": {}}) == 1.0 * 10  # the plan's defaults
    assert nominal_seconds({"name": "sec_saxs", "kwargs": {"duration": 2}}) == 120.0
    idle = queue_eta({"state": "idle"}, None, queued)
    assert idle["item_remaining_s"] is None and idle["queue_remaining_s"] == 10.0  # pace unknown: 1


def test_the_terminal_line_names_item_frames_wells_and_both_etas():
    progress = {
        "state": "running",
        "plan_name": "ht_plate",
        "sample_code": "lys",
        "frame": 4,
        "frames": 10,
        "well": "3/8",
        "well_id": "A3",
    }
    line = progress_line(progress, {"item_fraction": 0.3, "item_remaining_s": 65, "queue_remaining_s": 3725})
    assert line.startswith("ht_plate lys | [#######-----------------]  30% | frame 4/10 | well 3/8 (A3)")
    assert line.endswith("ETA 1:05 | queue ETA 1:02:05")
    done = progress_line(
        {"state": "finished", "plan_name": "saxs_exposure", "sample_code": "lys", "exit_status": "success"},
        {"items_queued": 0},
    )
    assert done == "last: saxs_exposure lys success | queue empty"


def test_a_plate_well_in_one_file_counts_its_frames_by_exposure(monkeypatch):
    """A plate well's frames come in one event (one file): frame i/N follows the exposure time."""
    import sibyls.plans.run_engine as run_engine

    clock = [1000.0]
    monkeypatch.setattr(run_engine.time, "time", lambda: clock[0])
    tracker = ProgressTracker()
    tracker("start", {"uid": "u", "num_points": 1, "num_frames": 10, "exposure_time_s": 0.5,
                      "plan_type": "ht_plate", "plate_position": {"index": 3, "total": 8}})  # fmt: skip
    clock[0] += 2.1  # four frames exposed, the fifth under way
    report = tracker.snapshot()
    assert (report["frame"], report["frames"], report["well"]) == (4, 10, "3/8")
    clock[0] += 60.0  # never beyond the last frame before the event arrives
    assert tracker.snapshot()["frame"] == 9
    tracker("descriptor", {"uid": "d", "name": "primary"})
    tracker("event", {"descriptor": "d"})
    assert tracker.snapshot()["frame"] == 10
