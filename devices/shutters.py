"""Photon shutter and fast shutter: ``bps.mv(shutter, "open")`` waits until the blades have moved."""

from __future__ import annotations

from ophyd import Component as Cpt
from ophyd import Device, EpicsSignal, EpicsSignalRO, Kind

from sibyls.devices.status import BoundedStatus, bound, describe_state


class Shutter(Device):
    """A shutter with an Open/Close command and a Closed/Open/Moving status.

    A move that does not finish within ``timeout_margin`` × ``move_time_s`` +
    ``timeout_allowance_s`` fails with a timeout naming the shutter, the move and its status.
    """

    #: Expected seconds of a move (the photon shutter's; the fast shutter takes 5 ms).
    move_time_s = 0.5
    timeout_margin = 3.0
    timeout_allowance_s = 5.0

    command = Cpt(EpicsSignal, "Open", put_complete=True, string=True, kind=Kind.omitted)
    status = Cpt(EpicsSignalRO, "Status_RBV", string=True, kind=Kind.normal, auto_monitor=False)

    _commands = {"open": "Open", "close": "Close", "closed": "Close", 1: "Open", 0: "Close"}

    def set(self, value, *, timeout: float | None = None, **kwargs) -> BoundedStatus:
        """Open or close: ``"open"``/``"close"`` (or 1/0); the status finishes when the move is done."""
        key = value.lower() if isinstance(value, str) else value
        try:
            command = self._commands[key]
        except (KeyError, TypeError):
            raise ValueError(
                f"{self.name}: shutter position must be 'open' or 'close', got {value!r}"
            ) from None
        if timeout is None:
            timeout = bound(self.move_time_s, self.timeout_margin, self.timeout_allowance_s)
        status = BoundedStatus(
            self,
            "opening" if command == "Open" else "closing",
            timeout,
            detail=lambda: describe_state(("status", self.status)),
            watch=[self.command],
        )
        return status.follow(self.command.set(command, timeout=None, **kwargs))

    def open(self, timeout: float = 10.0) -> None:
        """Open and wait (for interactive use; plans use ``bps.mv(shutter, "open")``)."""
        self.set("open").wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Close and wait (for interactive use; plans use ``bps.mv(shutter, "close")``)."""
        self.set("close").wait(timeout)
