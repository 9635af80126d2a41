"""Where a SIBYLS plan finds the beamline: passed in, or the default the profile configured.

Every plan that drives beamline devices is decorated with :func:`beamline_plan`: it takes a
keyword ``context`` (a :class:`PlanContext`: the beamline's devices and the frame-file folder)
that queueserver does not see — it is not in the plan's signature, so no queue item can pass it.
Left out, the plan uses the default context, which the composition root sets once with
:func:`configure_plans` (``sibyls.startup.profile``; a test may do the same, or pass ``context=``
with mock devices and need no set-up at all).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sibyls.devices.beamline import SibylsBeamline


@dataclass(frozen=True)
class PlanContext:
    """The connected beamline and where frame files go (``<data_dir>/<project_code>/``)."""

    beamline: SibylsBeamline
    data_dir: Path


_default: PlanContext | None = None


def configure_plans(beamline: SibylsBeamline, data_dir: Path | str) -> PlanContext:
    """Make ``beamline`` and the frame-file folder ``data_dir`` the plans' default context."""
    global _default
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    _default = PlanContext(beamline, data_dir)
    return _default


def plan_context() -> PlanContext:
    """The default context; a clear error when the profile has not configured the plans."""
    if _default is None:
        raise RuntimeError(
            "SIBYLS plans are not configured: load the SIBYLS profile (sibyls.startup.profile) or call "
            "sibyls.plans.configure_plans(beamline, data_dir) first (or pass context=PlanContext(...))"
        )
    return _default


#: The keyword a :func:`beamline_plan` receives its context by (hidden from queueserver).
CONTEXT = "context"


def beamline_plan(plan: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator: ``plan`` (a generator function with a keyword-only ``context``) gets its context.

    The returned plan's signature, as ``inspect.signature`` and so queueserver see it, has no
    ``context``; a caller may still pass ``context=PlanContext(...)``. Left out, the default
    context is looked up when the plan starts (its first message), not when it is called.
    """
    signature = inspect.signature(plan)
    if CONTEXT not in signature.parameters:
        raise TypeError(f"{plan.__name__} has no keyword-only parameter {CONTEXT!r}")
    shown = signature.replace(parameters=[p for p in signature.parameters.values() if p.name != CONTEXT])

    @functools.wraps(plan)
    def with_context(*args: Any, context: PlanContext | None = None, **kwargs: Any):
        return (yield from plan(*args, context=context or plan_context(), **kwargs))

    with_context.__signature__ = shown  # type: ignore[attr-defined]
    return with_context
