"""Settings of a SIBYLS session, from ``SIBYLS_*`` environment variables (set by ``sibyls up``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sibyls.devices.sim.launcher import DEFAULT_LOG_BACKUPS, DEFAULT_LOG_MAX_BYTES

#: Folder fields → their default under ``var_dir``.
_FOLDERS = {
    "data_dir": "data",
    "records_dir": "records",
    "spool_dir": "spool",
    "state_dir": "state",
    "processed_dir": "processed",
    "plate_registry": "plates.yaml",
}


class ProfileConfig(BaseSettings):
    """Where the beamline is and where data, records and state go.

    ``SIBYLS_IOC_PREFIX`` (default ``SIBYLS:``), ``SIBYLS_VAR_DIR`` (default ``./var``) and, to
    override single folders, ``SIBYLS_DATA_DIR``, ``SIBYLS_RECORDS_DIR``, ``SIBYLS_SPOOL_DIR``,
    ``SIBYLS_STATE_DIR``; ``SIBYLS_CONNECT_TIMEOUT`` (s). Optional services:
    ``SIBYLS_TILED_URL`` with ``SIBYLS_TILED_API_KEY_FILE`` (runs are written to Tiled) and
    ``SIBYLS_ZMQ_CONTROL_ADDR`` with ``SIBYLS_ZMQ_PUBLIC_KEY_FILE`` (the RE Manager, asked for the
    running queue item; the file holds the manager's CURVE public key when its 0MQ is encrypted).
    Relative folders are taken from the current directory.
    """

    model_config = SettingsConfigDict(env_prefix="SIBYLS_", frozen=True, extra="ignore")

    ioc_prefix: str = "SIBYLS:"
    var_dir: Path = Path("var")
    data_dir: Path
    records_dir: Path
    spool_dir: Path
    state_dir: Path
    #: Where the first look writes its products (``SIBYLS_PROCESSED_DIR``, default ``<var>/processed``).
    processed_dir: Path
    connect_timeout: float = 10.0
    tiled_url: str = ""
    tiled_api_key_file: str = ""
    zmq_control_addr: str = ""
    zmq_public_key_file: str = ""
    #: The HT robot's plate registry (``SIBYLS_PLATE_REGISTRY``, default ``<var>/plates.yaml``),
    #: read by the queue gate and the simulated robot.
    plate_registry: Path | None = None
    #: Seconds between retries of records that could not be written (``SIBYLS_RECORD_RETRY_S``).
    record_retry_s: float = 30.0
    #: The database of the Tiled catalog ``sibyls up`` starts (``SIBYLS_TILED_DB``, the default of
    #: ``--tiled-db``): ``postgresql://user[:password]@host[:port]/db``; empty: SQLite under the var
    #: folder. Not passed on by ``as_env``: the RE worker reaches Tiled by URL, never the database.
    tiled_db: str = Field(default="", repr=False)
    #: The stack's Redis (``host:port``, ``SIBYLS_REDIS_ADDR``): the RE worker publishes progress there.
    redis_addr: str = ""
    #: The 0MQ document proxy (``SIBYLS_DOCUMENT_PROXY``, ``host:port`` of its input): the RunEngine
    #: publishes every document there for the processing service.
    document_proxy: str = ""
    #: The proxy's output (``SIBYLS_DOCUMENT_FEED``, ``host:port``) the processing service subscribes to.
    document_feed: str = ""
    #: The detector calibration as a pyFAI PONI file (``SIBYLS_PONI_FILE``); empty: the geometry the
    #: frame files carry.
    poni_file: str = ""
    #: Absolute scale, cm⁻¹ per normalised unit (``SIBYLS_ABSOLUTE_SCALE``, from a water measurement:
    #: ``sibyls.saxs.reduction.reducer.absolute_scale_from_water``); 0: arbitrary units.
    absolute_scale: float = 0.0
    #: Each service's log under ``<var>/logs/`` rotates at this size (``SIBYLS_LOG_MAX_BYTES``) ...
    log_max_bytes: int = Field(default=DEFAULT_LOG_MAX_BYTES, gt=0)
    #: ... keeping this many older files (``SIBYLS_LOG_BACKUPS``, ``<name>.log.1`` newest).
    log_backups: int = Field(default=DEFAULT_LOG_BACKUPS, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _folders_under_var_dir(cls, data: Any) -> Any:
        """Absolute folders; those not given lie under ``var_dir``."""
        if not isinstance(data, dict):
            return data
        var = Path(data.get("var_dir") or "var").resolve()
        folders = {name: Path(data.get(name) or var / default) for name, default in _FOLDERS.items()}
        return {**data, "var_dir": var, **{name: path.resolve() for name, path in folders.items()}}

    def tiled_api_key(self) -> str | None:
        """The Tiled API key, read from its file (never from the environment or a command line)."""
        return Path(self.tiled_api_key_file).read_text().strip() if self.tiled_api_key_file else None

    def zmq_public_key(self) -> str | None:
        """The RE Manager's 0MQ public key, read from its file (None: the manager is not encrypted)."""
        return Path(self.zmq_public_key_file).read_text().strip() if self.zmq_public_key_file else None

    @classmethod
    def from_env(cls, env: dict[str, Any] | None = None) -> ProfileConfig:
        """The settings from ``env`` (``SIBYLS_*`` keys only; default: this process's environment)."""
        if env is None:
            return cls()
        prefix = cls.model_config["env_prefix"]
        given = {k.removeprefix(prefix).lower(): v for k, v in env.items() if k.startswith(prefix)}
        # Every field given (defaults for the missing ones): the process environment is not consulted.
        defaults = {name: f.default for name, f in cls.model_fields.items() if not f.is_required()}
        return cls(**{**defaults, **dict.fromkeys(_FOLDERS), **given})

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
            "SIBYLS_REDIS_ADDR": self.redis_addr,
            "SIBYLS_PROCESSED_DIR": str(self.processed_dir),
            "SIBYLS_DOCUMENT_PROXY": self.document_proxy,
            "SIBYLS_DOCUMENT_FEED": self.document_feed,
            "SIBYLS_PONI_FILE": self.poni_file,
            "SIBYLS_ABSOLUTE_SCALE": f"{self.absolute_scale:g}" if self.absolute_scale else "",
            "SIBYLS_LOG_MAX_BYTES": str(self.log_max_bytes),
            "SIBYLS_LOG_BACKUPS": str(self.log_backups),
        }
        return {k: v for k, v in env.items() if v}
