"""Pushed updates for the SIBYLS page: one hub per HTTP server process, fanned out to every browser.

A browser's ``EventSource`` cannot send an ``Authorization`` header, so the page first asks for a
**ticket** with its access token (``POST /api/sibyls/events/ticket``): a random, single-use string
valid for :data:`TICKET_TTL_S` seconds, kept only in this process's memory. The Server-Sent Events
stream (``GET /api/sibyls/events?ticket=...``) redeems it; the stream then lives at most as long as
an access token (the page asks for a new ticket, with a refreshed token, to go on). No password,
token or API key is ever put in a URL.

The :class:`EventHub` listens once for everybody, and nothing polls:

* the RE Manager's status, pushed over its 0MQ info socket (httpserver's ``system_info_stream``);
  when the queue's or the history's uid changes, the queue or the history is read once and sent;
* the manager's console output (httpserver's ``console_output_stream``);
* progress and beamline readings the RE worker publishes into the stack's Redis
  (:mod:`sibyls.startup.progress`), with the running item's and the queue's time left.

Events: ``status``, ``queue``, ``history``, ``progress``, ``beamline``, ``console``; each is a JSON
object in the ``data:`` field.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any

from sibyls.startup.progress import BEAMLINE_KEY, EVENTS_CHANNEL, PROGRESS_KEY, queue_eta

logger = logging.getLogger(__name__)

#: Seconds a stream ticket may wait to be redeemed.
TICKET_TTL_S = 30.0
#: Status fields the page shows (a change of any of them is pushed).
STATUS_FIELDS = (
    "manager_state",
    "re_state",
    "worker_environment_exists",
    "worker_environment_state",
    "items_in_queue",
    "items_in_history",
    "running_item_uid",
    "queue_stop_pending",
    "pause_pending",
    "plan_queue_uid",
    "plan_history_uid",
    "queue_autostart_enabled",
)
#: Console lines a new page gets at once.
CONSOLE_TAIL_LINES = 200


@dataclass(frozen=True)
class Ticket:
    """Who a stream ticket was issued to, their scopes, and until when the stream may run."""

    username: str
    scopes: frozenset[str]
    expires_at: float
    stream_until: float
    staff: bool = False  # sees every project's items and progress (sibyls.startup.http.membership)


class TicketBook:
    """Single-use stream tickets of this process (never written anywhere)."""

    def __init__(self, ttl_s: float = TICKET_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._tickets: dict[str, Ticket] = {}

    def issue(self, username: str, scopes: set[str] | list[str], stream_s: float, staff: bool = False) -> str:
        """A new ticket for ``username`` with ``scopes``; its stream may last ``stream_s`` seconds."""
        now = time.time()
        self._tickets = {k: t for k, t in self._tickets.items() if t.expires_at > now}
        ticket = secrets.token_urlsafe(32)
        self._tickets[ticket] = Ticket(username, frozenset(scopes), now + self.ttl_s, now + stream_s, staff)
        return ticket

    def redeem(self, ticket: str) -> Ticket | None:
        """The ticket's holder, once; None for an unknown, used or expired ticket."""
        found = self._tickets.pop(ticket, None)
        if found is None or found.expires_at < time.time():
            return None
        return found


def _redis_addr() -> str:
    """The stack's Redis (``host:port``) from the settings; empty: no progress is pushed."""
    from sibyls.startup.config import ProfileConfig

    return ProfileConfig().redis_addr


class EventHub:
    """The one listener of this HTTP process; each connected page gets its own queue of events."""

    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue] = set()
        self._latest: dict[str, Any] = {}
        self._tasks: list[asyncio.Task] = []
        self._status: dict[str, Any] = {}
        self._queue: dict[str, Any] = {"items": [], "running_item": {}}
        self._progress: dict[str, Any] = {"state": "idle"}

    # -- subscribers ------------------------------------------------------------------------------

    async def subscribe(self) -> asyncio.Queue:
        """A queue that receives ``(kind, data)`` from now on, primed with the current state."""
        if not self._tasks:
            await self._start()
        queue: asyncio.Queue = asyncio.Queue(maxsize=1000)
        for kind in ("status", "queue", "history", "progress", "beamline"):
            if kind in self._latest:
                queue.put_nowait((kind, self._latest[kind]))
        console = await self._console_tail()
        if console:
            queue.put_nowait(("console", {"text": console, "tail": True}))
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        self._subscribers.discard(queue)

    def _send(self, kind: str, data: Any) -> None:
        if kind != "console":
            self._latest[kind] = data
        for queue in self._subscribers:
            if queue.full():  # a stalled page loses its oldest events, never blocks the others
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait((kind, data))

    # -- sources ----------------------------------------------------------------------------------

    async def _start(self) -> None:
        from bluesky_httpserver.resources import SERVER_RESOURCES as SR

        status = await SR.RM.status(reload=True)
        await self._on_status(status)
        await self._read_progress()
        self._tasks = [
            asyncio.create_task(self._status_task(SR)),
            asyncio.create_task(self._console_task(SR)),
            asyncio.create_task(self._redis_task()),
        ]

    async def _status_task(self, SR) -> None:
        queue = SR.system_info_stream.add_queue_status(self)
        try:
            while True:
                message = json.loads(await queue.get())
                status = (message.get("msg") or {}).get("status")
                if isinstance(status, dict):
                    try:
                        await self._on_status(status)
                    except Exception as exc:  # the manager did not answer a follow-up request
                        logger.warning("events: status update failed: %s", exc)
        finally:
            SR.system_info_stream.remove_queue_status(self)

    async def _on_status(self, status: dict[str, Any]) -> None:
        from bluesky_httpserver.resources import SERVER_RESOURCES as SR

        if not isinstance(status, dict) or "manager_state" not in status:
            return
        shown = {key: status.get(key) for key in STATUS_FIELDS}
        previous, self._status = self._status, shown
        if shown == previous:
            return
        self._send("status", shown)
        if shown["plan_queue_uid"] != previous.get("plan_queue_uid") or shown[
            "running_item_uid"
        ] != previous.get("running_item_uid"):
            reply = await SR.RM.queue_get(reload=True)
            if reply.get("success", True):
                self._queue = {
                    "items": reply.get("items", []),
                    "running_item": reply.get("running_item") or {},
                }
                self._send("queue", self._queue)
                self._send_progress()
        if shown["plan_history_uid"] != previous.get("plan_history_uid"):
            reply = await SR.RM.history_get(reload=True)
            if reply.get("success", True):
                # the whole history: each page is sent the latest of its person's projects' items
                # (membership.event_for), not theirs among everyone's latest
                self._send("history", {"items": reply.get("items", [])})

    async def _console_task(self, SR) -> None:
        queue = SR.console_output_stream.add_queue(self)
        try:
            while True:
                message = json.loads(await queue.get())
                text = message.get("msg") if isinstance(message, dict) else None
                if text:
                    self._send("console", {"text": text})
        finally:
            SR.console_output_stream.remove_queue(self)

    async def _console_tail(self) -> str:
        from bluesky_httpserver.resources import SERVER_RESOURCES as SR

        try:
            return await SR.console_output_loader.get_text_buffer(CONSOLE_TAIL_LINES)
        except Exception:
            return ""

    async def _read_progress(self) -> None:
        addr = _redis_addr()
        if not addr:
            return
        import redis.asyncio as aioredis

        host, _, port = addr.rpartition(":")
        client = aioredis.Redis(host=host, port=int(port), socket_timeout=2, socket_connect_timeout=2)
        try:
            progress, beamline = await client.mget(PROGRESS_KEY, BEAMLINE_KEY)
        except Exception as exc:
            logger.warning("events: Redis at %s: %s", addr, exc)
            return
        finally:
            await client.aclose()
        if progress:
            self._progress = json.loads(progress)
            self._send_progress()
        if beamline:
            self._send("beamline", json.loads(beamline))

    async def _redis_task(self) -> None:
        addr = _redis_addr()
        if not addr:
            return
        import redis.asyncio as aioredis

        host, _, port = addr.rpartition(":")
        while True:
            client = aioredis.Redis(host=host, port=int(port), socket_connect_timeout=2)
            try:
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(EVENTS_CHANNEL)
                await self._read_progress()  # what was published while not subscribed
                async for message in pubsub.listen():
                    event = json.loads(message["data"])
                    if event.get("kind") == "progress":
                        self._progress = event["data"]
                        self._send_progress()
                    elif event.get("kind") == "beamline":
                        self._send("beamline", event["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("events: Redis subscription at %s lost (%s); retrying", addr, exc)
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await client.aclose()

    def _send_progress(self) -> None:
        self._send("progress", self.progress())

    def progress(self) -> dict[str, Any]:
        """The latest progress snapshot with the running item's and the queue's time left."""
        running = self._queue.get("running_item") or None
        progress = dict(self._progress)
        if running and progress.get("queue_item_uid") not in (None, running.get("item_uid")):
            progress = {"state": "starting", "pace": progress.get("pace")}  # the next item has not begun
        elif running and progress.get("state") == "finished":
            progress = between_runs(progress)
        return {**progress, **queue_eta(progress, running, self._queue.get("items", []))}

    async def current_progress(self) -> dict[str, Any]:
        """Progress now (``GET /api/sibyls/progress``): the hub's view, started if need be."""
        if not self._tasks:
            await self._start()
        return self.progress()


def between_runs(progress: dict[str, Any]) -> dict[str, Any]:
    """A run of the running item ended but the item goes on (a plate's well, a temperature step).

    The item is still running: the page keeps showing it (not "done") and the queue's time left
    counts this run as complete rather than blanking until the next run starts.
    """
    return {**progress, "state": "running", "between_runs": True, "run_remaining_s": 0.0}


HUB = EventHub()
TICKETS = TicketBook()
