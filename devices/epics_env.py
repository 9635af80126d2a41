"""EPICS Channel Access environment that keeps all traffic on the loopback interface."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator

# Detector plate definitions and long strings travel as char waveforms; allow them through.
MAX_ARRAY_BYTES = 2_000_000


def free_tcp_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def free_ca_port_pair(host: str = "127.0.0.1") -> int:
    """Return a port P such that P (server, TCP+UDP) and P+1 (repeater, UDP) are free."""
    for _ in range(200):
        port = free_tcp_port(host)
        try:
            with (
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp,
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp_repeater,
                socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp_repeater,
            ):
                udp.bind((host, port))
                udp_repeater.bind((host, port + 1))
                tcp_repeater.bind((host, port + 1))
        except OSError:
            continue
        return port
    raise RuntimeError("no free pair of Channel Access ports found on loopback")


def loopback_ca_env(server_port: int) -> dict[str, str]:
    """Environment variables a CA server or client needs to talk only over 127.0.0.1:``server_port``."""
    return {
        "EPICS_CA_ADDR_LIST": "127.0.0.1",
        "EPICS_CA_AUTO_ADDR_LIST": "NO",
        "EPICS_CA_SERVER_PORT": str(server_port),
        "EPICS_CA_REPEATER_PORT": str(server_port + 1),
        "EPICS_CAS_INTF_ADDR_LIST": "127.0.0.1",
        # No repeater runs on loopback, so beacons would only bounce: send none.
        "EPICS_CAS_BEACON_ADDR_LIST": "",
        "EPICS_CAS_AUTO_BEACON_ADDR_LIST": "NO",
        "EPICS_CA_MAX_ARRAY_BYTES": str(MAX_ARRAY_BYTES),
    }


def apply_loopback_ca_env(server_port: int) -> dict[str, str]:
    """Set the loopback CA environment in this process.

    Call it before ``import ophyd``: ophyd starts its Channel Access context on import, and
    that context keeps the environment it saw then.
    """
    env = loopback_ca_env(server_port)
    os.environ.update(env)
    return env


@contextlib.contextmanager
def loopback_ca_environment(server_port: int) -> Iterator[dict[str, str]]:
    """This process's environment pointed at 127.0.0.1:``server_port`` for the block, then restored.

    For Channel Access clients created inside the block (caproto's sync client reads the
    environment per call); ophyd's context, already started, is not affected.
    """
    env = loopback_ca_env(server_port)
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield env
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
