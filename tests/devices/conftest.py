"""Fixtures of the device tests: the simulation's own knobs on the session IOC."""

from __future__ import annotations

import pytest

from sibyls.devices.sim.control import build_simulation_control


@pytest.fixture(scope="module")
def simulation(sim_ioc):
    """The simulation's knobs at the scale each test sets (``time_scale``), not tests/conftest.py's 50x."""
    return build_simulation_control(sim_ioc.prefix)


@pytest.fixture
def time_scale(simulation):
    """Run a test at a chosen speed-up; back to 20x afterwards."""

    def set_scale(scale: float) -> None:
        simulation.time_scale.put(scale, wait=True)

    set_scale(20.0)
    yield set_scale
    set_scale(20.0)
