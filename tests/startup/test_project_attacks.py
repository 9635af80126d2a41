"""The issue's "bad input and attacks" list on the real stack, the cases ``test_projects_stack.py`` does
not already hold: another project's run zip and NXcanSAS export, dot-encoded and double-encoded paths
(in the file query and in the run's URL), guessed uids on every run endpoint, a project code in the
wrong case in the runs list, a person removed from a project while their item waits (its new run is
not theirs), an unparsable projects file, and an observer. Every answer is 404 (or 403 for a change)
and says nothing about what exists: the same body as for something missing, no project code, sample,
uid or server path in it.
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

pytestmark = pytest.mark.slow

MINE, THEIRS = "MY_PROJECT", "LAB_B"
SECRET = "attack_secret_sample"


def raw_get(stack, tokens, who: str, raw_path: str) -> httpx.Response:
    """A GET whose path and query are sent exactly as written (no client-side re-encoding)."""
    url = httpx.URL(stack.http_url).copy_with(raw_path=raw_path.encode())
    return httpx.get(url, headers={"Authorization": f"Bearer {tokens[who]}"}, timeout=30)


def wait_for_record(stack, tokens, uid: str) -> None:
    deadline = time.monotonic() + 60
    while get(stack, tokens, "staff", f"/api/sibyls/runs/{uid}").status_code != 200:
        assert time.monotonic() < deadline, f"no record of {uid}"
        time.sleep(0.3)


@pytest.fixture(scope="module")
def theirs(stack, tokens):
    """The uid of one measured run of LAB_B (user2's project), its sample named :data:`SECRET`."""
    from sibyls.startup.stack import manager_api

    api = manager_api(stack, timeout=10)
    api.queue_clear()
    reply = http(
        stack, "POST", "/api/queue/item/add", token=tokens["user2"], json={"item": saxs(SECRET, THEIRS)}
    )
    assert reply.json()["success"], reply.json()
    api.queue_start()
    wait_until_idle(api)
    item = api.history_get()["items"][-1]
    api.close()
    assert item["result"]["exit_status"] == "completed", item["result"]
    uid = item["result"]["run_uids"][0]
    wait_for_record(stack, tokens, uid)
    return uid


def leaks(response: httpx.Response, stack, *secrets: str) -> list[str]:
    """What of ``secrets``, the other project's code and sample, and the stack's folder the answer's
    body gives away (a uid the request itself named may be echoed: the same as for a missing one)."""
    return [s for s in (*secrets, THEIRS, SECRET, str(stack.var_dir)) if s and s in response.text]


def test_another_projects_run_zip_and_exports_answer_like_a_missing_run(stack, tokens, theirs):
    fake = str(uuid.uuid4())
    for suffix in ("/files.zip", "/export/csv", "/export/nxcansas"):
        absent = get(stack, tokens, "user", f"/api/sibyls/runs/{fake}{suffix}")
        for guess in (theirs, theirs[:8], theirs[:8] + "-0000-0000-0000-000000000000", theirs.upper()):
            other = get(stack, tokens, "user", f"/api/sibyls/runs/{guess}{suffix}")
            assert other.status_code == absent.status_code == 404, (suffix, guess, other.text)
            assert other.text.replace(guess, "X") == absent.text.replace(fake, "X"), (suffix, guess)
            assert not leaks(other, stack), (suffix, guess, other.text)  # the asked uid is only echoed
    assert get(stack, tokens, "user2", f"/api/sibyls/runs/{theirs}/files.zip").status_code == 200


def test_dot_encoded_and_double_encoded_paths_reach_nothing(stack, tokens, theirs):
    details = get(stack, tokens, "user2", f"/api/sibyls/runs/{theirs}").json()
    frame = Path(next(f["path"] for f in details["files"] if f["kind"] == "frames"))
    record = Path(details["record_path"])
    mine_data = Path(stack.var_dir) / "data" / MINE
    mine_records = Path(stack.var_dir) / "records" / MINE
    absent = get(stack, tokens, "user", "/api/sibyls/files", params={"path": str(frame) + ".none"})
    assert absent.status_code == 404
    queries = []
    for folder, target in ((mine_data, frame), (mine_records, record)):
        tail = f"{THEIRS}/{target.name}"
        for dots, slash in (("%2e%2e", "/"), ("%2e%2e", "%2f"), ("%252e%252e", "%252f"), (".%2e", "%2F")):
            queries.append(f"{folder}/{dots}{slash}{tail.replace('/', slash)}")
    queries.append(str(record).replace("/", "%2F"))  # the other project's record, fully encoded
    for query in queries:
        answer = raw_get(stack, tokens, "user", f"/api/sibyls/files?path={query}")
        assert answer.status_code == 404 and answer.content == absent.content, (query, answer.text)
    for segment in ("%2e%2e%2f%2e%2e%2fhttp_users.yaml", "..%2F..%2Frecords", "%252e%252e%252f" + theirs):
        for suffix in ("", "/files.zip", "/export/csv"):
            answer = raw_get(stack, tokens, "user", f"/api/sibyls/runs/{segment}{suffix}")
            assert answer.status_code == 404, (segment, suffix, answer.status_code)
            assert not leaks(answer, stack), (segment, suffix, answer.text)
    assert get(stack, tokens, "user2", "/api/sibyls/files", params={"path": str(record)}).status_code == 200


def test_the_runs_list_of_another_or_a_wrong_case_project_is_empty_like_an_unknown_one(stack, tokens, theirs):
    unknown = get(stack, tokens, "user", "/api/sibyls/runs", params={"project": "NO_SUCH"})
    assert unknown.status_code == 200 and unknown.json() == []
    for who, code in (
        ("user", THEIRS),
        ("user2", THEIRS.lower()),
        ("user", MINE.lower()),
        ("observer", THEIRS),
    ):
        answer = get(stack, tokens, who, "/api/sibyls/runs", params={"project": code})
        assert answer.content == unknown.content, (who, code)
    mine = get(stack, tokens, "user", "/api/sibyls/runs").json()
    assert all(entry["project_code"] != THEIRS for entry in mine)
    assert theirs[:8] in {e["uid8"] for e in get(stack, tokens, "user2", "/api/sibyls/runs").json()}


def test_a_person_removed_while_their_item_waits_keeps_it_but_not_the_run_it_makes(
    stack, tokens, theirs, api
):
    """Their queued item stays and runs; the run it makes, once they are no longer of the project, is
    not theirs: 404 on its record, zip and files, absent from their runs and history; staff see it."""
    projects = ProjectsFile(Path(stack.var_dir) / "projects.yaml")
    api.item_add(
        BPlan("saxs_exposure", "after_removal", THEIRS, exposure_time=0.1, num_frames=1), user="user2"
    )
    projects.set_members(THEIRS, remove=["user2"])
    try:
        assert [i["args"][0] for i in api.queue_get()["items"]] == ["after_removal"]  # the item stays
        api.queue_start()
        wait_until_idle(api)
        item = api.history_get()["items"][-1]
        assert item["result"]["exit_status"] == "completed", item["result"]
        new = item["result"]["run_uids"][0]
        wait_for_record(stack, tokens, new)
        fake = str(uuid.uuid4())
        for suffix in ("", "/files.zip"):
            answer = get(stack, tokens, "user2", f"/api/sibyls/runs/{new}{suffix}")
            absent = get(stack, tokens, "user2", f"/api/sibyls/runs/{fake}{suffix}")
            assert answer.status_code == 404 and answer.text.replace(new, "X") == absent.text.replace(
                fake, "X"
            )
        details = get(stack, tokens, "staff", f"/api/sibyls/runs/{new}").json()
        assert (
            get(
                stack, tokens, "user2", "/api/sibyls/files", params={"path": details["record_path"]}
            ).status_code
            == 404
        )
        assert new[:8] not in get(stack, tokens, "user2", "/api/sibyls/runs").text
        assert "after_removal" not in get(stack, tokens, "user2", "/api/history/get").text
        assert get(stack, tokens, "user2", f"/api/sibyls/projects/{THEIRS}/results.zip").status_code == 404
    finally:
        projects.set_members(THEIRS, add=["user2"])
    assert get(stack, tokens, "user2", f"/api/sibyls/runs/{new}").status_code == 200  # back in: theirs again


def test_an_unparsable_projects_file_denies_every_person_and_leaks_nothing(stack, tokens, theirs, api):
    path = Path(stack.var_dir) / "projects.yaml"
    good = path.read_text()
    details = get(stack, tokens, "user2", f"/api/sibyls/runs/{theirs}").json()
    try:
        for broken in ("LAB_B: [unclosed\n  members: {", "- just\n- a list\n", "LAB_B:\n  members: user2\n"):
            path.write_text(broken)
            run = get(stack, tokens, "user2", f"/api/sibyls/runs/{theirs}")
            assert run.status_code == 404 and not leaks(run, stack), broken
            assert (
                get(
                    stack, tokens, "user2", "/api/sibyls/files", params={"path": details["record_path"]}
                ).status_code
                == 404
            )
            assert (
                get(stack, tokens, "user2", f"/api/sibyls/projects/{THEIRS}/results.zip").status_code == 404
            )
            assert get(stack, tokens, "user2", "/api/sibyls/runs").json() == []
            assert SECRET not in get(stack, tokens, "user2", "/api/history/get").text
            refused = http(
                stack, "POST", "/api/queue/item/add", token=tokens["user2"], json={"item": saxs("s", THEIRS)}
            )
            assert not refused.json()["success"] and "project_code" in refused.json()["msg"]
            assert str(path) not in refused.text and "user2@" not in refused.text
            assert get(stack, tokens, "staff", f"/api/sibyls/runs/{theirs}").status_code == 200
    finally:
        path.write_text(good)
        api.queue_clear()


def test_an_observer_sees_their_projects_only_and_changes_nothing(stack, tokens, theirs, api):
    assert (
        get(stack, tokens, "observer", "/api/sibyls/projects").json()["projects"].keys().isdisjoint({THEIRS})
    )
    fake = str(uuid.uuid4())
    absent = get(stack, tokens, "observer", f"/api/sibyls/runs/{fake}/files.zip")
    answer = get(stack, tokens, "observer", f"/api/sibyls/runs/{theirs}/files.zip")
    assert answer.status_code == 404 and answer.text.replace(theirs, "X") == absent.text.replace(fake, "X")
    assert SECRET not in get(stack, tokens, "observer", "/api/history/get").text
    assert all(e["project_code"] != THEIRS for e in get(stack, tokens, "observer", "/api/sibyls/runs").json())
    own = get(stack, tokens, "observer", "/api/sibyls/projects/DEMO_2026/results.zip")
    assert own.status_code == 200  # read access to their own project's results
    refused = http(
        stack, "POST", "/api/queue/item/add", token=tokens["observer"], json={"item": saxs("s", "DEMO_2026")}
    )
    assert refused.status_code == 403 and not leaks(refused, stack)
    assert api.queue_get()["items"] == []
