"""bluesky-httpserver as the SIBYLS stack runs it: a request its caller may not make is answered 403.

Two additions to the upstream server, both ASGI middleware around it:

* **Own items only** (:class:`OwnItemsOnly`): a person may update, move or remove only the queue
  items they submitted (the item's ``user``, which httpserver sets to the login that added it);
  roles in ``QUEUE_EDITOR_ROLES`` (beamline staff) may change anyone's. Refused with 403, and
  nothing reaches the queue.
* **403 for missing scopes** (:class:`ForbiddenForMissingScopes`): bluesky-httpserver 0.0.14
  answers a request whose token or key lacks a scope with HTTP 401 (detail ``Not enough
  permissions. Requires scopes [...]``), the code for "not authenticated". A browser or client then
  asks the user to log in again, although they are logged in and simply not allowed. Such answers
  become **403 Forbidden** (same JSON detail, no ``WWW-Authenticate`` challenge) when the request
  carried a credential; a request with none, or with a wrong one, stays 401.

* **Projects only** (:class:`ProjectsOnly`): for a person who is not staff, the history
  (``/api/history/get``) lists only their projects' items, and the queue (``/api/queue/get``,
  ``/api/queue/item/get``) shows others' items as plan name and uid only
  (:mod:`sibyls.startup.http.membership`).

``python -m sibyls.startup.http.server`` takes ``start-bluesky-httpserver``'s options.
"""

from __future__ import annotations

import json
import sys
from typing import Any

SCOPE_REFUSAL = b"Not enough permissions"
#: Upstream endpoints that change existing queue items, and where each names the items it changes.
ITEM_CHANGES = {
    "/api/queue/item/update": "item",
    "/api/queue/item/remove": "one",
    "/api/queue/item/move": "one",
    "/api/queue/item/remove/batch": "batch",
    "/api/queue/item/move/batch": "batch",
}


class OwnItemsOnly:
    """ASGI middleware: changing another person's queue item is refused (403) unless staff."""

    def __init__(self, app: Any, fastapi_app: Any) -> None:
        self.app = app
        self.fastapi_app = fastapi_app

    async def __call__(self, scope, receive, send) -> None:
        if (
            scope["type"] != "http"
            or scope.get("method") != "POST"
            or scope.get("path") not in ITEM_CHANGES
            or not _has_credential(scope)
        ):
            await self.app(scope, receive, send)
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        refusal = await self.refusal(scope, body)
        if refusal:
            payload = json.dumps({"detail": refusal}).encode()
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ]
            await send({"type": "http.response.start", "status": 403, "headers": headers})
            await send({"type": "http.response.body", "body": payload})
            return
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def principal(self, scope: dict) -> tuple[Any, Any, Any] | None:
        """(principal, settings, api access manager) of the request's credential; None if not valid."""
        from bluesky_httpserver.authentication import get_current_principal
        from bluesky_httpserver.settings import get_settings
        from bluesky_httpserver.utils import get_api_access_manager, get_authenticators
        from fastapi import HTTPException, Request
        from fastapi.security import SecurityScopes

        overrides = self.fastapi_app.dependency_overrides
        request = Request(scope)
        request.state.cookies_to_set = []
        scheme, _, credential = request.headers.get("authorization", "").partition(" ")
        token = credential.strip() if scheme.lower() == "bearer" else None
        api_key = credential.strip() if scheme.lower() == "apikey" else request.query_params.get("api_key")
        settings = overrides[get_settings]()
        access = overrides[get_api_access_manager]()
        try:
            principal = get_current_principal(
                request=request,
                security_scopes=SecurityScopes([]),
                access_token=token,
                api_key=api_key,
                settings=settings,
                authenticators=overrides[get_authenticators](),
                api_access_manager=access,
            )
        except HTTPException:
            return None  # upstream answers it (401)
        return principal, settings, access

    async def refusal(self, scope: dict, body: bytes) -> str | None:
        """Why this change may not be made by this person (None: it may, or upstream decides)."""
        from bluesky_httpserver.resources import SERVER_RESOURCES
        from bluesky_httpserver.utils import get_current_username

        from sibyls.startup.stack.security import QUEUE_EDITOR_ROLES

        found = self.principal(scope)
        if found is None:
            return None
        principal, settings, access = found
        if set(principal.roles or []) & set(QUEUE_EDITOR_ROLES):
            return None
        try:
            request = json.loads(body or b"{}")
            names = {
                access.get_displayed_user_name(u)
                for u in get_current_username(
                    principal=principal, settings=settings, api_access_manager=access
                )
            }
        except (ValueError, RuntimeError):
            return None  # malformed request or unknown user: upstream refuses it
        queue = await SERVER_RESOURCES.RM.queue_get()
        items = queue.get("items", []) if isinstance(queue, dict) else []
        for item in _targets(ITEM_CHANGES[scope["path"]], request, items):
            owner = item.get("user")
            if owner not in names:
                return (
                    f"queue item {item.get('item_uid')} was submitted by {owner!r}: only its submitter "
                    "or beamline staff may change, move or remove it"
                )
        return None


def _targets(kind: str, request: Any, items: list[dict]) -> list[dict]:
    """The queue items a change request names (by uid, or by position for single changes)."""
    if not isinstance(request, dict):
        return []
    by_uid = {item.get("item_uid"): item for item in items}
    if kind == "item":
        item = request.get("item")
        return [by_uid[item["item_uid"]]] if isinstance(item, dict) and item.get("item_uid") in by_uid else []
    if kind == "batch":
        uids = request.get("uids")
        return [by_uid[uid] for uid in uids if uid in by_uid] if isinstance(uids, list) else []
    if request.get("uid") in by_uid:
        return [by_uid[request["uid"]]]
    position = request.get("pos")
    if position is None or not items:
        return []
    index = {"front": 0, "back": -1}.get(position, position)
    if isinstance(index, int) and -len(items) <= index < len(items):
        return [items[index]]
    return []


#: Upstream endpoints whose answers are filtered to the person's projects, and how.
FILTERED_ANSWERS = {
    "/api/history/get": "history",
    "/api/queue/get": "queue",
    "/api/queue/item/get": "queue",
}


class ProjectsOnly:
    """ASGI middleware: history and queue answers cut down to what a non-staff person may see."""

    principal = OwnItemsOnly.principal

    def __init__(self, app: Any, fastapi_app: Any) -> None:
        self.app = app
        self.fastapi_app = fastapi_app

    async def __call__(self, scope, receive, send) -> None:
        kind = FILTERED_ANSWERS.get(scope.get("path")) if scope["type"] == "http" else None
        found = self.principal(scope) if kind and _has_credential(scope) else None
        if found is None:  # not filtered, or no valid credential: upstream answers (401)
            await self.app(scope, receive, send)
            return
        from sibyls.startup.http.membership import event_for, person_of

        person = person_of(found[0])
        if person.staff:
            await self.app(scope, receive, send)
            return
        start: dict = {}
        body = b""

        async def send_filtered(message: dict) -> None:
            nonlocal start, body
            if message["type"] == "http.response.start":
                start = message
                return
            body += message.get("body", b"")
            if message.get("more_body", False):
                return
            if start.get("status") == 200:
                try:
                    body = json.dumps(event_for(kind, json.loads(body), person)).encode()
                except ValueError:
                    body = b'{"success": false, "msg": "answer could not be filtered"}'
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, send_filtered)


class ForbiddenForMissingScopes:
    """ASGI middleware: upstream's 401 "Not enough permissions" answers are sent as 403."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not _has_credential(scope):
            await self.app(scope, receive, send)
            return
        held: list[dict] = []  # a 401's start message, until its body says why

        async def send_checked(message: dict) -> None:
            if message["type"] == "http.response.start" and message["status"] == 401:
                held.append(message)
                return
            if held and message["type"] == "http.response.body":
                start = held.pop()
                if SCOPE_REFUSAL in message.get("body", b""):
                    headers = [(k, v) for k, v in start["headers"] if k.lower() != b"www-authenticate"]
                    start = {**start, "status": 403, "headers": headers}
                await send(start)
            await send(message)

        await self.app(scope, receive, send_checked)


def _has_credential(scope: dict) -> bool:
    """The request names who is asking: an Authorization header or an ``api_key`` query parameter."""
    if any(name.lower() == b"authorization" for name, _ in scope.get("headers", [])):
        return True
    return b"api_key=" in scope.get("query_string", b"")


def main() -> int:
    """Run ``start-bluesky-httpserver`` (same options): own items only, missing-scope answers as 403."""
    from bluesky_httpserver import server

    from sibyls.metadata.plate_registry import use_registry
    from sibyls.startup.config import ProfileConfig

    # The dry run and plate sheets check plate ids and wells against the robot's registry too.
    use_registry(ProfileConfig().plate_registry)
    upstream_build_app = server.build_app

    def build_app(*args, **kwargs):
        app = upstream_build_app(*args, **kwargs)
        app.add_middleware(OwnItemsOnly, fastapi_app=app)
        app.add_middleware(ProjectsOnly, fastapi_app=app)
        app.add_middleware(ForbiddenForMissingScopes)
        return app

    server.build_app = build_app
    sys.argv[0] = "start-bluesky-httpserver"
    return server.start_server() or 0


if __name__ == "__main__":
    sys.exit(main())
