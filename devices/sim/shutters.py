"""``PShutter:`` and ``FShutter:``: the photon and fast shutters (Open command, Status readback)."""

from __future__ import annotations

from caproto import ChannelType
from caproto.server import PVGroup, pvproperty

SHUTTER_DELAY_S = {"photon": 0.5, "fast": 0.005}


class ShutterGroup(PVGroup):
    """A shutter: ``Open`` command (Close/Open; put-completion waits for the blades) and status."""

    command = pvproperty(value="Close", name="Open", enum_strings=["Close", "Open"], dtype=ChannelType.ENUM)
    status = pvproperty(
        value="Closed",
        name="Status_RBV",
        enum_strings=["Closed", "Open", "Moving"],
        dtype=ChannelType.ENUM,
        read_only=True,
    )

    def __init__(self, *args, delay_s: float = 0.1, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.delay_s = delay_s

    @property
    def is_open(self) -> bool:
        return self.status.value == "Open"

    @command.putter
    async def command(self, instance, value):
        target = "Open" if value == "Open" else "Closed"
        if self.status.value != target:
            await self.status.write("Moving")
            await self.parent.clock.sleep(self.delay_s)
            await self.status.write(target)
        return value
