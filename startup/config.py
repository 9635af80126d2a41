"""Settings of a SIBYLS session, from ``SIBYLS_*`` environment variables (set by ``sibyls up``).

The one place a setting is named: each field of :class:`ProfileConfig` is the environment variable
``SIBYLS_<FIELD>``; :meth:`ProfileConfig.as_env` and :meth:`ProfileConfig.from_env` are derived from
the fields, and every other module reads the settings through this class
(``tests/test_settings_named_once.py`` checks that no other module names a ``SIBYLS_*`` setting).
"""

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
    #: The HT robot's plate registry (``SIBYLS_PLATE_REGISTRY``; ``sibyls up`` sets ``<var>/plates.yaml``),
    #: read by the queue gate, the plans and the simulated robot; unset: plate ids are the robot's to check.
    plate_registry: Path | None = None
    #: The facility's projects and their people (``SIBYLS_PROJECTS``; ``sibyls up`` sets
    #: ``<var>/projects.yaml``): who may queue for and see which project
    #: (:mod:`sibyls.metadata.projects`). Unset: nothing is restricted by project.
    projects: Path | None = None
    #: Login names that belong to every project (``SIBYLS_STAFF_USERS``, comma-separated): the HTTP
    #: server knows staff by their roles; the RE Manager, which sees only a name, by this list.
    staff_users: str = ""
    #: Mail-in notices (:mod:`sibyls.saxs.processing.notices`): the SMTP server (``SIBYLS_SMTP_HOST``;
    #: empty: nothing is sent, the notice is logged and saved), its port (``SIBYLS_SMTP_PORT``),
    #: STARTTLS (``SIBYLS_SMTP_STARTTLS``), login (``SIBYLS_SMTP_USER``), a file holding the password,
    #: never the password itself (``SIBYLS_SMTP_PASSWORD_FILE``), the sender (``SIBYLS_SMTP_FROM``).
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_starttls: bool = True
    smtp_user: str = ""
    smtp_password_file: str = ""
    smtp_from: str = "sibyls@localhost"
    #: The page's address for links in notices (``SIBYLS_PAGE_URL``; ``sibyls up`` sets its own).
    page_url: str = ""
    #: Seconds between retries of records that could not be written (``SIBYLS_RECORD_RETRY_S``).
    record_retry_s: float = 30.0
    #: The database of the Tiled catalog ``sibyls up`` starts (``SIBYLS_TILED_DB``, the default of
    #: ``--tiled-db``): ``postgresql://user[:password]@host[:port]/db``; empty: SQLite under the var
    #: folder. Not passed on by ``as_env``: the RE worker reaches Tiled by URL, never the database.
    tiled_db: str = Field(default="", repr=False, exclude=True)
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
    #: Whether RE Manager opens the RE environment again after its worker died
    #: (``SIBYLS_REOPEN_ENVIRONMENT``; false: staff decide).
    reopen_environment: bool = True
    #: The Dask scheduler the first looks run on (``SIBYLS_DASK_SCHEDULER``, ``tcp://host:8786``: a
    #: facility cluster whose workers see the same data, records and processed folders); empty: a
    #: local cluster started on first use (:mod:`sibyls.saxs.processing.cluster`).
    dask_scheduler: str = Field(default="", pattern=r"^$|^(tcp|tls)://[^\s/:]+:\d+$")
    #: Worker processes of that local cluster (``SIBYLS_DASK_WORKERS``; 0: one per core).
    dask_workers: int = Field(default=0, ge=0)
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
        registry = data.get("plate_registry")
        return {
            **data,
            "var_dir": var,
            **{name: path.resolve() for name, path in folders.items()},
            "plate_registry": Path(registry).resolve() if registry else None,
        }

    def staff_names(self) -> frozenset[str]:
        """The login names in ``SIBYLS_STAFF_USERS``."""
        return frozenset(n.strip() for n in self.staff_users.split(",") if n.strip())

    def smtp(self):
        """The SMTP settings of mail-in notices; None when no host is set (nothing is sent)."""
        from sibyls.saxs.processing.notices import SmtpSettings

        if not self.smtp_host:
            return None
        return SmtpSettings(
            self.smtp_host, self.smtp_port, self.smtp_starttls, self.smtp_user, self.smtp_password_file,
            self.smtp_from,
        )  # fmt: skip

    def tiled_api_key(self) -> str | None:
        """The Tiled API key, read from its file (never from the environment or a command line)."""
        return Path(self.tiled_api_key_file).read_text().strip() if self.tiled_api_key_file else None

    def zmq_public_key(self) -> str | None:
        """The RE Manager's 0MQ public key, read from its file (None: the manager is not encrypted)."""
        return Path(self.zmq_public_key_file).read_text().strip() if self.zmq_public_key_file else None

    @classmethod
    def env_name(cls, field: str) -> str:
        """The environment variable of setting ``field`` (``SIBYLS_<FIELD>``)."""
        if field not in cls.model_fields:
            raise KeyError(f"no setting {field!r}")
        return cls.model_config["env_prefix"] + field.upper()

    @classmethod
    def given(cls, **values: Any) -> ProfileConfig:
        """The settings ``values`` with defaults for the rest: the process environment is not consulted."""
        defaults = {name: f.default for name, f in cls.model_fields.items() if not f.is_required()}
        return cls(**{**defaults, **dict.fromkeys(_FOLDERS), **values})

    @classmethod
    def from_env(cls, env: dict[str, Any] | None = None) -> ProfileConfig:
        """The settings from ``env`` (``SIBYLS_*`` keys only; default: this process's environment)."""
        if env is None:
            return cls()
        prefix = cls.model_config["env_prefix"]
        given = {k.removeprefix(prefix).lower(): v for k, v in env.items() if k.startswith(prefix)}
        return cls.given(**given)

    def as_env(self) -> dict[str, str]:
        """The environment that reproduces these settings in another process (unset ones left out;
        fields marked ``exclude`` are never passed on)."""
        env = {}
        for name, field in type(self).model_fields.items():
            value = getattr(self, name)
            if field.exclude or value is None or value == "":
                continue
            env[self.env_name(name)] = ("1" if value else "0") if isinstance(value, bool) else str(value)
        return env
