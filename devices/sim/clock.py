"""The simulation clock: simulated seconds that run ``Sim:TimeScale`` times faster than wall time."""

from __future__ import annotations

import asyncio
import time


class SimulationClock:
    """Simulated time that runs ``scale`` times faster than the wall clock."""

    def __init__(self, scale: float = 1.0) -> None:
        self._scale = scale
        self._sim_at_change = 0.0
        self._wall_at_change = time.monotonic()

    @property
    def scale(self) -> float:
        return self._scale

    @scale.setter
    def scale(self, value: float) -> None:
        self._sim_at_change = self.now()
        self._wall_at_change = time.monotonic()
        self._scale = value

    def now(self) -> float:
        """Simulated seconds since the IOC started."""
        return self._sim_at_change + (time.monotonic() - self._wall_at_change) * self._scale

    async def sleep(self, sim_seconds: float) -> None:
        """Wait for ``sim_seconds`` of simulated time."""
        if sim_seconds > 0:
            await asyncio.sleep(sim_seconds / self._scale)
