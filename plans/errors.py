"""Plan errors that name the root cause, and cleanups that never hide it.

bluesky tells a plan that a device failed with ``FailedStatus(status)``, whose text is
``DeviceStatus(device=ht_robot, done=True, success=False)``; the device's reason is only in
``status.exception()``. :func:`device_errors` raises that reason instead. A cleanup that fails
after the plan already failed (the fast shutter cannot close because the IOC is gone) must not
replace the plan's error: :func:`cleanup_keeping_error` reports the plan's error, with the cleanup's
failure attached as a note.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator
from typing import Any

from bluesky.utils import FailedStatus, Msg
from ophyd.status import MoveStatus, StatusBase
from ophyd.utils import StatusTimeoutError

from sibyls.devices.status import DeviceTimeoutError

logger = logging.getLogger(__name__)


def root_cause(failed: FailedStatus) -> BaseException | None:
    """The device's own exception behind ``failed`` (None if the status holds none).

    A motor move that timed out is reworded to name the motor, the target and where it stopped
    (ophyd's text names only the status).
    """
    status = failed.args[0] if failed.args else None
    cause: BaseException | None = None
    if isinstance(status, StatusBase) and status.done:
        cause = status.exception()
    cause = cause or failed.__cause__
    if (
        isinstance(status, MoveStatus)
        and isinstance(cause, StatusTimeoutError)
        and not isinstance(cause, DeviceTimeoutError)
    ):
        reworded = DeviceTimeoutError(
            f"{status.pos.name}: move to {_number(status.target)} did not finish within "
            f"{status.timeout:.3g} s (at {_number(status.finish_pos)})"
        )
        reworded.__cause__ = cause
        cause = reworded
    return cause


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, int | float) else str(value)


def device_errors(plan: Generator[Msg, Any, Any]) -> Generator[Msg, Any, Any]:
    """Run ``plan``; a device that failed surfaces as its own exception, not as ``FailedStatus``.

    What a beamline user reads is then e.g. ``RobotError: ht_robot: Load refused: well H12 of
    plate P1 is empty (state idle)``, in the item's error and in the stop document's ``reason``.
    The FailedStatus stays in the chain (``__cause__``), and notes attached to it are carried over.
    """
    # Not ``try: yield from plan``: the device's exception must be what ``plan`` itself receives,
    # so that a run it opens (bluesky's run_wrapper) closes with the device's reason.
    reply: Any = None
    error: BaseException | None = None
    while True:
        try:
            msg = plan.send(reply) if error is None else plan.throw(error)
        except StopIteration as done:
            return done.value
        except FailedStatus as failed:
            cause = _device_error(failed)
            if cause is failed:
                raise
            raise cause from failed
        try:
            reply, error = (yield msg), None
        except GeneratorExit:
            plan.close()
            raise
        except FailedStatus as failed:
            error = _device_error(failed)
        except BaseException as other:
            error = other


def _device_error(failed: FailedStatus) -> BaseException:
    cause = root_cause(failed)
    if cause is None:
        return failed
    for note in getattr(failed, "__notes__", []):
        if note not in getattr(cause, "__notes__", []):
            cause.add_note(note)
    if cause.__cause__ is None or isinstance(cause.__cause__, FailedStatus):
        cause.__cause__ = failed
    return cause


def cleanup_keeping_error(
    plan: Generator[Msg, Any, Any], cleanup: Callable[[], Generator[Msg, Any, Any]], what: str
) -> Generator[Msg, Any, Any]:
    """Run ``plan``, then ``cleanup()`` whether it succeeded or failed (like ``finalize_wrapper``).

    If ``plan`` failed, its error is the one reported; a failure of the cleanup too is logged
    and attached to it as a note (``then <what> failed too: ...``). If ``plan`` succeeded, a
    failing cleanup is the error. A halted plan (GeneratorExit) is not cleaned up, as in bluesky.
    """
    try:
        result = yield from plan
    except GeneratorExit:
        raise
    except BaseException as error:
        try:
            yield from device_errors(cleanup())
        except Exception as cleanup_error:
            logger.warning("%s failed after the plan had failed (%s): %s", what, error, cleanup_error)
            error.add_note(f"then {what} failed too: {type(cleanup_error).__name__}: {cleanup_error}")
        raise
    yield from device_errors(cleanup())
    return result
