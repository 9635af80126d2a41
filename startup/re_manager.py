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

**Supervision.** A dead RE worker (killed, segfaulted) is noticed within about a second: the
running item goes to the history as ``failed`` with the reason and is put back at the front of
the queue once (the queue stops, so it never runs twice without a decision), the status says so
(``sibyls_worker_lost``), and the environment is opened again (the policy; the setting
``reopen_environment`` false leaves that to staff). The manager's Redis client retries with
backoff for up to :data:`REDIS_RETRY_S` seconds, so a restarted Redis loses no item and no
report (before, the plan report was dropped and the item ran a second time).

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

from sibyls.plans.validation import is_gated, item_problems, membership_problem, refusal_message

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
    if allowed_plans is not None and name not in allowed_plans:
        allowed = ", ".join(sorted(allowed_plans))
        return False, (
            f"Plan validation failed: Plan {name!r} is not in the list of allowed plans.\n"
            f"  - name: {name!r} is not a plan this user group may queue (plans: {allowed})"
        )
    if allowed_plans is None or not is_gated(name):
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


def install_project_gate() -> None:
    """Refuse an item whose ``project_code`` is not a project of the user submitting it (add, batch,
    update, execute; the projects file is the ``projects`` setting, staff and 0MQ operators
    the ``staff_users`` setting). The user is the one the request names: httpserver's login, or the name
    a 0MQ client claims (whoever holds the 0MQ public key is an operator; see README). Items already
    queued are not checked again when they start: a person removed from a project keeps their queued
    items, which run, but cannot read the new data."""
    from bluesky_queueserver.manager.manager import RunEngineManager

    from sibyls.metadata.projects import configured_projects
    from sibyls.startup.config import ProfileConfig

    upstream = RunEngineManager._prepare_item
    if getattr(upstream, "_sibyls_projects", False):
        return
    settings = ProfileConfig()
    projects = configured_projects(settings.projects)
    staff = settings.staff_names()

    def prepare_item(self, *, item, item_type, user, user_group, generate_new_uid):
        prepared = upstream(
            self, item=item, item_type=item_type, user=user, user_group=user_group,
            generate_new_uid=generate_new_uid,
        )  # fmt: skip
        if item_type == "plan":
            plans = self._allowed_plans[user_group] if self._allowed_plans else None
            description = plans.get(item.get("name")) if plans else None
            problem = membership_problem(item, user, projects, staff, description)
            if problem:
                raise RuntimeError(f"Plan validation failed: {refusal_message(item.get('name'), [problem])}")
        return prepared

    prepare_item._sibyls_projects = True  # type: ignore[attr-defined]
    RunEngineManager._prepare_item = prepare_item


REDIS_RETRY_S = 60.0
WORKER_CHECK_PERIOD_S = 1.0


def install_redis_retries(total_s: float = REDIS_RETRY_S) -> None:
    """Make the manager's Redis client retry on connection errors with backoff (about ``total_s`` s)."""
    import redis.asyncio
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError, TimeoutError

    from_url = redis.asyncio.from_url
    if getattr(from_url, "_sibyls_retries", False):
        return
    cap = 1.0
    retries = int(total_s / cap) + 5  # the first few back off faster than the cap

    def from_url_with_retries(url, **kwargs):
        kwargs.setdefault("retry", Retry(ExponentialBackoff(cap=cap, base=0.05), retries))
        kwargs.setdefault("retry_on_error", [ConnectionError, TimeoutError, OSError])
        kwargs.setdefault("health_check_interval", 5)
        return from_url(url, **kwargs)

    from_url_with_retries._sibyls_retries = True  # type: ignore[attr-defined]
    redis.asyncio.from_url = from_url_with_retries


def install_worker_supervision(reopen_environment: bool = True) -> None:
    """Start :func:`supervise_worker` with the manager's event loop; report it in the status."""
    from bluesky_queueserver.manager.manager import RunEngineManager

    if getattr(RunEngineManager.zmq_server_comm, "_sibyls_supervised", False):
        return
    upstream_comm = RunEngineManager.zmq_server_comm
    upstream_status = RunEngineManager._status_handler

    async def zmq_server_comm(self):
        import asyncio

        self._sibyls_worker_lost = None
        asyncio.get_running_loop().create_task(supervise_worker(self, reopen=reopen_environment))
        return await upstream_comm(self)

    async def status_handler(self, request):
        status = await upstream_status(self, request)
        status["sibyls_worker_lost"] = getattr(self, "_sibyls_worker_lost", None)
        return status

    zmq_server_comm._sibyls_supervised = True  # type: ignore[attr-defined]
    RunEngineManager.zmq_server_comm = zmq_server_comm
    RunEngineManager._status_handler = status_handler


async def supervise_worker(manager, period: float = WORKER_CHECK_PERIOD_S, reopen: bool = True) -> None:
    """Notice a dead RE worker, fail its item once (back at the queue's front), reopen the environment
    (unless ``reopen`` is false)."""
    import asyncio
    import time

    from bluesky_queueserver.manager.manager import MState

    busy = (MState.CREATING_ENVIRONMENT, MState.CLOSING_ENVIRONMENT, MState.DESTROYING_ENVIRONMENT)
    while True:
        await asyncio.sleep(period)
        try:
            if not manager._environment_exists or manager._manager_state in busy:
                continue
            if await manager._watchdog_is_worker_alive():
                continue
            await asyncio.sleep(period)  # a worker that just closed on request is not a death
            if not manager._environment_exists or manager._manager_state in busy:
                continue
            await _recover_from_dead_worker(manager, reopen=reopen)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("worker supervision failed; trying again in %s s", period)
        finally:
            manager._sibyls_last_check = time.time()


async def _recover_from_dead_worker(manager, reopen: bool) -> None:
    import time

    from bluesky_queueserver.manager.manager import MState

    running = manager._plan_queue.get_running_item_info() or {}
    open_runs = [r["uid"] for r in getattr(manager, "_re_run_list", []) if r.get("uid")]
    reason = (
        "RE worker process died while running this item; its item is back at the front of the queue "
        "and the queue is stopped (start it again to retry)"
    )
    logger.error("RE worker process died (item %s, runs %s)", running.get("item_uid"), open_runs)
    manager._environment_exists = False
    manager._worker_state_info = None
    manager._running_task_uid = None
    manager._manager_state = MState.IDLE
    manager._re_pause_pending = False
    await manager._watchdog_join_re_worker(timeout_join=0.5)
    if running:
        await manager._plan_queue.set_processed_item_as_stopped(
            exit_status="failed", run_uids=open_runs, scan_ids=[], err_msg=reason, err_tb=""
        )
    manager._re_run_list = []
    manager._sibyls_worker_lost = {
        "time": time.time(),
        "item_uid": running.get("item_uid"),
        "item_name": running.get("name"),
        "run_uids": open_runs,
        "environment_reopened": False,
    }
    manager._status_update()
    if reopen:
        result = await manager._environment_open_handler({})
        manager._sibyls_worker_lost["environment_reopened"] = bool(result.get("success"))
        if not result.get("success"):
            logger.error("could not reopen the RE environment after the worker died: %s", result.get("msg"))
    manager._status_update()


ADD_PROGRESS_LINE = "Adding new item to the queue ..."


class DropItemAddProgressLine(logging.Filter):
    """Drops the content-free line RE Manager logs before each ``item_add`` (its outcome line stays)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg != ADD_PROGRESS_LINE


def main() -> int:
    """Run RE Manager (``start-re-manager`` options) with the plan validation cache installed."""
    from bluesky_queueserver.manager.start_manager import start_manager

    from sibyls.metadata.plate_registry import use_registry
    from sibyls.startup.config import ProfileConfig

    config = ProfileConfig()
    use_registry(config.plate_registry)  # the queue gate checks plate ids against the robot's registry
    install_validation_cache()
    install_queue_gate()
    install_project_gate()
    install_redis_retries()
    install_worker_supervision(reopen_environment=config.reopen_environment)
    logging.getLogger("bluesky_queueserver.manager.manager").addFilter(DropItemAddProgressLine())
    sys.argv[0] = "start-re-manager"
    return start_manager()


if __name__ == "__main__":
    sys.exit(main())
