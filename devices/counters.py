"""Scaler channels: the I0 ion chamber and the beamstop photodiode."""

from __future__ import annotations

from ophyd import Component as Cpt
from ophyd import Device, EpicsSignal, EpicsSignalRO, Kind

from sibyls.devices.status import BoundedStatus, at_least_written, bound


class GatedCounter(Device):
    """A counter that integrates for ``preset_time`` when triggered; reads ``<name>_counts``.

    Counts are proportional to flux × time (the beamstop diode also to the sample's
    transmission) and zero while a shutter is closed. A count that takes longer than
    ``timeout_margin`` × ``preset_time`` + ``timeout_allowance_s`` fails with a timeout naming it.
    """

    timeout_margin = 2.0
    timeout_allowance_s = 5.0

    # Read fresh after each trigger: a monitor update may arrive after the put-completion.
    counts = Cpt(EpicsSignalRO, "Counts_RBV", kind=Kind.hinted, auto_monitor=False)
    rate = Cpt(EpicsSignalRO, "Rate_RBV", kind=Kind.omitted)
    preset_time = Cpt(EpicsSignal, "PresetTime", put_complete=True, limits=True, kind=Kind.config)
    count = Cpt(EpicsSignal, "Count", put_complete=True, kind=Kind.omitted)

    def trigger(self) -> BoundedStatus:
        """Count for ``preset_time``; the status finishes when the counts are in."""
        preset = at_least_written(self.preset_time)
        timeout = bound(preset, self.timeout_margin, self.timeout_allowance_s)
        status = BoundedStatus(self, f"count of {preset:g} s", timeout, watch=[self.count])
        return status.follow(self.count.set(1, timeout=None))
