"""``I0:`` and ``BSDiode:``: scaler channels counting for a preset time, with a live rate."""

from __future__ import annotations

import asyncio

import numpy as np
from caproto.server import PVGroup, pvproperty

from sibyls.devices.sim import physics
from sibyls.devices.sim.physics import BeamState


class CounterGroup(PVGroup):
    """A scaler channel (ion chamber or beamstop diode): count for a preset time, or read the rate."""

    preset_time = pvproperty(
        value=1.0, name="PresetTime", lower_ctrl_limit=1e-4, upper_ctrl_limit=3600.0, units="s", precision=4
    )
    count = pvproperty(value=0, name="Count", doc="put 1 to count for PresetTime (put-completion waits)")
    counts = pvproperty(value=0.0, name="Counts_RBV", read_only=True, units="counts", precision=0)
    rate = pvproperty(value=0.0, name="Rate_RBV", read_only=True, units="counts/s", precision=0)

    def __init__(self, *args, channel: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.channel = channel
        self.rng = np.random.default_rng()

    def _counts(self, state: BeamState, seconds: float) -> float:
        if self.channel == "i0":
            return physics.i0_counts(state, seconds, self.rng)
        return physics.bs_diode_counts(state, seconds, self.rng)

    @count.putter
    async def count(self, instance, value):
        if not value:
            return 0
        preset = float(self.preset_time.value)
        # Sample the beam every ~20 ms of wall time (at most 10 times): short counts take one look.
        slices = max(1, min(10, int(preset / self.parent.clock.scale / 0.02)))
        total = 0.0
        for _ in range(slices):  # integrate the beam as it is while counting
            await self.parent.clock.sleep(preset / slices)
            total += self._counts(self.parent.beam_state(), preset / slices)
        await self.counts.write(total)
        return 0

    @rate.startup
    async def rate(self, instance, async_lib):
        while True:
            rate = self._counts(self.parent.beam_state(), 1.0)
            if rate or instance.value:  # no monitor traffic while the beam is off
                await instance.write(rate)
            await asyncio.sleep(0.5)
