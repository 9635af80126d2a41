"""Start, health-check and stop the services of the SIBYLS stack.

The process plumbing and the IOC launcher live in :mod:`sibyls.devices.sim.launcher` (the tests
start an IOC without importing startup); they are re-exported here for the stack's modules.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from sibyls.devices.sim.launcher import (
    DEFAULT_LOG_BACKUPS,
    DEFAULT_LOG_MAX_BYTES,
    IOCService,
    ManagedProcess,
    log_sinks,
    spawn_service,
    start_ioc,
)
from sibyls.startup.config import ProfileConfig

__all__ = [
    "DEFAULT_LOG_BACKUPS",
    "DEFAULT_LOG_MAX_BYTES",
    "IOCService",
    "ManagedProcess",
    "child_env",
    "console_script",
    "log_sinks",
    "spawn_service",
    "start_ioc",
]


def child_env() -> dict[str, str]:
    """This process's environment for a service, without queueserver or SIBYLS settings or keys from
    the calling shell (the stack sets its services' own, e.g. a ``QSERVER_ZMQ_PRIVATE_KEY_FOR_SERVER``
    never reaches the manager or its RE worker, nor the Tiled database's password any service)."""
    own = ("QSERVER_", ProfileConfig.model_config["env_prefix"])
    return {k: v for k, v in os.environ.items() if not k.startswith(own)}


def console_script(name: str) -> str:
    """Path of an installed console script (``start-re-manager``...) of this Python environment."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} is not installed in this environment ({sys.executable})")
    return found
