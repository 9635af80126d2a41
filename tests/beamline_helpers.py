"""What tests on the simulated beamline share: a SIBYLS RunEngine writing records into a folder, with
plans configured for the test IOC (the first-look tests), and the beam of the physics tests."""

from __future__ import annotations

from pathlib import Path

from bluesky import RunEngine

from sibyls.devices.sim.physics import BeamState
from sibyls.plans import configure_plans
from sibyls.plans.run_engine import setup_run_engine


def sibyls_run_engine(beamline, folder: Path):
    """A RunEngine set up as the profile does it (contract, baseline, records under ``folder``);
    plans write frames to ``folder/data``. Returns the RunEngine and its record writer."""
    configure_plans(beamline, folder / "data")
    RE = RunEngine({}, call_returns_result=True)
    writer = setup_run_engine(RE, beamline, folder / "records", spool_dir=folder / "spool")
    return RE, writer


def beam(contents, **overrides) -> BeamState:
    """SIBYLS's beam on ``contents`` (500 mA, both shutters open, 11 keV), with ``overrides``."""
    values = dict(
        ring_current_ma=500.0,
        photon_shutter_open=True,
        fast_shutter_open=True,
        energy_kev=11.0,
        contents=contents,
    )
    return BeamState(**(values | overrides))
