"""Tiled 0.2.1's own TagBasedAccessPolicy with one access tag per SIBYLS project (in-process server).

The projects file becomes Tiled's tag definitions (``sibyls.startup.stack.tiled.access_tags_config``);
a Tiled client of a project's person lists only that project's runs, another project's run is a
``KeyError`` (HTTP 404) like one that does not exist, and nobody but the writer may create nodes with
a project's tag. Staff are Tiled admins (everything). The stack's own server is configured the same
way (``tests/startup/test_tiled_projects_stack.py``).
"""

from __future__ import annotations

import os

import pytest

from sibyls.metadata.projects import Project
from sibyls.startup.stack.tiled import compile_access_tags

pytestmark = pytest.mark.slow  # builds Tiled server apps (a second each)

PROJECTS = {
    "MY_PROJECT": Project("MY_PROJECT", members=("user",)),
    "LAB_B": Project("LAB_B", members=("user2",)),
}


@pytest.fixture(scope="module")
def clients(tmp_path_factory):
    from tiled._tests.utils import enter_username_password
    from tiled.client import Context, from_context
    from tiled.server.app import build_app_from_config

    os.environ["TILED_FORCE_PROMPT"] = "1"  # the logins below answer the prompt
    tmp_path = tmp_path_factory.mktemp("tiled-tags")
    tags_db = tmp_path / "tags.db"
    compile_access_tags(PROJECTS, tags_db, writer="sibyls-writer")
    people = ("user", "user2", "sibyls-writer", "staff")
    config = {
        "access_control": {
            "access_policy": "tiled.access_control.access_policies:TagBasedAccessPolicy",
            "args": {
                "provider": "demo",
                "tags_db": {"uri": f"file:{tags_db}"},
                "access_tags_parser": "tiled.access_control.access_tags:AccessTagsParser",
            },
        },
        "authentication": {
            "tiled_admins": [{"provider": "demo", "id": "staff"}],
            "secret_keys": [os.urandom(16).hex()],
            "providers": [
                {
                    "provider": "demo",
                    "authenticator": "tiled.authenticators:DictionaryAuthenticator",
                    "args": {"users_to_passwords": {name: name for name in people}},
                }
            ],
        },
        "database": {"uri": f"sqlite:///{tmp_path / 'authn.db'}", "init_if_not_exists": True},
        "trees": [
            {
                "tree": "catalog",
                "path": "/",
                "args": {
                    "uri": f"sqlite:///{tmp_path / 'catalog.db'}",
                    "writable_storage": str(tmp_path / "files"),
                    "init_if_not_exists": True,
                    "top_level_access_blob": {"tags": list(PROJECTS)},
                },
            }
        ],
    }
    contexts, clients = [], {}
    for name in people:
        context = Context.from_app(build_app_from_config(config), uri=f"http://tiled-{name}/api/v1")
        contexts.append(context)
        with enter_username_password(name, name):
            clients[name] = from_context(context, remember_me=False)
    writer = clients["sibyls-writer"]
    for code in PROJECTS:
        run = writer.create_container(f"run_{code}", metadata={"project_code": code}, access_tags=[code])
        run.create_container("processed", access_tags=[code])
    yield clients
    for context in contexts:
        context.close()
    os.environ.pop("TILED_FORCE_PROMPT", None)


def test_each_person_lists_only_their_projects_runs_and_staff_all(clients):
    assert sorted(clients["user"]) == ["run_MY_PROJECT"]
    assert sorted(clients["user2"]) == ["run_LAB_B"]
    assert sorted(clients["staff"]) == ["run_LAB_B", "run_MY_PROJECT"]
    assert list(clients["user2"]["run_LAB_B"]) == ["processed"]


def test_another_projects_run_is_like_a_run_that_does_not_exist(clients):
    with pytest.raises(KeyError):
        clients["user2"]["run_MY_PROJECT"]
    with pytest.raises(KeyError):
        clients["user2"]["run_NOPE"]


def test_a_person_cannot_file_a_node_under_a_project(clients):
    from tiled.client.utils import ClientError

    with pytest.raises(ClientError):
        clients["user"].create_container("sneaky", access_tags=["LAB_B"])
    assert sorted(clients["user2"]) == ["run_LAB_B"]
