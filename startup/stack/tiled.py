"""Start and stop the Tiled server that stores SIBYLS runs (``tiled serve catalog``).

A user gets a Tiled server on loopback with an SQLite catalog, or a PostgreSQL one for scale
(``sibyls up --tiled-db postgresql://user@host/db``: catalog and event tables both in that
database), and local writable storage under ``data_dir``; frame files in the ``readable`` folders
are served from where the detector wrote them. Secrets never reach a command line or a log: the
single-user API key goes to the server through its environment (``TILED_SINGLE_USER_API_KEY``), a
PostgreSQL URI too (``TILED_CATALOG_URI``; it may hold a password), and the server's output is
filtered so neither the key nor the URI nor its password is printed. The stack's server runs with
Tiled's own access control instead of one key (``access``: people log in, each run carries its
project's tag; :mod:`sibyls.startup.stack.tiled_access`), from a config file that holds no secret.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sibyls.startup.stack.private_files import write_key, write_private
from sibyls.startup.stack.redacted import redacted_command
from sibyls.startup.stack.services import (
    DEFAULT_LOG_BACKUPS,
    DEFAULT_LOG_MAX_BYTES,
    ManagedProcess,
    child_env,
    spawn_service,
)

if TYPE_CHECKING:
    from sibyls.startup.stack.tiled_access import TiledAccess

API_KEY_ENV = "TILED_SINGLE_USER_API_KEY"
API_KEY_FILE = "tiled_api_key"
#: The server process reads a database URI (it may hold a password) and its password from these.
CATALOG_URI_ENV = "TILED_CATALOG_URI"
CATALOG_PASSWORD_ENV = "TILED_CATALOG_PASSWORD"
#: The event tables' PostgreSQL URI (libpq form) for a server run from a config file.
TABLES_URI_ENV = "SIBYLS_TILED_TABLES_URI"
CONFIG_FILE = "config.yml"
#: Stands for the database URI on the server's command line; ``serve`` puts the URI in its place.
CATALOG_PLACEHOLDER = "@" + CATALOG_URI_ENV
CATALOG_SCHEMES = ("sqlite", "postgresql")


def check_catalog_uri(uri: str) -> str:
    """``uri`` if it names a database Tiled can keep its catalog in (SQLite or PostgreSQL), else a
    ``ValueError`` saying what is accepted (the message shows the URI with its password masked)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        backend = make_url(uri).get_backend_name()
    except ArgumentError:
        backend = ""
    if backend not in CATALOG_SCHEMES:
        raise ValueError(
            f"Tiled catalog {masked_uri(uri)!r}: give sqlite:///<file> or "
            "postgresql://<user>[:<password>]@<host>[:<port>]/<database> (driver asyncpg)"
        )
    return uri


def is_postgresql(uri: str | None) -> bool:
    """True if ``uri`` names a PostgreSQL database."""
    return bool(uri) and uri.split(":", 1)[0].split("+", 1)[0] == "postgresql"


def masked_uri(uri: str) -> str:
    """``uri`` with its password replaced by ``***``: what status lines and logs may show."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(uri).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparsable database URI>"


def _password(uri: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(uri).password or ""


def _tables_uri(catalog_uri: str) -> str:
    """The PostgreSQL URI Tiled's table storage takes (ADBC/libpq: no ``+driver`` in the scheme)."""
    scheme, rest = catalog_uri.split(":", 1)
    return "postgresql:" + rest if scheme.startswith("postgresql") else catalog_uri


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


def tiled_config(
    data_dir: Path, catalog_uri: str | None, readable: Sequence[Path | str], access: TiledAccess
) -> dict:
    """The server's config file for a catalog with access control (no secret in it: the PostgreSQL
    URI and every password are ``${VAR}`` references the server expands from its environment)."""
    from sibyls.startup.stack.tiled_access import TOP_LEVEL_ACCESS_BLOB, access_config

    data_dir = Path(data_dir).resolve()
    catalog = catalog_uri or f"sqlite:///{data_dir / 'catalog.db'}"
    tables = f"sqlite:///{data_dir / 'tables.db'}"
    if is_postgresql(catalog_uri):
        catalog, tables = f"${{{CATALOG_URI_ENV}}}", f"${{{TABLES_URI_ENV}}}"
    tree = {
        "uri": catalog,
        "writable_storage": [str(data_dir / "files"), tables],
        "readable_storage": [str(Path(folder).resolve()) for folder in readable],
        "init_if_not_exists": True,
        "top_level_access_blob": TOP_LEVEL_ACCESS_BLOB,
    }
    return {"trees": [{"tree": "catalog", "path": "/", "args": tree}], **access_config(data_dir, access)}


def tiled_command(
    port: int, data_dir: Path, catalog_uri: str | None, readable: Sequence[Path | str] = ()
) -> list[str]:
    """The ``tiled serve catalog`` command line (no secret in it) for the given storage.

    A PostgreSQL catalog appears as a placeholder (the URI comes from ``TILED_CATALOG_URI``, see
    ``serve``) and also holds the event tables; otherwise catalog and tables are SQLite files in
    ``data_dir`` (or the catalog is the SQLite file ``catalog_uri`` names).
    """
    data_dir = Path(data_dir).resolve()
    catalog = catalog_uri or f"sqlite:///{data_dir / 'catalog.db'}"
    tables = f"sqlite:///{data_dir / 'tables.db'}"
    if is_postgresql(catalog_uri):
        catalog, tables = CATALOG_PLACEHOLDER, "tables:" + CATALOG_PLACEHOLDER
    command = redacted_command(
        [API_KEY_ENV, CATALOG_URI_ENV, CATALOG_PASSWORD_ENV],
        "sibyls.startup.stack.tiled:serve",
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
        tables,
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
    access: TiledAccess | None = None,
    timeout: float = 60.0,
    log_max_bytes: int = DEFAULT_LOG_MAX_BYTES,
    log_backups: int = DEFAULT_LOG_BACKUPS,
) -> TiledService:
    """Start ``tiled serve`` on 127.0.0.1:``port`` and wait until it answers.

    ``data_dir`` holds the SQLite catalog and tables (unless ``catalog_uri`` names a
    ``postgresql://`` database: then both are there) and the writable files. ``readable`` lists the
    folders of external files (the detector's frame folders) the server may serve.

    Without ``access`` the server has one API key for everything: ``api_key``, or one generated and
    written to ``<data_dir>/tiled_api_key`` (mode 0600). With ``access`` its people log in with their
    own accounts and see their projects' runs (:mod:`sibyls.startup.stack.tiled_access`); the service's
    key is then the writer identity's API key, kept in ``<data_dir>/tiled_api_key`` across restarts
    (``api_key`` is ignored).
    """
    data_dir = Path(data_dir).resolve()
    log_path = Path(log_path)
    (data_dir / "files").mkdir(parents=True, exist_ok=True)
    key_file = None
    if access is None:
        if api_key is None:
            api_key = secrets.token_hex(32)
            key_file = data_dir / API_KEY_FILE
            write_key(key_file, api_key)
        if not api_key.isalnum():
            raise ValueError("the Tiled API key must be letters and digits only")
    # Not the caller's: a database URI reaches the server only when catalog_uri names one, and none of
    # the caller's settings (its own Tiled database among them) reaches it at all.
    own = (CATALOG_URI_ENV, CATALOG_PASSWORD_ENV, TABLES_URI_ENV)
    env = {k: v for k, v in child_env().items() if k not in own}
    if catalog_uri:
        check_catalog_uri(catalog_uri)
    if is_postgresql(catalog_uri):
        env[CATALOG_URI_ENV] = catalog_uri
        env[TABLES_URI_ENV] = _tables_uri(catalog_uri)  # a config file's event tables
        if _password(catalog_uri):
            env[CATALOG_PASSWORD_ENV] = _password(catalog_uri)
    if access is None:
        env[API_KEY_ENV] = api_key
        command = tiled_command(port, data_dir, catalog_uri, readable)
    else:
        import yaml

        from sibyls.startup.stack.tiled_access import projects_env

        secret_env = access.secret_env()
        env.update(secret_env)
        env[projects_env()] = str(access.projects_file)
        config_path = data_dir / CONFIG_FILE
        write_private(config_path, yaml.safe_dump(tiled_config(data_dir, catalog_uri, readable, access)))
        command = redacted_command(
            [CATALOG_URI_ENV, CATALOG_PASSWORD_ENV, TABLES_URI_ENV, *secret_env],
            "sibyls.startup.stack.tiled:serve",
            "serve",
            "config",
            str(config_path),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        )
    process = spawn_service(command, log_path, env, log_max_bytes=log_max_bytes, log_backups=log_backups)
    service = TiledService(
        "tiled",
        process,
        log_path,
        url=f"http://127.0.0.1:{port}",
        api_key=api_key or "",
        api_key_file=key_file,
    )
    try:
        _wait_healthy(service, timeout)
        if access is not None:
            from sibyls.startup.stack.tiled_access import ensure_writer_key

            service.api_key_file = data_dir / API_KEY_FILE
            service.api_key = ensure_writer_key(service.url, service.api_key_file, access.writer_password)
            _wait_healthy(service, timeout)
    except BaseException:
        service.stop()
        raise
    return service


def serve() -> int:
    """Tiled's own command line, with the database URI from ``TILED_CATALOG_URI`` where the command
    line has its placeholder (so a password never shows in the process list); a config file refers
    to it (and to the event tables' URI) as ``${...}`` itself."""
    import sys

    from tiled.commandline.main import main

    uri = os.environ.get(CATALOG_URI_ENV, "")
    table_prefix = "tables:" + CATALOG_PLACEHOLDER
    argv = []
    for arg in sys.argv:
        if arg == CATALOG_PLACEHOLDER:
            arg = uri
        elif arg == table_prefix:
            arg = _tables_uri(uri)
        argv.append(arg)
    if CATALOG_PLACEHOLDER in sys.argv and not uri:
        raise SystemExit(f"{CATALOG_URI_ENV} is not set: no database for the Tiled catalog")
    sys.argv = argv
    return main()


def _wait_healthy(service: TiledService, timeout: float) -> None:
    """Until the server answers: its health check, and with the service's key (if any) the catalog root."""
    import httpx

    deadline = time.monotonic() + timeout
    url = f"{service.url}/api/v1/metadata/" if service.api_key else f"{service.url}/healthz"
    headers = {"Authorization": f"Apikey {service.api_key}"} if service.api_key else {}
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise RuntimeError(
                f"the Tiled server exited early with code {service.process.returncode}:\n{service.log_tail()}"
            )
        try:
            response = httpx.get(url, headers=headers, timeout=2.0)
            if response.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"the Tiled server did not answer at {service.url} within {timeout} s")


# ---- project access tags (Tiled's own TagBasedAccessPolicy) ----------------------------------------

#: Scopes a project's people get on its runs in Tiled; the writer (the RE worker's and the processing
#: service's identity) may also create and write nodes tagged with any project.
TILED_MEMBER_SCOPES = ("read:metadata", "read:data")
TILED_WRITER_SCOPES = (*TILED_MEMBER_SCOPES, "write:metadata", "write:data", "create")


def access_tags_config(projects: dict, writer: str) -> dict:
    """Tiled's access-tag definitions for the SIBYLS projects: one tag per project code, its members
    readers, ``writer`` able to create and write runs tagged with it (``tiled.access_control.
    access_tags.AccessTagsCompiler`` input; staff are Tiled admins in the server config, not here)."""
    return {
        "roles": {
            "member": {"scopes": list(TILED_MEMBER_SCOPES)},
            "writer": {"scopes": list(TILED_WRITER_SCOPES)},
        },
        "tags": {
            code: {
                "users": [{"name": name, "role": "member"} for name in project.members if name != writer]
                + [{"name": writer, "role": "writer"}]
            }
            for code, project in projects.items()
        },
        "tag_owners": {code: {"users": [{"name": writer}]} for code in projects},
    }


def compile_access_tags(projects: dict, tags_db: Path | str, writer: str) -> None:
    """Compile the projects' access tags into Tiled's tags database (SQLite) that the server's
    ``TagBasedAccessPolicy`` reads (``tags_db: {uri: file:<path>}``)."""
    from tiled.access_control.access_tags import AccessTagsCompiler
    from tiled.access_control.scopes import ALL_SCOPES

    config = access_tags_config(projects, writer)
    compiler = AccessTagsCompiler(ALL_SCOPES, config, {"uri": f"file:{tags_db}"}, lambda group: [])
    try:
        compiler.load_tag_config()
        compiler.compile()
    finally:
        compiler.connection.close()
