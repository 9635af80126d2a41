"""bluesky-httpserver extensions: a dry-run validation endpoint and HT plate-sheet uploads.

Loaded by ``sibyls up`` through ``QSERVER_HTTP_CUSTOM_ROUTERS=sibyls.startup.http_extensions.router``
(``POST /api/sibyls/validate``) and ``QSERVER_CUSTOM_MODULES=sibyls.startup.http_extensions``
(``spreadsheet_to_plan_list`` for ``POST /api/queue/upload/spreadsheet``). Both run the plans' own
checks before anything reaches the queue.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any

from bluesky_httpserver.authentication import get_current_principal
from fastapi import APIRouter, Security
from pydantic import BaseModel, RootModel, ValidationError

from sibyls.metadata.contract import ContractError
from sibyls.metadata.plate_spec import PlateWell, validate_plate
from sibyls.plans.validation import validate_queue_item

router = APIRouter(prefix="/api/sibyls")

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


class QueueItemRequest(RootModel[dict[str, Any]]):
    """Body of ``POST /api/sibyls/validate``: a queue item as the queue takes it.

    ``{"name": ..., "args": [...], "kwargs": {...}, "meta": {...}, "item_type": "plan"}`` — any JSON
    object: its structure is judged by the plans' checks, so a malformed item gets the same named
    problems here as when it is added to the queue.
    """


class ValidationReport(BaseModel):
    """The verdict on an item: valid, or each problem as ``"argument: rule"``."""

    success: bool
    problems: list[str]


@router.post("/validate", response_model=ValidationReport)
async def validate_item(
    item: QueueItemRequest, principal=Security(get_current_principal, scopes=["read:queue"])
) -> ValidationReport:
    """Dry-run a queue item with the plan's own checks; nothing is queued."""
    return ValidationReport.model_validate(validate_queue_item(item.root))


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
            for err in exc.errors():
                column = ".".join(str(p) for p in err["loc"]) or "row"
                problems.append(f"row {number}, column {column}: {err['msg'].removeprefix('Value error, ')}")
        if row_ok:
            valid.append((number, well))
    if valid and "plate_id" in plate_values:
        # Plate rules (unique wells, buffers present and first) over the rows that are valid alone.
        try:
            validate_plate({"plate_id": plate_values["plate_id"], "wells": [w for _, w in valid]})
        except ContractError as exc:
            for problem in exc.problems:
                for part in problem.removeprefix("plate.").split("; "):
                    match = re.match(r"(?:plate\.)?wells\[(\d+)\]\.?(\w*)\s*:\s*(.*)", part)
                    if match:
                        row_number = valid[int(match.group(1))][0]
                        text = re.sub(
                            r"wells\[(\d+)\]", lambda m: f"row {valid[int(m.group(1))][0]}", match.group(3)
                        )
                        problems.append(f"row {row_number}, column {match.group(2) or 'well'}: {text}")
                    else:
                        problems.append(part)
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


def spreadsheet_to_plan_list(
    *, spreadsheet_file, file_name: str, data_type: str | None = None, user: str | None = None, **kwargs
) -> list[dict] | None:
    """httpserver hook: an HT plate sheet (CSV/XLSX) → exactly one ``ht_plate`` item, all or nothing.

    Sheets uploaded with another ``data_type`` are left to the default processing (returns None).
    """
    if data_type not in (None, "", SHEET_DATA_TYPE):
        return None
    return [sheet_to_plate_item(read_sheet_rows(spreadsheet_file, file_name), user)]
