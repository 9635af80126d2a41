"""SEC-SAXS-MALS: HPLC pump, UV 280 nm, multi-angle light scattering and refractive index."""

from __future__ import annotations

import json

from ophyd import Component as Cpt
from ophyd import Device, EpicsSignal, EpicsSignalRO, Kind
from ophyd.status import DeviceStatus, SubscriptionStatus


class SECError(RuntimeError):
    """The HPLC refused a command; the message is the instrument's own."""


class RunClockSignal(EpicsSignalRO):
    """Seconds since injection; ``bps.mv(sec.elapsed, t)`` waits until the run clock reaches ``t``."""

    def set(self, value, **kwargs) -> SubscriptionStatus:
        target = float(value)
        return SubscriptionStatus(self, lambda value, **kw: value is not None and value >= target, run=True)


class SECSystem(Device):
    """Agilent 1260 + Shodex KW-803 + UV/MALS/RI: set flow, inject, watch the elution.

    ``uv280``, ``mals`` and ``refractive_index`` are what a monitor stream records during
    an elution; ``eluted_volume`` and ``elapsed`` say where the run is.
    """

    flow_rate = Cpt(
        EpicsSignal,
        "Pump:FlowRate_RBV",
        put_complete=True,
        write_pv="Pump:FlowRate",
        limits=True,
        kind=Kind.config,
    )
    pressure = Cpt(EpicsSignalRO, "Pump:Pressure_RBV", kind=Kind.normal)
    run_time = Cpt(EpicsSignal, "RunTime", put_complete=True, limits=True, kind=Kind.config)
    inject_sample = Cpt(EpicsSignal, "InjectSample", string=True, auto_monitor=False, kind=Kind.omitted)
    inject_cmd = Cpt(EpicsSignal, "Inject", put_complete=True, kind=Kind.omitted)
    stop_cmd = Cpt(EpicsSignal, "Stop", put_complete=True, kind=Kind.omitted)
    run_state = Cpt(EpicsSignalRO, "RunState_RBV", string=True, kind=Kind.normal, auto_monitor=False)
    elapsed = Cpt(RunClockSignal, "Elapsed_RBV", kind=Kind.normal)
    eluted_volume = Cpt(EpicsSignalRO, "ElutedVolume_RBV", kind=Kind.normal)
    uv280 = Cpt(EpicsSignalRO, "UV:A280_RBV", kind=Kind.hinted)
    mals = Cpt(EpicsSignalRO, "MALS:LS90_RBV", kind=Kind.hinted)
    refractive_index = Cpt(EpicsSignalRO, "RI:dRI_RBV", kind=Kind.hinted)
    message = Cpt(EpicsSignalRO, "Message_RBV", string=True, auto_monitor=False, kind=Kind.omitted)

    def load_vial(self, sample: dict) -> None:
        """Describe what the autosampler will inject (simulation: a ScatteringSample as a dict)."""
        self.inject_sample.put(json.dumps(sample), wait=True)

    def set(self, command: str, **kwargs) -> DeviceStatus:
        """``bps.mv(sec, "inject")`` starts a run; ``bps.mv(sec, "stop")`` ends it."""
        if command == "inject":
            return self.inject()
        if command == "stop":
            return self.stop_run()
        raise ValueError(f"{self.name}: command must be 'inject' or 'stop', got {command!r}")

    def inject(self) -> DeviceStatus:
        """Inject the vial and start the run; fails with the HPLC's reason if it refuses."""
        status = DeviceStatus(self)

        def finished(put_status):
            if not put_status.success:
                status.set_exception(put_status.exception())
            elif self.run_state.get(use_monitor=False) != "Running":
                status.set_exception(SECError(f"{self.name}: {self.message.get(use_monitor=False)}"))
            else:
                status.set_finished()

        self.inject_cmd.set(1).add_callback(finished)
        return status

    def stop_run(self) -> DeviceStatus:
        """End the current run."""
        return self.stop_cmd.set(1)
