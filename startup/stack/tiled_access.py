"""Who sees what in the stack's Tiled: the HTTP accounts log in, each run is tagged with its project.

A beamline user gets a Tiled client of their own (``from_uri(url)`` then ``client.login()`` with their
HTTP account, or an API key they make with ``client.context.create_api_key()``) that lists only their
projects' runs; another project's run is a ``KeyError`` like one that does not exist. This module
only configures Tiled 0.2.1's own access control, it decides nothing itself:

* ``DictionaryAuthenticator`` with the stack's HTTP accounts (passwords reach the server through its
  environment as ``${...}`` references, never in the config file, a command line or a log), plus the
  writer identity (:data:`WRITER`) of the stack's own writers (the RE worker's TiledWriter, the
  processing service's processed curves), which uses an API key file;
* ``TagBasedAccessPolicy`` with one access tag per project (``access_tags_config`` in
  :mod:`sibyls.startup.stack.tiled`): a project's members read its runs, observers included;
* staff and the writer are Tiled admins (every run, every tag);
* :class:`ProjectTagsParser`, Tiled's own ``AccessTagsParser`` whose tag database is recompiled from
  the projects file when that file changes (checked at each access decision, like the plate
  registry): removing a member takes effect at their next request. A malformed file compiles to no
  project (only staff and the writer see runs) until it is fixed.
"""

from __future__ import annotations

import os
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path

#: Tiled's login provider for the stack's accounts (``/api/v1/auth/provider/sibyls/token``).
TILED_PROVIDER = "sibyls"
#: The identity the stack's own writers use (a Tiled admin; its API key is ``tiled/tiled_api_key``).
WRITER = "sibyls-writer"
#: Environment of the Tiled server: the projects file its tag parser follows, the writer's password
#: and the signing key of login tokens (kept across restarts: a person's login outlives one).
WRITER_PASSWORD_ENV = "SIBYLS_TILED_WRITER_PASSWORD"
SECRET_KEY_ENV = "SIBYLS_TILED_SECRET_KEY"
WRITER_PASSWORD_FILE = "writer_password"
SECRET_KEY_FILE = "secret_key"
TAGS_DB_FILE = "access_tags.db"
#: Tiled's authentication database (sessions, hashed API keys): always SQLite beside the catalog's
#: files, also when the catalog is in PostgreSQL (both use an ``alembic_version`` table of their own,
#: so they cannot share one database).
AUTHN_DB_FILE = "authn.db"


def projects_env() -> str:
    """The environment variable naming the projects file (the ``projects`` setting)."""
    from sibyls.startup.config import ProfileConfig

    return ProfileConfig.env_name("projects")


def password_env(username: str) -> str:
    """The environment variable holding ``username``'s password (the HTTP server's own names)."""
    from sibyls.startup.stack.security import password_env as http_password_env

    return http_password_env(username)


@dataclass
class TiledAccess:
    """The people of a Tiled server: passwords by login name, the staff among them, the projects file.

    ``writer_password`` is the writer identity's, ``secret_key`` signs login tokens; secrets are
    kept out of ``repr``."""

    passwords: dict[str, str] = field(repr=False)
    staff: tuple[str, ...]
    projects_file: Path
    writer_password: str = field(default="", repr=False)
    secret_key: str = field(default="", repr=False)

    def secret_env(self) -> dict[str, str]:
        """The server's secret environment: each password and the token signing key."""
        env = {password_env(name): password for name, password in self.passwords.items()}
        env[WRITER_PASSWORD_ENV] = self.writer_password
        env[SECRET_KEY_ENV] = self.secret_key or secrets.token_hex(32)
        return env


def private_secret(path: Path) -> str:
    """The secret in ``path`` (0600), generated once (the writer's password, the token signing key)."""
    from sibyls.startup.stack.private_files import is_private, write_key

    path = Path(path)
    if is_private(path) and path.read_text().strip():
        return path.read_text().strip()
    secret = secrets.token_hex(32)
    write_key(path, secret)
    return secret


def access_config(data_dir: Path, access: TiledAccess) -> dict:
    """The ``authentication``, ``database`` and ``access_control`` sections of the server's config
    (no secret in them: ``${VAR}`` references Tiled expands from its environment)."""
    data_dir = Path(data_dir).resolve()
    people = {name: f"${{{password_env(name)}}}" for name in access.passwords}
    return {
        "authentication": {
            "providers": [
                {
                    "provider": TILED_PROVIDER,
                    "authenticator": "tiled.authenticators:DictionaryAuthenticator",
                    "args": {"users_to_passwords": {**people, WRITER: f"${{{WRITER_PASSWORD_ENV}}}"}},
                }
            ],
            "tiled_admins": [{"provider": TILED_PROVIDER, "id": name} for name in (*access.staff, WRITER)],
            "secret_keys": [f"${{{SECRET_KEY_ENV}}}"],
            "allow_anonymous_access": False,
        },
        "database": {"uri": f"sqlite:///{data_dir / AUTHN_DB_FILE}", "init_if_not_exists": True},
        "access_control": {
            "access_policy": "tiled.access_control.access_policies:TagBasedAccessPolicy",
            "args": {
                "provider": TILED_PROVIDER,
                "tags_db": {"uri": f"file:{data_dir / TAGS_DB_FILE}"},
                "access_tags_parser": f"{__name__}:ProjectTagsParser",
            },
        },
    }


#: The root of the catalog: readable by every logged-in person (its children are filtered by tag).
TOP_LEVEL_ACCESS_BLOB = {"tags": ["public"]}


def compile_projects(projects_file: Path | str, tags_db: Path | str) -> None:
    """Compile the projects file into Tiled's tag database (a malformed or missing file: no project)."""
    from sibyls.metadata.projects import ProjectsFile, ProjectsFileError
    from sibyls.startup.stack.tiled import compile_access_tags

    try:
        projects = ProjectsFile(Path(projects_file)).projects()
    except ProjectsFileError:
        projects = {}
    compile_access_tags(projects, tags_db, writer=WRITER)


class ProjectTagsParser:
    """Tiled's ``AccessTagsParser`` over a tag database kept in step with the projects file.

    Before each answer the projects file's stamp (mtime, size) is compared with the one last compiled;
    on a change the tag database is recompiled (Tiled's own ``AccessTagsCompiler``). The projects file
    is the ``projects`` setting in the server's environment."""

    @classmethod
    def from_uri(cls, uri: str):
        from tiled.access_control.access_tags import AccessTagsParser

        path = Path(uri.split(":", 1)[1] if uri.startswith("file:") else uri)
        projects = os.environ.get(projects_env(), "")
        parser = cls(None, path, Path(projects) if projects else None)
        parser.refresh()  # the database exists before Tiled opens it read-only
        parser._parser = AccessTagsParser.from_uri(uri)
        return parser

    def __init__(self, parser, tags_db: Path, projects_file: Path | None) -> None:
        self._parser, self._tags_db, self._projects_file = parser, tags_db, projects_file
        self._stamp: tuple[int, int] | None = None
        self._lock = threading.Lock()

    def refresh(self) -> None:
        """Recompile the tags if the projects file changed since the last compile (no file set: no
        project, compiled once)."""
        if self._projects_file is None:
            if self._stamp is None:
                from sibyls.startup.stack.tiled import compile_access_tags

                compile_access_tags({}, self._tags_db, writer=WRITER)
                self._stamp = (0, -2)
            return
        try:
            info = self._projects_file.stat()
            stamp = (info.st_mtime_ns, info.st_size)
        except OSError:
            stamp = (0, -1)
        if stamp == self._stamp:
            return
        with self._lock:
            if stamp != self._stamp:
                compile_projects(self._projects_file, self._tags_db)
                self._stamp = stamp

    async def connect(self):
        await self._parser.connect()

    async def is_tag_defined(self, name):
        self.refresh()
        return await self._parser.is_tag_defined(name)

    async def get_public_tags(self):
        self.refresh()
        return await self._parser.get_public_tags()

    async def get_scopes_from_tag(self, tagname, username):
        self.refresh()
        return await self._parser.get_scopes_from_tag(tagname, username)

    async def is_tag_owner(self, tagname, username):
        self.refresh()
        return await self._parser.is_tag_owner(tagname, username)

    async def is_tag_public(self, name):
        self.refresh()
        return await self._parser.is_tag_public(name)

    async def get_tags_from_scope(self, scope, username):
        self.refresh()
        return await self._parser.get_tags_from_scope(scope, username)


def ensure_writer_key(url: str, key_file: Path, password: str, timeout: float = 10.0) -> str:
    """The writer's API key from ``key_file`` if the server knows it, else a new one (no expiry) made
    by logging in as the writer and written to ``key_file`` (0600). The key survives Tiled restarts
    (the server keeps its hash in its authentication database): the RE worker's writer keeps working."""
    import httpx

    from sibyls.startup.stack.private_files import is_private, write_key

    key_file = Path(key_file)
    if is_private(key_file):
        key = key_file.read_text().strip()
        known = httpx.get(
            f"{url}/api/v1/auth/whoami", headers={"Authorization": f"Apikey {key}"}, timeout=timeout
        )
        if known.status_code == 200 and _identity(known.json()) == WRITER:
            return key
    login = httpx.post(
        f"{url}/api/v1/auth/provider/{TILED_PROVIDER}/token",
        data={"username": WRITER, "password": password},
        timeout=timeout,
    )
    if login.status_code != 200:
        raise RuntimeError(f"the Tiled server refused the writer's login (HTTP {login.status_code})")
    made = httpx.post(
        f"{url}/api/v1/auth/apikey",
        json={"expires_in": None, "scopes": ["inherit"], "note": "sibyls up: the stack's writer"},
        headers={"Authorization": f"Bearer {login.json()['access_token']}"},
        timeout=timeout,
    )
    if made.status_code != 200:
        raise RuntimeError(f"the Tiled server did not issue the writer's API key (HTTP {made.status_code})")
    key = made.json()["secret"]
    write_key(key_file, key)
    return key


def _identity(whoami: dict) -> str | None:
    for identity in whoami.get("identities") or ():
        if identity.get("provider") == TILED_PROVIDER:
            return identity.get("id")
    return None
