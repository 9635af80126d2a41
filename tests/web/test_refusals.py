"""Refused, and nothing changes: a wrong password, an expired or forged token, a user changing another
person's queue item; the event stream only with a fresh single-use ticket. Against the real stack."""

from __future__ import annotations

import base64
import json
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from bluesky_httpserver.authentication import create_access_token
from jose import jwt

from sibyls.startup.stack import StackState, ours

pytestmark = pytest.mark.slow

PROJECT = "WEB_REFUSALS"


def server_secret(stack: StackState) -> str:
    """The HTTP server's token signing key, as only its own process environment holds it."""
    raw = Path(f"/proc/{ours(stack, 'http')}/environ").read_bytes().split(b"\0")
    env = dict(entry.decode().split("=", 1) for entry in raw if b"=" in entry)
    return env["QSERVER_HTTP_SERVER_SERVER_SECRET_KEYS"]


def b64(part: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def item(sample_code: str) -> dict:
    return {
        "name": "saxs_exposure",
        "item_type": "plan",
        "kwargs": {"sample_code": sample_code, "project_code": PROJECT},
    }


def test_a_wrong_password_gets_no_token(stack):
    wrong = httpx.post(stack.http_token_url, data={"username": "user", "password": "guess"}, timeout=10)
    assert wrong.status_code == 401 and "access_token" not in wrong.text


def test_an_expired_token_and_forged_tokens_are_refused_and_queue_nothing(stack, api, token):
    real = token("user")
    claims = jwt.get_unverified_claims(real)
    expired = create_access_token(
        {k: v for k, v in claims.items() if k not in ("exp", "type")},
        server_secret(stack),
        timedelta(seconds=-5),
    )
    staff_claims = {**claims, "ids": [{"id": "staff", "idp": "demo"}], "roles": ["admin", "expert"]}
    header, _, signature = real.split(".")
    forged_payload = jwt.encode(staff_claims, "x", algorithm="HS256").split(".")[1]
    forged = {
        "expired": expired,
        "signed with another key": jwt.encode(staff_claims, "not-the-server-key", algorithm="HS256"),
        "claims swapped under the real signature": f"{header}.{forged_payload}.{signature}",
        "unsigned (alg none)": f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(staff_claims)}.",
    }
    for what, bad in forged.items():
        for method, path, body in (
            ("POST", "/api/queue/item/add", {"item": item("forged")}),
            ("POST", "/api/re/abort", None),
            ("POST", "/api/sibyls/events/ticket", None),
        ):
            response = httpx.request(
                method, f"{stack.http_url}{path}", json=body, headers=bearer(bad), timeout=10
            )
            assert response.status_code == 401, (what, path, response.text)
    detail = httpx.get(f"{stack.http_url}/api/status", headers=bearer(expired), timeout=10).json()["detail"]
    assert "expired" in detail
    assert api.queue_get(reload=True)["items"] == []
    assert httpx.get(f"{stack.http_url}/api/status", headers=bearer(real), timeout=10).status_code == 200


def test_a_user_may_not_update_move_or_remove_another_persons_item(stack, api, token):
    url = stack.http_url
    staff, user = bearer(token("staff")), bearer(token("user"))
    for code, who in (("staff_1", staff), ("staff_2", staff), ("user_1", user)):
        assert httpx.post(f"{url}/api/queue/item/add", json={"item": item(code)}, headers=who).json()[
            "success"
        ]
    before = api.queue_get(reload=True)["items"]
    staff_1, staff_2, user_1 = (i["item_uid"] for i in before)
    changed = {**item("renamed_by_user"), "item_uid": staff_1}
    attempts = [
        ("/api/queue/item/update", {"item": changed}),
        ("/api/queue/item/update", {"item": changed, "replace": True}),
        ("/api/queue/item/remove", {"uid": staff_1}),
        ("/api/queue/item/remove", {"pos": "front"}),
        ("/api/queue/item/move", {"uid": staff_2, "pos_dest": "front"}),
        ("/api/queue/item/remove/batch", {"uids": [user_1, staff_2]}),
        ("/api/queue/item/move/batch", {"uids": [staff_1], "pos_dest": "back"}),
    ]
    for path, body in attempts:
        response = httpx.post(f"{url}{path}", json=body, headers=user, timeout=10)
        assert response.status_code == 403, (path, response.text)
        assert "submitted by 'staff'" in response.json()["detail"]
    assert api.queue_get(reload=True)["items"] == before  # nothing changed

    # Their own item a user may change; staff may change anyone's.
    own = {**item("user_1_fixed"), "item_uid": user_1}
    assert httpx.post(f"{url}/api/queue/item/update", json={"item": own}, headers=user).json()["success"]
    assert httpx.post(
        f"{url}/api/queue/item/move", json={"uid": user_1, "pos_dest": "front"}, headers=user
    ).json()["success"]
    assert httpx.post(f"{url}/api/queue/item/remove", json={"uid": staff_2}, headers=staff).json()["success"]
    after = api.queue_get(reload=True)["items"]
    assert [(i["kwargs"]["sample_code"], i["user"]) for i in after] == [
        ("user_1_fixed", "user"),
        ("staff_1", "staff"),
    ]
    api.queue_clear()


def test_the_event_stream_needs_a_fresh_single_use_ticket_and_progress_needs_a_login(stack, token):
    url = stack.http_url
    assert httpx.get(f"{url}/api/sibyls/events", timeout=10).status_code == 401
    assert httpx.get(f"{url}/api/sibyls/events?ticket=made-up", timeout=10).status_code == 401
    assert httpx.post(f"{url}/api/sibyls/events/ticket", timeout=10).status_code == 401
    assert httpx.get(f"{url}/api/sibyls/progress", timeout=10).status_code == 401
    ticket = httpx.post(
        f"{url}/api/sibyls/events/ticket", headers=bearer(token("observer")), timeout=10
    ).json()
    assert ticket["expires_in"] <= 60
    with httpx.stream("GET", f"{url}/api/sibyls/events?ticket={ticket['ticket']}", timeout=10) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        kinds = []
        deadline = time.monotonic() + 10
        for line in stream.iter_lines():
            if line.startswith("event: "):
                kinds.append(line.removeprefix("event: "))
            if {"status", "queue", "progress"} <= set(kinds) or time.monotonic() > deadline:
                break
    assert {"status", "queue", "progress"} <= set(kinds)
    again = httpx.get(f"{url}/api/sibyls/events?ticket={ticket['ticket']}", timeout=10)
    assert again.status_code == 401  # single use
    progress = httpx.get(f"{url}/api/sibyls/progress", headers=bearer(token("observer")), timeout=10).json()
    assert progress["state"] in ("idle", "finished") and "queue_remaining_s" in progress


@pytest.mark.parametrize("path", ["/api/sibyls/files", "/api/sibyls/runs/../../http_users"])
def test_no_secret_file_is_served(stack, token, path):
    secret = Path(stack.var_dir) / "http_users.yaml"
    response = httpx.get(
        f"{stack.http_url}{path}", params={"path": str(secret)}, headers=bearer(token("user"))
    )
    assert response.status_code == 404
    assert stack.http_password("user") not in response.text
