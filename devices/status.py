"""Bounded waits: every status a SIBYLS device hands to a plan ends, and says why when it fails.

A device action (robot load, exposure, shutter move, cell-temperature change, the HPLC run clock)
gets a timeout derived from what is expected of it (``margin`` × expected duration + an
allowance). When the bound runs out the status fails with :class:`DeviceTimeoutError`, whose
message names the device, what it waited for, the bound and — where the device can say — its
state at that moment, e.g. ``ht_robot: load of well B3 did not finish within 55 s (robot state
loading, Load ...)``. If the IOC goes away meanwhile, the status fails at once with
:class:`DeviceDisconnectedError` instead of waiting out the bound.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from ophyd import Signal
from ophyd.status import DeviceStatus, StatusBase, SubscriptionStatus
from ophyd.utils import InvalidState, StatusTimeoutError

logger = logging.getLogger(__name__)


class DeviceTimeoutError(StatusTimeoutError):
    """A device did not finish in time; the message names the device, the action and the bound."""


class DeviceDisconnectedError(ConnectionError):
    """A device's IOC stopped answering while a plan waited for it."""


#: How long a Channel Access failure waits for the disconnection it may be the first sign of.
DISCONNECT_GRACE_S = 0.5


def _from_control_layer(exc: BaseException) -> bool:
    return type(exc).__module__.split(".")[0] in ("epics", "caproto", "ophyd")


def bound(expected_s: float, margin: float, allowance_s: float) -> float:
    """Seconds an action expected to take ``expected_s`` may take: ``margin`` × expected + allowance."""
    return margin * max(float(expected_s), 0.0) + allowance_s


def at_least_written(signal: Signal) -> float:
    """The larger of ``signal``'s monitored value and the value this process last wrote to it.

    For bounds: the monitor update of a value just written may still be on its way (seen here: a
    trigger right after ``acquire_time`` was put read the old value), and a bound must not come
    out short. No network round trip, unlike a fresh read.
    """
    value = float(signal.get())
    written = getattr(signal, "setpoint", None)
    return max(value, float(written)) if written is not None else value


def describe_state(*parts: tuple[str, Signal]) -> str:
    """``"label value, ..."`` read fresh from each signal; unreadable ones are left out (IOC gone)."""
    words = []
    for label, signal in parts:
        try:
            value = signal.get(use_monitor=False, timeout=0.5, connection_timeout=0.5)
        except Exception:
            continue
        words.append(f"{label} {value}" if label else str(value))
    return ", ".join(words)


class _NamedTimeout:
    """Status mixin: a timeout reads ``<device>: <what> did not finish within <t> s (<detail>)``.

    ophyd words every timeout ``Status <repr> failed to complete in specified timeout``. The
    replacement is made in ``_settled``, which ophyd calls after the timeout is recorded and
    before any waiter is woken or callback run, so nobody sees the generic message.
    """

    what: str
    _detail: Callable[[], str] | None

    def _settled(self) -> None:
        exc = self._exception  # type: ignore[attr-defined]
        if isinstance(exc, StatusTimeoutError) and not isinstance(exc, DeviceTimeoutError):
            self._exception = DeviceTimeoutError(self.timeout_message())  # type: ignore[attr-defined]
        super()._settled()  # type: ignore[misc]

    def timeout_headline(self) -> str:
        """First part of the timeout message: device, action, bound."""
        return f"{self.device.name}: {self.what} did not finish within {self.timeout:.3g} s"  # type: ignore[attr-defined]

    def timeout_message(self) -> str:
        """What the timeout error says: the headline and the device's state at that moment."""
        message = self.timeout_headline()
        detail = ""
        if self._detail is not None:
            try:
                detail = self._detail()
            except Exception:  # the detail is a courtesy; the timeout must be reported regardless
                logger.debug("no detail for %s", message, exc_info=True)
        return f"{message} ({detail})" if detail else message


class BoundedStatus(_NamedTimeout, DeviceStatus):
    """A device action that ends: done, failed with the device's reason, timed out, or disconnected.

    ``what`` is what the action waits for (``"load of well B3"``); ``detail`` is called at
    timeout to add the device's own state to the message; each of ``watch`` (EPICS signals of
    the device) ends the action at once with :class:`DeviceDisconnectedError` if it disconnects.
    The device's ``stop()`` is called on failure, as for any ophyd ``DeviceStatus``.
    """

    def __init__(
        self,
        device: Any,
        what: str,
        timeout: float | None,
        *,
        detail: Callable[[], str] | None = None,
        watch: Iterable[Signal] = (),
    ) -> None:
        self.what = what
        self._detail = detail
        self._inner: StatusBase | None = None
        self._watched = list(watch)
        super().__init__(device, timeout=timeout)
        watching = [
            (signal, signal.subscribe(self._connection_changed, Signal.SUB_META, run=False))
            for signal in self._watched
        ]
        if watching:
            self.add_callback(lambda status: [signal.unsubscribe(cid) for signal, cid in watching])

    def _connection_changed(self, *, obj: Signal, connected: bool = True, **kwargs) -> None:
        if not connected:
            self.finish(self._lost(obj))

    def _lost(self, signal: Signal) -> DeviceDisconnectedError:
        pv = getattr(signal, "pvname", signal.name)
        lost = f"{self.device.name}: lost connection to {pv} while waiting for {self.what}"
        return DeviceDisconnectedError(lost)

    def finish(self, exc: BaseException | None = None) -> None:
        """End the action (failed if ``exc``); no-op if it already ended (timed out, disconnected)."""
        if self.done:
            return
        if isinstance(exc, StatusTimeoutError):  # ophyd reserves these for a status's own timeout
            exc = TimeoutError(f"{self.device.name}: {self.what}: {exc}")
        if exc is not None and not isinstance(exc, DeviceDisconnectedError):
            # A dying IOC may end a put with a failure, or let it "complete" so that the check's
            # read fails (ECA_DISCONN) a moment before the disconnection is reported: either way
            # the cause is the lost connection.
            if _from_control_layer(exc):
                deadline = time.monotonic() + DISCONNECT_GRACE_S
                while not self.done and all(s.connected for s in self._watched):
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.02)
                if self.done:
                    return
            gone = next((signal for signal in self._watched if not signal.connected), None)
            if gone is not None:
                lost = self._lost(gone)
                lost.__cause__ = exc
                exc = lost
        try:
            if exc is None:
                self.set_finished()
            else:
                self.set_exception(exc)
        except InvalidState:
            pass

    def follow(self, inner: StatusBase, check: Callable[[], None] | None = None) -> BoundedStatus:
        """Finish when ``inner`` does: with its exception, or with what ``check()`` raises, or done."""
        self._inner = inner

        def inner_done(status: StatusBase) -> None:
            exc = None if status.success else status.exception()
            if exc is None and not status.success:
                exc = RuntimeError(f"{self.device.name}: {self.what} failed")
            if exc is None and check is not None and not self.done:
                try:
                    check()
                except Exception as error:
                    exc = error
            self.finish(exc)

        inner.add_callback(inner_done)
        return self

    def watch(self, func: Callable[..., Any]) -> None:
        """Progress of the followed action (e.g. a move), for progress bars."""
        if self._inner is not None and hasattr(self._inner, "watch"):
            self._inner.watch(func)
        else:
            super().watch(func)


class BoundedSubscriptionStatus(_NamedTimeout, SubscriptionStatus):
    """ophyd's ``SubscriptionStatus`` whose timeout names the device and what it waited for."""

    def __init__(
        self,
        device: Any,
        callback: Callable[..., bool],
        what: str,
        timeout: float | None,
        *,
        detail: Callable[[], str] | None = None,
        run: bool = True,
    ) -> None:
        self.what = what
        self._detail = detail
        super().__init__(device, callback, timeout=timeout, run=run)

    def check_value(self, *args, **kwargs) -> None:
        if self.done:  # a late update after the wait ended (failed or timed out)
            return
        try:
            super().check_value(*args, **kwargs)
        except InvalidState:
            pass

    def fail(self, exc: BaseException) -> None:
        """End the wait with ``exc`` (no-op if it already ended)."""
        if self.done:
            return
        try:
            self.set_exception(exc)
        except InvalidState:
            pass
