"""``Cell:Temp:``: the sample-cell Peltier controller (setpoint and a readback approaching it)."""

from __future__ import annotations

import asyncio
import math

import numpy as np
from caproto.server import PVGroup, pvproperty

from sibyls.devices.sim.pvs import axis_limits

CELL_TEMPERATURE_TAU_S = 20.0


class TemperatureGroup(PVGroup):
    """Sample-cell Peltier controller: setpoint 4–60 °C, readback approaching it (τ ≈ 20 s)."""

    setpoint = pvproperty(
        value=20.0,
        name="SP",
        lower_ctrl_limit=axis_limits("cell_temperature")[0],
        upper_ctrl_limit=axis_limits("cell_temperature")[1],
        units="degC",
        precision=2,
    )
    readback = pvproperty(value=20.0, name="RBV", read_only=True, units="degC", precision=3)

    @readback.startup
    async def readback(self, instance, async_lib):
        rng = np.random.default_rng()
        temperature = float(instance.value)
        last = self.parent.clock.now()
        while True:
            await asyncio.sleep(0.1)
            now = self.parent.clock.now()
            dt, last = now - last, now
            target = float(self.setpoint.value)
            temperature = target + (temperature - target) * math.exp(-dt / CELL_TEMPERATURE_TAU_S)
            await instance.write(temperature + rng.normal(0.0, 0.005))
