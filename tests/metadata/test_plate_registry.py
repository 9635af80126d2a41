"""The robot's plate registry file: an unknown plate is refused with how to define it, and the format
its header documents is one the robot takes."""

from __future__ import annotations

import re

import pytest
import yaml

from sibyls.devices.sim.physics import PlateDefinition
from sibyls.metadata.plate_registry import (
    HEADER,
    PlateRegistry,
    configured_registry,
    unknown_plate_problem,
    use_registry,
)


@pytest.fixture
def registry_restored():
    """The process's configured registry as it was before the test."""
    before = configured_registry()
    yield
    use_registry(before.path if before else None)


def header_example() -> dict:
    """The example plate of the file's header, as a person copies it (comment marks removed)."""
    lines = HEADER.splitlines()
    start = lines.index("# Example:") + 1
    return yaml.safe_load("\n".join(line.removeprefix("#   ") for line in lines[start:]))


def test_the_headers_example_is_a_plate_the_robot_takes():
    (plate_id, definition), *rest = header_example().items()
    assert not rest and plate_id == definition["plate_id"] == "MY_PLATE_1"
    plate = PlateDefinition.model_validate(definition)
    assert {well: sample.kind for well, sample in plate.wells.items()} == {"A1": "buffer", "A2": "sample"}


def test_an_unknown_plate_is_refused_naming_the_field_the_file_and_a_definition(tmp_path, registry_restored):
    path = tmp_path / "plates.yaml"
    PlateRegistry(path).write({"DEMO_PLATE_1": {"plate_id": "DEMO_PLATE_1", "wells": {}}})
    use_registry(path)
    problem = unknown_plate_problem("MY_PLATE_7")
    assert problem.startswith(
        "plate.plate_id: the robot has no plate 'MY_PLATE_7' (known plates: DEMO_PLATE_1)"
    )
    assert f"define it in {path} as " in problem
    snippet = re.search(r" as '(.+?)' \(", problem).group(1)
    definition = yaml.safe_load(snippet)["MY_PLATE_7"]
    assert PlateDefinition.model_validate(definition).plate_id == "MY_PLATE_7"
    assert unknown_plate_problem("DEMO_PLATE_1") is None


def test_the_robot_adding_a_plate_keeps_the_header_and_every_plate(tmp_path):
    path = tmp_path / "plates.yaml"
    path.write_text(HEADER + yaml.safe_dump(header_example()))
    registry = PlateRegistry(path)
    registry.add({"plate_id": "P2", "wells": {"A1": {"sample_code": "b", "kind": "buffer"}}})
    assert path.read_text().startswith(HEADER)
    assert registry.plate_ids() == ["MY_PLATE_1", "P2"]
