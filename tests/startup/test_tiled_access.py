"""The stack's Tiled access configuration without services: run tags, the config file, the tag parser.

Each run's access tag is its project code when the projects file has that project (exact case), else
none (staff only); the server's config file holds no secret (``${...}`` references) and keeps Tiled's
authentication database in SQLite even for a PostgreSQL catalog (the two share an ``alembic_version``
table name: one PostgreSQL database cannot hold both); the tag parser follows the projects file.
"""

from __future__ import annotations

import asyncio

from sibyls.metadata.projects import Project, ProjectsFile
from sibyls.metadata.runs.tiled import project_access_tags
from sibyls.startup.stack.tiled import tiled_config
from sibyls.startup.stack.tiled_access import TAGS_DB_FILE, WRITER, ProjectTagsParser, TiledAccess


def _projects(tmp_path, members=("user",)):
    projects = ProjectsFile(tmp_path / "projects.yaml")
    projects.write({"MY_PROJECT": Project("MY_PROJECT", "t", members)})
    return projects


def test_a_run_is_tagged_with_its_project_only_when_the_project_exists(tmp_path):
    projects = _projects(tmp_path)
    tags = project_access_tags(projects.path)
    assert tags({"project_code": "MY_PROJECT"}) == ["MY_PROJECT"]
    assert tags({"project_code": "my_project"}) == []  # wrong case: no such project, staff only
    assert tags({"project_code": "NOPE"}) == [] and tags({}) == []
    projects.path.write_text("MY_PROJECT: [not, a, mapping]\n")
    assert tags({"project_code": "MY_PROJECT"}) == []  # malformed: never an open door


def test_the_config_file_holds_no_secret_and_authn_stays_in_sqlite(tmp_path):
    access = TiledAccess(
        {"user": "pw-user-secret"}, ("staff",), tmp_path / "projects.yaml", "pw-writer", "sk"
    )
    config = tiled_config(tmp_path, "postgresql://u:pgsecret@db/tiled", [tmp_path / "data"], access)
    text = repr(config)
    assert not any(secret in text for secret in ("pw-user-secret", "pw-writer", "pgsecret", "'sk'"))
    assert config["database"]["uri"].startswith("sqlite:///")
    assert config["trees"][0]["args"]["uri"] == "${TILED_CATALOG_URI}"
    admins = {admin["id"] for admin in config["authentication"]["tiled_admins"]}
    assert admins == {"staff", WRITER}
    assert config["authentication"]["allow_anonymous_access"] is False


def test_the_tag_parser_follows_the_projects_file(tmp_path, monkeypatch):
    from sibyls.startup.config import ProfileConfig

    projects = _projects(tmp_path)
    monkeypatch.setenv(ProfileConfig.env_name("projects"), str(projects.path))
    parser = ProjectTagsParser.from_uri(f"file:{tmp_path / TAGS_DB_FILE}")

    async def scopes(user):
        await parser.connect()
        return await parser.get_scopes_from_tag("MY_PROJECT", user)

    assert "read:data" in asyncio.run(scopes("user"))
    projects.set_members("MY_PROJECT", remove=["user"], add=["user2"])
    parser._parser._db = None  # a fresh event loop: a fresh connection
    assert asyncio.run(scopes("user")) == set()
    parser._parser._db = None
    assert "read:data" in asyncio.run(scopes("user2"))
