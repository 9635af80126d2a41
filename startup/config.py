"""Settings of a SIBYLS session, from ``SIBYLS_*`` environment variables (set by ``sibyls up``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProfileConfig:
    """Where the beamline is and where data, records and state go.

    ``SIBYLS_IOC_PREFIX`` (default ``SIBYLS:``), ``SIBYLS_VAR_DIR`` (default ``./var``) and, to
    override single folders, ``SIBYLS_DATA_DIR``, ``SIBYLS_RECORDS_DIR``, ``SIBYLS_SPOOL_DIR``,
    ``SIBYLS_STATE_DIR``; ``SIBYLS_CONNECT_TIMEOUT`` (s). Optional services:
    ``SIBYLS_TILED_URL`` with ``SIBYLS_TILED_API_KEY_FILE`` (runs are written to Tiled) and
    ``SIBYLS_ZMQ_CONTROL_ADDR`` with ``SIBYLS_ZMQ_PUBLIC_KEY_FILE`` (the RE Manager, asked for the
    running queue item; the file holds the manager's CURVE public key when its 0MQ is encrypted).
    """

    ioc_prefix: str
    var_dir: Path
    data_dir: Path
    records_dir: Path
    spool_dir: Path
    state_dir: Path
    connect_timeout: float
    tiled_url: str = ""
    tiled_api_key_file: str = ""
    zmq_control_addr: str = ""
    zmq_public_key_file: str = ""
    #: The HT robot's plate registry (``SIBYLS_PLATE_REGISTRY``, default ``<var>/plates.yaml``),
    #: read by the queue gate and the simulated robot.
    plate_registry: Path | None = None
    #: Seconds between retries of records that could not be written (``SIBYLS_RECORD_RETRY_S``).
    record_retry_s: float = 30.0

    def tiled_api_key(self) -> str | None:
        """The Tiled API key, read from its file (never from the environment or a command line)."""
        return Path(self.tiled_api_key_file).read_text().strip() if self.tiled_api_key_file else None

    def zmq_public_key(self) -> str | None:
        """The RE Manager's 0MQ public key, read from its file (None: the manager is not encrypted)."""
        return Path(self.zmq_public_key_file).read_text().strip() if self.zmq_public_key_file else None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> ProfileConfig:
        """Read the settings; relative folders are taken from the current directory."""
        env = dict(os.environ if env is None else env)
        var = Path(env.get("SIBYLS_VAR_DIR", "var")).resolve()

        def folder(key: str, default: str) -> Path:
            return Path(env.get(key, str(var / default))).resolve()

        return cls(
            ioc_prefix=env.get("SIBYLS_IOC_PREFIX", "SIBYLS:"),
            var_dir=var,
            data_dir=folder("SIBYLS_DATA_DIR", "data"),
            records_dir=folder("SIBYLS_RECORDS_DIR", "records"),
            spool_dir=folder("SIBYLS_SPOOL_DIR", "spool"),
            state_dir=folder("SIBYLS_STATE_DIR", "state"),
            connect_timeout=float(env.get("SIBYLS_CONNECT_TIMEOUT", "10")),
            tiled_url=env.get("SIBYLS_TILED_URL", ""),
            tiled_api_key_file=env.get("SIBYLS_TILED_API_KEY_FILE", ""),
            zmq_control_addr=env.get("SIBYLS_ZMQ_CONTROL_ADDR", ""),
            zmq_public_key_file=env.get("SIBYLS_ZMQ_PUBLIC_KEY_FILE", ""),
            plate_registry=folder("SIBYLS_PLATE_REGISTRY", "plates.yaml"),
            record_retry_s=float(env.get("SIBYLS_RECORD_RETRY_S", "30")),
        )

    def as_env(self) -> dict[str, str]:
        """The environment that reproduces these settings in another process."""
        env = {
            "SIBYLS_IOC_PREFIX": self.ioc_prefix,
            "SIBYLS_VAR_DIR": str(self.var_dir),
            "SIBYLS_DATA_DIR": str(self.data_dir),
            "SIBYLS_RECORDS_DIR": str(self.records_dir),
            "SIBYLS_SPOOL_DIR": str(self.spool_dir),
            "SIBYLS_STATE_DIR": str(self.state_dir),
            "SIBYLS_CONNECT_TIMEOUT": str(self.connect_timeout),
            "SIBYLS_TILED_URL": self.tiled_url,
            "SIBYLS_TILED_API_KEY_FILE": self.tiled_api_key_file,
            "SIBYLS_ZMQ_CONTROL_ADDR": self.zmq_control_addr,
            "SIBYLS_ZMQ_PUBLIC_KEY_FILE": self.zmq_public_key_file,
            "SIBYLS_PLATE_REGISTRY": str(self.plate_registry) if self.plate_registry else "",
            "SIBYLS_RECORD_RETRY_S": f"{self.record_retry_s:g}",
        }
        return {k: v for k, v in env.items() if v}
