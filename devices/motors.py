"""Sample stage and beamstop, two EPICS motors each."""

from __future__ import annotations

from ophyd import Component as Cpt
from ophyd import Device, EpicsMotor, Kind


class XYStage(Device):
    """Two EPICS motor records, ``x`` and ``y`` (mm)."""

    x = Cpt(EpicsMotor, "X", kind=Kind.hinted)
    y = Cpt(EpicsMotor, "Y", kind=Kind.hinted)
