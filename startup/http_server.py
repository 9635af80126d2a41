"""bluesky-httpserver as the SIBYLS stack runs it: a request its caller may not make is answered 403.

bluesky-httpserver 0.0.14 answers a request whose token or key lacks a scope with HTTP 401 (detail
``Not enough permissions. Requires scopes [...]``), the code for "not authenticated". A browser or
client then asks the user to log in again, although they are logged in and simply not allowed. This
entry point runs the server unchanged except that such answers become **403 Forbidden** (same JSON
detail, no ``WWW-Authenticate`` challenge) when the request carried a credential; a request with
none, or with a wrong one, stays 401.

``python -m sibyls.startup.http_server`` takes ``start-bluesky-httpserver``'s options.
"""

from __future__ import annotations

import sys
from typing import Any

SCOPE_REFUSAL = b"Not enough permissions"


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
    """Run ``start-bluesky-httpserver`` (same options) with missing-scope answers as 403."""
    from bluesky_httpserver import server

    upstream_build_app = server.build_app

    def build_app(*args, **kwargs):
        app = upstream_build_app(*args, **kwargs)
        app.add_middleware(ForbiddenForMissingScopes)
        return app

    server.build_app = build_app
    sys.argv[0] = "start-bluesky-httpserver"
    return server.start_server() or 0


if __name__ == "__main__":
    sys.exit(main())
