"""The summary tables a mail-in user reads, made from the records (the one place results live).

``<processed>/<project>/summary.csv|html`` lists every run of the project with a first look, and
``<processed>/<project>/plate_<plate_id>_summary.csv|html`` the wells of each plate: Guinier Rg ± σ,
I(0), P(r) Rg and Dmax, Porod volume, MW (consensus, Vc, I(0)/c, Porod, MALS), frames kept, flags and
links to each run's curves and plots. They are rebuilt after every first look (and by ``sibyls
process``), so they always match the records.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml

from sibyls.metadata.mapping import safe_part
from sibyls.metadata.record_yaml import load_record_text
from sibyls.saxs.analysis.summary import SummaryRow, write_summary

log = logging.getLogger(__name__)

#: Products linked from a summary row (the curves and plots, not the per-frame files).
_LINKED = ("A_S_*.dat", "A_*.dat", "*_pr.dat", "*_plot.png", "*_chromatogram.png", "*_firstlook.json")


def row_from_record(record: dict[str, Any], run_dir: Path, relative_to: Path) -> SummaryRow | None:
    """The summary line of one run's record (None when the run has no first look)."""
    run = (record.get("experiment_runs") or [{}])[0]
    results = run.get("saxs_results")
    if results is None:
        return None
    metrics = run.get("quality_metrics") or {}
    files: list[str] = []
    for pattern in _LINKED:
        for path in sorted(run_dir.glob(pattern)):
            link = path.relative_to(relative_to).as_posix()
            if link not in files:
                files.append(link)
    strategy = run.get("data_collection_strategy") or {}
    return SummaryRow(
        well=run.get("well") or "",
        sample_code=run.get("sample_code") or "",
        collection=strategy.get("collection_mode") or "batch",
        rg_a=(metrics.get("rg") or {}).get("numeric_value"),
        rg_sigma_a=results.get("rg_sigma_a"),
        guinier_qrg_max=results.get("guinier_qrg_max"),
        pr_rg_a=results.get("pr_rg_a"),
        pr_rg_sigma_a=results.get("pr_rg_sigma_a"),
        dmax_a=results.get("dmax_a"),
        i0=(metrics.get("i_zero") or {}).get("numeric_value"),
        i0_unit=(metrics.get("i_zero") or {}).get("unit", ""),
        porod_volume_a3=results.get("porod_volume_a3"),
        mw_kda=results.get("molecular_weight_kda"),
        mw_spread_kda=results.get("molecular_weight_spread_kda"),
        mw_vc_kda=results.get("molecular_weight_vc_kda"),
        mw_i0_kda=results.get("molecular_weight_i0_kda"),
        mw_porod_kda=results.get("molecular_weight_porod_kda"),
        mw_mals_kda=results.get("mals_molar_mass_kda"),
        frames_kept=results.get("frames_kept") or 0,
        frames_total=results.get("frames_total") or 0,
        flags=list(results.get("flags") or []),
        files=files,
    )


def write_project_summaries(records_dir: Path | str, processed_dir: Path | str, project: str) -> list[Path]:
    """(Re)write the project's summary and one per plate from its records; the files written."""
    folder = safe_part(project, "_no_project")
    records = sorted((Path(records_dir) / folder).glob("*.yaml"))
    out = Path(processed_dir) / folder
    rows: list[SummaryRow] = []
    plates: dict[str, list[SummaryRow]] = {}
    for path in records:
        try:
            record = load_record_text(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            log.warning("summary of %s skips %s: %s", project, path.name, exc)
            continue
        row = row_from_record(record, out / path.stem, out)
        if row is None:
            continue
        rows.append(row)
        plate_id = (record.get("experiment_runs") or [{}])[0].get("plate_id")
        if plate_id:
            plates.setdefault(plate_id, []).append(row)
    if not rows:
        return []
    written = write_summary(rows, out, f"SIBYLS project {project}: first look", "summary")
    for plate_id, plate_rows in plates.items():
        stem = f"plate_{safe_part(plate_id, 'plate')}_summary"
        written += write_summary(plate_rows, out, f"SIBYLS plate {plate_id} ({project}): first look", stem)
    return written
