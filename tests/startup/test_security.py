"""Who may do what to the stack: HTTP roles and logins, the encrypted 0MQ control socket, no secret in logs.

Against the real stack ``sibyls up`` starts (the session's, from the ``stack`` fixture): the
HTTP server's demo accounts log in with their passwords, the API key is the ``user`` account's, and
RE Manager answers only 0MQ clients that hold its public key. A request whose login lacks a scope is
refused with HTTP 403 and httpserver's "Not enough permissions" detail (sibyls.startup.http.server
turns upstream's 401 into 403); a missing or bad login is a 401. The last test stops the manager
(staff may) and starts it again with ``up`` (which restarts what is down), for the tests after it.
"""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import httpx
import pytest
import yaml
from bluesky_queueserver import generate_zmq_keys
from bluesky_queueserver_api import BPlan
from bluesky_queueserver_api.comm_base import RequestTimeoutError
from bluesky_queueserver_api.zmq import REManagerAPI
from stack_helpers import http, qserver, wait_until_idle

from sibyls.startup.config import ProfileConfig
from sibyls.startup.stack import (
    STAFF_ONLY_SCOPES,
    StackState,
    _children,
    _manager_config_file,
    _ours,
    http_login,
    up,
)

pytestmark = pytest.mark.slow

PROJECT = "SECURITY_TEST"


def refused(response: httpx.Response, scope: str) -> bool:
    """httpserver's answer to a valid login that lacks ``scope``."""
    required = response.json().get("detail", "").split("Request had")[0]
    return (
        response.status_code == 403
        and required.startswith("Not enough permissions")
        and f"'{scope}'" in required
    )


def private_key(stack: StackState) -> str:
    return yaml.safe_load(_manager_config_file(Path(stack.var_dir)).read_text())["network"]["zmq_private_key"]


def environ(pid: int) -> dict[str, str] | None:
    """The environment ``pid`` was started with (None if it has exited meanwhile)."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except (ProcessLookupError, FileNotFoundError):
        return None
    return dict(entry.decode(errors="replace").split("=", 1) for entry in raw if b"=" in entry)


def saxs_item(sample_code: str) -> dict:
    kwargs = {"sample_code": sample_code, "project_code": PROJECT, "exposure_time": 0.1, "num_frames": 1}
    return {"name": "saxs_exposure", "item_type": "plan", "kwargs": kwargs}


def test_secrets_are_in_private_files_and_the_http_config_names_no_password(stack):
    var_dir = Path(stack.var_dir)
    secret_files = [
        Path(stack.api_key_file),
        Path(stack.http_users_file),
        Path(stack.zmq_public_key_file),
        _manager_config_file(var_dir),
        var_dir / "http" / "config.yml",
    ]
    for path in secret_files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE((var_dir / "http").stat().st_mode) == 0o700
    config = (var_dir / "http" / "config.yml").read_text()
    state_file = (var_dir / "stack.json").read_text()
    for name in ("staff", "user", "observer"):
        assert stack.http_password(name) not in config + state_file
    assert "${SIBYLS_HTTP_PASSWORD_STAFF}" in config
    assert private_key(stack) not in state_file and stack.api_key() not in state_file


def test_the_api_key_and_the_user_login_carry_the_user_roles_scopes_only(stack):
    by_key = http(stack, "GET", "/api/auth/scopes").json()
    by_login = http(stack, "GET", "/api/auth/scopes", token=http_login(stack, "user")).json()
    assert by_key == by_login
    assert by_key["roles"] == ["user"]
    assert "write:queue:edit" in by_key["scopes"]
    assert not set(STAFF_ONLY_SCOPES) & set(by_key["scopes"])
    staff = http(stack, "GET", "/api/auth/scopes", token=http_login(stack, "staff")).json()
    assert staff["roles"] == ["admin", "expert"]
    assert set(STAFF_ONLY_SCOPES) - {"write:testing"} <= set(staff["scopes"])


def test_a_user_cannot_upload_scripts_change_permissions_stop_the_manager_or_mint_a_staff_key(stack, api):
    token = http_login(stack, "user")
    for auth in ({}, {"token": token}):  # the API key, then the login
        script = http(stack, "POST", "/api/script/upload", json={"script": "sample_stage.x.set(5)"}, **auth)
        assert refused(script, "write:scripts"), script.text
        permissions = api.permissions_get()["user_group_permissions"]
        grant = http(
            stack, "POST", "/api/permissions/set", json={"user_group_permissions": permissions}, **auth
        )
        assert refused(grant, "write:permissions"), grant.text
        assert refused(http(stack, "POST", "/api/permissions/reload", **auth), "write:config")
        assert refused(http(stack, "POST", "/api/manager/stop", json={}, **auth), "write:manager:stop")
    escalated = http(
        stack, "POST", "/api/auth/apikey", json={"expires_in": 60, "scopes": ["write:scripts"]}, token=token
    )
    assert escalated.status_code == 400 and "must be a subset" in escalated.text
    assert api.status()["manager_state"] == "idle"  # still running, nothing stopped it


def test_staff_may_upload_a_script_and_set_permissions(stack, api):
    token = http_login(stack, "staff")
    permissions = http(stack, "GET", "/api/permissions/get", token=token).json()["user_group_permissions"]
    granted = http(
        stack, "POST", "/api/permissions/set", json={"user_group_permissions": permissions}, token=token
    )
    assert granted.status_code == 200 and granted.json()["success"], granted.text
    uploaded = http(
        stack, "POST", "/api/script/upload", json={"script": "staff_probe = 6 * 7\n"}, token=token
    )
    assert uploaded.status_code == 200 and uploaded.json()["success"], uploaded.text
    task_uid = uploaded.json()["task_uid"]
    deadline = time.monotonic() + 30
    while (result := api.task_result(task_uid))["status"] != "completed":
        assert time.monotonic() < deadline, result
        time.sleep(0.2)
    assert result["result"]["success"], result
    wait_until_idle(api, timeout=30)


def test_an_observer_reads_the_status_but_cannot_add_items(stack, api):
    token = http_login(stack, "observer")
    assert http(stack, "GET", "/api/status", token=token).json()["manager_state"] == "idle"
    assert http(stack, "GET", "/api/queue/get", token=token).status_code == 200
    added = http(stack, "POST", "/api/queue/item/add", json={"item": saxs_item("observed")}, token=token)
    assert refused(added, "write:queue:edit"), added.text
    assert api.status()["items_in_queue"] == 0


def test_items_added_over_http_carry_the_login_that_added_them(stack, api):
    by_key = http(stack, "POST", "/api/queue/item/add", json={"item": saxs_item("by_key")}).json()
    token = http_login(stack, "staff")
    by_staff = http(stack, "POST", "/api/queue/item/add", json={"item": saxs_item("by_staff")}, token=token)
    assert by_key["success"] and by_staff.json()["success"]
    assert [item["user"] for item in api.queue_get()["items"]] == ["user", "staff"]
    api.queue_clear()


def test_a_wrong_password_an_unknown_account_and_no_credentials_get_401(stack):
    with pytest.raises(httpx.HTTPStatusError) as wrong:
        http_login(stack, "staff", password="not-the-password")
    assert wrong.value.response.status_code == 401
    assert wrong.value.response.json()["detail"] == "Incorrect username or password"
    unknown = httpx.post(stack.http_token_url, data={"username": "mallory", "password": "x"}, timeout=10)
    assert unknown.status_code == 401
    assert http(stack, "GET", "/api/status", key=None).status_code == 401
    assert http(stack, "GET", "/api/status", token="not.a.token").status_code == 401


def test_0mq_without_the_managers_public_key_gets_no_answer_and_adds_nothing(stack, api, monkeypatch):
    monkeypatch.delenv("QSERVER_ZMQ_PUBLIC_KEY", raising=False)  # REManagerAPI would fall back to it
    other_public_key = generate_zmq_keys()[0]
    for key in (None, other_public_key):
        stranger = REManagerAPI(
            zmq_control_addr=stack.zmq_control_addr, zmq_public_key=key, timeout_recv=1, timeout_send=1
        )
        try:
            with pytest.raises(RequestTimeoutError):
                stranger.item_add(
                    BPlan("saxs_exposure", "stranger", PROJECT, exposure_time=0.1, num_frames=1)
                )
        finally:
            stranger.close()
    assert api.status()["items_in_queue"] == 0
    assert api.status()["manager_state"] == "idle"


def test_the_qserver_cli_works_with_the_key_in_its_environment_only(stack, api):
    without = qserver(stack, "status", with_key=False)
    assert without.returncode != 0
    added = qserver(stack, "queue", "add", "plan", json.dumps(saxs_item("cli_keyed")))
    assert added.returncode == 0, added.stdout + added.stderr
    assert [item["kwargs"]["sample_code"] for item in api.queue_get()["items"]] == ["cli_keyed"]
    api.queue_clear()


def test_the_manager_and_its_re_worker_have_no_private_key_in_their_environment(stack):
    manager = _ours(stack, "manager")
    assert manager is not None
    key = private_key(stack)
    environments = [env for pid in (manager, *_children(manager)) if (env := environ(pid)) is not None]
    assert len(environments) >= 3  # start-re-manager's watchdog, RE Manager, the RE worker (and helpers)
    for env in environments:
        assert not [name for name in env if name.startswith("QSERVER_ZMQ_PRIVATE_KEY")]
        assert key not in "\n".join(env.values())
        # the worker asks the manager
        assert env[ProfileConfig.env_name("zmq_public_key_file")] == stack.zmq_public_key_file


def test_no_password_key_or_signing_secret_appears_in_any_log(stack):
    http_env = environ(_ours(stack, "http"))
    secrets = {
        "HTTP API key": stack.api_key(),
        "0MQ private key": private_key(stack),
        "0MQ public key": stack.zmq_public_key(),
        "token signing key": http_env["QSERVER_HTTP_SERVER_SERVER_SECRET_KEYS"],
        "unused single-user key": http_env["QSERVER_HTTP_SERVER_SINGLE_USER_API_KEY"],
        **{f"{name}'s password": stack.http_password(name) for name in ("staff", "user", "observer")},
    }
    var_dir = Path(stack.var_dir)
    logs = sorted({*(var_dir / "logs").iterdir(), *var_dir.rglob("*.log")})
    assert logs and any(path.name == "http.log" for path in logs)
    for path in logs:
        text = path.read_text(errors="replace")
        leaked = [what for what, secret in secrets.items() if secret in text]
        assert not leaked, f"{path}: {leaked}"
    assert "<redacted>" in (var_dir / "logs" / "http.log").read_text()


def test_staff_may_stop_the_manager(stack):
    """Last: the stack's manager stops; ``up`` starts it again (the session's stack goes on)."""
    assert refused(http(stack, "POST", "/api/manager/stop", json={}), "write:manager:stop")
    try:
        stopped = http(stack, "POST", "/api/manager/stop", json={}, token=http_login(stack, "staff"))
        assert stopped.status_code == 200 and stopped.json()["success"], stopped.text
        deadline = time.monotonic() + 30
        while _ours(stack, "manager"):
            assert time.monotonic() < deadline, "RE Manager did not stop"
            time.sleep(0.2)
    finally:
        settings = {"ioc_prefix": stack.ioc_prefix, "time_scale": stack.time_scale, "binning": stack.binning}
        restarted = up(Path(stack.var_dir), **settings)
        stack.__dict__.update(restarted.__dict__)
