"""The projects file: members, staff, re-read on change, a malformed file denies everyone."""

from __future__ import annotations

import os
import re

import pytest

from sibyls.metadata.projects import Project, ProjectsFile, ProjectsFileError, parse_projects
from sibyls.startup.cli import main as sibyls


@pytest.fixture
def projects(tmp_path):
    found = ProjectsFile(tmp_path / "projects.yaml")
    found.write({"LAB_A": Project("LAB_A", "A", ("ann",)), "LAB_B": Project("LAB_B", "B", ("bob", "ann"))})
    return found


def test_a_person_belongs_to_the_projects_that_list_them_and_staff_to_every_one(projects):
    assert projects.projects_of("ann") == {"LAB_A", "LAB_B"}
    assert projects.projects_of("bob") == {"LAB_B"}
    assert projects.projects_of("eve") == frozenset()
    assert projects.is_member("bob", "LAB_B") and not projects.is_member("bob", "LAB_A")
    assert projects.is_member("anyone", "LAB_A", staff=True)


def test_a_project_code_in_another_case_is_another_project(projects):
    assert not projects.is_member("bob", "lab_b")
    assert not projects.is_member("bob", "Lab_B ")


def test_an_edit_is_seen_at_the_next_check(projects):
    assert projects.is_member("bob", "LAB_B")
    projects.set_members("LAB_B", remove=["bob"])
    assert not projects.is_member("bob", "LAB_B")


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("LAB_A: [ann]", "LAB_A: must be a mapping"),
        ("LAB_A: {members: ann}", "LAB_A.members: must be a list"),
        ("LAB_A: {members: ['a b']}", "LAB_A.members[0]: 'a b' is not a login name"),
        ("LAB_A: {emails: [nobody]}", "LAB_A.emails[0]: 'nobody' is not an e-mail address"),
        ("LAB_A: {member: [ann]}", "LAB_A.member: not a project field"),
        ("'../x': {members: [ann]}", "project_code: '../x' must start with a letter"),
        ("LAB_A: {members: [ann]", "not valid YAML"),
        ("- LAB_A", "must map project codes"),
    ],
)
def test_a_malformed_file_names_the_field_and_denies_everyone_but_staff(projects, text, named):
    with pytest.raises(ProjectsFileError, match=re.escape(named)):
        parse_projects(text)
    projects.path.write_text(text)
    os.utime(projects.path, ns=(1, 1))  # a new stamp even within the same clock tick
    assert named.split(":")[0] in (projects.problem() or "")
    assert projects.projects_of("ann") == frozenset()
    assert not projects.is_member("ann", "LAB_A")
    assert projects.is_member("staff", "LAB_A", staff=True)


def test_the_cli_adds_lists_and_edits_members_and_refuses_bad_names(tmp_path, capsys):
    var = str(tmp_path)
    assert sibyls(["project", "--var-dir", var, "add", "LAB_X", "--member", "ann", "--email", "a@x.org"]) == 0
    assert sibyls(["project", "--var-dir", var, "members", "LAB_X", "--add", "bob", "--remove", "ann"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "bob"
    assert sibyls(["project", "--var-dir", var, "add", "LAB_Y", "--member", "a b"]) == 2
    assert "LAB_Y.members[0]" in capsys.readouterr().err
    assert sibyls(["project", "--var-dir", var, "list"]) == 0
    assert "LAB_X" in capsys.readouterr().out and "LAB_Y" not in (tmp_path / "projects.yaml").read_text()
