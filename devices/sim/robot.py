"""``Robot:``: the HT-SAXS robot that loads a well of a known plate into the cell, cleans and dries it.

Plates come from the command line, from ``Robot:PlateDefinition`` puts and from the plate
registry file shared with the queue gate (followed every second).
"""

from __future__ import annotations

import asyncio
import json
import logging

from caproto import ChannelType
from caproto.server import PVGroup, pvproperty
from pydantic import ValidationError

from sibyls.devices.sim import physics
from sibyls.devices.sim.physics import PlateDefinition
from sibyls.devices.sim.pvs import LONG_STRING, json_text, text_pv, validation_message
from sibyls.metadata.plate_registry import PlateRegistry

logger = logging.getLogger("sibyls.ioc")

ROBOT_STATES = ["idle", "loading", "loaded", "cleaning", "drying", "fault"]
# Nominal durations (simulated seconds) of the HT robot's commands.
ROBOT_LOAD_S = 15.0
ROBOT_CLEAN_S = 20.0
ROBOT_DRY_S = 10.0
#: Seconds between looks at the plate registry file (it is shared with the queue gate).
REGISTRY_POLL_S = 1.0


class RobotGroup(PVGroup):
    """HT-SAXS robot: loads a well of a known plate into the cell, cleans and dries the cell."""

    plate_definition = text_pv(
        "PlateDefinition", max_length=LONG_STRING, doc="put a JSON PlateDefinition to register a plate"
    )
    known_plates = text_pv("KnownPlates_RBV", value="[]", max_length=LONG_STRING, read_only=True)
    plate_id = pvproperty(value="", name="PlateId", dtype=ChannelType.STRING)
    well = pvproperty(value="A1", name="Well", dtype=ChannelType.STRING)
    load = pvproperty(value=0, name="Load", doc="put 1: load Well of PlateId into the cell")
    clean = pvproperty(value=0, name="Clean", doc="put 1: flush the cell")
    dry = pvproperty(value=0, name="Dry", doc="put 1: dry the cell with air")
    state = pvproperty(
        value="idle", name="State_RBV", enum_strings=ROBOT_STATES, dtype=ChannelType.ENUM, read_only=True
    )
    loaded_well = pvproperty(value="", name="LoadedWell_RBV", dtype=ChannelType.STRING, read_only=True)
    loaded_sample = pvproperty(value="", name="LoadedSample_RBV", dtype=ChannelType.STRING, read_only=True)
    message = text_pv("Message_RBV", read_only=True)
    command_refused = pvproperty(
        value=0, name="CommandRefused_RBV", read_only=True, doc="1 when the last command was refused"
    )

    def __init__(self, *args, plates: list[PlateDefinition] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.plates: dict[str, PlateDefinition] = {p.plate_id: p for p in plates or []}
        self.registry: PlateRegistry | None = None  # the plate registry file shared with the queue gate
        self._busy = False

    def load_registry(self) -> None:
        """Take in every plate of the registry file (it may have changed since the last look)."""
        if self.registry is None:
            return
        for plate_id, definition in self.registry.definitions().items():
            if plate_id not in self.plates or self.plates[plate_id].model_dump(mode="json") != definition:
                try:
                    self.plates[plate_id] = PlateDefinition.model_validate(definition)
                except ValidationError as exc:
                    logger.warning("plate registry: %s refused: %s", plate_id, validation_message(exc))

    @known_plates.startup
    async def known_plates(self, instance, async_lib):
        while True:  # the registry file is shared: follow its changes
            self.load_registry()
            known = json.dumps(sorted(self.plates))
            if known != instance.value:
                await instance.write(known)
            await asyncio.sleep(REGISTRY_POLL_S)

    @plate_definition.putter
    async def plate_definition(self, instance, value):
        text = json_text(value)
        try:
            plate = PlateDefinition.model_validate_json(text)
        except ValidationError as exc:
            raise ValueError(f"PlateDefinition refused: {validation_message(exc)}") from None
        if self._busy or (self.state.value != "idle" and self.plate_id.value == plate.plate_id):
            raise ValueError(f"plate {plate.plate_id} is in use; redefine it when the robot is idle")
        self.plates[plate.plate_id] = plate
        if self.registry is not None:
            self.registry.add(plate.model_dump(mode="json"))
        await self.known_plates.write(json.dumps(sorted(self.plates)))
        return text

    @plate_id.putter
    async def plate_id(self, instance, value):
        self.load_registry()
        if value not in self.plates:
            raise ValueError(f"unknown plate {value!r}; known plates: {sorted(self.plates)}")
        return value

    @well.putter
    async def well(self, instance, value):
        if not physics.WELL_PATTERN.match(value):
            raise ValueError(f"well {value!r} is not a 96-well position A1-H12")
        return value

    async def _refuse(self, reason: str) -> None:
        await self.message.write(reason)
        await self.command_refused.write(1)

    async def _run(
        self, command: str, allowed: tuple[str, ...], busy_state: str, seconds: float, after: str
    ) -> bool:
        if self._busy or self.state.value not in allowed:
            await self._refuse(f"{command} refused: robot is {self.state.value}")
            return False
        await self.command_refused.write(0)
        self._busy = True
        try:
            await self.state.write(busy_state)
            await self.message.write(f"{command} ...")
            await self.parent.clock.sleep(seconds)
            await self.state.write(after)
            await self.message.write(f"{command} done")
        finally:
            self._busy = False
        return True

    @load.putter
    async def load(self, instance, value):
        if not value:
            return 0
        plate = self.plates.get(self.plate_id.value)
        well = self.well.value
        if plate is None:
            await self._refuse("Load refused: no plate selected (set PlateId)")
            return 0
        sample = plate.wells.get(well)
        if sample is None:
            await self._refuse(f"Load refused: well {well} of plate {plate.plate_id} is empty")
            return 0
        if await self._run("Load", ("idle",), "loading", ROBOT_LOAD_S, "loaded"):
            await self.loaded_well.write(well)
            await self.loaded_sample.write(sample.sample_code)
            await self.parent.set_cell_contents(sample)
        return 0

    @clean.putter
    async def clean(self, instance, value):
        if value and await self._run("Clean", ("idle", "loaded", "fault"), "cleaning", ROBOT_CLEAN_S, "idle"):
            await self.loaded_well.write("")
            await self.loaded_sample.write("")
            await self.parent.set_cell_contents(None)
        return 0

    @dry.putter
    async def dry(self, instance, value):
        if value:
            await self._run("Dry", ("idle",), "drying", ROBOT_DRY_S, "idle")
        return 0
