"""People and their projects in the stack's real Tiled server (Tiled 0.2.1's TagBasedAccessPolicy).

On the shared session stack: two projects of this module (``user`` and ``observer`` in one, ``user2`` in
the other) each get a measured run; a third run is queued by staff for the wrong-case code of the
first. Each person's own Tiled client (``user`` logs in as the README shows; the others use a personal
API key made after logging in) lists only their projects' runs; another project's run, or one of a
wrong-case code, is a ``KeyError`` exactly like a uid that does not exist; staff see every run; the
writer (the RE worker and the processing service) still writes, processed curves carry the run's tag;
removing a person from the projects file removes their access at their next request.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest
from bluesky_queueserver_api import BPlan
from stack_helpers import wait_until_idle

from sibyls.metadata.projects import Project, ProjectsFile
from sibyls.startup.stack.starters import projects_path
from sibyls.startup.stack.tiled_access import TILED_PROVIDER

pytestmark = pytest.mark.slow

A, B = "TILED_A", "TILED_B"
WRONG_CASE = A.lower()


def _poll(check, what: str, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.3)


def personal_key(stack, username: str) -> str:
    """A person's own Tiled API key: log in with their HTTP account's password, make a key."""
    url = stack.tiled_url
    login = httpx.post(
        f"{url}/api/v1/auth/provider/{TILED_PROVIDER}/token",
        data={"username": username, "password": stack.http_password(username)},
        timeout=10,
    )
    login.raise_for_status()
    made = httpx.post(
        f"{url}/api/v1/auth/apikey",
        json={"expires_in": 3600, "scopes": ["inherit"], "note": "test"},
        headers={"Authorization": f"Bearer {login.json()['access_token']}"},
        timeout=10,
    )
    made.raise_for_status()
    return made.json()["secret"]


@pytest.fixture(scope="module")
def runs(stack):
    """{project_code: run uid} for A, B and the wrong-case code, each run in Tiled with its processed
    curves (written by the stack's writer identity); A and B leave the projects file afterwards."""
    from tiled.client import from_uri

    from sibyls.startup.stack import manager_api

    projects = ProjectsFile(projects_path(stack.var_dir))
    projects.add(Project(A, "Tiled test A", ("user", "observer")))
    projects.add(Project(B, "Tiled test B", ("user2",)))
    api = manager_api(stack, timeout=10)
    try:
        api.queue_clear()
        for code in (A, B, WRONG_CASE):  # over 0MQ: an operator (staff) may queue for any code
            added = api.item_add(
                BPlan(
                    "saxs_exposure",
                    sample_code=f"tiled_{code}",
                    project_code=code,
                    exposure_time=0.1,
                    num_frames=2,
                )
            )
            assert added["success"], added["msg"]
        api.queue_start()
        wait_until_idle(api)
        items = api.history_get()["items"][-3:]
    finally:
        api.close()
    uids = {}
    for item in items:
        assert item["result"]["exit_status"] == "completed", item["result"]
        uids[item["kwargs"]["project_code"]] = item["result"]["run_uids"][0]
    writer = from_uri(stack.tiled_url, api_key=open(stack.tiled_api_key_file).read().strip())
    for uid in uids.values():
        _poll(lambda uid=uid: uid in writer and "stop" in writer[uid].metadata, f"run {uid} in Tiled")
    _poll(lambda: "processed" in writer[uids[A]], "processed curves of the A run")
    yield uids
    # the session's stack is shared: the other tests' people belong to their own projects only
    projects.write({code: p for code, p in projects.projects().items() if code not in (A, B)})


@pytest.fixture(scope="module")
def clients(stack, runs):
    """Each person's Tiled client: ``user`` logged in (the README's way), the others by personal key."""
    from tiled._tests.utils import enter_username_password
    from tiled.client import from_uri

    os.environ["TILED_FORCE_PROMPT"] = "1"  # the login below answers the prompt
    try:
        with enter_username_password("user", stack.http_password("user")):
            user = from_uri(stack.tiled_url, remember_me=False)  # asks for name and password
    finally:
        os.environ.pop("TILED_FORCE_PROMPT", None)
    # the README's key for scripts, made from the logged-in client
    key = user.context.create_api_key(note="test: user's scripts", expires_in=3600)["secret"]
    clients = {"user": user, "user by key": from_uri(stack.tiled_url, api_key=key)}
    for name in ("user2", "staff", "observer"):
        clients[name] = from_uri(stack.tiled_url, api_key=personal_key(stack, name))
    return clients


def _missing(client, key: str) -> str:
    with pytest.raises(KeyError) as caught:
        client[key]
    return str(caught.value)


def test_each_person_sees_only_their_projects_runs(stack, runs, clients):
    projects = ProjectsFile(projects_path(stack.var_dir))
    user = clients["user"]
    assert runs[A] in user and runs[B] not in user and runs[WRONG_CASE] not in user
    assert user[runs[A]].metadata["start"]["project_code"] == A
    assert sorted(clients["user by key"]) == sorted(user)
    # every run the person lists is of one of their projects
    mine = projects.projects_of("user")
    assert {run.metadata["start"]["project_code"] for run in user.values()} <= mine
    assert runs[B] in clients["user2"] and runs[A] not in clients["user2"]
    assert {
        run.metadata["start"]["project_code"] for run in clients["user2"].values()
    } <= projects.projects_of("user2")
    assert all(uid in clients["staff"] for uid in runs.values())


def test_another_projects_run_and_a_wrong_case_code_are_like_a_missing_run(runs, clients):
    from tiled.queries import Key

    user = clients["user"]
    nowhere = _missing(user, "0" * 8 + "-0000-0000-0000-" + "0" * 12)
    assert _missing(user, runs[B]).replace(runs[B], "X") == nowhere.replace(
        "0" * 8 + "-0000-0000-0000-" + "0" * 12, "X"
    )
    _missing(user, runs[WRONG_CASE])
    _missing(clients["user2"], runs[A])
    assert len(user.search(Key("start.project_code") == WRONG_CASE)) == 0
    assert len(clients["staff"].search(Key("start.project_code") == WRONG_CASE)) >= 1


def test_processed_curves_carry_the_runs_project(runs, clients):
    processed = clients["user"][runs[A]]["processed"]
    assert processed.metadata["complete"] is True
    assert processed.access_blob["tags"] == [A]
    _missing(clients["user2"], f"{runs[A]}/processed")


def test_observer_reads_their_projects_runs_and_writes_nothing(runs, clients):
    from tiled.client.utils import ClientError

    observer = clients["observer"]
    assert runs[A] in observer and runs[B] not in observer
    assert observer[runs[A]].metadata["start"]["project_code"] == A
    for who in ("observer", "user"):
        with pytest.raises(ClientError):
            clients[who].create_container("sneaky", access_tags=[A])
        with pytest.raises(ClientError):
            clients[who][runs[A]].update_metadata({"sneaky": True})


def test_removing_a_member_removes_their_access(stack, runs, clients):
    projects = ProjectsFile(projects_path(stack.var_dir))
    user = clients["user"]
    assert runs[A] in user
    projects.set_members(A, remove=["user"])
    try:
        _poll(lambda: runs[A] not in user, "user still sees the A run after leaving the project", timeout=30)
        _missing(user, runs[A])
        assert runs[A] in clients["observer"]  # the project's other people keep theirs
    finally:
        projects.set_members(A, add=["user"])
    _poll(lambda: runs[A] in user, "user sees the A run again after rejoining", timeout=30)


def test_a_malformed_projects_file_shows_a_person_nothing_until_fixed(stack, runs, clients):
    path = projects_path(stack.var_dir)
    good = path.read_text()
    user = clients["user"]
    path.write_text(good + "\nBROKEN: [not, a, mapping]\n")
    try:
        _poll(lambda: len(user) == 0, "user still lists runs with a malformed projects file", timeout=30)
        _missing(user, runs[A])
        assert runs[A] in clients["staff"]  # staff see every run
    finally:
        path.write_text(good)
    _poll(lambda: runs[A] in user, "user sees the A run again once the file is fixed", timeout=30)


def test_writer_still_writes_after_a_tiled_restart_with_the_same_key(stack, runs, clients):
    from tiled.client import from_uri

    from sibyls.startup.stack import up
    from sibyls.startup.stack.state import children, load_state, terminate

    key = open(stack.tiled_api_key_file).read().strip()
    terminate([stack.pids["tiled"], *children(stack.pids["tiled"])])
    up(Path(stack.var_dir), timeout=180)  # restarts what is down: Tiled alone
    state = load_state(Path(stack.var_dir))
    stack.pids.update(state.pids)
    assert open(state.tiled_api_key_file).read().strip() == key  # the RE worker's writer still holds it
    writer = from_uri(state.tiled_url, api_key=key)
    node = writer.create_container("tiled_test_node", access_tags=[A])
    try:
        assert node.access_blob["tags"] == [A]
    finally:
        node.delete(recursive=True)
    # a person's login outlives the restart (the token signing key is kept)
    assert runs[A] in clients["user"]


def test_a_run_replayed_into_tiled_is_tagged_with_its_project(stack, runs, clients, monkeypatch):
    """``sibyls replay-record --tiled`` (re-ingesting a run) tags it as the stack's writer does."""
    from tiled.client import from_uri

    from sibyls.startup.cli import TILED_API_KEY_ENV, main
    from sibyls.startup.config import ProfileConfig
    from sibyls.startup.stack.starters import profile_config

    key = open(stack.tiled_api_key_file).read().strip()
    records = (profile_config(stack).records_dir / B).glob("*.yaml")
    record = next(path for path in records if runs[B] in path.read_text())
    from_uri(stack.tiled_url, api_key=key)[runs[B]].delete(recursive=True, external_only=False)
    _missing(clients["user2"], runs[B])
    monkeypatch.setenv(TILED_API_KEY_ENV, key)
    monkeypatch.setenv(ProfileConfig.env_name("projects"), str(projects_path(stack.var_dir)))
    assert main(["replay-record", str(record), "--tiled", stack.tiled_url]) == 0
    replayed = clients["user2"][runs[B]]
    assert replayed.access_blob["tags"] == [B]
    assert replayed.metadata["start"]["project_code"] == B
    _missing(clients["user"], runs[B])
