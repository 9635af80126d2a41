"""Faults under a running stack, one test each: the run ends in bounded time, the item's message names
the root cause, every opened run has exactly one valid record, no item is lost or run twice, nothing
partial is left, and the stack answers and completes the next item.

Real parts throughout: ``sibyls up`` (Redis, the simulated IOC, Tiled, ``sibyls-re-manager``, the HTTP
server), faults made the way they happen (a process killed, a CA put to the HPLC's Stop, a full
tmpfs, a read-only bind mount). The mounts need root; those tests skip with the reason otherwise.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from pathlib import Path

import psutil
import pytest
import yaml
from bluesky_queueserver_api import BPlan
from stack_helpers import ca_environment, register_plate

from sibyls.startup.config import ProfileConfig
from sibyls.startup.stack import StackState, down, load_state, profile_config, up

pytestmark = pytest.mark.slow

PROJECT = "FAULTS"
#: Every fault must end its item within this many seconds (the stack runs 50× faster than real time).
BOUND_S = 60.0
RECORD_RETRY_S = 2.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """The module's own stack, spooled records retried every 2 s."""
    var_dir = tmp_path_factory.mktemp("faults")
    setting = ProfileConfig.env_name("record_retry_s")  # passed on by `sibyls up` to the RE worker
    saved = os.environ.get(setting)
    os.environ[setting] = str(RECORD_RETRY_S)
    try:
        state = up(var_dir, ioc_prefix="FLT:", time_scale=50.0, binning=8)
        try:
            yield state
        finally:
            down(var_dir)
    finally:
        if saved is None:
            os.environ.pop(setting, None)
        else:
            os.environ[setting] = saved


# ---- helpers ------------------------------------------------------------------------------------


def exposure(sample: str, frames: int = 2, exposure_time: float = 0.1, project: str = PROJECT) -> BPlan:
    return BPlan("saxs_exposure", sample, project, exposure_time=exposure_time, num_frames=frames)


def wait_for(predicate, timeout: float, what: str, period: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            value = predicate()
            if value:
                return value
        time.sleep(period)
    raise TimeoutError(f"{what}: not within {timeout} s")


def wait_until_idle(api, timeout: float = BOUND_S) -> float:
    """Seconds until the manager is idle with no running item (bounded by ``timeout``)."""
    start = time.monotonic()
    time.sleep(0.5)

    def idle():
        status = api.status(reload=True)
        return status["manager_state"] == "idle" and status["running_item_uid"] is None

    wait_for(idle, timeout, "the queue did not stop")
    return time.monotonic() - start


def wait_until_running(api, timeout: float = 30.0) -> None:
    wait_for(lambda: api.status(reload=True)["re_state"] == "running", timeout, "no plan started")


def history(api) -> list[dict]:
    return api.history_get()["items"]


def records(stack: StackState) -> dict[str, list[dict]]:
    """Run uid → the records written for it (more than one would be a duplicate)."""
    found: dict[str, list[dict]] = {}
    for path in (Path(stack.var_dir) / "records").rglob("*.yaml"):
        record = yaml.safe_load(path.read_text())
        found.setdefault(record["experiment_runs"][0]["bluesky_uid"], []).append(record)
    return found


def the_record(stack: StackState, uid: str, timeout: float = 30.0) -> dict:
    """The one record of run ``uid`` (waiting for the background writer)."""
    found = wait_for(lambda: records(stack).get(uid), timeout, f"no record of run {uid}")
    assert len(found) == 1, f"run {uid} has {len(found)} records"
    return found[0]


def run_starts(stack: StackState, sample_code: str) -> list[str]:
    """Uids of every run opened for ``sample_code`` (from the document log): duplicates show here."""
    uids = []
    for path in (Path(stack.var_dir) / "runs").rglob("*.jsonl"):
        name, doc = json.loads(path.read_text().splitlines()[0])
        if name == "start" and doc.get("sample_code") == sample_code:
            uids.append(doc["uid"])
    return uids


def leftovers(stack: StackState) -> list[Path]:
    """Partial frame files and unfinished document logs under the stack's folders."""
    var = Path(stack.var_dir)
    return [*(var / "data").rglob("*.partial"), *(var / "runs").rglob("*.part")]


def next_item_completes(stack: StackState, api, sample: str) -> None:
    """The stack answers and runs the next item to completion, with its record."""
    api.item_add(exposure(sample))
    api.queue_start()
    wait_until_idle(api)
    entry = history(api)[-1]
    assert entry["result"]["exit_status"] == "completed", entry["result"]["msg"]
    (uid,) = entry["result"]["run_uids"]
    assert the_record(stack, uid)["experiment_runs"][0]["exit_status"] == "success"


def put(stack: StackState, pv: str, value) -> None:
    """A Channel Access put to the stack's IOC (text goes to char waveforms as bytes)."""
    from caproto.sync.client import write

    data = value.encode() if isinstance(value, str) else value
    with ca_environment(stack):
        write(f"{stack.ioc_prefix}{pv}", data, notify=True, timeout=5, repeater=False)


def get(stack: StackState, pv: str):
    from caproto.sync.client import read

    with ca_environment(stack):
        data = read(f"{stack.ioc_prefix}{pv}", timeout=5, repeater=False, data_type="native").data
    value = data[0]
    return value.decode() if isinstance(value, bytes) else value


def worker_process(stack: StackState) -> psutil.Process:
    """The RE worker: the manager's sibling under the watchdog that does not serve the 0MQ port."""
    watchdog = psutil.Process(stack.pids["manager"])
    port = stack.ports["zmq_control"]
    for child in watchdog.children():
        listening = {c.laddr.port for c in child.net_connections(kind="tcp") if c.status == "LISTEN"}
        if port not in listening and child.status() != psutil.STATUS_ZOMBIE:
            return child
    raise LookupError("no RE worker process")


@contextlib.contextmanager
def mounted(*command: str, target: Path):
    """``mount ... target`` for the block (root only: skips otherwise), unmounted whatever happens."""
    target.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["mount", *command, str(target)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount ({result.stderr.strip()}); this test needs root")
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], capture_output=True)


# ---- the faults ---------------------------------------------------------------------------------


def test_hplc_stopped_mid_run_ends_the_sec_run_with_the_hplcs_reason(stack, api):
    vial = {"sample_code": "sec_stop", "kind": "sample", "rg_a": 30.0, "concentration_mg_ml": 5.0}
    put(stack, "SEC:InjectSample", json.dumps({**vial, "mw_kda": 60.0, "elution_volume_ml": 8.0}))
    api.item_add(BPlan("sec_saxs", "sec_stop", PROJECT, duration=30.0, frame_period=3.0, exposure_time=1.0))
    api.queue_start()
    wait_for(lambda: get(stack, "SEC:RunState_RBV") in ("Running", 1), 30.0, "the HPLC run did not start")
    time.sleep(1.0)  # a few frames in
    put(stack, "SEC:Stop", 1)
    elapsed = wait_until_idle(api)
    entry = history(api)[-1]
    result = entry["result"]
    assert result["exit_status"] == "failed"
    assert "sec" in result["msg"] and "run clock" in result["msg"], result["msg"]
    assert elapsed < BOUND_S
    (uid,) = result["run_uids"]
    assert the_record(stack, uid)["experiment_runs"][0]["exit_status"] == "fail"
    assert run_starts(stack, "sec_stop") == [uid]
    assert not leftovers(stack)
    api.queue_clear()
    next_item_completes(stack, api, "after_hplc_stop")


def test_robot_refusing_a_well_fails_with_the_robots_own_reason(stack, api):
    # A well the robot's plate leaves empty is refused at add (the gate battery); here staff redefine
    # the plate while the item runs, so the robot itself refuses the second well.
    register_plate(stack, "FAULT_PLATE", {"A1": "buffer", "A2": "sample"})
    time.sleep(1.5)  # the IOC follows the registry file within a second
    plate = {
        "plate_id": "FAULT_PLATE",
        "wells": [  # the buffer takes a few seconds: time for the robot to take in the new plate
            {"well": "A1", "sample_code": "buf_r", "sample_role": "buffer_blank", "num_frames": 400,
             "exposure_time": 1.0},
            {
                "well": "A2",
                "sample_code": "prot_r",
                "buffer_well": "A1",
                "concentration_mg_ml": 2.0,
                "num_frames": 2,
            },
        ],
    }  # fmt: skip
    api.item_add(BPlan("ht_plate", plate, PROJECT))
    api.queue_start()
    wait_until_running(api)  # the item passed the gate again at start; the buffer is being measured
    register_plate(stack, "FAULT_PLATE", {"A1": "buffer"})  # A2 is now empty on the robot's plate
    elapsed = wait_until_idle(api)
    result = history(api)[-1]["result"]
    assert result["exit_status"] == "failed"
    assert "ht_robot" in result["msg"] and "A2" in result["msg"] and "empty" in result["msg"], result["msg"]
    assert "DeviceStatus(" not in result["msg"]
    assert elapsed < BOUND_S
    (buffer_uid,) = result["run_uids"]  # the buffer ran; the sample's run never opened
    assert the_record(stack, buffer_uid)["experiment_runs"][0]["exit_status"] == "success"
    assert run_starts(stack, "prot_r") == []
    api.queue_clear()
    next_item_completes(stack, api, "after_robot_refusal")


def test_ioc_killed_mid_run_then_restarted(stack, api):
    api.item_add(exposure("ioc_dies", frames=400, exposure_time=1.0))
    api.queue_start()
    wait_until_running(api)
    time.sleep(2.0)
    psutil.Process(stack.pids["ioc"]).kill()
    elapsed = wait_until_idle(api)
    result = history(api)[-1]["result"]
    assert result["exit_status"] == "failed"
    assert "fast_shutter" not in result["msg"].splitlines()[0], result["msg"]  # not the cleanup's error
    assert elapsed < BOUND_S
    (uid,) = result["run_uids"]
    assert the_record(stack, uid)["experiment_runs"][0]["exit_status"] == "fail"
    restarted = up(Path(stack.var_dir))  # restarts just the IOC
    assert restarted.pids["manager"] == stack.pids["manager"]
    stack.__dict__.update(load_state(Path(stack.var_dir)).__dict__)
    api.queue_clear()
    next_item_completes(stack, api, "after_ioc_restart")
    assert run_starts(stack, "ioc_dies") == [uid]


def test_worker_killed_mid_run_is_noticed_and_its_item_failed_once(stack, api):
    api.item_add(exposure("worker_dies", frames=400, exposure_time=1.0))
    api.queue_start()
    wait_until_running(api)
    time.sleep(2.0)
    worker_process(stack).kill()
    lost = wait_for(lambda: api.status(reload=True)["sibyls_worker_lost"], 15.0, "worker death not seen")
    assert lost["item_name"] == "saxs_exposure"
    wait_for(
        lambda: api.status(reload=True)["worker_environment_exists"], BOUND_S, "environment not reopened"
    )
    status = api.status(reload=True)
    assert status["manager_state"] == "idle"
    entry = history(api)[-1]
    assert entry["result"]["exit_status"] == "failed" and "RE worker process died" in entry["result"]["msg"]
    (uid,) = lost["run_uids"]
    assert the_record(stack, uid)["experiment_runs"][0]["exit_status"] == "fail"
    queue = api.queue_get(reload=True)["items"]
    assert [i["args"] for i in queue] == [["worker_dies", PROJECT]]  # back once, not run again
    assert run_starts(stack, "worker_dies") == [uid]
    assert not leftovers(stack)
    api.queue_clear()
    next_item_completes(stack, api, "after_worker_death")


@pytest.mark.parametrize(
    ("first", "frames", "down_s"),
    [
        ("redis_during", 200, 2.0),  # back while the first item still runs
        ("redis_boundary", 100, 5.0),  # the first item ends on the worker while Redis is away
    ],
)
def test_redis_killed_and_restarted_loses_no_item_and_runs_none_twice(stack, api, first, frames, down_s):
    second = f"{first}_next"
    api.item_add(exposure(first, frames=frames, exposure_time=1.0))
    api.item_add(exposure(second))
    api.queue_start()
    wait_until_running(api)
    psutil.Process(stack.pids["redis"]).kill()
    time.sleep(down_s)
    stack.__dict__.update(up(Path(stack.var_dir)).__dict__)  # restarts just Redis
    wait_until_idle(api)
    entries = history(api)[-2:]
    assert [e["args"][0] for e in entries] == [first, second]
    assert [e["result"]["exit_status"] for e in entries] == ["completed", "completed"]
    assert api.status(reload=True)["items_in_queue"] == 0
    for sample in (first, second):
        (uid,) = run_starts(stack, sample)
        the_record(stack, uid)


def test_full_frame_folder_fails_the_run_with_no_space_and_leaves_nothing_partial(stack, api):
    folder = profile_config(stack).data_dir / "FULLDISK"
    with mounted("-t", "tmpfs", "-o", "size=1m", "tmpfs", target=folder):
        filler = folder / "filler"
        with contextlib.suppress(OSError), open(filler, "wb") as handle:
            handle.write(b"\0" * (1024 * 1024 - 16 * 1024))
        api.item_add(exposure("disk_full", frames=4, project="FULLDISK"))
        api.queue_start()
        elapsed = wait_until_idle(api)
        result = history(api)[-1]["result"]
        assert result["exit_status"] == "failed"
        assert "no space left on device" in result["msg"].lower(), result["msg"]
        assert elapsed < BOUND_S
        assert not list(folder.rglob("*.partial"))
        (uid,) = result["run_uids"]
        assert the_record(stack, uid)["experiment_runs"][0]["exit_status"] == "fail"
    api.queue_clear()
    next_item_completes(stack, api, "after_disk_full")


def test_records_folder_unwritable_then_writable_lands_the_record_without_another_run(stack, api):
    config = profile_config(stack)
    records_dir = config.records_dir
    with mounted("--bind", "-o", "ro", str(records_dir), target=records_dir):
        api.item_add(exposure("spooled"))
        api.queue_start()
        wait_until_idle(api)
        entry = history(api)[-1]
        assert entry["result"]["exit_status"] == "completed"
        (uid,) = entry["result"]["run_uids"]
        wait_for(lambda: list(config.spool_dir.rglob("*.yaml")), 30.0, "record not spooled")
        assert uid not in records(stack)
    record = the_record(stack, uid, timeout=10 * RECORD_RETRY_S + 10)  # landed by the timer alone
    assert record["experiment_runs"][0]["exit_status"] == "success"
    wait_for(lambda: not list(config.spool_dir.rglob("*.yaml")), 10.0, "spool not emptied")
