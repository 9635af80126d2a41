"""Shared pytest fixtures: the lambda-ber reference schema and the simulated SIBYLS IOC."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from sibyls.devices.epics_env import apply_loopback_ca_env, free_ca_port_pair

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_SCHEMA_DIR = REPO_ROOT.parent / "shared" / "reference" / "lambda-ber-schema" / "schema"

# Channel Access must be configured before the first CA client starts in this process, so the
# port is chosen when the test session starts; every session gets its own.
CA_PORT = free_ca_port_pair()
CA_ENV = apply_loopback_ca_env(CA_PORT)


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


@pytest.fixture(scope="session")
def beamline(sim_ioc):
    """The SIBYLS ophyd devices connected to the test IOC over Channel Access."""
    from sibyls.devices.beamline import build_beamline

    return build_beamline(sim_ioc.prefix, timeout=15)
