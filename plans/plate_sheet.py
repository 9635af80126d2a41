"""Plate sheets: a CSV or XLSX sheet a user fills in → exactly one ``ht_plate`` queue item, or a refusal
listing every bad row, column and rule; and the plate map's verdict per well (a dry run).

Hardware-free (loads neither ophyd nor pyepics): used by the HTTP upload hook and the page's dry run
(:mod:`sibyls.startup.http.extensions`) and by ``sibyls sheet check plate.csv``. Each well is checked
with the plate spec's rules (:mod:`sibyls.metadata.plate_spec`), the whole item with the queue gate's
own check (:func:`sibyls.plans.validation.validate_queue_item`), so a sheet is refused exactly when
its item would be.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any

from pydantic import BaseModel, ValidationError

from sibyls.metadata.contract import ContractError
from sibyls.metadata.plate_spec import PlateWell, validate_plate
from sibyls.metadata.rule_fields import describe
from sibyls.plans.validation import validate_queue_item

SHEET_DATA_TYPE = "sibyls_ht_plate"
PLATE_COLUMNS = ("plate_id", "project_code")
WELL_COLUMNS = tuple(PlateWell.model_fields)
NUMERIC_COLUMNS = {
    "concentration_mg_ml": float,
    "exposure_time": float,
    "num_frames": int,
    "molecular_weight_kda": float,
}
#: A text cell starting with one of these is a formula to a spreadsheet program (formula injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


class SheetError(ValueError):
    """A plate sheet was refused; ``problems`` list each row, column and rule."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("plate sheet refused, nothing was queued:\n" + "\n".join(problems))


def read_sheet_rows(spreadsheet_file, file_name: str) -> list[tuple[int, dict[str, Any]]]:
    """(row number, row) of each non-blank row of a CSV or XLSX plate sheet, keyed by the header row.

    Row numbers are the sheet's own (the header is row 1), blank rows and cells are dropped, and
    cells are text except the numeric columns.
    """
    name = (file_name or "").lower()
    if name.endswith(".csv"):
        text = spreadsheet_file.read()
        try:
            text = text.decode("utf-8-sig") if isinstance(text, bytes) else text
        except UnicodeDecodeError:
            raise SheetError(["file: a CSV sheet must be UTF-8 text"]) from None
        rows = list(csv.DictReader(io.StringIO(text)))
    elif name.endswith((".xlsx", ".xlsm")):
        import openpyxl

        # data_only=False: a formula cell reads as its formula ("=..."), refused like typed text.
        book = openpyxl.load_workbook(spreadsheet_file, read_only=True, data_only=False)
        try:
            values = list(book.worksheets[0].iter_rows(values_only=True))
        finally:
            book.close()
        if not values:
            raise SheetError(["sheet: it is empty"])
        header = [str(h).strip() if h is not None else "" for h in values[0]]
        rows = [dict(zip(header, row, strict=False)) for row in values[1:]]
    else:
        raise SheetError([f"file: {file_name!r} is neither .csv nor .xlsx"])
    cleaned = []
    for number, row in enumerate(rows, start=2):
        entry = {str(k).strip(): _cell_text(k, v) for k, v in row.items() if k}
        entry = {k: v for k, v in entry.items() if v not in (None, "")}
        if entry:
            cleaned.append((number, entry))
    return cleaned


def _cell_text(column: Any, value: Any) -> Any:
    """Text cells stay text; a spreadsheet's 12.0 in a text column becomes "12"."""
    if isinstance(value, str):
        return value.strip()
    if value is None or str(column).strip() in NUMERIC_COLUMNS:
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def sheet_to_plate_item(
    numbered_rows: list[tuple[int, dict[str, Any]]], user: str | None = None
) -> dict[str, Any]:
    """One ``ht_plate`` queue item from sheet rows, or ``SheetError`` listing every bad row/column."""
    problems: list[str] = []
    if not numbered_rows:
        raise SheetError(["sheet: no rows below the header"])
    rows = [row for _, row in numbered_rows]
    known = set(WELL_COLUMNS) | set(PLATE_COLUMNS)
    for column in sorted({c for row in rows for c in row} - known):
        problems.append(f"column {column}: unknown column (known: {', '.join(sorted(known))})")
    plate_values = {}
    for column in PLATE_COLUMNS:
        values = {str(row.get(column, "")) for row in rows}
        if values == {""}:
            problems.append(f"column {column}: required on every row")
        elif len(values) > 1:
            problems.append(
                f"column {column}: must be the same on every row (found {', '.join(sorted(values))})"
            )
        else:
            plate_values[column] = values.pop()
    wells, valid = [], []  # valid: (row number, well) of the rows that pass on their own
    for number, row in numbered_rows:
        well = {k: v for k, v in row.items() if k in WELL_COLUMNS}
        row_ok = True
        for column, value in row.items():
            if (
                column not in NUMERIC_COLUMNS
                and isinstance(value, str)
                and value.startswith(FORMULA_PREFIXES)
            ):
                problems.append(
                    f"row {number}, column {column}: {value[:20]!r} starts with {value[0]!r}, which a "
                    "spreadsheet takes for a formula; not accepted"
                )
                row_ok = False
        for column, kind in NUMERIC_COLUMNS.items():
            if column in well:
                try:
                    value = float(well[column])
                    well[column] = int(value) if kind is int and value == int(value) else value
                except (TypeError, ValueError):
                    problems.append(f"row {number}, column {column}: {well[column]!r} is not a number")
                    row_ok = False
        wells.append(well)
        try:
            PlateWell.model_validate(well)
        except ValidationError as exc:
            row_ok = False
            for problem in describe(exc):  # "column: problem", in the rule's words
                column, _, text = problem.partition(": ")
                problems.append(f"row {number}, column {column}: {text}")
        if row_ok:
            valid.append((number, well))
    if valid and "plate_id" in plate_values:
        # Plate rules (unique wells, buffers present and first) over the rows that are valid alone.
        try:
            validate_plate({"plate_id": plate_values["plate_id"], "wells": [w for _, w in valid]})
        except ContractError as exc:
            for problem in exc.problems:
                match = re.match(r"plate\.wells\[(\d+)\]\.?(\w*)\s*:\s*(.*)", problem)
                if match:
                    row_number = valid[int(match.group(1))][0]
                    text = re.sub(
                        r"wells\[(\d+)\]", lambda m: f"row {valid[int(m.group(1))][0]}", match.group(3)
                    )
                    problems.append(f"row {row_number}, column {match.group(2) or 'well'}: {text}")
                else:
                    problems.append(problem.removeprefix("plate."))
    if problems:
        raise SheetError(problems)
    item = {
        "name": "ht_plate",
        "args": [],
        "kwargs": {
            "plate": {"plate_id": plate_values["plate_id"], "wells": wells},
            "project_code": plate_values["project_code"],
        },
        "item_type": "plan",
    }
    result = validate_queue_item(item)
    if not result["success"]:
        raise SheetError(result["problems"])
    return item


class WellVerdict(BaseModel):
    """One sheet row as the plate map shows it: its well, role, sample and the problems found in it."""

    row: int
    well: str | None
    sample_code: str | None
    role: str
    problems: list[str]


class SheetReport(BaseModel):
    """A plate sheet dry run: every row's verdict and the problems of the sheet as a whole."""

    success: bool
    plate_id: str | None
    wells: list[WellVerdict]
    problems: list[str]


_ROW_PROBLEM = re.compile(r"^row (\d+), (.*)$")


def sheet_report(spreadsheet_file, file_name: str) -> SheetReport:
    """The plate map of a sheet: each row's well, role and problems; nothing is queued."""
    try:
        rows = read_sheet_rows(spreadsheet_file, file_name)
    except SheetError as exc:
        return SheetReport(success=False, plate_id=None, wells=[], problems=exc.problems)
    try:
        sheet_to_plate_item(rows)
        problems: list[str] = []
    except SheetError as exc:
        problems = exc.problems
    by_row: dict[int, list[str]] = {}
    general = []
    for problem in problems:
        match = _ROW_PROBLEM.match(problem)
        if match:
            by_row.setdefault(int(match.group(1)), []).append(match.group(2))
        else:
            general.append(problem)
    wells = [
        WellVerdict(
            row=number,
            well=str(row["well"]) if row.get("well") is not None else None,
            sample_code=str(row["sample_code"]) if row.get("sample_code") is not None else None,
            role=str(row.get("sample_role") or "sample"),
            problems=by_row.get(number, []),
        )
        for number, row in rows
    ]
    plate_ids = {str(row.get("plate_id")) for _, row in rows if row.get("plate_id")}
    return SheetReport(
        success=not problems,
        plate_id=plate_ids.pop() if len(plate_ids) == 1 else None,
        wells=wells,
        problems=general,
    )
