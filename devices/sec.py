"""SEC-SAXS-MALS: HPLC pump, UV 280 nm, multi-angle light scattering and refractive index."""

from __future__ import annotations

import json

from ophyd import Component as Cpt
from ophyd import Device, EpicsSignal, EpicsSignalRO, Kind
from ophyd.status import Status

from sibyls.devices.status import BoundedStatus, BoundedSubscriptionStatus, bound, describe_state


class SECError(RuntimeError):
    """The HPLC refused a command or ended its run; the message is the instrument's own."""


class RunClockSignal(EpicsSignalRO):
    """Seconds since injection; ``bps.mv(sec.elapsed, t)`` waits until the run clock reaches ``t``.

    ``bps.abs_set(sec.elapsed, t, timeout=s, wait=True)`` bounds the wait to ``s`` wall seconds;
    see :meth:`SECSystem.wait_for_run_clock`.
    """

    def set(self, value, *, timeout: float | None = None, **kwargs) -> RunClockStatus:
        return self.parent.wait_for_run_clock(float(value), timeout)


class RunClockStatus(BoundedSubscriptionStatus):
    """Waiting for the HPLC run clock; a timeout reads ``sec: the run clock did not reach ...``."""

    def __init__(self, sec: SECSystem, target_s: float, timeout: float) -> None:
        self.sec = sec
        self.target_s = target_s

        def reached(value, **kwargs) -> bool:
            # An update may be a late copy of the last run's clock (seen right after an injection):
            # the IOC's clock itself must have got there.
            if value is None or value < target_s:
                return False
            return float(sec.elapsed.get(use_monitor=False)) >= target_s

        super().__init__(
            sec.elapsed,
            reached,
            f"run clock to reach {target_s:g} s",
            timeout,
            detail=self._where_the_run_is,
            # Not the cached value: right after an injection it may still be the last run's.
            run=False,
        )
        self.check_value(value=float(sec.elapsed.get(use_monitor=False)))

    def _where_the_run_is(self) -> str:
        clock = f"run clock at {float(self.sec.elapsed.get()):.1f} s"
        hplc = describe_state(("HPLC", self.sec.run_state), ("", self.sec.message))
        return f"{clock}, {hplc}" if hplc else clock

    def timeout_headline(self) -> str:
        return f"{self.sec.name}: the run clock did not reach {self.target_s:g} s within {self.timeout:.3g} s"


class SECSystem(Device):
    """Agilent 1260 + Shodex KW-803 + UV/MALS/RI: set flow, inject, watch the elution.

    ``uv280``, ``mals`` and ``refractive_index`` are what a monitor stream records during
    an elution; ``eluted_volume`` and ``elapsed`` say where the run is.
    """

    #: Waiting for the run clock (which runs in real time) may take ``run_clock_margin`` × the
    #: time still to go + ``run_clock_allowance_s`` wall seconds.
    run_clock_margin = 1.5
    run_clock_allowance_s = 5.0
    #: Inject and stop are acknowledged at once; this bounds the wait for the acknowledgement.
    command_timeout_s = 10.0

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

    def set(self, command: str, **kwargs) -> BoundedStatus:
        """``bps.mv(sec, "inject")`` starts a run; ``bps.mv(sec, "stop")`` ends it."""
        if command == "inject":
            return self.inject()
        if command == "stop":
            return self.stop_run()
        raise ValueError(f"{self.name}: command must be 'inject' or 'stop', got {command!r}")

    def inject(self) -> BoundedStatus:
        """Inject the vial and start the run; fails with the HPLC's reason if it refuses."""
        status = BoundedStatus(self, "injection", self.command_timeout_s, watch=[self.inject_cmd])

        def check() -> None:
            message = self.message.get(use_monitor=False)
            # A refused injection leaves a run already in progress Running: the message tells.
            if self.run_state.get(use_monitor=False) != "Running" or message.startswith("Inject refused"):
                raise SECError(f"{self.name}: {message}")

        return status.follow(self.inject_cmd.set(1, timeout=None), check)

    def stop_run(self) -> BoundedStatus:
        """End the current run."""
        status = BoundedStatus(self, "stopping the run", self.command_timeout_s, watch=[self.stop_cmd])
        return status.follow(self.stop_cmd.set(1, timeout=None))

    def run_clock_timeout(self, to_go_s: float) -> float:
        """Wall seconds a wait for the run clock may take when it has ``to_go_s`` still to go."""
        return bound(to_go_s, self.run_clock_margin, self.run_clock_allowance_s)

    def wait_for_run_clock(self, target_s: float, timeout: float | None = None) -> RunClockStatus | Status:
        """A status that finishes when the run clock reaches ``target_s`` seconds.

        It fails at once with :class:`SECError` and the HPLC's own message (e.g. ``Run stopped``)
        if the run is not, or stops being, Running before then; and with a timeout after
        ``timeout`` wall seconds (default: :meth:`run_clock_timeout` of the time still to go).
        """
        if self.run_state.get(use_monitor=False) != "Running":
            # Also when the clock is already past target_s (frames lagging the clock): a frame
            # taken after the run ended would show whatever is left in the cell, not the eluate.
            ended = Status(obj=self.elapsed, timeout=None)
            ended.set_exception(self._run_ended(target_s))
            return ended
        if timeout is None:
            timeout = self.run_clock_timeout(target_s - float(self.elapsed.get(use_monitor=False)))
        status = RunClockStatus(self, target_s, timeout)
        if status.done:
            return status

        def run_state_changed(value, **kwargs) -> None:
            if value != "Running" and self.run_state.get(use_monitor=False) != "Running":
                status.fail(self._run_ended(target_s))

        cid = self.run_state.subscribe(run_state_changed, run=False)
        status.add_callback(lambda _: self.run_state.unsubscribe(cid))
        if self.run_state.get(use_monitor=False) != "Running":
            status.fail(self._run_ended(target_s))
        return status

    def _run_ended(self, target_s: float) -> SECError:
        reason = describe_state(("", self.message)) or "no reason given"
        return SECError(
            f"{self.name}: the HPLC run is not running ({reason}); the run clock stopped at "
            f"{float(self.elapsed.get()):.1f} s, short of {target_s:g} s"
        )
