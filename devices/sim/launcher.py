"""Start the simulated-beamline IOC as its own process and wait until it serves PVs.

One launcher for everything that needs an IOC: ``sibyls up`` (:mod:`sibyls.startup.stack`), the
tests (``sim_ioc`` in ``tests/conftest.py``) and the benchmarks. A user gets an
:class:`IOCService`: its PV prefix, Channel Access port, log file and a ``stop()`` that ends exactly
that process.

The process is ``python -m sibyls.devices.sim`` (the same options as ``sibyls ioc``,
:mod:`sibyls.devices.sim.command`): nothing here names a layer above the devices.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import psutil

from sibyls.devices.epics_env import loopback_ca_env, loopback_ca_environment

#: The command line that runs the IOC (its options follow).
IOC_COMMAND = [sys.executable, "-m", "sibyls.devices.sim"]


#: Each service's log: at most this many bytes in ``<name>.log`` ...
DEFAULT_LOG_MAX_BYTES = 10_000_000
#: ... and this many older files (``<name>.log.1`` ... ``.5``) before the oldest is dropped.
DEFAULT_LOG_BACKUPS = 5
#: The command line of a service's log sink (:mod:`sibyls.devices.sim.log_sink`; its arguments follow).
LOG_SINK_COMMAND = [sys.executable, "-m", "sibyls.devices.sim.log_sink"]
#: What a log sink keeps of this process's environment (it needs no setting, and never a secret).
_SINK_ENV = ("PATH", "PYTHONPATH", "LANG", "LC_ALL", "TMPDIR")


class ServiceProcess(subprocess.Popen):
    """A service process whose output goes through its log sink (``log_sink``)."""

    log_sink: subprocess.Popen | None = None

    def wait_for_log(self, timeout: float = 5.0) -> None:
        """Once the service has ended: wait until its sink has written its last lines and ended."""
        if self.log_sink is not None and self.poll() is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.log_sink.wait(timeout=timeout)


def spawn_service(
    command: list[str],
    log_path: Path,
    env: dict[str, str],
    cwd: Path | None = None,
    *,
    log_max_bytes: int = DEFAULT_LOG_MAX_BYTES,
    log_backups: int = DEFAULT_LOG_BACKUPS,
) -> ServiceProcess:
    """Start a service process with its output in ``log_path``, rotated at ``log_max_bytes``
    with ``log_backups`` older files kept.

    The output goes through a pipe to a log sink process (:mod:`sibyls.devices.sim.log_sink`) that
    ends when the service and all its children are gone; the returned process is the service itself
    (its PID is the one to stop). Both get their own session: a Ctrl-C meant for the command that
    started them does not reach them.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    read_end, write_end = os.pipe()
    try:
        with contextlib.suppress(OSError):  # room for bursts while the sink writes (Linux only)
            fcntl.fcntl(write_end, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
        sink = subprocess.Popen(
            [*LOG_SINK_COMMAND, str(log_path.resolve()), str(log_max_bytes), str(log_backups)],
            stdin=read_end,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={k: v for k, v in os.environ.items() if k in _SINK_ENV},
            start_new_session=True,
        )
        os.close(read_end)
        read_end = -1
        try:
            process = ServiceProcess(
                command,
                stdout=write_end,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
                cwd=cwd,
            )
        except BaseException:
            os.close(write_end)
            write_end = -1
            sink.wait()  # end of file: it ends by itself
            raise
    finally:
        for fd in (read_end, write_end):
            if fd >= 0:
                os.close(fd)
    process.log_sink = sink
    return process


def log_sinks(log_paths: Iterable[Path]) -> list[psutil.Process]:
    """The log sinks still writing into ``log_paths`` (each ends once its service and children have)."""
    wanted = {str(Path(path).resolve()) for path in log_paths}
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if cmdline[1:3] == LOG_SINK_COMMAND[1:] and len(cmdline) > 3 and cmdline[3] in wanted:
            found.append(process)
    return found


@dataclass
class ManagedProcess:
    """A service process this code started; ``stop()`` ends exactly it."""

    name: str
    process: subprocess.Popen
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the process (kill it if it does not exit within ``timeout``); its log sink ends."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
        if isinstance(self.process, ServiceProcess):
            self.process.wait_for_log(timeout)

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the service's log, for error messages."""
        if isinstance(self.process, ServiceProcess):
            self.process.wait_for_log()
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class IOCService(ManagedProcess):
    """The simulated-beamline IOC: its PV prefix and Channel Access port."""

    prefix: str = ""
    port: int = 0


def start_ioc(
    prefix: str,
    port: int,
    log_path: Path,
    *,
    binning: int = 1,
    time_scale: float = 1.0,
    plates: list[str] | None = None,
    plate_registry: Path | None = None,
    timeout: float = 30.0,
    log_max_bytes: int = DEFAULT_LOG_MAX_BYTES,
    log_backups: int = DEFAULT_LOG_BACKUPS,
) -> IOCService:
    """Start the simulated-beamline IOC on loopback ``port`` and wait until it serves PVs.

    This process's environment is left as it was: a client of the IOC applies
    ``loopback_ca_env(port)`` itself (before ophyd starts Channel Access).
    """
    command = [
        *IOC_COMMAND,
        "--prefix",
        prefix,
        "--port",
        str(port),
        "--binning",
        str(binning),
        "--time-scale",
        str(time_scale),
    ]
    for plate in plates or []:
        command += ["--plate", str(plate)]
    if plate_registry is not None:
        command += ["--plate-registry", str(plate_registry)]
    env = {**os.environ, **loopback_ca_env(port)}
    process = spawn_service(command, log_path, env, log_max_bytes=log_max_bytes, log_backups=log_backups)
    service = IOCService("ioc", process, log_path, prefix=prefix, port=port)
    try:
        with loopback_ca_environment(port):
            _wait_for_ca_server(f"{prefix}Sim:TimeScale", port, process, timeout)
    except BaseException:
        service.stop()
        raise
    return service


def _wait_for_ca_server(pv_name: str, port: int, process: subprocess.Popen, timeout: float) -> None:
    from caproto.sync.client import read

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the IOC exited early with code {process.returncode}")
        try:
            read(pv_name, timeout=0.5, repeater=False)
            return
        except (TimeoutError, OSError):
            time.sleep(0.1)
    raise TimeoutError(f"the IOC did not serve {pv_name} within {timeout} s")
