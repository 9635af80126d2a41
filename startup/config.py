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
    ``SIBYLS_STATE_DIR``; ``SIBYLS_CONNECT_TIMEOUT`` (s).
    """

    ioc_prefix: str
    data_dir: Path
    records_dir: Path
    spool_dir: Path
    state_dir: Path
    connect_timeout: float

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> ProfileConfig:
        """Read the settings; relative folders are taken from the current directory."""
        env = dict(os.environ if env is None else env)
        var = Path(env.get("SIBYLS_VAR_DIR", "var")).resolve()

        def folder(key: str, default: str) -> Path:
            return Path(env.get(key, str(var / default))).resolve()

        return cls(
            ioc_prefix=env.get("SIBYLS_IOC_PREFIX", "SIBYLS:"),
            data_dir=folder("SIBYLS_DATA_DIR", "data"),
            records_dir=folder("SIBYLS_RECORDS_DIR", "records"),
            spool_dir=folder("SIBYLS_SPOOL_DIR", "spool"),
            state_dir=folder("SIBYLS_STATE_DIR", "state"),
            connect_timeout=float(env.get("SIBYLS_CONNECT_TIMEOUT", "10")),
        )

    def as_env(self) -> dict[str, str]:
        """The environment that reproduces these settings in another process."""
        return {
            "SIBYLS_IOC_PREFIX": self.ioc_prefix,
            "SIBYLS_DATA_DIR": str(self.data_dir),
            "SIBYLS_RECORDS_DIR": str(self.records_dir),
            "SIBYLS_SPOOL_DIR": str(self.spool_dir),
            "SIBYLS_STATE_DIR": str(self.state_dir),
            "SIBYLS_CONNECT_TIMEOUT": str(self.connect_timeout),
        }
