"""A real service (Redis) writing through its log sink: the log rotates, the sink outlives signals
and ends with the service, and the service carries on when its sink is gone."""

from __future__ import annotations

import signal

import pytest
import redis

from sibyls.devices.epics_env import free_tcp_port
from sibyls.devices.sim.launcher import ManagedProcess, log_sinks, spawn_service
from sibyls.startup.stack.starters import _redis_server

pytestmark = pytest.mark.slow


@pytest.fixture
def logged_redis(tmp_path):
    """Redis on a free loopback port, logging every connection into a 2 kB log with 2 backups."""
    port = free_tcp_port()
    log = tmp_path / "logs" / "redis.log"
    command = [
        _redis_server(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--loglevel",
        "verbose",
    ]
    process = spawn_service(command, log, {}, cwd=tmp_path, log_max_bytes=2000, log_backups=2)
    service = ManagedProcess("redis", process, log)
    try:
        ping(port, attempts=100)
        yield service, port
    finally:
        service.stop()
        if process.log_sink.poll() is None:  # a failed test must not leave it behind
            process.log_sink.kill()
            process.log_sink.wait()


def ping(port: int, attempts: int) -> None:
    """Connect ``attempts`` times (Redis logs each connection); the last one must answer."""
    for attempt in range(attempts):
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)
        try:
            client.ping()
        except redis.ConnectionError:
            if attempt == attempts - 1:
                raise
        finally:
            client.close()


def test_a_service_log_rotates_and_its_sink_ends_with_the_service(logged_redis):
    service, port = logged_redis
    sink = service.process.log_sink
    sink.send_signal(signal.SIGTERM)  # ignored: only the end of the service's output ends it
    sink.send_signal(signal.SIGINT)
    ping(port, attempts=300)
    assert log_sinks([service.log_path]) and sink.poll() is None

    service.stop()
    assert sink.poll() == 0  # stop() waited for it
    assert not log_sinks([service.log_path])
    logs = sorted(path.name for path in service.log_path.parent.iterdir())
    assert logs == ["redis.log", "redis.log.1", "redis.log.2"]
    assert all(0 < path.stat().st_size < 2000 for path in service.log_path.parent.iterdir())
    assert "Accepted 127.0.0.1" in service.log_tail()


def test_the_service_carries_on_when_its_sink_is_gone(logged_redis):
    service, port = logged_redis
    service.process.log_sink.kill()  # SIGKILL cannot be ignored
    service.process.log_sink.wait()
    ping(port, attempts=300)  # Redis ignores SIGPIPE: each log line now fails to write, quietly
    assert service.process.poll() is None
