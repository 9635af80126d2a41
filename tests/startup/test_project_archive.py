"""A project's results as one archive on the real stack: a member gets a valid zip of exactly their
project's records, processed files, summaries and exports, its length announced up front; anyone
else, an unknown project and a code in the wrong case get the same 404."""

from __future__ import annotations

import io
import time
import zipfile

import pytest
from stack_helpers import http, wait_until_idle
from stack_helpers import saxs_item as saxs

pytestmark = pytest.mark.slow

MINE, THEIRS = "MY_PROJECT", "LAB_B"


@pytest.fixture(scope="module")
def measured(stack, tokens):
    """One run of each project with its first look stored: {project: run uid}."""
    from sibyls.startup.stack import manager_api

    api = manager_api(stack, timeout=10)
    api.queue_clear()
    for who, project in (("user", MINE), ("user2", THEIRS)):
        item = saxs(f"zip_{who}", project)
        reply = http(stack, "POST", "/api/queue/item/add", token=tokens[who], json={"item": item})
        assert reply.json()["success"], reply.json()
    api.queue_start()
    wait_until_idle(api)
    uids = {}
    for item in api.history_get()["items"][-2:]:
        assert item["result"]["exit_status"] == "completed", item["result"]
        uids[item["kwargs"]["project_code"]] = item["result"]["run_uids"][0]
    api.close()
    deadline = time.monotonic() + 120
    for uid in uids.values():  # the record, then the first look's products in it
        while True:
            reply = http(stack, "GET", f"/api/sibyls/runs/{uid}", token=tokens["staff"])
            if reply.status_code == 200 and reply.json()["results"] and reply.json()["results"]["images"]:
                break
            assert time.monotonic() < deadline, f"no first look of {uid}"
            time.sleep(0.5)
    return uids


def archive(stack, tokens, who: str, code: str):
    return http(stack, "GET", f"/api/sibyls/projects/{code}/results.zip", token=tokens[who])


def test_a_member_gets_their_projects_results_as_one_zip_of_announced_length(stack, tokens, measured):
    reply = archive(stack, tokens, "user2", THEIRS)
    assert reply.status_code == 200, reply.text
    assert int(reply.headers["content-length"]) == len(reply.content)
    assert f'filename="{THEIRS}_results.zip"' in reply.headers["content-disposition"]
    zipped = zipfile.ZipFile(io.BytesIO(reply.content))
    assert zipped.testzip() is None
    names = zipped.namelist()
    assert all(name.startswith(f"{THEIRS}/") for name in names)
    runs = http(stack, "GET", f"/api/sibyls/runs?project={THEIRS}", token=tokens["user2"]).json()
    assert {n.rsplit("/", 1)[-1] for n in names if "/records/" in n} == {r["record_name"] for r in runs}
    details = http(stack, "GET", f"/api/sibyls/runs/{measured[THEIRS]}", token=tokens["user2"]).json()
    stem = details["record_name"][:-5]
    named = {f["name"] for f in details["files"] if f["kind"] == "processed"} | {
        i["name"] for i in details["results"]["images"]
    }
    in_zip = {n.rsplit("/", 1)[-1] for n in names if n.startswith(f"{THEIRS}/processed/{stem}/")}
    assert named and named <= in_zip
    assert f"{THEIRS}/processed/summary.csv" in names
    assert any(n.startswith(f"{THEIRS}/exports/csv/{stem}_") for n in names)
    manifest = zipped.read(f"{THEIRS}/MANIFEST.txt").decode()
    assert f"records: {len(runs)}" in manifest and str(stack.var_dir) not in manifest
    record = zipped.read(f"{THEIRS}/records/{details['record_name']}").decode()
    assert measured[THEIRS] in record and "zip_user2" in record


def test_anyone_else_an_unknown_project_and_a_wrong_case_code_get_the_same_404(stack, tokens, measured):
    unknown = archive(stack, tokens, "user", "NO_SUCH_PROJECT")
    assert unknown.status_code == 404
    attempts = [
        ("user", THEIRS),
        ("user", MINE.lower()),
        ("user2", MINE),
        ("user2", "lab_b"),
        ("staff", "lab_b"),
        ("observer", THEIRS),
        ("user", "..%2FLAB_B"),
        ("user", "%2e%2e"),
    ]
    for who, code in attempts:
        answer = archive(stack, tokens, who, code)
        assert answer.status_code == 404 and answer.content == unknown.content, (who, code, answer.text)
    assert THEIRS not in unknown.text and "zip_" not in unknown.text


def test_staff_get_any_project_and_an_observer_their_own(stack, tokens, measured):
    for code in (MINE, THEIRS):
        reply = archive(stack, tokens, "staff", code)
        assert reply.status_code == 200
        assert zipfile.ZipFile(io.BytesIO(reply.content)).testzip() is None
    observed = archive(stack, tokens, "observer", "DEMO_2026")  # the demo's projects: the observer's one
    assert observed.status_code == 200
    names = zipfile.ZipFile(io.BytesIO(observed.content)).namelist()
    assert names and all(name.startswith("DEMO_2026/") for name in names)
    assert archive(stack, tokens, "observer", MINE).status_code == 404
