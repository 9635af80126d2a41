"""Absolute calibration as a workflow: a water run and an empty-cell run give the scale (cm⁻¹ per
normalised unit) that puts every later first look on absolute scale, so MW by I(0)/c needs no standard.

``sibyls calibrate`` (and the demo) call :func:`calibrate_from_runs` then :func:`save_calibration`: the
scale goes into ``<processed>/.calibration/absolute_scale.json`` (the processing service reads it at
each run's start, so the first look uses it from the next run on) and a lambda-ber record of the
calibration (a ``Dataset`` whose ``WorkflowRun`` names both runs and the scale) beside it, kept per
calibration so the history stays. A scale given explicitly (the ``absolute_scale`` setting, ``sibyls
process --absolute-scale``) overrides the stored one.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sibyls.metadata.atomic import atomic_write_text
from sibyls.metadata.errors import ExchangeError
from sibyls.metadata.lambda_ber import Dataset
from sibyls.metadata.record_yaml import dump_record
from sibyls.metadata.runs.sources import StoredRun
from sibyls.saxs.reduction.iq import absolute_scale_from_runs

CALIBRATION_DIR = ".calibration"
CURRENT_FILE = "absolute_scale.json"


class AbsoluteCalibration(BaseModel):
    """The absolute scale and where it came from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    absolute_scale: float = Field(gt=0, description="cm⁻¹ per normalised unit")
    water_run_uid: str
    empty_cell_run_uid: str
    water_measured_at: str
    computed_at: str
    poni: str | None = None


def _iso(timestamp: float | None) -> str:
    when = datetime.fromtimestamp(timestamp, UTC) if timestamp else datetime.now(UTC)
    return when.isoformat(timespec="seconds").replace("+00:00", "Z")


def calibrate_from_runs(
    water: StoredRun, empty_cell: StoredRun, *, poni: Path | str | None = None
) -> AbsoluteCalibration:
    """The absolute scale from a stored water run and empty-cell run (reduced as samples are)."""
    if water.uid == empty_cell.uid:
        raise ExchangeError(f"empty_cell: run {empty_cell.uid} is the water run; measure the empty cell too")
    scale = absolute_scale_from_runs(water, empty_cell, poni=poni)
    return AbsoluteCalibration(
        absolute_scale=scale,
        water_run_uid=water.uid,
        empty_cell_run_uid=empty_cell.uid,
        water_measured_at=_iso(water.start.get("time")),
        computed_at=_iso(None),
        poni=str(poni) if poni else None,
    )


def calibration_record(calibration: AbsoluteCalibration) -> dict[str, Any]:
    """The calibration as a lambda-ber ``Dataset`` (validated): one ``WorkflowRun`` of this project
    naming the water and empty-cell runs and the scale it found."""
    uid8 = calibration.water_run_uid[:8]
    parameters = (
        f"absolute_scale={calibration.absolute_scale:.6g} 1/cm per normalised unit; "
        f"water_run_uid={calibration.water_run_uid}; empty_cell_run_uid={calibration.empty_cell_run_uid}; "
        f"water_i0_per_cm=0.0163 (20 C); poni={calibration.poni or 'frame geometry'}"
    )
    record = {
        "id": f"urn:sibyls:calibration:{calibration.water_run_uid}",
        "title": f"SIBYLS absolute-scale calibration from water run {uid8}",
        "description": "Absolute intensity scale from water (dΣ/dΩ 0.0163 cm⁻¹) minus the empty cell",
        "keywords": ["SAXS", "absolute calibration", "water"],
        "workflow_runs": [
            {
                "id": f"urn:sibyls:calibration:{calibration.water_run_uid}/workflow",
                "workflow_code": f"absolute-scale-{uid8}",
                "workflow_type": "saxs_analysis",
                "software_name": "sibyls-bluesky calibrate",
                "processing_parameters": parameters,
                "started_at": calibration.water_measured_at,
                "completed_at": calibration.computed_at,
            }
        ],
    }
    return Dataset.model_validate(record).model_dump(mode="json", exclude_none=True)


def calibration_dir(processed_dir: Path | str) -> Path:
    """Where the stack keeps its current calibration and the records of past ones."""
    return Path(processed_dir) / CALIBRATION_DIR


def save_calibration(processed_dir: Path | str, calibration: AbsoluteCalibration) -> tuple[Path, Path]:
    """Make ``calibration`` the stack's current one; its settings file and its lambda-ber record."""
    folder = calibration_dir(processed_dir)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = calibration.computed_at.replace(":", "").replace("-", "")
    record_path = folder / f"calibration_{stamp}_{calibration.water_run_uid[:8]}.yaml"
    atomic_write_text(record_path, dump_record(calibration_record(calibration)))
    current = folder / CURRENT_FILE
    atomic_write_text(current, calibration.model_dump_json(indent=1) + "\n")
    return current, record_path


def current_calibration(processed_dir: Path | str) -> AbsoluteCalibration | None:
    """The stack's current calibration (None if it has none or the file is unreadable)."""
    path = calibration_dir(processed_dir) / CURRENT_FILE
    try:
        return AbsoluteCalibration.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None
