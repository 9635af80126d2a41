"""What a person may see of history, queue, progress and files (unit: no server)."""

from __future__ import annotations

import pytest

from sibyls.metadata.projects import Project, ProjectsFile
from sibyls.plans.validation import membership_problem
from sibyls.startup.config import ProfileConfig
from sibyls.startup.http.membership import Person, event_for, project_of_path


@pytest.fixture
def projects(tmp_path, monkeypatch):
    path = tmp_path / "projects.yaml"
    ProjectsFile(path).write(
        {"LAB_A": Project("LAB_A", members=("ann",)), "LAB_B": Project("LAB_B", members=("bob",))}
    )
    monkeypatch.setenv(ProfileConfig.env_name("projects"), str(path))
    return ProjectsFile(path)


def item(project, sample="s1", **extra):
    return {"item_uid": f"u-{project}", "item_type": "plan", "name": "saxs_exposure", "user": "x",
            "kwargs": {"sample_code": sample, "project_code": project}, **extra}  # fmt: skip


def test_history_holds_only_the_persons_projects_items_and_staff_sees_all(projects):
    history = {"items": [item("LAB_A"), item("LAB_B"), {"name": "mv", "args": ["x", 1]}]}
    assert [i["kwargs"]["project_code"] for i in event_for("history", history, Person("ann"))["items"]] == [
        "LAB_A"
    ]
    assert event_for("history", history, Person("eve"))["items"] == []
    assert event_for("history", history, Person("staff", staff=True)) == history


def test_positional_project_codes_count_too(projects):
    positional = {"item_uid": "p", "name": "saxs_exposure", "args": ["s1", "LAB_B"]}
    assert event_for("history", {"items": [positional]}, Person("bob"))["items"] == [positional]
    assert event_for("history", {"items": [positional]}, Person("ann"))["items"] == []


def test_others_queue_items_keep_their_place_and_plan_name_only(projects):
    queue = {"items": [item("LAB_A"), item("LAB_B")], "running_item": item("LAB_B", "secret")}
    shown = event_for("queue", queue, Person("ann"))
    assert shown["items"][0] == queue["items"][0]
    assert shown["items"][1] == {"item_uid": "u-LAB_B", "item_type": "plan", "name": "saxs_exposure"}
    assert "secret" not in str(shown) and "project_code" not in str(shown["running_item"])


def test_others_progress_is_plan_name_and_progress_only(projects):
    progress = {"state": "running", "plan_name": "ht_plate", "sample_code": "secret", "project_code": "LAB_B",
                "submitted_by": "bob", "well": "3/8", "well_id": "A3", "frame": 4, "frames": 10}  # fmt: skip
    assert event_for("progress", progress, Person("bob")) == progress
    seen = event_for("progress", progress, Person("ann"))
    assert seen == {"state": "running", "plan_name": "ht_plate", "well": "3/8", "frame": 4, "frames": 10}


def test_console_lines_are_for_staff_only(projects):
    assert event_for("console", {"msg": "x"}, Person("ann")) is None
    assert event_for("console", {"msg": "x"}, Person("s", staff=True)) == {"msg": "x"}


def test_a_malformed_projects_file_shows_a_person_nothing(projects):
    projects.path.write_text("LAB_A: {members: ann")
    history = {"items": [item("LAB_A")]}
    assert event_for("history", history, Person("ann"))["items"] == []
    assert "project_code" not in str(event_for("queue", history, Person("ann")))


def test_a_files_project_is_the_folder_below_its_root(tmp_path):
    roots = [tmp_path / "data", tmp_path / "records"]
    assert project_of_path(tmp_path / "data" / "LAB_A" / "x.h5", roots) == "LAB_A"
    assert project_of_path(tmp_path / "data" / "x.h5", roots) is None
    assert project_of_path(tmp_path / "other" / "LAB_A" / "x.h5", roots) is None


def test_the_gate_refuses_a_project_its_submitter_is_not_in_with_the_same_words_as_an_unknown_one(projects):
    assert membership_problem(item("LAB_A"), "ann", projects) is None
    assert membership_problem(item("LAB_A"), 'ann "Ann A <ann@x.org>"', projects) is None
    refusals = [membership_problem(item(code), "ann", projects) for code in ("LAB_B", "NOPE", "lab_a")]
    assert all(r.startswith("project_code: ") for r in refusals)
    assert refusals[0].replace("LAB_B", "X") == refusals[1].replace("NOPE", "X")
    assert membership_problem(item("LAB_B"), "GUI Client", projects, frozenset({"GUI Client"})) is None
    assert membership_problem(item("LAB_B"), "ann", None) is None  # no projects file configured


def test_the_stream_sends_a_person_their_latest_items_not_theirs_among_everyones_latest(projects):
    history = {"items": [item("LAB_A" if n % 5 == 0 else "LAB_B", sample=f"s{n}") for n in range(500)]}
    shown = event_for("history", history, Person("ann"))["items"]
    assert len(shown) == 50 and {i["kwargs"]["project_code"] for i in shown} == {"LAB_A"}
    assert shown[-1]["kwargs"]["sample_code"] == "s495"
    assert len(event_for("history", history, Person("staff", staff=True))["items"]) == 50
