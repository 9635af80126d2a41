"""Clients of a running stack for the integration tests: the ``qserver`` CLI, HTTP, queue waits."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import subprocess
import time
from pathlib import Path

import httpx

from sibyls.devices.epics_env import loopback_ca_environment
from sibyls.startup.stack import StackState
from sibyls.startup.stack.services import console_script

#: Projects the integration tests queue for as the ``user`` login (the demo file has the demo's):
#: the stack's queue gate refuses a project its submitter does not belong to.
TEST_PROJECTS = (
    "GATE", "WEB_TEST", "WEB_REFUSALS", "WEB_WATCH", "STACK_TEST", "SECURITY_TEST", "FIRSTLOOK_E2E",
    "PG_TEST", "FAULTS", "PR", "2026", "WEB_RUNVIEW", "CLIENTS_TEST", "MATRIX", "SOAK",
)  # fmt: skip


def add_test_projects(var_dir, codes=TEST_PROJECTS, members=("user", "observer")) -> None:
    """Make ``members`` people of each project in ``codes`` in the stack's projects file."""
    from sibyls.metadata.projects import Project, ProjectsFile

    projects = ProjectsFile(Path(var_dir).resolve() / "projects.yaml")
    projects.write({**projects.projects(), **{code: Project(code, "tests", members) for code in codes}})


@contextlib.contextmanager
def running_stack(
    var_dir, ioc_prefix: str, time_scale: float = 50.0, binning: int = 8, timeout: float = 180.0
):
    """The stack as ``sibyls up`` starts it in ``var_dir`` (real services, free loopback ports),
    ended with ``sibyls down`` afterwards, also when the test fails. ``timeout``: seconds each
    service may take to answer (on a loaded 2-core machine Tiled alone took over 60 s, measured
    2026-12-04). ``user`` and ``observer`` are people of the test projects."""
    from sibyls.startup.stack import down, up

    state = up(var_dir, ioc_prefix=ioc_prefix, time_scale=time_scale, binning=binning, timeout=timeout)
    add_test_projects(var_dir)
    try:
        yield state
    finally:
        down(var_dir)


def wait_until_idle(api, timeout: float = 120.0) -> None:
    """Until the manager has stopped running the queue (it stops on a failed item, too)."""
    deadline = time.monotonic() + timeout
    time.sleep(0.3)
    while time.monotonic() < deadline:
        status = api.status()
        if status["manager_state"] == "idle" and status["running_item_uid"] is None:
            return
        time.sleep(0.2)
    raise TimeoutError("the queue did not finish")


def qserver(
    stack: StackState, *args: str, with_key: bool = True, timeout: float = 60
) -> subprocess.CompletedProcess:
    """The ``qserver`` CLI against the stack's manager; ``with_key=False`` leaves out its public key."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QSERVER_")}
    env.update(stack.qserver_env())
    if not with_key:
        env.pop("QSERVER_ZMQ_PUBLIC_KEY", None)
    command = [console_script("qserver"), "--zmq-control-addr", stack.zmq_control_addr, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)


def http(
    stack: StackState,
    method: str,
    path: str,
    key: str | None = "default",
    token: str | None = None,
    **kwargs,
) -> httpx.Response:
    """An HTTP request with the stack's API key (the ``user`` account's), another key, a login
    token (``Authorization: Bearer``) or nothing (``key=None``)."""
    headers = {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    else:
        if key == "default":
            key = stack.api_key()
        if key:
            headers["Authorization"] = f"ApiKey {key}"
    return httpx.request(method, f"{stack.http_url}{path}", headers=headers, timeout=30, **kwargs)


#: The demo's logins: staff, a person of MY_PROJECT, a person of LAB_B, an observer.
PEOPLE = ("staff", "user", "user2", "observer")


def saxs_item(sample_code: str, project_code: str, num_frames: int = 2) -> dict:
    """A short ``saxs_exposure`` queue item (JSON, as the page and HTTP clients send it)."""
    kwargs = {"sample_code": sample_code, "project_code": project_code, "exposure_time": 0.1}
    return {"name": "saxs_exposure", "item_type": "plan", "kwargs": {**kwargs, "num_frames": num_frames}}


def get_as(stack: StackState, tokens: dict[str, str], who: str, path: str, **kwargs) -> httpx.Response:
    """``GET path`` as ``who`` (one of :data:`PEOPLE`, by its login token)."""
    return http(stack, "GET", path, token=tokens[who], **kwargs)


def register_plate(stack: StackState, plate_id: str, wells: dict[str, str]) -> None:
    """Put a plate into the stack's plate registry (as staff would), wells ``{"A1": "buffer", ...}``.

    Buffers are solvent only; samples are a small protein at 2 mg/mL, so the simulated robot can
    load every well.
    """
    from sibyls.metadata.plate_registry import PlateRegistry
    from sibyls.startup.stack import profile_config

    protein = {"kind": "sample", "rg_a": 20.0, "concentration_mg_ml": 2.0, "mw_kda": 50.0}
    buffer = {"kind": "buffer"}
    definition = {
        "plate_id": plate_id,
        "wells": {
            well: {
                "sample_code": f"{plate_id}_{well}",
                **(buffer if kind.startswith("buffer") else protein),
            }
            for well, kind in wells.items()
        },
    }
    PlateRegistry(profile_config(stack).plate_registry).add(definition)


def ca_environment(stack: StackState):
    """The stack IOC's EPICS environment in this process while CA contexts are made and searched."""
    return loopback_ca_environment(stack.ports["ca"])


def csv_sheet(rows: list[dict]) -> bytes:
    """A CSV plate sheet of ``rows`` with every column the sheet upload knows, in its order."""
    from sibyls.plans.plate_sheet import PLATE_COLUMNS, WELL_COLUMNS

    text = io.StringIO()
    writer = csv.DictWriter(text, [*PLATE_COLUMNS, *WELL_COLUMNS], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue().encode()


def upload_sheet(stack: StackState, name: str, content: bytes) -> httpx.Response:
    """POST a plate sheet file to the stack's spreadsheet upload, with the user's API key."""
    files = {"spreadsheet": (name, io.BytesIO(content), "application/octet-stream")}
    return http(stack, "POST", "/api/queue/upload/spreadsheet", files=files)
