"""Queue server figures with the full SIBYLS profile beside queueserver's built-in simulated profile.

* environment open (the RE worker loading the profile): median of several opens, target ≤ 3 s
  (reported as a ratio to the built-in profile; the absolute target is in the note);
* ``item_add`` latency of our plans (queue-time validation of a SIBYLS item) vs the built-in
  ``count``: median, target ≤ 2 ms (likewise).

Both managers run side by side on one Redis (different key prefixes), on loopback.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from bench.common import Figure

OPENS = 3
ADDS = 200


def run() -> list[Figure]:
    from sibyls.startup.stack import down, up

    var_dir = Path(tempfile.mkdtemp(prefix="sibyls-bench-stack-"))
    state = up(var_dir, ioc_prefix="BST:", time_scale=50.0, binning=8, open_environment=False)
    baseline = None
    try:
        baseline = _start_sim_profile_manager(state, var_dir)
        ours_api = _api(state.zmq_control_addr)
        sim_api = _api(baseline[1])
        ours_open = _open_times(ours_api)
        sim_open = _open_times(sim_api)
        from bluesky_queueserver_api import BPlan

        ours_add = _add_latency(
            ours_api,
            lambda i: BPlan(
                "saxs_exposure", f"s{i}", "BENCH", exposure_time=0.5, num_frames=10, sample_role="sample"
            ),
        )
        sim_add = _add_latency(sim_api, lambda i: BPlan("count", ["det1"], num=1))
        ours_api.close()
        sim_api.close()
    finally:
        if baseline is not None:
            baseline[0].stop()
        down(var_dir)
    return [
        Figure(
            "environment open, SIBYLS profile (median)",
            ours_open,
            sim_open,
            "s",
            None,
            "queueserver sim profile",
            note=f"target ≤ 3 s: {'ok' if ours_open <= 3 else 'MISSED'}",
        ),
        Figure(
            "item_add saxs_exposure (median)",
            ours_add * 1e3,
            sim_add * 1e3,
            "ms",
            None,
            "sim profile item_add count",
            note=f"target ≤ 2 ms: {'ok' if ours_add <= 0.002 else 'MISSED'}",
        ),
    ]


def _api(address: str):
    from bluesky_queueserver_api.zmq import REManagerAPI

    return REManagerAPI(zmq_control_addr=address, timeout_recv=30)


def _start_sim_profile_manager(state, var_dir: Path):
    """queueserver's own simulated profile, the baseline, on the same Redis."""
    from sibyls.devices.epics_env import free_tcp_port
    from sibyls.startup.services import ManagedProcess, console_script
    from sibyls.startup.stack import _spawn

    control = f"tcp://127.0.0.1:{free_tcp_port()}"
    command = [
        console_script("start-re-manager"),
        "--redis-addr",
        state.redis_addr,
        "--redis-name-prefix",
        "simbaseline",
        "--zmq-control-addr",
        control,
        "--zmq-info-addr",
        f"tcp://127.0.0.1:{free_tcp_port()}",
        "--update-existing-plans-devices",
        "NEVER",
    ]
    import os

    process = _spawn("sim-manager", command, var_dir, dict(os.environ))
    service = ManagedProcess("sim-manager", process, var_dir / "logs" / "sim-manager.log")
    api = _api(control)
    deadline = time.monotonic() + 30
    while True:
        try:
            api.status()
            break
        except Exception:
            if time.monotonic() > deadline:
                service.stop()
                raise
            time.sleep(0.2)
    api.close()
    return service, control


def _open_times(api) -> float:
    times = []
    for _ in range(OPENS):
        start = time.perf_counter()
        api.environment_open()
        while not api.status()["worker_environment_exists"] or api.status()["manager_state"] != "idle":
            time.sleep(0.01)
        times.append(time.perf_counter() - start)
        api.environment_close()
        api.wait_for_idle(timeout=60)
    return statistics.median(times)


def _add_latency(api, make_item) -> float:
    api.queue_clear()
    times = []
    for index in range(ADDS):
        item = make_item(index)
        start = time.perf_counter()
        api.item_add(item)
        times.append(time.perf_counter() - start)
    api.queue_clear()
    return statistics.median(times)
