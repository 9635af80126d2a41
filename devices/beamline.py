"""Build the whole SIBYLS beamline from one PV prefix."""

from __future__ import annotations

import atexit
from dataclasses import dataclass, fields

from ophyd import Device, EpicsSignalRO
from ophyd.signal import EpicsSignalBase

from sibyls.devices.counters import GatedCounter
from sibyls.devices.motors import XYStage
from sibyls.devices.pilatus import PilatusDetector
from sibyls.devices.robot import HTRobot
from sibyls.devices.sec import SECSystem
from sibyls.devices.shutters import Shutter
from sibyls.devices.source import Monochromator, StorageRing
from sibyls.devices.temperature import CellTemperature

#: A write with put-completion that the IOC does not confirm within this many seconds fails
#: (settings are confirmed at once; actions that take long carry their own, derived bound).
WRITE_TIMEOUT_S = 30.0


@dataclass
class SibylsBeamline:
    """Every SIBYLS device, named as it appears in documents (``mono_energy``, ``pilatus_image``...)."""

    ring: StorageRing
    mono: Monochromator
    photon_shutter: Shutter
    fast_shutter: Shutter
    i0: GatedCounter
    bs_diode: GatedCounter
    pilatus: PilatusDetector
    detector_distance: EpicsSignalRO
    sample_stage: XYStage
    beamstop: XYStage
    cell_temperature: CellTemperature
    ht_robot: HTRobot
    sec: SECSystem

    def devices(self) -> dict[str, Device]:
        """Name → device, e.g. for a queueserver namespace."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def baseline(self) -> list:
        """What every run records before and after: source, geometry, cell, shutters, stages."""
        return [
            self.ring,
            self.mono,
            self.detector_distance,
            self.cell_temperature,
            self.photon_shutter,
            self.fast_shutter,
            self.sample_stage,
            self.beamstop,
        ]

    def wait_for_connection(self, timeout: float = 10.0) -> None:
        """Connect every PV; raises naming the PVs that did not connect."""
        for device in self.devices().values():
            device.wait_for_connection(timeout=timeout)


def build_beamline(prefix: str = "SIBYLS:", connect: bool = True, timeout: float = 10.0) -> SibylsBeamline:
    """All SIBYLS devices under ``prefix`` (the simulated IOC's, or the real beamline's PVs).

    EPICS signals created from here on keep a monitor on their PVs (``auto_monitor``), so reading
    a device costs no network round trip: the usual setting of beamline profiles. Opting out:
    long-string char waveforms (a monitor would pin them to the length they had when connected)
    and the readbacks a command or trigger just changed (the monitor update may arrive after the
    put-completion that ends the command, so they are read fresh).

    Every wait on these devices is bounded (see :mod:`sibyls.devices.status`): settings writes
    by :data:`WRITE_TIMEOUT_S`, actions by a timeout derived from what they are expected to take.
    """
    _finalize_ca_at_exit()
    _use_signal_defaults()
    beamline = SibylsBeamline(
        ring=StorageRing(f"{prefix}Ring:", name="ring"),
        mono=Monochromator(f"{prefix}Mono:", name="mono"),
        photon_shutter=Shutter(f"{prefix}PShutter:", name="photon_shutter"),
        fast_shutter=Shutter(f"{prefix}FShutter:", name="fast_shutter"),
        i0=GatedCounter(f"{prefix}I0:", name="i0"),
        bs_diode=GatedCounter(f"{prefix}BSDiode:", name="bs_diode"),
        pilatus=PilatusDetector(f"{prefix}Pilatus:", name="pilatus"),
        detector_distance=EpicsSignalRO(f"{prefix}Pilatus:Distance_RBV", name="detector_distance"),
        sample_stage=XYStage(f"{prefix}SampleStage:", name="sample_stage"),
        beamstop=XYStage(f"{prefix}Beamstop:", name="beamstop"),
        cell_temperature=CellTemperature(f"{prefix}Cell:Temp:", name="cell_temperature"),
        ht_robot=HTRobot(f"{prefix}Robot:", name="ht_robot"),
        sec=SECSystem(f"{prefix}SEC:", name="sec"),
    )
    if connect:
        beamline.wait_for_connection(timeout)
    return beamline


#: ophyd's class-wide defaults of every EPICS signal the beamline makes (see :func:`build_beamline`).
SIGNAL_DEFAULTS = {"auto_monitor": True, "write_timeout": WRITE_TIMEOUT_S}


def _use_signal_defaults() -> None:
    """Put :data:`SIGNAL_DEFAULTS` in effect for the EPICS signals made from now on, in any call.

    ophyd takes class-wide defaults only before the first EPICS signal of the process exists, so a
    second beamline in one process (a notebook cell run again, a second prefix, a benchmark after
    another) finds them fixed: that is fine when they are ours. When other code made EPICS signals
    first, with ophyd's own defaults (no monitors, writes that may wait forever), the beamline is
    refused with a clear error rather than built without its bounded writes.
    """
    try:
        EpicsSignalBase.set_defaults(**SIGNAL_DEFAULTS)
        return
    except RuntimeError:
        pass
    # ophyd has no public getter for the defaults in effect: read its (name-mangled) class attributes.
    in_effect = {
        name: getattr(EpicsSignalBase, f"_EpicsSignalBase__default_{name}", None) for name in SIGNAL_DEFAULTS
    }
    if in_effect != SIGNAL_DEFAULTS:
        raise RuntimeError(
            "EPICS signals were made in this process before the SIBYLS beamline, with ophyd's defaults "
            f"{in_effect} instead of {SIGNAL_DEFAULTS} (ophyd fixes them at the first signal): build the "
            "beamline first, or call EpicsSignalBase.set_defaults(**SIGNAL_DEFAULTS) before any signal"
        )


_finalizer_registered = False


def _finalize_ca_at_exit() -> None:
    """Shut libca down cleanly at exit: pyepics otherwise sometimes segfaults while exiting."""
    global _finalizer_registered
    if _finalizer_registered:
        return
    try:
        import epics.ca
    except ImportError:  # the caproto control layer needs no finalizer
        return
    atexit.register(epics.ca.finalize_libca)
    _finalizer_registered = True
