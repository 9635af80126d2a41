"""``SEC:``: SEC-SAXS-MALS — HPLC pump, column, UV 280 nm, MALS and RI detectors after the SAXS cell."""

from __future__ import annotations

import asyncio

from caproto import ChannelType
from caproto.server import PVGroup, pvproperty
from pydantic import ValidationError

from sibyls.devices.sim import physics
from sibyls.devices.sim.physics import ScatteringSample
from sibyls.devices.sim.pvs import LONG_STRING, json_text, text_pv, validation_message


class SECGroup(PVGroup):
    """SEC-SAXS-MALS: Agilent 1260 pump, KW-803 column, UV 280 nm, MALS and RI after the SAXS cell."""

    flow_rate = pvproperty(
        value=0.0,
        name="Pump:FlowRate",
        lower_ctrl_limit=0.0,
        upper_ctrl_limit=1.0,
        units="mL/min",
        precision=3,
    )
    flow_rate_rbv = pvproperty(
        value=0.0, name="Pump:FlowRate_RBV", read_only=True, units="mL/min", precision=3
    )
    pressure = pvproperty(value=0.0, name="Pump:Pressure_RBV", read_only=True, units="MPa", precision=2)
    inject_sample = text_pv(
        "InjectSample", max_length=LONG_STRING, doc="JSON ScatteringSample in the autosampler vial"
    )
    inject = pvproperty(value=0, name="Inject", doc="put 1: inject InjectSample and start the run")
    stop = pvproperty(value=0, name="Stop", doc="put 1: end the run")
    run_time = pvproperty(
        value=30.0, name="RunTime", lower_ctrl_limit=0.1, upper_ctrl_limit=600.0, units="min", precision=2
    )
    run_state = pvproperty(
        value="Idle",
        name="RunState_RBV",
        enum_strings=["Idle", "Running"],
        dtype=ChannelType.ENUM,
        read_only=True,
    )
    elapsed = pvproperty(value=0.0, name="Elapsed_RBV", read_only=True, units="s", precision=1)
    eluted_volume = pvproperty(value=0.0, name="ElutedVolume_RBV", read_only=True, units="mL", precision=4)
    uv280 = pvproperty(
        value=physics.UV_BASELINE_MAU, name="UV:A280_RBV", read_only=True, units="mAU", precision=2
    )
    mals = pvproperty(
        value=physics.MALS_BASELINE_V, name="MALS:LS90_RBV", read_only=True, units="V", precision=5
    )
    refractive_index = pvproperty(value=0.0, name="RI:dRI_RBV", read_only=True, units="RIU", precision=8)
    message = text_pv("Message_RBV", read_only=True)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.sample: ScatteringSample | None = None
        self.running = False

    def eluate(self) -> ScatteringSample | None:
        """What flows through the SAXS capillary right now (None when no run is going)."""
        if not self.running or self.sample is None:
            return None
        return physics.eluate(self.sample, float(self.eluted_volume.value))

    @flow_rate.putter
    async def flow_rate(self, instance, value):
        await self.flow_rate_rbv.write(value)
        await self.pressure.write(physics.column_pressure_mpa(value))
        return value

    @inject_sample.putter
    async def inject_sample(self, instance, value):
        text = json_text(value)
        try:
            self.sample = ScatteringSample.model_validate_json(text)
        except ValidationError as exc:
            raise ValueError(f"InjectSample refused: {validation_message(exc)}") from None
        return text

    @inject.putter
    async def inject(self, instance, value):
        if not value:
            return 0
        if self.sample is None:
            await self.message.write("Inject refused: no InjectSample defined")
            return 0
        if self.running:
            await self.message.write("Inject refused: a run is in progress")
            return 0
        if float(self.flow_rate_rbv.value) <= 0:
            await self.message.write("Inject refused: flow rate is 0")
            return 0
        await self.eluted_volume.write(0.0)
        await self.elapsed.write(0.0)
        self.running = True
        await self.run_state.write("Running")
        await self.message.write(f"Running {self.sample.sample_code}")
        return 0

    @stop.putter
    async def stop(self, instance, value):
        if value and self.running:
            self.running = False
            # The reason first: a client that sees Idle reads why.
            await self.message.write("Run stopped")
            await self.run_state.write("Idle")
        return 0

    @elapsed.startup
    async def elapsed(self, instance, async_lib):
        last = self.parent.clock.now()
        while True:
            # Fast while eluting (the peak must be resolved at 100x); idle, nothing changes.
            await asyncio.sleep(0.02 if self.running else 0.2)
            now = self.parent.clock.now()
            dt, last = now - last, now
            if self.running:
                elapsed = float(instance.value) + dt
                volume = float(self.eluted_volume.value) + float(self.flow_rate_rbv.value) * dt / 60.0
                await instance.write(elapsed)
                await self.eluted_volume.write(volume)
                if elapsed >= float(self.run_time.value) * 60.0:
                    self.running = False
                    await self.message.write("Run finished")
                    await self.run_state.write("Idle")
                sample = self.sample
            else:
                volume, sample = 0.0, None
            for pv, value in (
                (self.uv280, physics.uv280_mau(sample, volume)),
                (self.mals, physics.mals_volts(sample, volume)),
                (self.refractive_index, physics.refractive_index_riu(sample, volume)),
            ):
                if value != pv.value:
                    await pv.write(value)
