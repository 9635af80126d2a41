"""The whole SIBYLS stack on one machine: Redis, the simulated IOC, RE Manager and the HTTP server.

``sibyls up`` starts what is not running, on configured or free loopback ports, waits until each
part is healthy and records ports and PIDs in ``<var>/stack.json``; ``sibyls down`` ends exactly
those processes (and their children); ``sibyls status`` shows them.

Secured by default, with the servers' own mechanisms (secrets in 0600 files under ``<var>``, never
printed or logged):

* RE Manager's 0MQ control socket is CURVE-encrypted: the private key is only in the manager's
  config file ``re_manager.yml``; clients need ``zmq_public_key`` (``QSERVER_ZMQ_PUBLIC_KEY`` for the
  ``qserver`` CLI and the HTTP server, ``zmq_public_key=`` for REManagerAPI, see ``manager_api``
  and ``StackState.qserver_env``). Without it a client gets no answer.
* The HTTP server has person logins (demo accounts ``staff``, ``user``, ``observer`` of
  httpserver's ``DictionaryAuthenticator``, passwords in ``http_users.yaml``) and roles: only staff
  may upload scripts, change permissions or stop the manager. ``http_api_key`` is an API key of the
  ``user`` account, so it carries the user role's scopes.
"""

from __future__ import annotations

import time
from pathlib import Path

from sibyls.devices.epics_env import free_ca_port_pair, free_tcp_port
from sibyls.startup.stack.demo import ensure_plate_registry
from sibyls.startup.stack.health import describe, health
from sibyls.startup.stack.security import (
    HTTP_ACCOUNTS,
    HTTP_AUTH_PROVIDER,
    NON_STAFF_ROLES,
    STAFF_ONLY_SCOPES,
    http_config,
    http_login,
    http_users_file,
    manager_config_file,
    rewrite_old_key_files,
    zmq_key_files,
)
from sibyls.startup.stack.starters import (
    STARTERS,
    manager_api,
    open_re_environment,
    profile_config,
    profile_env,
    profile_manager_options,
    projects_path,
    reopen_re_environment,
    set_tiled_db,
    spawn,
    stack_plate_registry,
)
from sibyls.startup.stack.starters import tiled_db as running_tiled_db
from sibyls.startup.stack.state import (
    HOST,
    SERVICES,
    StackError,
    StackState,
    children,
    load_state,
    ours,
    pid_alive,
    start_time,
    state_path,
    stop_services,
)

# The names these had when this was one module (tests and the bench use them).
_children, _ours, _spawn = children, ours, spawn
_manager_config_file, _http_config = manager_config_file, http_config

__all__ = [
    "HOST",
    "HTTP_ACCOUNTS",
    "HTTP_AUTH_PROVIDER",
    "NON_STAFF_ROLES",
    "SERVICES",
    "STAFF_ONLY_SCOPES",
    "StackError",
    "StackState",
    "describe",
    "down",
    "health",
    "http_login",
    "load_state",
    "manager_api",
    "open_re_environment",
    "pid_alive",
    "profile_config",
    "profile_env",
    "profile_manager_options",
    "reopen_re_environment",
    "restart_services",
    "start_time",
    "up",
]


def up(
    var_dir: Path,
    *,
    ioc_prefix: str = "SIBYLS:",
    time_scale: float = 1.0,
    binning: int = 4,
    ports: dict[str, int] | None = None,
    open_environment: bool = True,
    timeout: float = 60.0,
    tiled_db: str | None = None,
) -> StackState:
    """Start the stack (or return the one already running in ``var_dir``), healthy and ready.

    ``tiled_db`` (``postgresql://...``) keeps the Tiled catalog in that database; default SQLite.
    """
    var_dir = var_dir.resolve()
    var_dir.mkdir(parents=True, exist_ok=True)
    rewrite_old_key_files(var_dir)  # same keys, as the clients read them (no trailing newline)
    ensure_plate_registry(stack_plate_registry(var_dir))
    existing = load_state(var_dir)
    if existing is not None:
        dead = [name for name in SERVICES if not ours(existing, name)]
        if len(dead) < len(SERVICES) and tiled_db and tiled_db != running_tiled_db(var_dir):
            raise StackError(f"the stack in {var_dir} keeps its Tiled catalog elsewhere; `sibyls down` first")
        if not dead:
            return existing
        if len(dead) < len(SERVICES):
            return restart_services(existing, dead, open_environment=open_environment, timeout=timeout)
        down(var_dir)  # nothing of it is left: start clean
    set_tiled_db(var_dir, tiled_db)
    from sibyls.startup.stack.demo import write_demo_projects

    write_demo_projects(projects_path(var_dir))  # a facility's own file is kept
    wanted = dict(ports or {})
    chosen = {
        "redis": wanted.get("redis") or free_tcp_port(),
        "ca": wanted.get("ca") or free_ca_port_pair(),
        "zmq_control": wanted.get("zmq_control") or free_tcp_port(),
        "zmq_info": wanted.get("zmq_info") or free_tcp_port(),
        "http": wanted.get("http") or free_tcp_port(),
        "tiled": wanted.get("tiled") or free_tcp_port(),
        "docs_in": wanted.get("docs_in") or free_tcp_port(),
        "docs_out": wanted.get("docs_out") or free_tcp_port(),
    }
    state = StackState(
        str(var_dir),
        ioc_prefix,
        chosen,
        {},
        str(var_dir / "http_api_key"),
        started_at=time.time(),
        zmq_public_key_file=str(zmq_key_files(var_dir)),
        http_users_file=str(http_users_file(var_dir)),
        time_scale=time_scale,
        binning=binning,
    )
    try:
        for name in SERVICES:
            STARTERS[name](state, timeout)
        if open_environment:
            open_re_environment(state, timeout=timeout)
    except BaseException:
        stop_services(state)  # what this call started, from memory (the state file may lag)
        state_path(var_dir).unlink(missing_ok=True)
        raise
    return state


def restart_services(
    state: StackState, names: list[str], *, open_environment: bool = True, timeout: float = 60.0
) -> StackState:
    """Start again just the services ``names`` (those that died), on their ports; the rest keeps running.

    The queue and history live in Redis (append-only file), records and frames on disk, scan ids in
    the worker's state folder: none of them is lost. A restarted manager reopens the environment.
    """
    stop_services(state, timeout, names=[n for n in names if ours(state, n)])  # half-dead ones
    for name in SERVICES:
        if name in names:
            STARTERS[name](state, timeout)
    if open_environment and "manager" in names:
        open_re_environment(state, timeout=timeout)
    elif open_environment and "ioc" in names:
        # The worker's devices were connected to the IOC that died: a fresh environment connects
        # them at once (Channel Access would otherwise find the new IOC only on its slow re-search).
        reopen_re_environment(state, timeout=timeout)
    return state


def down(var_dir: Path, timeout: float = 15.0) -> list[int]:
    """Stop exactly the processes ``up`` recorded in ``var_dir`` (and their children); their PIDs.

    A plan still running is aborted first, so its cleanup runs (fast shutter closed, HPLC run
    stopped) and its run gets a stop document and a record.
    """
    var_dir = var_dir.resolve()
    state = load_state(var_dir)
    if state is None:
        return []
    manager = ours(state, "manager")
    # The manager and its RE worker end by themselves when asked (a safe stop); count them too.
    asked = [manager, *children(manager)] if manager else []
    if manager:
        _abort_and_stop_manager(state, timeout)
    stopped = stop_services(state, timeout)
    state_path(var_dir).unlink(missing_ok=True)
    return [*[pid for pid in asked if pid not in stopped and not pid_alive(pid)], *stopped]


def _abort_and_stop_manager(state: StackState, timeout: float) -> None:
    try:
        api = manager_api(state, timeout=5)
    except Exception:
        return
    try:
        status = api.status()
        if status["re_state"] not in ("idle", None):
            if status["re_state"] == "running":
                api.re_pause(option="immediate")
                api.wait_for_idle_or_paused(timeout=timeout)
            api.re_abort()
            api.wait_for_idle(timeout=timeout)
        api.send_request(method="manager_stop", params={"option": "safe_on"})  # no API method in 0.0.13
    except Exception:  # the signals below still stop everything
        pass
    finally:
        api.close()
    manager = state.pids.get("manager")
    deadline = time.monotonic() + timeout
    while manager and ours(state, "manager") and time.monotonic() < deadline:
        time.sleep(0.1)
