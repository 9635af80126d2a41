"""HT plate sheets (CSV, XLSX) → one ht_plate item, or every bad row, column and rule."""

from __future__ import annotations

import io

import pytest

from sibyls.plans.plate_sheet import SheetError, read_sheet_rows
from sibyls.startup.http.extensions import spreadsheet_to_plan_list

HEADER = "plate_id,project_code,well,sample_code,sample_role,buffer_well,concentration_mg_ml,num_frames\n"


def parse(text: str, name: str = "plate.csv"):
    return spreadsheet_to_plan_list(spreadsheet_file=io.BytesIO(text.encode()), file_name=name)


def test_good_sheet_gives_one_item_with_numbers_and_text_typed():
    (item,) = parse(HEADER + "P1,PR,A1,buf,buffer_blank,,,5\nP1,PR,A2,lys,sample,A1,2.5,5\n")
    assert item["name"] == "ht_plate" and item["kwargs"]["project_code"] == "PR"
    wells = item["kwargs"]["plate"]["wells"]
    assert wells[1] == {
        "well": "A2",
        "sample_code": "lys",
        "sample_role": "sample",
        "buffer_well": "A1",
        "concentration_mg_ml": 2.5,
        "num_frames": 5,
    }


def test_errors_name_the_sheets_own_rows_even_after_blank_rows():
    text = (
        HEADER
        + "P1,PR,A1,buf,buffer_blank,,,\n,,,,,,,\nP1,PR,A2,s1,sample,A1,-1,\nP1,PR,A3,s2,sample,H12,2,\n"
    )
    with pytest.raises(SheetError) as info:
        parse(text)
    assert info.value.problems == [
        "row 4, column concentration_mg_ml: -1 mg/mL is outside > 0–1000 mg/mL",
        "row 5, column buffer_well: buffer well H12 of s2 is not on the plate",
    ]


def test_sheet_level_problems():
    with pytest.raises(SheetError, match="column project_code: must be the same on every row"):
        parse(HEADER + "P1,PR,A1,buf,buffer_blank,,,\nP1,OTHER,A2,s,sample,A1,1,\n")
    with pytest.raises(SheetError, match="column colour: unknown column"):
        parse("plate_id,project_code,well,sample_code,colour\nP1,PR,A1,b,red\n")
    with pytest.raises(SheetError, match="neither .csv nor .xlsx"):
        parse(HEADER, "plate.txt")
    assert (
        spreadsheet_to_plan_list(spreadsheet_file=io.BytesIO(b""), file_name="x.csv", data_type="other")
        is None
    )


def test_xlsx_numbers_in_text_columns_stay_text():
    import openpyxl

    book = openpyxl.Workbook()
    book.active.append(["plate_id", "project_code", "well", "sample_code", "sample_role"])
    book.active.append(["P1", 2026, "A1", 12.0, "buffer_blank"])
    data = io.BytesIO()
    book.save(data)
    rows = read_sheet_rows(io.BytesIO(data.getvalue()), "plate.xlsx")
    assert rows == [
        (
            2,
            {
                "plate_id": "P1",
                "project_code": "2026",
                "well": "A1",
                "sample_code": "12",
                "sample_role": "buffer_blank",
            },
        )
    ]


@pytest.mark.parametrize("cell", ["=1+2", "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\t=1"])
@pytest.mark.parametrize("column", ["sample_code", "description", "buffer_name"])
def test_formula_cells_in_text_columns_are_refused(column, cell):
    header = "plate_id,project_code,well,sample_code,sample_role,description,buffer_name\n"
    row = {"sample_code": "buf", "description": "ok", "buffer_name": "Tris"} | {column: cell}
    line = f"P1,PR,A1,{row['sample_code']},buffer_blank,{row['description']},{row['buffer_name']}\n"
    with pytest.raises(SheetError) as info:
        parse(header + line)
    assert any(p.startswith(f"row 2, column {column}:") and "formula" in p for p in info.value.problems)


def test_formula_cells_of_an_xlsx_sheet_are_refused_not_evaluated():
    import openpyxl

    book = openpyxl.Workbook()
    book.active.append(["plate_id", "project_code", "well", "sample_code", "sample_role"])
    book.active.append(["P1", "PR", "A1", '=HYPERLINK("http://x")', "buffer_blank"])
    data = io.BytesIO()
    book.save(data)
    with pytest.raises(SheetError, match="row 2, column sample_code: .*formula"):
        parse_bytes(data.getvalue(), "plate.xlsx")


def parse_bytes(content: bytes, name: str):
    return spreadsheet_to_plan_list(spreadsheet_file=io.BytesIO(content), file_name=name)
