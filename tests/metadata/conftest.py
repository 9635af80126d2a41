"""Fixtures of the metadata tests: record validators; for the data products (runs, reduction, exports,
replay) one real Tiled server and two real runs (buffer, protein) on the simulated IOC.

Tests of the records without an IOC live in ``records/`` (their own ``beamline`` and ``RE``).
"""

from __future__ import annotations

import pytest
from real_runs import PROJECT, PROTEIN, Recorder

from sibyls.metadata.records_schema import RecordValidator


@pytest.fixture(scope="session")
def xchg_dirs(tmp_path_factory):
    base = tmp_path_factory.mktemp("xchg")
    dirs = {k: base / k for k in ("data", "tiled", "records", "runs", "spool")}
    dirs["data"].mkdir()
    return dirs


@pytest.fixture(scope="session")
def tiled_server(xchg_dirs):
    """A real ``tiled serve catalog`` (SQLite) on a free loopback port, stopped after the session."""
    from sibyls.devices.epics_env import free_tcp_port
    from sibyls.startup.tiled_service import start_tiled

    service = start_tiled(
        free_tcp_port(), xchg_dirs["tiled"], xchg_dirs["tiled"] / "tiled.log", readable=[xchg_dirs["data"]]
    )
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
def xchg_runs(beamline, sim_ioc, tiled_server, xchg_dirs):
    """A buffer and a protein ``saxs_exposure`` run with records, document logs and Tiled subscribed."""
    from bluesky import RunEngine

    from sibyls.devices.sim.control import build_simulation_control
    from sibyls.metadata.runs.doclog import DocumentLog
    from sibyls.metadata.runs.tiled import make_tiled_writer
    from sibyls.plans import configure_plans, saxs_exposure, setup_run_engine

    control = build_simulation_control(sim_ioc.prefix)
    control.time_scale.put(50.0, wait=True)
    configure_plans(beamline, xchg_dirs["data"])
    RE = RunEngine({}, call_returns_result=True)
    writer = setup_run_engine(RE, beamline, xchg_dirs["records"], spool_dir=xchg_dirs["spool"])
    recorder = Recorder()
    RE.subscribe(recorder)
    RE.subscribe(DocumentLog(xchg_dirs["runs"]))
    RE.subscribe(make_tiled_writer(tiled_server.url, tiled_server.api_key, raise_errors=True))
    uids = {}
    try:
        for code, contents, role in (
            ("HEPES_x", {"kind": "buffer"}, "buffer_blank"),
            ("Prot_x", PROTEIN, "sample"),
        ):
            control.put_in_cell({"sample_code": code, **contents})
            (uids[code],) = RE(
                saxs_exposure(
                    code,
                    PROJECT,
                    exposure_time=2.0,
                    num_frames=3,
                    sample_role=role,
                    sample_type=None if role == "buffer_blank" else "protein",
                    concentration_mg_ml=PROTEIN["concentration_mg_ml"] if role == "sample" else None,
                )
            ).run_start_uids
    finally:
        control.put_in_cell(None)
        control.time_scale.put(20.0, wait=True)
    assert writer.flush(60)
    return {"uids": uids, "recorder": recorder, "writer": writer, "dirs": xchg_dirs}


@pytest.fixture(scope="session")
def extended_validator(upstream_schema_dir):
    """Validator for records: upstream lambda-ber schema plus the project's extension (loaded once)."""
    return RecordValidator(upstream_schema_dir)


@pytest.fixture(scope="session")
def upstream_validator(upstream_schema_dir):
    """Validator against the upstream lambda-ber schema alone."""
    return RecordValidator(upstream_schema_dir, with_extension=False)
