"""``sibyls validate-item`` offline, with the stack's plate registry (``--var-dir``, default
``var/stack``): an unknown plate is refused as the queue refuses it, a plate defined by hand in
``plates.yaml`` as the README shows is accepted. ``sibyls up`` writes the registry with the robot's
plates when there is none."""

from __future__ import annotations

import json

import pytest

from sibyls.metadata.plate_registry import HEADER, configured_registry, use_registry
from sibyls.startup.cli import main
from sibyls.startup.stack.demo import demo_plate, ensure_plate_registry


@pytest.fixture
def var_dir(tmp_path):
    before = configured_registry()  # validate-item configures the stack's registry for its process
    ensure_plate_registry(tmp_path / "plates.yaml")
    yield tmp_path
    use_registry(before.path if before else None)


def plate_item(plate_id: str) -> str:
    wells = [
        {"well": "A1", "sample_code": "my_buffer", "sample_role": "buffer_blank", "exposure_time": 0.5,
         "num_frames": 10},
        {"well": "A2", "sample_code": "my_protein", "buffer_well": "A1", "concentration_mg_ml": 2.0,
         "exposure_time": 0.5, "num_frames": 10},
    ]  # fmt: skip
    return json.dumps(
        {
            "name": "ht_plate",
            "kwargs": {"plate": {"plate_id": plate_id, "wells": wells}, "project_code": "P1"},
        }
    )


def test_up_writes_the_registry_with_the_robots_plates_and_keeps_an_existing_one(tmp_path):
    path = ensure_plate_registry(tmp_path / "plates.yaml")
    text = path.read_text()
    assert text.startswith(HEADER) and "DEMO_PLATE_1:" in text
    path.write_text(HEADER)  # a person removed every plate
    ensure_plate_registry(path)
    assert path.read_text() == HEADER


def test_the_demo_plate_is_valid(var_dir, capsys):
    plate, _ = demo_plate()
    item = json.dumps({"name": "ht_plate", "kwargs": {"plate": plate, "project_code": "P1"}})
    assert main(["validate-item", "--var-dir", str(var_dir), item]) == 0
    assert capsys.readouterr().out.strip() == "valid"


def test_an_unknown_plate_is_refused_until_it_is_defined_in_the_registry(var_dir, capsys):
    registry = var_dir / "plates.yaml"
    assert main(["validate-item", "--var-dir", str(var_dir), plate_item("MY_PLATE_1")]) == 1
    refusal = capsys.readouterr().err
    assert refusal.startswith("plate.plate_id: the robot has no plate 'MY_PLATE_1'")
    assert f"define it in {registry}" in refusal
    with registry.open("a") as file:  # the README's example, appended by hand
        file.write(
            "MY_PLATE_1:\n"
            "  plate_id: MY_PLATE_1\n"
            "  wells:\n"
            "    A1: {sample_code: my_buffer, kind: buffer}\n"
            "    A2: {sample_code: my_protein, kind: sample, concentration_mg_ml: 2.0, mw_kda: 50,"
            " rg_a: 20}\n"
        )
    assert main(["validate-item", "--var-dir", str(var_dir), plate_item("MY_PLATE_1")]) == 0


def test_a_missing_item_file_is_one_line_and_exit_2(var_dir, capsys):
    assert main(["validate-item", "--var-dir", str(var_dir), f"@{var_dir / 'none.json'}"]) == 2
    assert capsys.readouterr().err.startswith("item: cannot read ")
