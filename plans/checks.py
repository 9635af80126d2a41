"""Argument checks shared by a plan and the queue-time validation of the same plan.

Each SIBYLS plan's first statement is its check (``metadata = _check_x(locals())``); the same
check is attached to the plan (:func:`checked_by`) so :mod:`sibyls.plans.validation` can run it
on a queue item without hardware: one definition, enforced at queue time and at plan entry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sibyls.metadata.contract import RunMetadata, validate_run_metadata

#: Plan argument name → RunStart contract field (where they differ).
_RENAMED = {"cell_temperature": "cell_temperature_c"}
CONTRACT_ARGUMENTS = {name: name for name in RunMetadata.model_fields} | _RENAMED


def contract_from_arguments(arguments: dict[str, Any], plan_type: str, **fixed: Any) -> RunMetadata:
    """The RunStart contract from a plan's arguments (those named like contract fields) plus ``fixed``."""
    fields = {
        CONTRACT_ARGUMENTS[k]: v for k, v in arguments.items() if k in CONTRACT_ARGUMENTS and v is not None
    }
    return validate_run_metadata(**{**fields, **fixed, "plan_type": plan_type})


def check_range(name: str, value: float, low: float, high: float, unit: str = "") -> None:
    """Raise ``ValueError`` naming ``name`` when ``value`` is outside ``[low, high]``."""
    if not low <= value <= high:
        suffix = f" {unit}" if unit else ""
        raise ValueError(f"{name}: {value}{suffix} is outside {low:g}–{high:g}{suffix}")


def checked_by(check: Callable[[dict[str, Any]], Any]) -> Callable:
    """Attach ``check`` (called with the plan's bound arguments) to a plan for queue-time validation."""

    def attach(plan: Callable) -> Callable:
        plan._sibyls_check = check
        return plan

    return attach
