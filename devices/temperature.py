"""Sample-cell temperature controller (4–60 °C)."""

from __future__ import annotations

from ophyd import Component as Cpt
from ophyd import EpicsSignal, EpicsSignalRO, Kind
from ophyd.pv_positioner import PVPositionerIsClose

from sibyls.devices.status import BoundedStatus
from sibyls.metadata.rules import AXIS_LIMITS

CELL_TEMPERATURE_RANGE_C = (AXIS_LIMITS["cell_temperature"].low, AXIS_LIMITS["cell_temperature"].high)


class CellTemperature(PVPositionerIsClose):
    """Cell temperature in °C: ``bps.mv(cell_temperature, 10)`` returns once within ``atol`` of 10 °C.

    A change of ΔT that takes longer than ``seconds_per_degc`` × |ΔT| + ``settle_allowance_s``
    fails with a timeout naming the target and the temperature reached.
    """

    #: Slowest expected ramp of the Peltier controller, and the time to settle within ``atol``.
    seconds_per_degc = 10.0
    settle_allowance_s = 120.0

    setpoint = Cpt(EpicsSignal, "SP", limits=True, kind=Kind.config)
    readback = Cpt(EpicsSignalRO, "RBV", kind=Kind.hinted)
    atol = 0.1

    def __init__(self, prefix: str = "", *, name: str, **kwargs) -> None:
        kwargs.setdefault("limits", CELL_TEMPERATURE_RANGE_C)
        kwargs.setdefault("egu", "degC")
        super().__init__(prefix, name=name, **kwargs)
        self.readback.name = name

    _requested: float | None = None

    def _setup_move(self, position):
        self._requested = float(position)
        super()._setup_move(position)

    def move_timeout(self, target: float) -> float:
        """Seconds a change from the current temperature to ``target`` may take."""
        return self.seconds_per_degc * abs(float(target) - float(self.position)) + self.settle_allowance_s

    def move(self, position, wait: bool = True, timeout: float | None = None, moved_cb=None) -> BoundedStatus:
        """Change the setpoint to ``position`` °C; the status finishes within ``atol`` of it."""
        if timeout is None:
            timeout = self.move_timeout(position)
        moving = super().move(position, wait=False, timeout=None, moved_cb=moved_cb)
        status = BoundedStatus(
            self,
            f"change to {float(position):g} °C",
            timeout,
            detail=lambda: f"at {float(self.readback.get(use_monitor=False, timeout=0.5)):.2f} °C",
            watch=[self.setpoint],
        ).follow(moving)
        if wait:
            status.wait()
        return status

    def done_comparator(self, readback, setpoint) -> bool:
        # Compare with the temperature asked for: a late monitor update still carrying the old
        # setpoint must not end the move at the old temperature.
        target = self._requested if self._requested is not None else setpoint
        return super().done_comparator(readback, target)

    def check_value(self, value):
        """Refuse setpoints outside the cell's 4–60 °C range, naming the device and the range."""
        low, high = CELL_TEMPERATURE_RANGE_C
        if not (low <= float(value) <= high):
            raise ValueError(
                f"{self.name}: setpoint {value} °C is outside the cell's range {low:g}–{high:g} °C"
            )
        super().check_value(value)
