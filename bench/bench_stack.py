"""Queue server figures with the full SIBYLS profile beside queueserver's built-in simulated profile.

* environment open (the RE worker loading the profile): median of several opens, target ≤ 3 s
  (reported as a ratio to the built-in profile; the absolute target is in the note);
* ``item_add`` of ``saxs_exposure`` through the full queue gate (``sibyls-re-manager``) against
  the floor of the same manager's request path: a ``queue_stop`` instruction, which queueserver
  adds without any validation (0MQ, Redis, logging); target ≤ 1.1× the floor;
* ``item_add`` of a 96-well ``ht_plate`` through the full gate (every well, buffer, contract and
  the plate registry): median, target ≤ 2 ms; beside it the same plate on the same manager with a
  gate that passes everything (:mod:`bench.manager_without_gate`): queueserver's own work on an
  item that size (JSON both ways, the Redis write, the echoed reply), which no gate can go under;
* for information: ``saxs_exposure`` vs queueserver's built-in ``count`` on its sim profile, and
  the same profile under plain ``start-re-manager`` (types and ranges only, no gate).

All managers run side by side on one Redis (different key prefixes), on loopback, each publishing
its console and encrypting its 0MQ control socket (with the stack's key pair) like the stack's.
The adds go in alternating rounds so that a slow spell of the machine hits every manager alike.
Items are sent as plain dicts, as the HTTP server forwards them: the Python API's ``BPlan`` would
add its own client-side deep copy of the item to every timed call (~0.4 ms for the plate), which is
not the manager's work.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Figure

OPENS = 3
ADDS_PER_ROUND = 200
ROUNDS = 5


def run() -> list[Figure]:
    from bluesky_queueserver_api import BInst, BPlan

    from sibyls.startup.stack import down, profile_env, profile_manager_options, up

    var_dir = Path(tempfile.mkdtemp(prefix="sibyls-bench-stack-"))
    state = up(var_dir, ioc_prefix="BST:", time_scale=50.0, binning=8, open_environment=False)
    extra_managers = []
    try:
        sim_service, sim_control = _start_manager(state, var_dir, "simbaseline", [], os.environ)
        extra_managers.append(sim_service)
        plain_service, plain_control = _start_manager(
            state, var_dir, "sibylsplain", profile_manager_options(), profile_env(state)
        )
        extra_managers.append(plain_service)
        ungated_service, ungated_control = _start_manager(
            state,
            var_dir,
            "sibylsungated",
            profile_manager_options(),
            profile_env(state),
            command=[sys.executable, "-m", "bench.manager_without_gate"],
        )
        extra_managers.append(ungated_service)
        key = state.zmq_public_key()
        ours_api, sim_api, plain_api, ungated_api = (
            _api(a, key) for a in (state.zmq_control_addr, sim_control, plain_control, ungated_control)
        )
        ours_open = _open_times(ours_api)
        sim_open = _open_times(sim_api)

        def saxs(i: int):
            kwargs = {"exposure_time": 0.5, "num_frames": 10, "sample_role": "sample"}
            return BPlan("saxs_exposure", f"s{i}", "BENCH", **kwargs).to_dict()

        plate = _full_plate(state)

        plate_item = BPlan("ht_plate", plate, "BENCH").to_dict()

        def plate96(i: int):
            return dict(plate_item)

        latencies = _add_latencies(
            {
                "ours": (ours_api, saxs),
                "ours plate96": (ours_api, plate96),
                "ungated plate96": (ungated_api, plate96),
                "sim": (sim_api, lambda i: BPlan("count", ["det1"], num=1).to_dict()),
                "plain": (plain_api, saxs),
                "ours floor": (ours_api, lambda i: BInst("queue_stop").to_dict()),
                "sim floor": (sim_api, lambda i: BInst("queue_stop").to_dict()),
            }
        )
        for api in (ours_api, sim_api, plain_api, ungated_api):
            api.close()
    finally:
        for service in extra_managers:
            service.stop()
        down(var_dir)
    ours_add, sim_add, plain_add = latencies["ours"], latencies["sim"], latencies["plain"]
    gate_share = latencies["ours plate96"] - latencies["ungated plate96"]
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
            "item_add saxs_exposure, full queue gate (median)",
            ours_add * 1e3,
            latencies["ours floor"] * 1e3,
            "ms",
            1.1,
            "queue_stop on the same manager (floor)",
        ),
        Figure(
            "item_add ht_plate of 96 wells, full queue gate (median)",
            latencies["ours plate96"] * 1e3,
            latencies["ours floor"] * 1e3,
            "ms",
            None,
            "queue_stop on the same manager (floor)",
            note=f"target ≤ 2 ms: {'ok' if latencies['ours plate96'] <= 0.002 else 'MISSED'}",
        ),
        Figure(
            "item_add ht_plate of 96 wells, full gate vs no gate (median)",
            latencies["ours plate96"] * 1e3,
            latencies["ungated plate96"] * 1e3,
            "ms",
            None,
            "same plate, same manager, gate passing all",
            note=f"the gate's share: {gate_share * 1e3:.2f} ms",
        ),
        Figure(
            "item_add saxs_exposure vs queueserver's sim profile",
            ours_add * 1e3,
            sim_add * 1e3,
            "ms",
            None,
            "sim profile item_add count",
        ),
        Figure(
            "item_add saxs_exposure, sibyls-re-manager",
            ours_add * 1e3,
            plain_add * 1e3,
            "ms",
            None,
            "same profile, plain start-re-manager",
        ),
        Figure(
            "item_add queue_stop, no validation (floor)",
            latencies["ours floor"] * 1e3,
            latencies["sim floor"] * 1e3,
            "ms",
            None,
            "same on the sim profile's manager",
        ),
    ]


def _full_plate(state) -> dict:
    """A 96-well plate (48 buffer/sample pairs) as submitted, registered with the stack's robot."""
    from sibyls.metadata.plate_registry import PlateRegistry
    from sibyls.metadata.rules import WELL_COLUMNS, WELL_ROWS
    from sibyls.startup.stack import profile_config

    names = [f"{row}{column}" for row in WELL_ROWS for column in WELL_COLUMNS]
    wells, robot = [], {}
    for index in range(0, len(names), 2):
        buffer_well, sample_well = names[index], names[index + 1]
        wells.append({"well": buffer_well, "sample_code": f"buf{index}", "sample_role": "buffer_blank"})
        wells.append(
            {
                "well": sample_well,
                "sample_code": f"prot{index}",
                "buffer_well": buffer_well,
                "concentration_mg_ml": 2.0,
                "sample_type": "protein",
                "exposure_time": 0.3,
                "num_frames": 33,
            }
        )
        robot[buffer_well] = {"sample_code": f"buf{index}", "kind": "buffer"}
        robot[sample_well] = {
            "sample_code": f"prot{index}",
            "rg_a": 20.0,
            "concentration_mg_ml": 2.0,
            "mw_kda": 50.0,
        }
    PlateRegistry(profile_config(state).plate_registry).add({"plate_id": "BENCH_96", "wells": robot})
    return {"plate_id": "BENCH_96", "wells": wells}


def _api(address: str, public_key: str | None):
    from bluesky_queueserver_api.zmq import REManagerAPI

    return REManagerAPI(zmq_control_addr=address, zmq_public_key=public_key, timeout_recv=30)


def _start_manager(
    state, var_dir: Path, prefix: str, options: list[str], env, command: list[str] | None = None
) -> tuple:
    """A manager on the stack's Redis under ``prefix``: ``command`` (default: queueserver's plain
    ``start-re-manager``, as shipped) with ``options``."""
    from sibyls.devices.epics_env import free_tcp_port
    from sibyls.startup.stack import _manager_config_file
    from sibyls.startup.stack.services import ManagedProcess, console_script, spawn_service

    control = f"tcp://127.0.0.1:{free_tcp_port()}"
    # A bench module (``python -m bench....``) runs from the checkout, as ``python -m bench`` does.
    cwd = var_dir if command is None else Path(__file__).resolve().parent.parent
    command = [
        *(command or [console_script("start-re-manager")]),
        "--redis-addr",
        state.redis_addr,
        "--redis-name-prefix",
        prefix,
        "--zmq-control-addr",
        control,
        "--zmq-info-addr",
        f"tcp://127.0.0.1:{free_tcp_port()}",
        "--update-existing-plans-devices",
        "NEVER",
        "--zmq-publish-console",  # as the stack's manager publishes its console (for GUIs)
        "ON",
        "--config",  # and encrypts its control socket, with the stack's key pair
        str(_manager_config_file(var_dir)),
        *options,
    ]
    process = spawn_service(command, var_dir / "logs" / f"{prefix}.log", dict(env), cwd=cwd)
    service = ManagedProcess(prefix, process, var_dir / "logs" / f"{prefix}.log")
    api = _api(control, state.zmq_public_key())
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


def _add_latencies(managers: dict) -> dict[str, float]:
    """Median ``item_add`` time per manager, over alternating rounds of adds."""
    times: dict[str, list[float]] = {name: [] for name in managers}
    for _ in range(ROUNDS):
        for name, (api, make_item) in managers.items():
            api.queue_clear()
            for index in range(ADDS_PER_ROUND):
                item = make_item(index)
                start = time.perf_counter()
                api.item_add(item)
                times[name].append(time.perf_counter() - start)
            api.queue_clear()
    return {name: statistics.median(values) for name, values in times.items()}
