"""``sibyls status``: whether each service answers (not only whether its process lives)."""

from __future__ import annotations

import time
from pathlib import Path

from sibyls.devices.epics_env import loopback_ca_environment
from sibyls.startup.stack.security import HTTP_ACCOUNTS
from sibyls.startup.stack.starters import describe_tiled_db, manager_api, port_listening, profile_config
from sibyls.startup.stack.state import HOST, SERVICES, StackState, ours


def health(state: StackState) -> dict[str, str]:
    """One line per service saying whether it answers and how it is (not just whether its PID lives).

    Redis answers a ping; the IOC serves a PV; Tiled and the HTTP server answer; the manager says its
    state, whether the RE worker's environment is open, the queue length, and a worker death it
    recovered from; records waiting in the spool folder are counted.
    """
    checks = {
        "redis": _redis_health,
        "ioc": _ioc_health,
        "tiled": _tiled_health,
        "proxy": _proxy_health,
        "processing": _processing_health,
        "manager": _manager_health,
        "http": _http_health,
    }
    report = {}
    for name, check in checks.items():
        if not ours(state, name):
            report[name] = "DOWN (not running; `sibyls up` restarts it)"
            continue
        try:
            report[name] = check(state)
        except Exception as exc:
            report[name] = f"NOT ANSWERING ({type(exc).__name__}: {exc})"
    config = profile_config(state)
    spooled = (
        [p for p in config.spool_dir.rglob("*") if p.suffix in (".yaml", ".json")]
        if config.spool_dir.is_dir()
        else []
    )
    report["records"] = f"{len(spooled)} waiting in {config.spool_dir}" if spooled else "none waiting"
    return report


def _redis_health(state: StackState) -> str:
    import redis

    client = redis.Redis(host=HOST, port=state.ports["redis"], socket_timeout=2)
    try:
        client.ping()
    finally:
        client.close()
    return "up, answers"


def _ioc_health(state: StackState) -> str:
    from caproto.sync.client import read

    with loopback_ca_environment(state.ports["ca"]):
        scale = read(f"{state.ioc_prefix}Sim:TimeScale", timeout=2, repeater=False).data[0]
    return f"up, serves PVs (time scale {scale:g})"


def _tiled_health(state: StackState) -> str:
    import httpx

    httpx.get(f"{state.tiled_url}/healthz", timeout=2).raise_for_status()
    return "up, answers"


def _http_health(state: StackState) -> str:
    import httpx

    response = httpx.get(
        f"{state.http_url}/api/status", timeout=2, headers={"Authorization": f"ApiKey {state.api_key()}"}
    )
    response.raise_for_status()
    return "up, answers"


def _proxy_health(state: StackState) -> str:
    ports = [state.ports[p] for p in ("docs_in", "docs_out")]
    return "ok" if all(port_listening(p) for p in ports) else "NOT LISTENING"


def _processing_health(state: StackState) -> str:
    from sibyls.startup.stack.processing import read_status

    status = read_status(Path(state.var_dir) / "state")
    if status is None:
        return "no status yet"
    failed = f", {status['failed']} failed (see logs/processing.log)" if status.get("failed") else ""
    return f"ok: {status['processed']} runs processed{failed}"


def _manager_health(state: StackState) -> str:
    api = manager_api(state, timeout=2)
    try:
        status = api.status()
    finally:
        api.close()
    worker = "worker environment open" if status["worker_environment_exists"] else "NO worker environment"
    text = f"up, {status['manager_state']}, {worker}, {status['items_in_queue']} queued"
    lost = status.get("sibyls_worker_lost")
    if lost:
        when = time.strftime("%H:%M:%S", time.localtime(lost["time"]))
        reopened = "environment reopened" if lost["environment_reopened"] else "environment NOT reopened"
        text += f"; RE worker died at {when} running {lost['item_name']} ({reopened})"
    return text


def projects_health(path: Path | None) -> str:
    """The projects file's state: how many projects, or what is wrong (every access then denied)."""
    from sibyls.metadata.projects import ProjectsFile

    if path is None:
        return "no projects file configured: nothing is restricted by project"
    projects = ProjectsFile(path)
    problem = projects.problem()
    if problem:
        return f"MALFORMED, every person is refused every project until it is fixed: {problem}"
    if not path.exists():
        return f"{path} missing: only staff may queue or see data"
    return f"{len(projects.projects())} in {path}"


def describe(state: StackState | None) -> str:
    """Human-readable status: each service's PID, address and health; where keys and logs are."""
    if state is None:
        return "SIBYLS stack: not running (no stack.json)"
    lines = [
        f"SIBYLS stack in {state.var_dir} (IOC prefix {state.ioc_prefix})",
        f"  page     {state.page_url}  (log in as {', '.join(HTTP_ACCOUNTS)}; passwords in "
        f"{state.http_users_file or Path(state.var_dir) / 'http_users.yaml'})",
    ]
    addresses = {
        "redis": state.redis_addr,
        "ioc": f"CA port {state.ports['ca']} on {HOST}",
        "tiled": state.tiled_url if "tiled" in state.ports else "-",
        "proxy": f"tcp://{HOST}:{state.ports['docs_in']}" if "docs_in" in state.ports else "-",
        "processing": str(profile_config(state).processed_dir),
        "manager": state.zmq_control_addr,
        "http": state.http_url,
    }
    report = health(state)
    for name in SERVICES:
        pid = state.pids.get(name)
        lines.append(f"  {name:<8} pid {pid!s:<8} {addresses[name]:<28} {report[name]}")
    lines.append(f"  records  {report['records']}")
    lines.append(f"  Tiled catalog in {describe_tiled_db(state.var_dir)}")
    lines.append(f"  projects {projects_health(profile_config(state).projects)}")
    if state.zmq_public_key_file:
        lines.append(
            f"  0MQ public key in {state.zmq_public_key_file} (mode 0600; clients: QSERVER_ZMQ_PUBLIC_KEY)"
        )
    lines.append(f"  HTTP API key (user role) in {state.api_key_file} (mode 0600)")
    if state.http_users_file:
        accounts = ", ".join(HTTP_ACCOUNTS)
        lines.append(
            f"  HTTP logins ({accounts}) in {state.http_users_file} (mode 0600): POST {state.http_token_url}"
        )
        lines.append(
            f"  Tiled logins: the same accounts, from_uri('{state.tiled_url}') (each sees their projects)"
        )
    lines.append(f"  logs in {Path(state.var_dir) / 'logs'}")
    return "\n".join(lines)
