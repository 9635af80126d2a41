"""Validate a queue item against a SIBYLS plan without hardware: a dry run of the plan's own checks.

Used by the HTTP validate endpoint, the plate-sheet upload and ``qserver function execute
validate_queue_item``: the same checks the plan runs at entry, so an item that passes here is
refused later only by the hardware itself.
"""

from __future__ import annotations

import inspect
from typing import Any

from pydantic import TypeAdapter, ValidationError

from sibyls.metadata.contract import RESERVED_KEYS, SEAL_KEY, ContractError, RunMetadata

#: RunStart keys a queue item's ``meta`` may not set: the contract, and who/what queued the run.
PROTECTED_META_KEYS = {
    *RESERVED_KEYS,
    SEAL_KEY,
    *RunMetadata.model_fields,
    "queue_item_uid",
    "submitted_by",
    "user_group",
}

_TYPE_ADAPTERS: dict[Any, TypeAdapter] = {}


def _queue_plans() -> dict[str, Any]:
    from sibyls.plans import QUEUE_PLANS

    return QUEUE_PLANS


def _device_problem(name: str, spec: dict[str, Any], value: Any) -> str | None:
    """An unknown name in a device parameter (one name, or a list for ``typing.List[...]``)."""
    allowed = {device for names in spec["devices"].values() for device in names}
    wants_list = str(spec.get("annotation", "")).startswith("typing.List")
    if wants_list and not isinstance(value, list | tuple):
        return f"{name}: a list of device names, got {value!r}"
    unknown = [v for v in (value if wants_list else [value]) if v not in allowed]
    if unknown:
        choices = ", ".join(sorted(allowed))
        return f"{name}: {', '.join(map(repr, unknown))} not allowed here; choose from {choices}"
    return None


def _type_problem(name: str, annotation: Any, value: Any) -> str | None:
    if annotation in (inspect.Parameter.empty, Any):
        return None
    adapter = _TYPE_ADAPTERS.get(annotation)
    if adapter is None:
        adapter = _TYPE_ADAPTERS[annotation] = TypeAdapter(annotation)
    try:
        adapter.validate_python(value)
    except ValidationError as exc:
        message = exc.errors()[0]["msg"]
        return f"{name}: {message} (got {value!r})"
    return None


def validate_plan_call(name: str, args: list | tuple | None = None, kwargs: dict | None = None) -> list[str]:
    """Everything wrong with calling plan ``name`` with ``args``/``kwargs``; an empty list if nothing is."""
    plans = _queue_plans()
    plan = plans.get(name)
    if plan is None:
        return [f"name: {name!r} is not a SIBYLS plan (plans: {', '.join(sorted(plans))})"]
    signature = inspect.signature(plan)
    try:
        bound = signature.bind(*(args or ()), **(kwargs or {}))
    except TypeError as exc:
        return [f"{name}: {exc}"]
    bound.apply_defaults()
    annotations = getattr(plan, "_custom_parameter_annotation_", {}).get("parameters", {})
    problems = []
    for pname, value in bound.arguments.items():
        spec = annotations.get(pname, {})
        if "devices" in spec:  # queueserver device names: checked against the plan's lists
            problem = _device_problem(pname, spec, value)
            if problem:
                problems.append(problem)
            continue
        problem = _type_problem(pname, signature.parameters[pname].annotation, value)
        if problem:
            problems.append(problem)
            continue
        if isinstance(value, int | float) and not isinstance(value, bool):
            low, high = spec.get("min"), spec.get("max")
            if (low is not None and value < float(low)) or (high is not None and value > float(high)):
                problems.append(f"{pname}: {value} is outside {low}–{high}")
    check = getattr(plan, "_sibyls_check", None)
    if check is not None:
        try:
            check(dict(bound.arguments))
        except ContractError as exc:
            found = exc.problems
        except (ValueError, TypeError) as exc:
            found = [str(exc)]
        else:
            found = []
        reported = {p.split(":", 1)[0] for p in problems}
        problems += [p for p in found if p.split(":", 1)[0] not in reported]
    return problems


def validate_queue_item(item: dict) -> dict[str, Any]:
    """Dry-run a queue item (name, args, kwargs, meta): ``{"success": bool, "problems": [...]}``.

    Also refuses ``meta`` that tries to set reserved RunStart keys (``plan_type``,
    ``sample_code``, ``uid``...): the run would be refused when it opens.
    """
    if not isinstance(item, dict):
        return {"success": False, "problems": ["item: must be a dict with 'name', 'args', 'kwargs'"]}
    problems = []
    item_type = item.get("item_type", "plan")
    if item_type != "plan":
        problems.append(f"item_type: only plans are validated here, got {item_type!r}")
    meta = item.get("meta") or {}
    metas = meta if isinstance(meta, list) else [meta]
    for entry in metas:
        if not isinstance(entry, dict):
            problems.append("meta: must be a dict")
            continue
        for key in sorted(set(entry) & PROTECTED_META_KEYS):
            problems.append(f"meta.{key}: reserved RunStart key; it comes from the plan, not the item")
    problems += validate_plan_call(
        str(item.get("name", "")), item.get("args") or [], item.get("kwargs") or {}
    )
    return {"success": not problems, "problems": problems}
