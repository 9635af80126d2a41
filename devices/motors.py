"""Sample stage and beamstop, two EPICS motors each."""

from __future__ import annotations

from ophyd import Component as Cpt
from ophyd import Device, EpicsMotor, Kind

from sibyls.devices.status import bound


class XYStage(Device):
    """Two EPICS motor records, ``x`` and ``y`` (mm).

    Every move is bounded: it fails (and the motor is stopped) if it takes longer than
    ``move_timeout_margin`` × the full travel between the soft limits at the motor's speed +
    ``move_timeout_allowance_s``; the bound follows the live VELO, LLM and HLM.
    """

    x = Cpt(EpicsMotor, "X", kind=Kind.hinted)
    y = Cpt(EpicsMotor, "Y", kind=Kind.hinted)

    move_timeout_margin = 2.0
    move_timeout_allowance_s = 5.0
    #: Bound while speed or limits are unknown (not connected yet, VELO 0, no soft limits).
    move_timeout_default_s = 120.0

    def __init__(self, prefix: str = "", *, name: str, **kwargs) -> None:
        super().__init__(prefix, name=name, **kwargs)
        for motor in (self.x, self.y):
            motor.timeout = self.move_timeout_default_s
            for signal in (motor.velocity, motor.low_limit_travel, motor.high_limit_travel):
                signal.subscribe(lambda *args, motor=motor, **kwargs: self._bound_moves(motor), run=False)

    def _bound_moves(self, motor: EpicsMotor) -> None:
        try:
            velocity = float(motor.velocity.get())
            travel = float(motor.high_limit_travel.get()) - float(motor.low_limit_travel.get())
        except Exception:  # not connected yet: the next update sets the bound
            return
        if velocity > 0 and travel > 0:
            motor.timeout = bound(travel / velocity, self.move_timeout_margin, self.move_timeout_allowance_s)
        else:
            motor.timeout = self.move_timeout_default_s
