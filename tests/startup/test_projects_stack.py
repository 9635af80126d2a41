"""People and their projects on the real stack: the queue gate, runs, files, exports, history, queue.

Two people of two projects (the demo's projects file ``sibyls up`` writes: ``user`` in MY_PROJECT,
``user2`` in LAB_B), staff and an observer log in to the stack's HTTP server; one run of each project
is measured. Each attack gets 404 (or the gate's refusal naming ``project_code``) and its answer is the
same as for something that does not exist.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import pytest
from bluesky_queueserver_api import BPlan
from stack_helpers import get_as as get
from stack_helpers import http, wait_until_idle
from stack_helpers import saxs_item as saxs

from sibyls.metadata.projects import ProjectsFile
from sibyls.startup.http.membership import item_project
from sibyls.startup.stack import describe

pytestmark = pytest.mark.slow

MINE, THEIRS = "MY_PROJECT", "LAB_B"


@pytest.fixture(scope="module")
def runs(stack, tokens):
    """One measured run of each project: {project: uid}, queued by its own person over HTTP."""
    from sibyls.startup.stack import manager_api

    api = manager_api(stack, timeout=10)
    api.queue_clear()
    uids = {}
    for who, project in (("user", MINE), ("user2", THEIRS)):
        reply = http(
            stack, "POST", "/api/queue/item/add", token=tokens[who], json={"item": saxs(who, project)}
        )
        assert reply.json()["success"], reply.json()
    api.queue_start()
    wait_until_idle(api)
    for item in api.history_get()["items"][-2:]:
        assert item["result"]["exit_status"] == "completed", item["result"]
        uids[item["kwargs"]["project_code"]] = item["result"]["run_uids"][0]
    api.close()
    deadline = time.monotonic() + 60
    for uid in uids.values():  # the records are written at each run's stop
        while get(stack, tokens, "staff", f"/api/sibyls/runs/{uid}").status_code != 200:
            assert time.monotonic() < deadline, f"no record of {uid}"
            time.sleep(0.3)
    return uids


def not_found(response: httpx.Response, expected: httpx.Response) -> bool:
    """404 with exactly the body something that does not exist gets."""
    return response.status_code == 404 and response.content == expected.content


def test_a_person_may_queue_only_for_their_projects_on_every_http_path(stack, tokens, api):
    refused = http(
        stack, "POST", "/api/queue/item/add", token=tokens["user2"], json={"item": saxs("s", MINE)}
    )
    assert not refused.json()["success"]
    assert f"project_code: '{MINE}' is not a project of 'user2'" in refused.json()["msg"]
    wrong_case = saxs("s", THEIRS.lower())
    reply = http(stack, "POST", "/api/queue/item/add", token=tokens["user2"], json={"item": wrong_case})
    assert "project_code: 'lab_b' is not a project of 'user2'" in reply.json()["msg"]
    unknown = http(
        stack, "POST", "/api/queue/item/add", token=tokens["user2"], json={"item": saxs("s", "NOPE")}
    )
    assert unknown.json()["msg"].replace("NOPE", "X") == refused.json()["msg"].replace(MINE, "X")
    batch = {"items": [saxs("ok", THEIRS), saxs("not_ok", MINE)]}
    assert not http(stack, "POST", "/api/queue/item/add/batch", token=tokens["user2"], json=batch).json()[
        "success"
    ]
    assert api.queue_get()["items"] == []
    dry = http(stack, "POST", "/api/sibyls/validate", token=tokens["user2"], json=saxs("s", MINE)).json()
    assert not dry["success"] and dry["problems"][-1].startswith("project_code:")
    ok = http(stack, "POST", "/api/queue/item/add", token=tokens["user2"], json={"item": saxs("s", THEIRS)})
    assert ok.json()["success"]
    staff = http(stack, "POST", "/api/queue/item/add", token=tokens["staff"], json={"item": saxs("s", MINE)})
    assert staff.json()["success"]
    api.queue_clear()


def test_a_0mq_client_is_an_operator_and_queues_for_any_project(api):
    assert api.item_add(BPlan("saxs_exposure", "op", THEIRS, exposure_time=0.1, num_frames=1))["success"]
    api.queue_clear()


def test_another_projects_run_answers_like_a_run_that_does_not_exist(stack, tokens, runs):
    theirs = runs[THEIRS]
    assert get(stack, tokens, "user2", f"/api/sibyls/runs/{theirs}").status_code == 200
    other = get(stack, tokens, "user", f"/api/sibyls/runs/{theirs}")
    fake = str(uuid.uuid4())
    absent = get(stack, tokens, "user", f"/api/sibyls/runs/{fake}")
    assert other.status_code == absent.status_code == 404
    assert other.json()["detail"].replace(theirs, "X") == absent.json()["detail"].replace(fake, "X")
    for guess in (theirs[:8], theirs[:8] + "-0000-0000-0000-000000000000", theirs.upper()):
        assert get(stack, tokens, "user", f"/api/sibyls/runs/{guess}").status_code == 404
    export = get(stack, tokens, "user", f"/api/sibyls/runs/{theirs}/export/csv")
    assert export.status_code == 404 and THEIRS not in export.text
    assert get(stack, tokens, "user2", f"/api/sibyls/runs/{theirs}/export/csv").status_code == 200
    assert get(stack, tokens, "staff", f"/api/sibyls/runs/{theirs}").status_code == 200
    assert get(stack, tokens, "observer", f"/api/sibyls/runs/{theirs}").status_code == 404


def test_another_projects_files_cannot_be_reached_by_any_path(stack, tokens, runs):
    details = get(stack, tokens, "user2", f"/api/sibyls/runs/{runs[THEIRS]}").json()
    frame = Path(next(f["path"] for f in details["files"] if f["kind"] == "frames"))
    record = Path(details["record_path"])
    assert get(stack, tokens, "user2", "/api/sibyls/files", params={"path": str(frame)}).status_code == 200
    absent = get(stack, tokens, "user", "/api/sibyls/files", params={"path": str(frame) + ".none"})
    mine = Path(stack.var_dir) / "data" / MINE
    link = mine / "innocent.h5"
    link.symlink_to(frame)
    try:
        attempts = [
            str(frame),
            str(record),
            str(mine / ".." / THEIRS / frame.name),
            str(frame).replace(f"/{THEIRS}/", f"/{THEIRS.lower()}/"),
            str(link),
            "/etc/passwd",
            str(Path(stack.var_dir) / "http_users.yaml"),
        ]
        for attempt in attempts:
            answer = get(stack, tokens, "user", "/api/sibyls/files", params={"path": attempt})
            assert not_found(answer, absent), attempt
        encoded = str(mine).replace("/", "%2F") + "%2F..%2F" + THEIRS + "%2F" + frame.name
        raw = httpx.get(
            f"{stack.http_url}/api/sibyls/files?path={encoded}",
            headers={"Authorization": f"Bearer {tokens['user']}"},
            timeout=30,
        )
        assert not_found(raw, absent)
        double = encoded.replace("%2F", "%252F")
        raw = httpx.get(
            f"{stack.http_url}/api/sibyls/files?path={double}",
            headers={"Authorization": f"Bearer {tokens['user']}"},
            timeout=30,
        )
        assert not_found(raw, absent)
    finally:
        link.unlink()


def test_history_shows_only_the_persons_projects_and_staff_all(stack, tokens, runs):
    def projects(who):
        items = get(stack, tokens, who, "/api/history/get").json()["items"]
        return {item_project(item) for item in items}  # keyword or positional (other tests queue both)

    assert THEIRS not in projects("user") and MINE in projects("user")
    assert projects("user2") == {THEIRS}
    assert {MINE, THEIRS} <= projects("staff")


def test_others_queue_items_show_plan_name_only(stack, tokens, api):
    api.item_add(BPlan("saxs_exposure", "secret_sample", THEIRS, exposure_time=0.1, num_frames=1))
    try:
        seen = get(stack, tokens, "user", "/api/queue/get").json()["items"]
        assert seen and all(set(item) <= {"item_uid", "item_type", "name"} for item in seen)
        assert "secret_sample" not in get(stack, tokens, "user", "/api/queue/get").text
        assert "secret_sample" in get(stack, tokens, "user2", "/api/queue/get").text
    finally:
        api.queue_clear()


def test_a_person_removed_from_a_project_keeps_queued_items_but_loses_its_data(stack, tokens, runs, api):
    projects = ProjectsFile(Path(stack.var_dir) / "projects.yaml")
    api.item_add(BPlan("saxs_exposure", "queued", THEIRS, exposure_time=0.1, num_frames=1), user="user2")
    projects.set_members(THEIRS, remove=["user2"])
    try:
        assert get(stack, tokens, "user2", f"/api/sibyls/runs/{runs[THEIRS]}").status_code == 404
        assert [(i["args"][0], i["user"]) for i in api.queue_get()["items"]] == [("queued", "user2")]
        refused = http(
            stack, "POST", "/api/queue/item/add", token=tokens["user2"], json={"item": saxs("s", THEIRS)}
        )
        assert not refused.json()["success"]
    finally:
        projects.set_members(THEIRS, add=["user2"])
        api.queue_clear()
    assert get(stack, tokens, "user2", f"/api/sibyls/runs/{runs[THEIRS]}").status_code == 200


def test_a_malformed_projects_file_denies_every_person_and_says_so_in_status(stack, tokens, runs, api):
    path = Path(stack.var_dir) / "projects.yaml"
    good = path.read_text()
    path.write_text(good + "\nBROKEN: {members: [a b]}\n")
    try:
        assert "MALFORMED" in describe(stack) and "BROKEN.members[0]" in describe(stack)
        assert get(stack, tokens, "user2", f"/api/sibyls/runs/{runs[THEIRS]}").status_code == 404
        refused = http(
            stack, "POST", "/api/queue/item/add", token=tokens["user2"], json={"item": saxs("s", THEIRS)}
        )
        assert not refused.json()["success"] and "project_code" in refused.json()["msg"]
        assert get(stack, tokens, "staff", f"/api/sibyls/runs/{runs[THEIRS]}").status_code == 200
    finally:
        path.write_text(good)
        api.queue_clear()
