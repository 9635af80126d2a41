"""Each setting is named once: ``startup/config.py`` (``ProfileConfig``) is the only module that spells a
``SIBYLS_*`` setting; everything else reads the settings through it (``ProfileConfig.env_name`` where
the variable's name itself is needed, e.g. a test setting one for a stack it starts).

Every other ``SIBYLS_*`` name in a module must be one of the justified exceptions below.
"""

from __future__ import annotations

import re
from pathlib import Path

from sibyls.startup.config import ProfileConfig

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "startup" / "config.py"
NAME = re.compile(r"\bSIBYLS_[A-Z][A-Z0-9_]*")
#: Not settings, so not in ProfileConfig: name (or prefix ending in ``_``) → where it may appear, why.
EXCEPTIONS = {
    # Secrets: httpserver expands ``${SIBYLS_HTTP_PASSWORD_<ACCOUNT>}`` in its config from its own
    # environment; only the HTTP server gets them. As ProfileConfig fields they would travel with
    # ``as_env`` to every service (the RE worker, the processing service) and into ``repr``.
    "SIBYLS_HTTP_PASSWORD_": ("startup/stack/security.py", "tests/startup/test_security.py"),
    # Secrets of the stack's Tiled server alone (the writer identity's password, the signing key of
    # its login tokens), and the event tables' URI its own process derives from the catalog's.
    "SIBYLS_TILED_WRITER_PASSWORD": ("startup/stack/tiled_access.py",),
    "SIBYLS_TILED_SECRET_KEY": ("startup/stack/tiled_access.py",),
    "SIBYLS_TILED_TABLES_URI": ("startup/stack/tiled.py",),
    # Knobs of the test run and CI (which tests must run, where artefacts go), not of a session.
    "SIBYLS_REQUIRE_SHARED": ("tests/conftest.py",),
    "SIBYLS_REQUIRE_POSTGRES": ("tests/startup/test_tiled_postgres.py",),
    "SIBYLS_TEST_POSTGRES": ("tests/startup/test_tiled_postgres.py",),
    "SIBYLS_WEB_ARTIFACTS": ("tests/browser_helpers.py",),
}
SKIP_DIRS = {".venv", ".git", "var", "node_modules", "reference", "build", "dist"}


def _modules() -> list[Path]:
    return [
        path
        for path in REPO.rglob("*.py")
        if not SKIP_DIRS & set(path.relative_to(REPO).parts)
        and path not in (CONFIG, Path(__file__).resolve())
    ]


def _allowed(name: str, where: str) -> bool:
    for exception, places in EXCEPTIONS.items():
        if (
            name == exception or (exception.endswith("_") and name.startswith(exception))
        ) and where in places:
            return True
    return False


def test_every_setting_is_a_field_named_by_its_environment_variable():
    names = {ProfileConfig.env_name(field) for field in ProfileConfig.model_fields}
    assert "SIBYLS_REOPEN_ENVIRONMENT" in names and "SIBYLS_PLATE_REGISTRY" in names
    assert all(name in CONFIG.read_text() for name in names), "each setting is documented in config.py"


def test_no_module_but_config_names_a_sibyls_setting():
    settings = {ProfileConfig.env_name(field) for field in ProfileConfig.model_fields}
    found = []
    for path in _modules():
        where = str(path.relative_to(REPO))
        for name in set(NAME.findall(path.read_text(errors="replace"))):
            if name in settings or not _allowed(name, where):
                found.append(f"{where}: {name}")
    assert not found, "read settings through ProfileConfig (env_name for the variable's name): " + "; ".join(
        sorted(found)
    )


def test_the_settings_round_trip_through_the_environment():
    config = ProfileConfig.given(var_dir="/tmp/sibyls-var", absolute_scale=2.5, reopen_environment=False)
    assert ProfileConfig.from_env(config.as_env()) == config
    assert config.as_env()["SIBYLS_REOPEN_ENVIRONMENT"] == "0"


def test_the_tiled_database_is_never_passed_on():
    config = ProfileConfig.given(tiled_db="postgresql://user:secret@db/tiled")
    assert not [value for value in config.as_env().values() if "secret" in value]
