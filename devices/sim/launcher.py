"""Start the simulated-beamline IOC as its own process and wait until it serves PVs.

One launcher for everything that needs an IOC: ``sibyls up`` (:mod:`sibyls.startup.stack`), the
tests (``sim_ioc`` in ``tests/conftest.py``) and the benchmarks. A user gets an
:class:`IOCService`: its PV prefix, Channel Access port, log file and a ``stop()`` that ends exactly
that process.

The process is ``python -m sibyls.devices.sim`` (the same options as ``sibyls ioc``,
:mod:`sibyls.devices.sim.command`): nothing here names a layer above the devices.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from sibyls.devices.epics_env import loopback_ca_env, loopback_ca_environment

#: The command line that runs the IOC (its options follow).
IOC_COMMAND = [sys.executable, "-m", "sibyls.devices.sim"]


def spawn_service(command: list[str], log_path: Path, env: dict[str, str], cwd: Path | None = None):
    """Start a service process with its output appended to ``log_path``.

    It gets its own session: a Ctrl-C meant for the command that started it does not reach it;
    it is stopped by PID like every other service.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
            cwd=cwd,
        )


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
        """Terminate the process (kill it if it does not exit within ``timeout``)."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=timeout)

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the service's log, for error messages."""
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
    process = spawn_service(command, log_path, env)
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
