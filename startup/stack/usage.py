"""What a running stack uses: memory of each service, Redis memory, log and var-folder bytes.

The soak (``python -m bench soak``, ``tests/startup/test_soak.py``) samples it before, during and
after hundreds of runs to show that nothing grows without bound over a night of measuring.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from sibyls.startup.stack.state import HOST, StackState, ours

#: The processes whose memory is sampled: the services a run passes through (``worker`` is the RE
#: worker, the manager's child that runs the plans).
SAMPLED = ("manager", "worker", "http", "processing", "ioc")


@dataclass
class Usage:
    """One sample of a stack's resources (bytes)."""

    rss: dict[str, int] = field(default_factory=dict)
    redis_memory: int = 0
    log_bytes: int = 0
    var_bytes: int = 0


def re_worker(manager_pid: int) -> int | None:
    """The RE worker's PID: the manager's child process that runs the plans (the largest one)."""
    try:
        kids = psutil.Process(manager_pid).children()
    except psutil.Error:
        return None
    sizes = {}
    for kid in kids:
        try:
            sizes[kid.pid] = kid.memory_info().rss
        except psutil.Error:
            continue
    return max(sizes, key=sizes.get) if sizes else None


def service_pids(state: StackState) -> dict[str, int]:
    """PIDs of the :data:`SAMPLED` processes that are running now."""
    pids = {name: ours(state, name) for name in SAMPLED if name != "worker"}
    if pids.get("manager"):
        pids["worker"] = re_worker(pids["manager"])
    return {name: pids[name] for name in SAMPLED if pids.get(name)}


def rss(pid: int) -> int:
    """Resident memory of ``pid`` in bytes (0 when it is gone)."""
    try:
        return psutil.Process(pid).memory_info().rss
    except psutil.Error:
        return 0


def redis_memory(state: StackState) -> int:
    """Bytes Redis uses for its data (``INFO memory`` ``used_memory``)."""
    import redis

    client = redis.Redis(host=HOST, port=state.ports["redis"], socket_timeout=5)
    try:
        return int(client.info("memory")["used_memory"])
    finally:
        client.close()


def folder_bytes(path: Path | str) -> int:
    """Bytes of all files under ``path`` (0 if it does not exist; files vanishing meanwhile skipped)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


def sample(state: StackState) -> Usage:
    """The stack's resources now: RSS of each sampled service, Redis memory, logs and var folder."""
    var_dir = Path(state.var_dir)
    return Usage(
        rss={name: rss(pid) for name, pid in service_pids(state).items()},
        redis_memory=redis_memory(state),
        log_bytes=folder_bytes(var_dir / "logs"),
        var_bytes=folder_bytes(var_dir),
    )
