"""What the first-look tests on the simulated beamline share: a SIBYLS RunEngine writing records
into a folder, with plans configured for the test IOC."""

from __future__ import annotations

from pathlib import Path

from bluesky import RunEngine

from sibyls.plans import configure_plans
from sibyls.plans.run_engine import setup_run_engine


def sibyls_run_engine(beamline, folder: Path):
    """A RunEngine set up as the profile does it (contract, baseline, records under ``folder``);
    plans write frames to ``folder/data``. Returns the RunEngine and its record writer."""
    configure_plans(beamline, folder / "data")
    RE = RunEngine({}, call_returns_result=True)
    writer = setup_run_engine(RE, beamline, folder / "records", spool_dir=folder / "spool")
    return RE, writer
