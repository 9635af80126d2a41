"""Fixtures for tests against the whole stack: one stack per test module, a manager client."""

from __future__ import annotations

import pytest

from sibyls.startup.stack import down, manager_api, up


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """The stack as ``sibyls up`` starts it (real services on free loopback ports), for one module."""
    var_dir = tmp_path_factory.mktemp("stack")
    state = up(var_dir, ioc_prefix="STK:", time_scale=50.0, binning=8)
    try:
        yield state
    finally:
        down(var_dir)


@pytest.fixture
def api(stack):
    """A bluesky-queueserver-api client of the stack's manager (with its 0MQ public key), queue cleared."""
    client = manager_api(stack, timeout=10)
    client.queue_clear()
    yield client
    client.close()
