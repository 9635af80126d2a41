"""X-ray source: ALS storage ring current and the SIBYLS monochromator."""

from __future__ import annotations

from ophyd import Component as Cpt
from ophyd import Device, EpicsSignal, EpicsSignalRO, Kind


class StorageRing(Device):
    """ALS storage-ring current (mA): in the baseline of every run, to normalise for top-off."""

    current = Cpt(EpicsSignalRO, "Current_RBV", kind=Kind.hinted)


class Monochromator(Device):
    """Monochromator: ``energy`` (keV) is movable; ``wavelength`` (Å) follows it."""

    energy = Cpt(
        EpicsSignal, "Energy_RBV", write_pv="Energy", put_complete=True, limits=True, kind=Kind.hinted
    )
    wavelength = Cpt(EpicsSignalRO, "Wavelength_RBV", kind=Kind.hinted)

    def set(self, energy_kev: float, **kwargs):
        """Move to ``energy_kev``; the status finishes when the readback has arrived."""
        return self.energy.set(energy_kev, **kwargs)
