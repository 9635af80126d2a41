"""Client for the simulation's own knobs (not beamline hardware): time scale and the cell's contents."""

from __future__ import annotations

import json

from ophyd import Component as Cpt
from ophyd import Device, EpicsSignal, EpicsSignalRO, Kind


class SimulationControl(Device):
    """``time_scale`` speeds the simulated beamline up; ``put_in_cell`` loads a sample by hand."""

    time_scale = Cpt(EpicsSignal, "TimeScale", limits=True, kind=Kind.config)
    cell_sample = Cpt(EpicsSignal, "CellSample", string=True, auto_monitor=False, kind=Kind.omitted)
    cell_contents = Cpt(EpicsSignalRO, "CellContents_RBV", string=True, kind=Kind.normal, auto_monitor=False)

    def put_in_cell(self, sample: dict | None) -> None:
        """Fill the cell with ``sample`` (a ScatteringSample as a dict); None empties and dries it."""
        self.cell_sample.put(json.dumps(sample), wait=True)
        expected = sample["sample_code"] if sample is not None else "empty"
        if self.cell_contents.get(use_monitor=False) != expected:
            raise RuntimeError(f"{self.name}: the simulation did not accept the sample {expected!r}")


def build_simulation_control(prefix: str, timeout: float = 10.0) -> SimulationControl:
    """Connect to the simulation knobs of the IOC serving ``prefix``."""
    control = SimulationControl(f"{prefix}Sim:", name="sim")
    control.wait_for_connection(timeout=timeout)
    return control
