"""Start and stop the Tiled server that stores SIBYLS runs (``tiled serve catalog``).

A user gets a Tiled server on loopback with an SQLite catalog (or a PostgreSQL one for scale) and
local writable storage under ``data_dir``; frame files in the ``readable`` folders are served from
where the detector wrote them. The single-user API key goes to the server through its environment
(``TILED_SINGLE_USER_API_KEY``), never on the command line, and the server's output is filtered so
the key never reaches the log.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sibyls.startup.private_files import write_private
from sibyls.startup.redacted import redacted_command
from sibyls.startup.services import ManagedProcess, spawn_service

API_KEY_ENV = "TILED_SINGLE_USER_API_KEY"
API_KEY_FILE = "tiled_api_key"


@dataclass
class TiledService(ManagedProcess):
    """A running Tiled server: its URL and API key (the key is kept out of ``repr``)."""

    url: str = ""
    api_key: str = field(default="", repr=False)
    api_key_file: Path | None = None

    def client(self):
        """A writable tiled client of this server's root."""
        from tiled.client import from_uri

        return from_uri(self.url, api_key=self.api_key)


def tiled_command(
    port: int, data_dir: Path, catalog_uri: str | None, readable: Sequence[Path | str] = ()
) -> list[str]:
    """The ``tiled serve catalog`` command line (no secret in it) for the given storage."""
    data_dir = Path(data_dir).resolve()
    catalog = catalog_uri or f"sqlite:///{data_dir / 'catalog.db'}"
    command = redacted_command(
        API_KEY_ENV,
        "tiled.commandline.main:main",
        "serve",
        "catalog",
        catalog,
        "--init",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--write",
        str(data_dir / "files"),
        "--write",
        f"sqlite:///{data_dir / 'tables.db'}",
    )
    for folder in readable:
        command += ["--read", str(Path(folder).resolve())]
    return command


def start_tiled(
    port: int,
    data_dir: Path | str,
    log_path: Path | str,
    api_key: str | None = None,
    catalog_uri: str | None = None,
    *,
    readable: Sequence[Path | str] = (),
    timeout: float = 60.0,
) -> TiledService:
    """Start ``tiled serve catalog`` on 127.0.0.1:``port`` and wait until it answers.

    ``data_dir`` holds the SQLite catalog (unless ``catalog_uri`` names e.g. a
    ``postgresql+asyncpg://`` database), the writable files and tables. ``readable`` lists the
    folders of external files (the detector's frame folders) the server may serve. Without
    ``api_key`` one is generated and written to ``<data_dir>/tiled_api_key`` (mode 0600).
    """
    data_dir = Path(data_dir).resolve()
    log_path = Path(log_path)
    (data_dir / "files").mkdir(parents=True, exist_ok=True)
    key_file = None
    if api_key is None:
        api_key = secrets.token_hex(32)
        key_file = data_dir / API_KEY_FILE
        write_private(key_file, api_key + "\n")
    if not api_key.isalnum():
        raise ValueError("the Tiled API key must be letters and digits only")
    env = {**os.environ, API_KEY_ENV: api_key}
    process = spawn_service(tiled_command(port, data_dir, catalog_uri, readable), log_path, env)
    service = TiledService(
        "tiled", process, log_path, url=f"http://127.0.0.1:{port}", api_key=api_key, api_key_file=key_file
    )
    try:
        _wait_healthy(service, timeout)
    except BaseException:
        service.stop()
        raise
    return service


def _wait_healthy(service: TiledService, timeout: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    headers = {"Authorization": f"Apikey {service.api_key}"}
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise RuntimeError(
                f"the Tiled server exited early with code {service.process.returncode}:\n{service.log_tail()}"
            )
        try:
            response = httpx.get(f"{service.url}/api/v1/metadata/", headers=headers, timeout=2.0)
            if response.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"the Tiled server did not answer at {service.url} within {timeout} s")
