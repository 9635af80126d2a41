"""``sibyls watch``: the running item's progress bar in a terminal (also what ``sibyls demo`` prints).

Progress comes pushed from the stack's Redis (:mod:`sibyls.startup.progress`), the queue from the RE
Manager; :func:`progress_line` draws one line of it.
"""

from __future__ import annotations

import json
import time
from typing import Any

from sibyls.startup.progress import EVENTS_CHANNEL, PROGRESS_KEY, queue_eta, redis_client

# ---- the terminal bar --------------------------------------------------------------------------------


def item_label(item: dict[str, Any]) -> str:
    """What a queue item measures: its sample code, or its plate and number of wells."""
    kwargs = item.get("kwargs") or {}
    plate = kwargs.get("plate")
    if isinstance(plate, dict):
        return f"plate {plate.get('plate_id')} ({len(plate.get('wells') or [])} wells)"
    return str(kwargs.get("sample_code") or "")


def format_seconds(seconds: float | None) -> str:
    """``1:05:03``, ``4:07`` or ``12 s``; ``?`` when unknown."""
    if seconds is None:
        return "?"
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}" if minutes else f"{secs} s"


def progress_line(progress: dict[str, Any], eta: dict[str, Any], width: int = 24) -> str:
    """One terminal line: item, bar, frames, wells, ETA and queue ETA (or the idle state)."""
    if progress.get("state") != "running":
        queued = eta.get("items_queued", 0)
        tail = (
            f"queue {queued} item(s), ETA {format_seconds(eta.get('queue_remaining_s'))}"
            if queued
            else "queue empty"
        )
        last = progress.get("sample_code")
        done = f"last: {progress.get('plan_name')} {last} {progress.get('exit_status')}" if last else "idle"
        return f"{done} | {tail}"
    fraction = eta.get("item_fraction") or 0.0
    filled = int(round(fraction * width))
    bar = "#" * filled + "-" * (width - filled)
    parts = [f"{progress.get('plan_name')} {progress.get('sample_code')}", f"[{bar}] {fraction * 100:3.0f}%"]
    if progress.get("frames"):
        parts.append(f"frame {progress.get('frame')}/{progress['frames']}")
    if progress.get("well"):
        parts.append(f"well {progress['well']} ({progress.get('well_id')})")
    parts.append(f"ETA {format_seconds(eta.get('item_remaining_s'))}")
    parts.append(f"queue ETA {format_seconds(eta.get('queue_remaining_s'))}")
    return " | ".join(parts)


# ---- sibyls watch ------------------------------------------------------------------------------------


def watch(
    state: Any,
    out: Any = None,
    once: bool = False,
    until_idle: bool = False,
    timeout: float | None = None,
) -> int:
    """Show the stack's progress bar until interrupted (``sibyls watch``); 0 when it ends normally.

    Progress comes pushed from the stack's Redis; the queue (for the queue's ETA) from the RE Manager,
    whose status this one terminal asks for at most twice a second. On a terminal the line is redrawn
    in place, otherwise a line is printed for each change (at most one a second while frames
    advance). ``once`` prints the current line; ``until_idle`` returns when the queue has run out
    (``sibyls demo``).
    """
    import sys

    from sibyls.startup.stack import manager_api

    out = out or sys.stdout
    tty = hasattr(out, "isatty") and out.isatty()
    client = redis_client(state.redis_addr, timeout=2)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(EVENTS_CHANNEL)
    api = manager_api(state, timeout=10)
    deadline = None if timeout is None else time.monotonic() + timeout
    raw = client.get(PROGRESS_KEY)
    progress: dict[str, Any] = json.loads(raw) if raw else {"state": "idle"}
    queue: dict[str, Any] = {}
    shown, shown_at, last_key, queue_uid = "", 0.0, None, None
    try:
        while True:
            status = api.status(reload=True)
            if not queue or (status["plan_queue_uid"], status["running_item_uid"]) != queue_uid:
                queue = api.queue_get(reload=True)
                queue_uid = (status["plan_queue_uid"], status["running_item_uid"])
            key = (progress.get("state"), progress.get("queue_item_uid"), progress.get("well"), queue_uid)
            changed, last_key = key != last_key, key
            running = queue.get("running_item") or None
            shown_progress = progress
            if running and progress.get("queue_item_uid") not in (None, running.get("item_uid")):
                shown_progress = {"state": "starting", "pace": progress.get("pace")}
            if running and shown_progress.get("state") != "running":  # between two runs of the item
                shown_progress = {**shown_progress, "state": "running", "plan_name": running.get("name")}
                if shown_progress.get("queue_item_uid") != running.get("item_uid"):
                    shown_progress.update(sample_code=item_label(running), frame=None, frames=None)
            line = progress_line(shown_progress, queue_eta(shown_progress, running, queue.get("items", [])))
            now = time.monotonic()
            if tty:
                out.write("\r" + line[:200].ljust(len(shown)) + ("\n" if once else ""))
                out.flush()
                shown = line[:200]
            elif line != shown and (once or changed or now - shown_at >= 1.0 or "frame" not in line):
                print(line, file=out, flush=True)
                shown, shown_at = line, now
            if once:
                return 0
            if until_idle:
                if status["manager_state"] == "idle" and not status["items_in_queue"] and not running:
                    if tty:
                        out.write("\n")
                    return 0
            if deadline is not None and now > deadline:
                raise TimeoutError("the queue did not finish in time")
            message = pubsub.get_message(timeout=0.5)
            if message and message.get("data"):
                event = json.loads(message["data"])
                if event.get("kind") == "progress":
                    progress = event["data"]
    except KeyboardInterrupt:
        if tty:
            out.write("\n")
        return 0
    finally:
        pubsub.close()
        client.close()
        api.close()
