"""Shared pytest fixtures: the lambda-ber reference schema and validators, the simulated SIBYLS IOC,
for the data products (runs, reduction, exports, replay) one real Tiled server and two real runs
(buffer, protein) on the simulated IOC, and one whole stack for the session (``stack``, ``api``).

A test module that uses any of the fixtures that start processes (``SLOW_FIXTURES``) carries
``pytestmark = pytest.mark.slow``; collection fails naming the modules that do not, so
``pytest -m "not slow"`` stays the quick check.

Helpers shared by several folders live beside this file (``real_runs``, ``stack_helpers``,
``beamline_helpers``): pytest puts this folder on the import path, so they are imported by name.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from real_runs import PROJECT, PROTEIN, Recorder
from stack_helpers import running_stack

from sibyls.devices.epics_env import apply_loopback_ca_env, free_ca_port_pair
from sibyls.metadata.records_schema import RecordValidator

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_SCHEMA_DIR = REPO_ROOT.parent / "shared" / "reference" / "lambda-ber-schema" / "schema"

# Channel Access must be configured before the first CA client starts in this process, so the
# port is chosen when the test session starts; every session gets its own.
CA_PORT = free_ca_port_pair()
CA_ENV = apply_loopback_ca_env(CA_PORT)

#: Fixtures that start an IOC, a stack, Tiled, a server or a browser: their tests are slow.
SLOW_FIXTURES = frozenset(
    {"sim_ioc", "beamline", "tiled_server", "xchg_runs", "stack", "browser", "redis_addr", "pg_database"}
)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Refuse a test that starts processes (through any fixture, also indirectly) without the slow mark."""
    unmarked = sorted(
        {
            item.nodeid.split("::")[0]
            for item in items
            if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())) and not item.get_closest_marker("slow")
        }
    )
    if unmarked:
        raise pytest.UsageError(
            "these test modules start an IOC, a stack, Tiled, a server or a browser but lack "
            "`pytestmark = pytest.mark.slow`: " + ", ".join(unmarked)
        )


@pytest.fixture(scope="session")
def upstream_schema_dir() -> Path:
    """The lambda-ber-schema reference copy in ../shared (skipped when absent, unless CI requires it)."""
    if not (SHARED_SCHEMA_DIR / "lambda_ber_schema.yaml").is_file():
        reason = f"lambda-ber reference schema not found at {SHARED_SCHEMA_DIR}"
        if os.environ.get("SIBYLS_REQUIRE_SHARED"):
            pytest.fail(reason + " (SIBYLS_REQUIRE_SHARED is set)")
        pytest.skip(reason)
    return SHARED_SCHEMA_DIR


@pytest.fixture(scope="session")
def sim_ioc(tmp_path_factory):
    """The project's caproto IOC on a free loopback port (binned 4x4 frames), ended after the session."""
    from sibyls.devices.sim.launcher import start_ioc

    prefix = f"T{uuid.uuid4().hex[:6]}:"
    service = start_ioc(prefix, CA_PORT, tmp_path_factory.mktemp("ioc") / "ioc.log", binning=4)
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="module")
def simulation(sim_ioc):
    """The simulated IOC's own knobs (time scale, the cell's contents) at 50x for a module, back to the
    scale it had afterwards (``tests/devices`` has its own, without the speed-up)."""
    from sibyls.devices.sim.control import build_simulation_control

    control = build_simulation_control(sim_ioc.prefix)
    before = control.time_scale.get()
    control.time_scale.put(50.0, wait=True)
    yield control
    control.time_scale.put(before, wait=True)


@pytest.fixture(scope="session")
def beamline(sim_ioc):
    """The SIBYLS ophyd devices connected to the test IOC over Channel Access."""
    from sibyls.devices.beamline import build_beamline

    return build_beamline(sim_ioc.prefix, timeout=15)


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
    from sibyls.startup.stack.tiled import start_tiled

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


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    """The stack as ``sibyls up`` starts it (real services on free loopback ports, time scale 50), one
    for the whole session: shared by every test that does not need a stack of its own (the fault tests
    and PostgreSQL start their own; the plan matrix and the first look's end-to-end tests use this
    one). A test that stops a service starts it again before it ends (``up`` restarts what is down)."""
    with running_stack(tmp_path_factory.mktemp("stack"), "STK:") as state:
        yield state


@pytest.fixture(scope="module")
def tokens(stack):
    """Login tokens of the demo's people on the session stack (``stack_helpers.PEOPLE``), per module."""
    from stack_helpers import PEOPLE

    from sibyls.startup.stack import http_login

    return {name: http_login(stack, name) for name in PEOPLE}


@pytest.fixture
def api(stack):
    """A bluesky-queueserver-api client of the stack's manager (with its 0MQ public key), queue cleared."""
    from sibyls.startup.stack import manager_api

    client = manager_api(stack, timeout=10)
    client.queue_clear()
    yield client
    client.close()
