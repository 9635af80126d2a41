"""``Ring:`` and ``Mono:``: the ALS storage ring current and the monochromator energy/wavelength."""

from __future__ import annotations

import asyncio

import numpy as np
from caproto.server import PVGroup, pvproperty

from sibyls.devices.geometry import energy_to_wavelength


class RingGroup(PVGroup):
    """ALS storage ring in top-off: ~500 mA with a small sawtooth and noise."""

    current = pvproperty(value=500.0, name="Current_RBV", read_only=True, units="mA", precision=2)

    @current.startup
    async def current(self, instance, async_lib):
        rng = np.random.default_rng()
        while True:
            phase = (self.parent.clock.now() % 30.0) / 30.0  # one top-off injection every 30 s
            value = 500.3 - 0.6 * phase + rng.normal(0.0, 0.03)
            await instance.write(value)
            await asyncio.sleep(0.5)


class MonoGroup(PVGroup):
    """Double-multilayer monochromator: energy setpoint, energy and wavelength readbacks."""

    energy = pvproperty(
        value=11.0, name="Energy", lower_ctrl_limit=6.0, upper_ctrl_limit=20.0, units="keV", precision=4
    )
    energy_rbv = pvproperty(value=11.0, name="Energy_RBV", read_only=True, units="keV", precision=4)
    wavelength_rbv = pvproperty(
        value=energy_to_wavelength(11.0), name="Wavelength_RBV", read_only=True, units="Å", precision=5
    )

    @energy.putter
    async def energy(self, instance, value):
        await self.parent.clock.sleep(1.0)  # mono move
        await self.energy_rbv.write(value)
        await self.wavelength_rbv.write(energy_to_wavelength(value))
        return value
