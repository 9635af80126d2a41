"""SIBYLS plans: every run carries the metadata contract and gets a lambda-ber record.

The plans are imported on first use (PEP 562), so the hardware-free parts of this package
(:mod:`sibyls.plans.checks`, :mod:`sibyls.plans.validation`) load without ophyd: the RE Manager
runs the queue gate from them and must not start Channel Access before it forks the RE worker.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public name → the module that defines it.
_WHERE = {
    "align_beamstop": "alignment",
    "align_sample_stage": "alignment",
    "alignment_grid_scan": "alignment",
    "saxs_exposure": "saxs",
    "temperature_series": "saxs",
    "ht_plate": "plate",
    "sec_saxs": "sec",
    "count": "standard",
    "scan": "standard",
    "rel_scan": "standard",
    "list_scan": "standard",
    "grid_scan": "standard",
    "PlanContext": "context",
    "configure_plans": "context",
    "plan_context": "context",
    "plan_progress": "run_engine",
    "setup_run_engine": "run_engine",
}

#: The plans offered through the queue, in this order (the bare bluesky plans are not).
QUEUE_PLAN_NAMES = (
    "saxs_exposure",
    "ht_plate",
    "sec_saxs",
    "temperature_series",
    "align_beamstop",
    "align_sample_stage",
    "alignment_grid_scan",
    "count",
    "scan",
    "rel_scan",
    "list_scan",
    "grid_scan",
)


def __getattr__(name: str) -> Any:
    if name == "QUEUE_PLANS":
        value: Any = {plan: __getattr__(plan) for plan in QUEUE_PLAN_NAMES}
    elif name in _WHERE:
        value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


__all__ = ["QUEUE_PLANS", "QUEUE_PLAN_NAMES", *_WHERE]
