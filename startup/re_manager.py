"""``sibyls-re-manager``: queueserver's RE Manager with the SIBYLS queue gate and fast plan validation.

**The queue gate.** Queueserver validates an item's types and ``min``/``max`` only: an empty
``sample_code``, a well ``Z99``, a NaN exposure or a scan point beyond a soft limit would be queued
and fail hours later at the front of an overnight queue. This entry point replaces queueserver's
``validate_plan`` (used for ``item_add``, ``item_add_batch``, ``item_update``, ``item_execute``,
spreadsheet uploads, which arrive as batches, and again by the RE worker when the item starts) so
that SIBYLS plans go through :func:`sibyls.plans.validation.item_problems`: the plans' own checks,
with every problem named by the plan argument. Other plans (staff's ``mv``) keep queueserver's
validation. Replies that echo a refused item holding NaN or infinity are sent as valid JSON (the
non-finite numbers as strings), so the HTTP server can pass the refusal on instead of failing.

bluesky-queueserver 0.0.25 validates every submitted plan (``item_add``, each item of a batch, a
spreadsheet upload) by rebuilding the plan's signature from its stored description: it ``eval``s
every parameter annotation and builds a new pydantic model with ``pydantic.create_model`` for each
item. For a 14-parameter SIBYLS plan that is ~1.3 ms of the manager's time per item, more than the
rest of ``item_add`` together. Both steps are pure functions of the plan description, so this entry
point memoizes them, keyed by the description's content: a changed plan list, another user
group's device list or a reloaded permissions file is a different key and is built afresh.
Validation itself (binding, pydantic checks, ranges) still runs for every item, with the same
results and the same error messages.

It also leaves out the manager's ``Adding new item to the queue ...`` log line: the ``Item added:
success=... name=... item_uid=... qsize=...`` line that always follows it says everything, and with
console publishing each line costs the manager a hand-off to another process per submitted item.

``sibyls-re-manager`` takes exactly ``start-re-manager``'s options. If queueserver's functions ever
change shape the cache is not installed (a warning is logged) and the manager runs as upstream.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import math
import sys
from collections import OrderedDict
from typing import Any

from bluesky_queueserver.manager import profile_ops

from sibyls.plans.validation import is_gated, item_problems, refusal_message

logger = logging.getLogger(__name__)

CACHE_SIZE = 512

_upstream_construct_parameters = profile_ops.construct_parameters
_upstream_construct_model_class = profile_ops.pydantic_construct_model_class
_upstream_validate_plan = profile_ops.validate_plan
_upstream_zmq_send = None  # RunEngineManager._zmq_send, kept when the gate is installed


@functools.lru_cache(maxsize=CACHE_SIZE)
def _parameters_for(description_json: str) -> tuple[inspect.Parameter, ...]:
    return tuple(_upstream_construct_parameters(json.loads(description_json)))


class _ModelClasses:
    """pydantic model classes by the identity of the (cached) ``inspect.Parameter`` objects.

    Not by ``Parameter.__eq__``: it calls ``Union[int, float]`` equal to ``Union[float, int]`` and
    a default of ``1`` equal to ``True``, which pydantic validates differently. The entries hold
    their parameters, so an ``id`` cannot be reused while it is a key. Least recently used go first.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[tuple[int, ...], tuple[tuple[inspect.Parameter, ...], Any]] = OrderedDict()
        self.hits = self.misses = 0

    def get(self, parameters: tuple[inspect.Parameter, ...]):
        key = tuple(map(id, parameters))
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
            self.hits += 1
            return entry[1]
        self.misses += 1
        model_class = _upstream_construct_model_class(list(parameters))
        self._entries[key] = (parameters, model_class)
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return model_class

    def clear(self) -> None:
        self._entries.clear()
        self.hits = self.misses = 0


_model_classes = _ModelClasses(CACHE_SIZE)


def construct_parameters(param_list, *, params_decoded=None):
    """``profile_ops.construct_parameters``, built once per distinct parameter description."""
    if params_decoded is not None:
        return _upstream_construct_parameters(param_list, params_decoded=params_decoded)
    try:
        key = json.dumps(param_list)
    except (TypeError, ValueError):
        return _upstream_construct_parameters(param_list)
    # A fresh list each call: callers may modify it, the cached tuple stays intact.
    return list(_parameters_for(key))


def pydantic_construct_model_class(parameters):
    """``profile_ops.pydantic_construct_model_class``, one model class per cached signature."""
    return _model_classes.get(tuple(parameters))


def _upstream_shape_matches() -> bool:
    construct = inspect.signature(_upstream_construct_parameters)
    model = inspect.signature(_upstream_construct_model_class)
    return list(construct.parameters) == ["param_list", "params_decoded"] and list(model.parameters) == [
        "parameters"
    ]


def install_validation_cache() -> bool:
    """Memoize queueserver's per-item signature rebuild; True if installed."""
    if profile_ops.construct_parameters is construct_parameters:
        return True
    if not _upstream_shape_matches():
        logger.warning(
            "Plan validation cache not installed: bluesky-queueserver's profile_ops changed; "
            "items are validated the upstream (slower) way."
        )
        return False
    profile_ops.construct_parameters = construct_parameters
    profile_ops.pydantic_construct_model_class = pydantic_construct_model_class
    return True


def uninstall_validation_cache() -> None:
    """Put queueserver's own functions back and drop what was cached."""
    profile_ops.construct_parameters = _upstream_construct_parameters
    profile_ops.pydantic_construct_model_class = _upstream_construct_model_class
    _parameters_for.cache_clear()
    _model_classes.clear()


def validate_plan(plan, *, allowed_plans, allowed_devices):
    """``profile_ops.validate_plan`` with the SIBYLS queue gate for SIBYLS plans: ``(success, msg)``.

    The plan description comes from the submitting group's allowed plans (device lists already
    filtered for the group), so the gate also enforces the group's devices.
    """
    name = plan.get("name") if isinstance(plan, dict) else None
    if allowed_plans is None or not is_gated(name) or name not in allowed_plans:
        return _upstream_validate_plan(plan, allowed_plans=allowed_plans, allowed_devices=allowed_devices)
    try:
        problems = item_problems(plan, allowed_plans[name])
    except Exception as exc:  # a bug in a check must refuse the item, never crash the manager
        logger.exception("queue gate failed on %r", name)
        problems = [f"item: could not be checked ({type(exc).__name__}: {exc})"]
    if problems:
        return False, f"Plan validation failed: {refusal_message(name, problems)}"
    return True, ""


def install_queue_gate() -> None:
    """Route queueserver's plan validation (manager and, by fork, RE worker) through the gate."""
    global _upstream_zmq_send
    from bluesky_queueserver.manager import manager

    if manager.RunEngineManager._zmq_send is not _zmq_send_finite:
        _upstream_zmq_send = manager.RunEngineManager._zmq_send
    profile_ops.validate_plan = validate_plan
    manager.validate_plan = validate_plan
    manager.RunEngineManager._zmq_send = _zmq_send_finite


def _finite(value):
    """``value`` with every NaN/infinity replaced by its text (JSON has no such numbers)."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


async def _zmq_send_finite(self, msg):
    """RunEngineManager._zmq_send whose JSON replies are valid JSON even when they echo a NaN."""
    from bluesky_queueserver.manager.manager import ZMQEncoding

    if self._zmq_encoding != ZMQEncoding.JSON:
        return await _upstream_zmq_send(self, msg)
    try:
        data = json.dumps(msg, allow_nan=False)
    except ValueError:
        data = json.dumps(_finite(msg))
    await self._zmq_socket.send_string(data)


ADD_PROGRESS_LINE = "Adding new item to the queue ..."


class DropItemAddProgressLine(logging.Filter):
    """Drops the content-free line RE Manager logs before each ``item_add`` (its outcome line stays)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg != ADD_PROGRESS_LINE


def main() -> int:
    """Run RE Manager (``start-re-manager`` options) with the plan validation cache installed."""
    from bluesky_queueserver.manager.start_manager import start_manager

    install_validation_cache()
    install_queue_gate()
    logging.getLogger("bluesky_queueserver.manager.manager").addFilter(DropItemAddProgressLine())
    sys.argv[0] = "start-re-manager"
    return start_manager()


if __name__ == "__main__":
    sys.exit(main())
