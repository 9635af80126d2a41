"""The simulated SIBYLS beamline (ALS 12.3.1) as one caproto IOC, and the function that serves it.

A user gets every PV of the beamline under one prefix (``SIBYLS:`` by default): ``Sim:``,
``Ring:``, ``Mono:``, ``PShutter:``, ``FShutter:``, ``I0:``, ``BSDiode:``, ``Pilatus:``,
``SampleStage:X/Y``, ``Beamstop:X/Y``, ``Cell:Temp:``, ``Robot:`` and ``SEC:``. Each is a small
PVGroup in its own module, composed here with ``SubGroup`` (caproto's ``ioc_examples`` style);
the physics lives in :mod:`sibyls.devices.sim.physics`. Durations are simulated durations:
``Sim:TimeScale`` = 50 makes a robot load, an elution, a motor move or an exposure take 1/50 of
its real wall time (counts and file contents do not change).

:class:`SibylsIOC` is what the groups share: the simulation clock, the cell's contents and the
beam as every detector sees it. :func:`run_ioc` serves it (the ``sibyls ioc`` command calls it;
:mod:`sibyls.devices.sim.launcher` starts that command as a process).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from pathlib import Path

from caproto.asyncio import server as caproto_asyncio_server
from caproto.server import PVGroup, SubGroup

from sibyls.devices.epics_env import apply_loopback_ca_env
from sibyls.devices.sim import physics
from sibyls.devices.sim.clock import SimulationClock
from sibyls.devices.sim.counters import CounterGroup
from sibyls.devices.sim.motors import MotorGroup
from sibyls.devices.sim.physics import BeamState, PlateDefinition, ScatteringSample
from sibyls.devices.sim.pilatus import PilatusGroup
from sibyls.devices.sim.pvs import axis_limits
from sibyls.devices.sim.robot import RobotGroup
from sibyls.devices.sim.sec import SECGroup
from sibyls.devices.sim.shutters import SHUTTER_DELAY_S, ShutterGroup
from sibyls.devices.sim.simulation import SimControlGroup
from sibyls.devices.sim.source import MonoGroup, RingGroup
from sibyls.devices.sim.temperature import TemperatureGroup
from sibyls.metadata.plate_registry import PlateRegistry

DEFAULT_PREFIX = "SIBYLS:"


class SibylsIOC(PVGroup):
    """The simulated SIBYLS beamline (ALS 12.3.1).

    The groups reach what they share through their parent: ``clock`` (simulated time),
    :meth:`beam_state` (what a detector sees now), :meth:`set_cell_contents` (the robot or a
    user fills the cell), :meth:`beamstop_offset_mm` and ``mono`` (for a frame file's geometry).
    """

    sim = SubGroup(SimControlGroup, prefix="Sim:")
    ring = SubGroup(RingGroup, prefix="Ring:")
    mono = SubGroup(MonoGroup, prefix="Mono:")
    photon_shutter = SubGroup(ShutterGroup, prefix="PShutter:", delay_s=SHUTTER_DELAY_S["photon"])
    fast_shutter = SubGroup(ShutterGroup, prefix="FShutter:", delay_s=SHUTTER_DELAY_S["fast"])
    i0 = SubGroup(CounterGroup, prefix="I0:", channel="i0")
    bs_diode = SubGroup(CounterGroup, prefix="BSDiode:", channel="bs_diode")
    pilatus = SubGroup(PilatusGroup, prefix="Pilatus:")
    sample_x = SubGroup(
        MotorGroup,
        prefix="SampleStage:X",
        velocity=2.0,
        limits=axis_limits("sample_stage.x"),
        description="sample stage X",
    )
    sample_y = SubGroup(
        MotorGroup,
        prefix="SampleStage:Y",
        velocity=2.0,
        limits=axis_limits("sample_stage.y"),
        description="sample stage Y",
    )
    beamstop_x = SubGroup(
        MotorGroup,
        prefix="Beamstop:X",
        velocity=1.0,
        limits=axis_limits("beamstop.x"),
        description="beamstop X",
    )
    beamstop_y = SubGroup(
        MotorGroup,
        prefix="Beamstop:Y",
        velocity=1.0,
        limits=axis_limits("beamstop.y"),
        description="beamstop Y",
    )
    cell_temperature = SubGroup(TemperatureGroup, prefix="Cell:Temp:")
    robot = SubGroup(RobotGroup, prefix="Robot:")
    sec = SubGroup(SECGroup, prefix="SEC:")

    def __init__(
        self,
        *args,
        time_scale: float = 1.0,
        binning: int = 1,
        plates: list[PlateDefinition] | None = None,
        plate_registry: Path | str | None = None,
        **kwargs,
    ) -> None:
        self.clock = SimulationClock(time_scale)
        self._cell_contents: ScatteringSample | None = None
        self._cell_dose_gy = 0.0  # absorbed by the cell's contents since it was filled
        super().__init__(*args, **kwargs)
        self.pilatus._initial_binning = binning
        self.robot.plates = {p.plate_id: p for p in plates or []}
        if plate_registry is not None:
            self.robot.registry = PlateRegistry(plate_registry)
            for plate in plates or []:  # plates given on the command line become known to all
                self.robot.registry.add(plate.model_dump(mode="json"))

    async def set_cell_contents(self, sample: ScatteringSample | None) -> None:
        """Put ``sample`` in the SAXS capillary (None: clean and dry); fresh liquid has no dose."""
        self._cell_contents = sample
        self._cell_dose_gy = 0.0
        await self.sim.cell_contents.write(sample.sample_code if sample is not None else "empty")
        await self.sim.cell_dose.write(0.0)

    async def add_dose(self, state: BeamState, seconds: float) -> None:
        """The cell's contents absorbed ``seconds`` of the beam ``state`` describes (an exposure).

        A flowing SEC eluate is replaced continuously and collects no dose."""
        if self.sec.eluate() is not None or state.contents is not self._cell_contents:
            return
        self._cell_dose_gy += state.dose_rate_gy_s * seconds
        await self.sim.cell_dose.write(self._cell_dose_gy)

    def beamstop_offset_mm(self) -> tuple[float, float]:
        """Where the beamstop is (x, y) relative to its nominal position, in mm."""
        nominal = physics.BEAMSTOP_NOMINAL_MM
        return (
            float(self.beamstop_x.motor.field_inst.user_readback_value.value) - nominal[0],
            float(self.beamstop_y.motor.field_inst.user_readback_value.value) - nominal[1],
        )

    def beam_state(self) -> BeamState:
        """Everything a detector or counter needs to know about the beam right now."""
        eluate = self.sec.eluate()
        return BeamState(
            dose_gy=0.0 if eluate is not None else self._cell_dose_gy,
            ring_current_ma=float(self.ring.current.value),
            photon_shutter_open=self.photon_shutter.is_open,
            fast_shutter_open=self.fast_shutter.is_open,
            energy_kev=float(self.mono.energy_rbv.value),
            contents=eluate if eluate is not None else self._cell_contents,
            sample_offset_mm=float(self.sample_x.motor.field_inst.user_readback_value.value),
            beamstop_offset_mm=self.beamstop_offset_mm(),
        )


def load_plates(paths: list[str]) -> list[PlateDefinition]:
    """Read plate definitions (JSON or YAML files) for the robot."""
    import yaml

    plates = []
    for path in paths:
        text = Path(path).read_text()
        data = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
        plates.append(PlateDefinition.model_validate(data))
    return plates


def run_ioc(
    prefix: str = DEFAULT_PREFIX,
    port: int = 5064,
    time_scale: float = 1.0,
    binning: int = 1,
    plates: list[PlateDefinition] | None = None,
    interfaces: tuple[str, ...] = ("127.0.0.1",),
    plate_registry: Path | str | None = None,
) -> None:
    """Serve the simulated beamline until interrupted."""
    apply_loopback_ca_env(port)
    ioc = SibylsIOC(
        prefix=prefix,
        time_scale=time_scale,
        binning=binning,
        plates=plates,
        plate_registry=plate_registry,
    )

    async def serve() -> None:
        await LowLatencyContext(ioc.pvdb, list(interfaces)).run(log_pv_names=False)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


class LowLatencyContext(caproto_asyncio_server.Context):
    """caproto's asyncio server with Nagle's algorithm off (TCP_NODELAY) on client connections.

    caproto 1.3.0 creates its listening sockets with protocol number 0, so asyncio's own
    TCP_NODELAY (set only on sockets whose ``proto`` is ``IPPROTO_TCP``) never applies. With Nagle
    on and the client's delayed ACKs, about half of the put-completion round trips wait ~40 ms
    (pyepics puts on loopback: mean 21 ms, max 49 ms; with TCP_NODELAY mean 0.45 ms), which would
    dominate a frame of a few milliseconds. caproto has no option for it, so the option is set on
    each listening socket, which the accepted client sockets inherit (Linux), in the Context's
    public per-socket step ``server_accept_loop``; no private caproto name is used.
    """

    async def server_accept_loop(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await super().server_accept_loop(sock)
