"""X-ray source: ALS storage ring current and the SIBYLS monochromator."""

from __future__ import annotations

from ophyd import Component as Cpt
from ophyd import Device, EpicsSignal, EpicsSignalRO, Kind

from sibyls.devices.status import BoundedStatus, bound, describe_state


class StorageRing(Device):
    """ALS storage-ring current (mA): in the baseline of every run, to normalise for top-off."""

    current = Cpt(EpicsSignalRO, "Current_RBV", kind=Kind.hinted)


class Monochromator(Device):
    """Monochromator: ``energy`` (keV) is movable; ``wavelength`` (Å) follows it.

    An energy change that takes longer than ``timeout_margin`` × ``move_time_s`` +
    ``timeout_allowance_s`` fails with a timeout naming the target energy.
    """

    #: Expected seconds of an energy change.
    move_time_s = 1.0
    timeout_margin = 3.0
    timeout_allowance_s = 10.0

    energy = Cpt(
        EpicsSignal, "Energy_RBV", write_pv="Energy", put_complete=True, limits=True, kind=Kind.hinted
    )
    wavelength = Cpt(EpicsSignalRO, "Wavelength_RBV", kind=Kind.hinted)

    def set(self, energy_kev: float, *, timeout: float | None = None, **kwargs) -> BoundedStatus:
        """Move to ``energy_kev``; the status finishes when the readback has arrived."""
        if timeout is None:
            timeout = bound(self.move_time_s, self.timeout_margin, self.timeout_allowance_s)
        status = BoundedStatus(
            self,
            f"move to {energy_kev:g} keV",
            timeout,
            detail=lambda: describe_state(("at", self.energy)),
            watch=[self.energy],
        )
        return status.follow(self.energy.set(energy_kev, timeout=None, **kwargs))
