"""The Dask cluster first looks run on: a facility's scheduler, or a local cluster started on first use.

The scheduler setting of :class:`sibyls.startup.config.ProfileConfig` (``dask_scheduler``,
``tcp://host:8786``) connects to a facility's ``distributed`` scheduler; its workers must import
``sibyls`` (the same version) and see the frame files and ``processed/`` at the same paths. Unset, a
``LocalCluster`` of ``dask_workers`` worker processes (default one per core), one thread each, bound
to 127.0.0.1 without a dashboard, is started the first time a first look is submitted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Seconds to wait for a facility scheduler before giving up (the error names the address).
CONNECT_TIMEOUT_S = 30.0


class FirstLookCluster:
    """A lazily connected Dask client: ``scheduler`` (``tcp://host:port``) or a local cluster of
    ``workers`` processes (0: one per core). ``close()`` stops what this object started."""

    def __init__(self, scheduler: str = "", workers: int = 0) -> None:
        self.scheduler = scheduler
        self.workers = workers or os.cpu_count() or 1
        self._lock = threading.Lock()
        self._client: Any = None
        self._local: Any = None

    @classmethod
    def from_config(cls, config) -> FirstLookCluster:
        """The cluster of a session's settings (``dask_scheduler``, ``dask_workers``)."""
        return cls(config.dask_scheduler, config.dask_workers)

    @property
    def where(self) -> str:
        """In words, for logs and the command line."""
        return self.scheduler or f"a local Dask cluster of {self.workers} worker processes"

    def client(self):
        """The ``distributed.Client``, connected (or the local cluster started) on the first call."""
        with self._lock:
            if self._client is None:
                self._client = self._connect()
            return self._client

    def executor(self) -> Executor:
        """A ``concurrent.futures`` executor on the cluster (each submission a new task)."""
        return _LazyExecutor(self)

    def warm_up(self) -> dict[str, float]:
        """Each worker loads and compiles the first look's libraries once; seconds by worker."""
        from sibyls.saxs.processing.tasks import warm_up

        return self.client().run(warm_up)

    def close(self) -> None:
        """Disconnect; a local cluster started here is stopped (its worker processes end)."""
        with self._lock:
            client, local, self._client, self._local = self._client, self._local, None, None
        if client is not None:
            client.close()
        if local is not None:
            local.close()

    def __enter__(self) -> FirstLookCluster:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _connect(self):
        from distributed import Client, LocalCluster

        if self.scheduler:
            log.info("first looks on the Dask scheduler %s", self.scheduler)
            try:
                return Client(self.scheduler, timeout=CONNECT_TIMEOUT_S)
            except OSError as exc:
                raise OSError(f"the Dask scheduler {self.scheduler} cannot be reached ({exc})") from exc
        self._local = LocalCluster(
            n_workers=self.workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,  # no dashboard; its HTTP health routes on a free loopback port:
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
            silence_logs=logging.WARNING,
        )
        log.info("first looks on %s (%s)", self.where, self._local.scheduler_address)
        return Client(self._local)


class _LazyExecutor(Executor):
    """``submit`` starts/connects the cluster on first use; futures are ``concurrent.futures`` ones."""

    def __init__(self, cluster: FirstLookCluster) -> None:
        self._cluster = cluster
        self._executor: Executor | None = None

    def submit(self, fn, /, *args, **kwargs):
        if self._executor is None:
            self._executor = self._cluster.client().get_executor(pure=False)
        return self._executor.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=wait)


@contextlib.contextmanager
def scheduler_processes(workdir: Path, workers: int = 1) -> Iterator[tuple[str, list[subprocess.Popen]]]:
    """A facility-like cluster on this machine: ``dask scheduler`` and ``dask worker --nworkers N`` as
    separate processes on loopback, their logs in ``workdir``. Yields the ``tcp://`` address (what
    the ``dask_scheduler`` setting would name) and the processes; both are ended by PID, with their process
    groups (the worker's nanny starts the worker process), also when the body fails."""
    from sibyls.devices.epics_env import free_tcp_port

    dask = str(Path(sys.executable).parent / "dask")
    port = free_tcp_port()
    address = f"tcp://127.0.0.1:{port}"
    commands = {
        "scheduler": ["scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        "worker": ["worker", address, "--host", "127.0.0.1", "--nworkers", str(workers), "--nthreads", "1",
                   "--no-dashboard", "--local-directory", str(workdir / "dask-worker")],
    }  # fmt: skip
    started: list[subprocess.Popen] = []
    try:
        for name, args in commands.items():
            with open(workdir / f"dask-{name}.log", "wb") as log_file:
                started.append(
                    subprocess.Popen(
                        [dask, *args], stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
                    )
                )
        yield address, started
    finally:
        for process in reversed(started):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
