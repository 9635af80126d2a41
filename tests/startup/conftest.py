"""Fixtures for tests against the whole stack: one stack per test module, a manager client."""

from __future__ import annotations

import pytest
from stack_helpers import running_stack

from sibyls.startup.stack import manager_api


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """The stack as ``sibyls up`` starts it (real services on free loopback ports), for one module."""
    with running_stack(tmp_path_factory.mktemp("stack"), "STK:") as state:
        yield state


@pytest.fixture
def api(stack):
    """A bluesky-queueserver-api client of the stack's manager (with its 0MQ public key), queue cleared."""
    client = manager_api(stack, timeout=10)
    client.queue_clear()
    yield client
    client.close()
