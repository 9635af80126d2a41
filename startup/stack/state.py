"""What ``sibyls up`` started, in ``<var>/stack.json``, and the bookkeeping of its processes.

A service is ours only while its recorded PID lives with the recorded start time (a PID reused by
another process is never signalled); stopping a service ends it with all its children.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

from sibyls.devices.epics_env import loopback_ca_env
from sibyls.devices.sim.launcher import log_sinks
from sibyls.startup.stack.security import HTTP_AUTH_PROVIDER

HOST = "127.0.0.1"
#: Started in this order: the document proxy and the processing service before the manager, so no
#: run's documents are published before the first look listens.
SERVICES = ("redis", "ioc", "tiled", "proxy", "processing", "manager", "http")


class StackError(RuntimeError):
    """A part of the stack could not be started, reached or stopped; the message says which and why."""


@dataclass
class StackState:
    """What ``sibyls up`` started: ports, PIDs and where the API key and logs are."""

    var_dir: str
    ioc_prefix: str
    ports: dict[str, int] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    api_key_file: str = ""
    tiled_api_key_file: str = ""
    started_at: float = 0.0
    #: Start time of each PID (psutil ``create_time``): a PID reused by another process is never signalled.
    starts: dict[str, float] = field(default_factory=dict)
    #: RE Manager's 0MQ CURVE public key (0600); clients cannot reach the manager without it.
    zmq_public_key_file: str = ""
    #: Passwords of the HTTP server's demo accounts (0600).
    http_users_file: str = ""
    #: The simulated IOC's settings, so a restarted IOC is the same beamline.
    time_scale: float = 1.0
    binning: int = 4

    @property
    def zmq_control_addr(self) -> str:
        return f"tcp://{HOST}:{self.ports['zmq_control']}"

    @property
    def zmq_info_addr(self) -> str:
        return f"tcp://{HOST}:{self.ports['zmq_info']}"

    @property
    def http_url(self) -> str:
        return f"http://{HOST}:{self.ports['http']}"

    @property
    def page_url(self) -> str:
        """The browser page the stack's HTTP server serves (log in with a demo account)."""
        return f"{self.http_url}/sibyls/"

    @property
    def tiled_url(self) -> str:
        return f"http://{HOST}:{self.ports['tiled']}"

    @property
    def redis_addr(self) -> str:
        return f"{HOST}:{self.ports['redis']}"

    @property
    def http_token_url(self) -> str:
        """Where the demo accounts log in (form ``username``, ``password``) for a bearer token."""
        return f"{self.http_url}/api/auth/provider/{HTTP_AUTH_PROVIDER}/token"

    def document_proxy_settings(self) -> dict[str, str]:
        """Where RunEngines publish documents and where the processing service reads them
        (``ProfileConfig`` fields)."""
        if "docs_in" not in self.ports:
            return {}
        return {
            "document_proxy": f"{HOST}:{self.ports['docs_in']}",
            "document_feed": f"{HOST}:{self.ports['docs_out']}",
        }

    def api_key(self) -> str:
        """The HTTP API key of the ``user`` account (read from its 0600 file; never printed)."""
        return Path(self.api_key_file).read_text().strip()

    def http_password(self, username: str) -> str:
        """The password of an HTTP demo account (read from its 0600 file; never printed)."""
        import yaml

        return yaml.safe_load(Path(self.http_users_file).read_text())[username]

    def zmq_public_key(self) -> str | None:
        """RE Manager's 0MQ public key (None for a stack recorded before the manager was encrypted)."""
        return Path(self.zmq_public_key_file).read_text().strip() if self.zmq_public_key_file else None

    def qserver_env(self) -> dict[str, str]:
        """Environment for queueserver clients of this stack's manager (the ``qserver`` CLI,
        REManagerAPI, the HTTP server): control and info addresses and the manager's public key."""
        env = {
            "QSERVER_ZMQ_CONTROL_ADDRESS": self.zmq_control_addr,
            "QSERVER_ZMQ_INFO_ADDRESS": self.zmq_info_addr,
        }
        key = self.zmq_public_key()
        if key:
            env["QSERVER_ZMQ_PUBLIC_KEY"] = key
        return env

    def ca_env(self) -> dict[str, str]:
        """EPICS environment for clients of this stack's IOC."""
        return loopback_ca_env(self.ports["ca"])


def state_path(var_dir: Path) -> Path:
    return var_dir / "stack.json"


def load_state(var_dir: Path) -> StackState | None:
    """The recorded stack in ``var_dir`` (None if there is none)."""
    path = state_path(var_dir)
    if not path.exists():
        return None
    return StackState(**json.loads(path.read_text()))


def save_state(state: StackState) -> None:
    path = state_path(Path(state.var_dir))
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2))
    os.replace(tmp, path)


def pid_alive(pid: int) -> bool:
    """True if ``pid`` is a live (not zombie) process."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def start_time(pid: int) -> float | None:
    """When ``pid`` started (seconds since the epoch), to tell it from a later process with its PID."""
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def ours(state: StackState, name: str) -> int | None:
    """The PID of service ``name`` if that very process is still alive (not a reused PID)."""
    pid = state.pids.get(name)
    if pid is None or not pid_alive(pid):
        return None
    recorded = state.starts.get(name)
    if recorded is not None and start_time(pid) != recorded:
        return None
    return pid


def record(state: StackState, name: str, pid: int) -> None:
    """Note a started service in the state file at once, before waiting for it to be healthy."""
    state.pids[name] = pid
    started = start_time(pid)
    if started is not None:
        state.starts[name] = started
    save_state(state)


def children(pid: int) -> list[int]:
    """All descendants of ``pid``."""
    try:
        return [child.pid for child in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def terminate(pids: list[int], timeout: float = 10.0) -> list[int]:
    """SIGTERM ``pids``, SIGKILL what has not ended after ``timeout`` s; reap them. The PIDs ended."""
    processes = []
    for pid in pids:
        try:
            process = psutil.Process(pid)
            process.terminate()
        except psutil.Error:
            continue
        processes.append(process)
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(alive, timeout=timeout)
    return [process.pid for process in processes]


def stop_services(
    state: StackState,
    timeout: float = 15.0,
    names=("http", "manager", "processing", "proxy", "tiled", "ioc", "redis"),
):
    """End each named service that is still ours, with its children; the PIDs ended."""
    stopped: list[int] = []
    for name in names:
        pid = ours(state, name)
        if pid is not None:
            stopped += terminate([pid, *children(pid)], timeout)
    # Each log sink ends at the end of its service's output: wait until the last lines are written.
    logs = [Path(state.var_dir) / "logs" / f"{name}.log" for name in names]
    psutil.wait_procs(log_sinks(logs), timeout=timeout)
    return stopped
