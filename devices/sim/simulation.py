"""``Sim:`` PVs: the simulation's own knobs (time scale, a sample put in the cell by hand).

Not beamline hardware: a user speeds the simulated beamline up with ``Sim:TimeScale`` and fills
the cell without the robot with ``Sim:CellSample``. The ophyd client is
:mod:`sibyls.devices.sim.control`.
"""

from __future__ import annotations

from caproto import ChannelType
from caproto.server import PVGroup, pvproperty
from pydantic import ValidationError

from sibyls.devices.sim.physics import ScatteringSample
from sibyls.devices.sim.pvs import LONG_STRING, json_text, text_pv, validation_message


class SimControlGroup(PVGroup):
    """Simulation knobs: time scale, and the sample put in the cell by hand (not by the robot)."""

    time_scale = pvproperty(
        value=1.0,
        name="TimeScale",
        lower_ctrl_limit=0.01,
        upper_ctrl_limit=10000.0,
        doc="simulated seconds per wall-clock second",
    )
    cell_sample = text_pv(
        "CellSample",
        max_length=LONG_STRING,
        doc="JSON ScatteringSample put in the cell by hand; null empties the cell",
    )
    cell_dose = pvproperty(
        value=0.0,
        name="CellDose_RBV",
        read_only=True,
        units="Gy",
        precision=0,
        doc="X-ray dose the cell's contents absorbed since the cell was filled (exposures)",
    )
    cell_contents = pvproperty(
        value="empty",
        name="CellContents_RBV",
        dtype=ChannelType.STRING,
        read_only=True,
        doc="sample_code of what is in the cell (empty when dry)",
    )

    @time_scale.putter
    async def time_scale(self, instance, value):
        self.parent.clock.scale = float(value)
        return value

    @time_scale.startup
    async def time_scale(self, instance, async_lib):
        await instance.write(self.parent.clock.scale)

    @cell_sample.putter
    async def cell_sample(self, instance, value):
        text = json_text(value).strip()
        if text in ("", "null"):
            await self.parent.set_cell_contents(None)
            return "null"  # caproto cannot store an empty char waveform
        try:
            sample = ScatteringSample.model_validate_json(text)
        except ValidationError as exc:
            raise ValueError(f"CellSample refused: {validation_message(exc)}") from None
        await self.parent.set_cell_contents(sample)
        return text
