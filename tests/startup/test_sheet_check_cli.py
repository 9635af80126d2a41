"""``sibyls sheet check plate.csv``: a plate sheet's dry run offline, with the stack's plate registry
(``--var-dir``): every row's verdict, exit 0 when the upload would queue it, 1 when it would be
refused (nothing is queued either way), 2 when the file cannot be read."""

from __future__ import annotations

import pytest
from stack_helpers import csv_sheet

from sibyls.metadata.plate_registry import configured_registry, use_registry
from sibyls.startup.cli import main
from sibyls.startup.stack.demo import demo_plate, ensure_plate_registry


@pytest.fixture
def var_dir(tmp_path):
    before = configured_registry()  # sheet check configures the stack's registry for its process
    ensure_plate_registry(tmp_path / "plates.yaml")
    yield tmp_path
    use_registry(before.path if before else None)


def sheet_rows(plate_id: str = "DEMO_PLATE_1", wells: int = 4) -> list[dict]:
    plate, _ = demo_plate()
    return [{"plate_id": plate_id, "project_code": "MY_PROJECT", **w} for w in plate["wells"][:wells]]


def test_a_good_sheet_is_ok_row_by_row_and_exit_0(var_dir, tmp_path, capsys):
    path = tmp_path / "plate.csv"
    path.write_bytes(csv_sheet(sheet_rows()))
    assert main(["sheet", "check", str(path), "--var-dir", str(var_dir)]) == 0
    out = capsys.readouterr().out
    assert out.count(" ok\n") == 4 and "plate DEMO_PLATE_1: 4 wells, would be queued" in out


def test_each_bad_well_is_named_with_its_columns_and_exit_1(var_dir, tmp_path, capsys):
    rows = sheet_rows()
    rows[1].update(well="Z9", exposure_time=500)
    rows[3]["sample_code"] = "=HYPERLINK()"
    path = tmp_path / "plate.csv"
    path.write_bytes(csv_sheet(rows))
    assert main(["sheet", "check", str(path), "--var-dir", str(var_dir)]) == 1
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert "column well: 'Z9' is not a 96-well plate position" in lines[1]
    assert "column exposure_time: 500 s is outside 0.001–60 s" in lines[1]
    assert "spreadsheet takes for a formula" in lines[3] and lines[0].endswith(" ok")
    assert "nothing would be queued" in captured.err


def test_an_unknown_plate_is_refused_as_the_queue_refuses_it(var_dir, tmp_path, capsys):
    path = tmp_path / "plate.csv"
    path.write_bytes(csv_sheet(sheet_rows("NOT_ON_THE_ROBOT", wells=2)))
    assert main(["sheet", "check", str(path), "--var-dir", str(var_dir)]) == 1
    out = capsys.readouterr().out
    assert "sheet: plate.plate_id: the robot has no plate 'NOT_ON_THE_ROBOT'" in out
    assert f"define it in {var_dir / 'plates.yaml'}" in out


def test_a_file_that_cannot_be_read_is_exit_2(var_dir, tmp_path, capsys):
    assert main(["sheet", "check", str(tmp_path / "missing.csv"), "--var-dir", str(var_dir)]) == 2
    assert "file: cannot read" in capsys.readouterr().err
    path = tmp_path / "plate.txt"
    path.write_text("plate_id\n")
    assert main(["sheet", "check", str(path), "--var-dir", str(var_dir)]) == 1
    assert "is neither .csv nor .xlsx" in capsys.readouterr().out
