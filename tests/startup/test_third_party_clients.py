"""The stack as ``sibyls up`` configures it, used by the ecosystem's own clients, the way the README
shows: bluesky-widgets' ``queue-monitor`` (PyQt5, under Xvfb) over 0MQ with the manager's public key
and over HTTP with ``--http-server-keyfile``; the ``qserver`` CLI and bluesky-queueserver-api with the
key file's content; plain ``curl`` with ``$(cat var/stack/http_api_key)``.

``queue-monitor`` talks to the manager once its Connect button is pressed (xdotool clicks it, as a
person would). What proves that it talks to the stack is what the servers saw from it: over HTTP its
requests (``GET /api/queue/get``, which nothing else in this module asks for) in the HTTP server's
access log, answered 200; over 0MQ the manager answering its queue requests ("Returning current queue
and running plan" in the manager's log: no other client of this module asks for the queue). Each
is checked against a control without the right key (no answer over 0MQ, 401 over HTTP), so the
observation can fail. Each monitor and the Xvfb server are ended by PID.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from bluesky_queueserver_api import BPlan
from bluesky_queueserver_api.zmq import REManagerAPI

from sibyls.startup.stack import StackState, describe, up
from sibyls.startup.stack.services import console_script
from sibyls.startup.stack.state import terminate

pytestmark = pytest.mark.slow

PROJECT = "CLIENTS_TEST"
#: How long a client may take to start and make its first requests (it is polled, not slept).
CLIENT_START_S = 60.0
QUEUE_ANSWER = "Returning current queue and running plan"


def saxs_item(sample_code: str) -> dict:
    kwargs = {"sample_code": sample_code, "project_code": PROJECT, "exposure_time": 0.1, "num_frames": 1}
    return {"name": "saxs_exposure", "item_type": "plan", "kwargs": kwargs}


@pytest.fixture(scope="module")
def display(tmp_path_factory):
    """An Xvfb X server on a display number it picks itself (``-displayfd``), ended by PID."""
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        reason = "Xvfb not found (apt-get install -y xvfb libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    if shutil.which("xdotool") is None:
        reason = "xdotool not found (apt-get install -y xdotool): it presses queue-monitor's Connect button"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    pytest.importorskip("bluesky_widgets", reason="bluesky-widgets is in the test extras")
    read, write = os.pipe()
    log = (tmp_path_factory.mktemp("xvfb") / "xvfb.log").open("w")
    process = subprocess.Popen(
        [xvfb, "-displayfd", str(write), "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
        pass_fds=(write,),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    os.close(write)
    try:
        with os.fdopen(read) as chosen:
            number = chosen.readline().strip()
        assert number.isdigit(), f"Xvfb did not start (see {log.name})"
        yield f":{number}"
    finally:
        terminate([process.pid])
        log.close()


def client_env(display: str) -> dict[str, str]:
    """This environment without queueserver settings (the client gets only what a test gives it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QSERVER_")}
    return {**env, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb"}


@contextlib.contextmanager
def queue_monitor(stack: StackState, display: str, *args: str, env: dict[str, str] | None = None):
    """``queue-monitor ARGS`` as a user starts it, on the Xvfb display; ended by its PID afterwards."""
    log = Path(stack.var_dir) / "logs" / f"queue-monitor-{time.monotonic_ns()}.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [console_script("queue-monitor"), *args],
            env={**client_env(display), **(env or {})},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process, log
    finally:
        terminate([process.pid])


def log_size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def new_lines(path: Path, since: int) -> list[str]:
    with path.open("rb") as file:
        file.seek(since)
        return file.read().decode(errors="replace").splitlines()


def wait_for_lines(path: Path, since: int, pattern: str, count: int, process, timeout: float) -> list[str]:
    """Lines matching ``pattern`` written to ``path`` after byte ``since``, once there are ``count``."""
    deadline = time.monotonic() + timeout
    while True:
        found = [line for line in new_lines(path, since) if re.search(pattern, line)]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        assert process.poll() is None, f"the client exited with {process.returncode}"
        time.sleep(0.5)


# ---- the key files, the registry and the page's address as `sibyls up` leaves them ---------------


def test_up_rewrites_old_key_files_without_changing_the_keys(stack):
    key_file, public_file = Path(stack.api_key_file), Path(stack.zmq_public_key_file)
    key, public = key_file.read_text(), public_file.read_text()
    assert "\n" not in key + public and len(public) == 40
    key_file.write_text(key + "\n")  # as an older `sibyls up` wrote them
    public_file.write_text(public + "\n")
    assert up(Path(stack.var_dir)).pids == stack.pids  # the running stack, nothing restarted
    assert key_file.read_text() == key and public_file.read_text() == public
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"


def test_the_robots_plates_are_in_the_registry_and_status_names_the_page(stack):
    registry = Path(stack.var_dir) / "plates.yaml"
    assert "DEMO_PLATE_1:" in registry.read_text()
    status = describe(stack)
    assert f"page     {stack.http_url}/sibyls/" in status
    import httpx

    assert httpx.get(stack.page_url, timeout=10).status_code == 200


# ---- bluesky-widgets' queue-monitor -------------------------------------------------------------

#: Where queue-monitor's "Connect" button is on the 1280x1024 Xvfb screen (its window opens at 0,0; the
#: button is the first control of the "Queue Server" box, top left). The app talks to the manager
#: only once it is pressed, as a person would.
CONNECT_BUTTON = (110, 116)


def press_connect(display: str) -> None:
    """A mouse click on queue-monitor's Connect button (xdotool; a click on nothing is harmless)."""
    x, y = CONNECT_BUTTON
    subprocess.run(
        ["xdotool", "mousemove", str(x), str(y), "click", "1"],
        env={**os.environ, "DISPLAY": display},
        capture_output=True,
        timeout=30,
    )


def connect_and_wait(display, path: Path, since: int, pattern: str, count: int, process, timeout: float):
    """Press Connect until ``count`` lines matching ``pattern`` appear in ``path`` (or ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        press_connect(display)
        found = wait_for_lines(path, since, pattern, count, process, timeout=2.0)
        if len(found) >= count or time.monotonic() > deadline:
            return found


def test_queue_monitor_over_0mq_needs_the_public_key_and_then_shows_the_queue(stack, api, display):
    manager_log = Path(stack.var_dir) / "logs" / "manager.log"
    addresses = ["--zmq-control-addr", stack.zmq_control_addr, "--zmq-info-addr", stack.zmq_info_addr]
    api.item_add(BPlan("saxs_exposure", "qmon_1", PROJECT, exposure_time=0.1, num_frames=1))
    since = log_size(manager_log)
    with queue_monitor(stack, display, *addresses) as (process, _):  # control: no key
        unanswered = connect_and_wait(display, manager_log, since, QUEUE_ANSWER, 1, process, timeout=20)
    assert unanswered == [], "a client without the manager's public key got an answer"

    key = Path(stack.zmq_public_key_file).read_text()
    since = log_size(manager_log)
    with queue_monitor(stack, display, *addresses, env={"QSERVER_ZMQ_PUBLIC_KEY": key}) as (process, log):
        answered = connect_and_wait(display, manager_log, since, QUEUE_ANSWER, 1, process, CLIENT_START_S)
        assert answered, f"queue-monitor never got the queue; its output: {log.read_text()[-2000:]}"
        since = log_size(manager_log)
        api.item_add(BPlan("saxs_exposure", "qmon_2", PROJECT, exposure_time=0.1, num_frames=1))
        # It watches the manager's status and asks for the queue again when the queue changed.
        again = wait_for_lines(manager_log, since, QUEUE_ANSWER, 1, process, CLIENT_START_S)
        assert again, "queue-monitor did not follow the queue"


def test_queue_monitor_over_http_with_the_key_file(stack, display, tmp_path):
    http_log = Path(stack.var_dir) / "logs" / "http.log"
    queue_request = r'"GET /api/queue/get HTTP/1\.1" '
    console_request = r'"GET /api/console_output_update HTTP/1\.1" '
    wrong = tmp_path / "wrong_key"
    wrong.write_text("0" * 40)
    since = log_size(http_log)
    args = ["--http-server-uri", stack.http_url, "--http-server-keyfile"]
    with queue_monitor(stack, display, *args, str(wrong)) as (process, _):  # control: a wrong key
        refused = wait_for_lines(http_log, since, console_request, 2, process, CLIENT_START_S)
    assert refused and all(line.rstrip().endswith("401 Unauthorized") for line in refused), refused

    since = log_size(http_log)
    with queue_monitor(stack, display, *args, stack.api_key_file) as (process, log):
        answered = connect_and_wait(display, http_log, since, queue_request, 1, process, CLIENT_START_S)
        assert answered, f"queue-monitor never asked for the queue; its output: {log.read_text()[-2000:]}"
        requests = [line for line in new_lines(http_log, since) if '"GET /api/' in line]
        # The manager's console prints every project's items: a user's key may not read it (403, the
        # projects rule); everything else the monitor asks for is answered.
        other = [line for line in requests if "/api/console_output" not in line]
        console = [line for line in requests if "/api/console_output" in line]
        assert other and all(line.rstrip().endswith("200 OK") for line in other), other
        assert all(line.rstrip().endswith("403 Forbidden") for line in console), console


# ---- qserver, bluesky-queueserver-api and curl, as the README shows them --------------------------


def test_qserver_the_python_api_and_curl_queue_items_with_the_key_files(stack, api):
    var = Path(stack.var_dir)
    plan = {"name": "saxs_exposure", "kwargs": {"sample_code": "by_qserver", "project_code": PROJECT}}
    item = {"item": saxs_item("by_curl")}
    script = f"""
        set -e
        cd {var.parent}
        ZMQ={stack.ports["zmq_control"]}
        HTTP={stack.ports["http"]}
        KEY=$(cat {var.name}/http_api_key)
        export QSERVER_ZMQ_PUBLIC_KEY=$(cat {var.name}/zmq_public_key)
        QSERVER={console_script("qserver")}
        $QSERVER --zmq-control-addr tcp://127.0.0.1:$ZMQ queue add plan '{json.dumps(plan)}'
        curl -s -f -H "Authorization: ApiKey $KEY" -H "Content-Type: application/json" -X POST \\
          http://127.0.0.1:$HTTP/api/queue/item/add -d '{json.dumps(item)}'
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("QSERVER_")}
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert '"success":true' in done.stdout.replace(" ", "")

    client = REManagerAPI(
        zmq_control_addr=stack.zmq_control_addr,
        zmq_public_key=open(stack.zmq_public_key_file).read(),  # the file as it is, not stripped
    )
    try:
        client.item_add(BPlan("saxs_exposure", sample_code="by_python_api", project_code=PROJECT))
    finally:
        client.close()
    queued = [item["kwargs"]["sample_code"] for item in api.queue_get()["items"]]
    assert queued == ["by_qserver", "by_curl", "by_python_api"]
