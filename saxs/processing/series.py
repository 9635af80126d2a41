"""Concentration series of a project, from its processed runs: the wells of one sample at several
concentrations (sample codes ``lyso_1mg``, ``lyso_2mg``, ``lyso_5mg`` share the stem ``lyso``) are
analysed together each time one of them gets its first look.

A user finds, beside the project's summary, ``series_<stem>.json`` (Rg(c), I(0)/c(c), Rg and I(0)/c
extrapolated to c → 0, the concentration-dependence flag: repulsion, attraction-or-aggregation) and
``series_<stem>_merged.dat`` (low q from the lowest concentration, high q from the highest, scaled).
The members are the runs' own products: ``A_S_<code>.dat`` and the concentration in
``<code>_firstlook.json`` (the latest run of a code counts).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from sibyls.metadata.atomic import atomic_write_text
from sibyls.metadata.mapping import safe_part
from sibyls.saxs.analysis.series import SeriesMember, SeriesResult, analyse_series, series_stem
from sibyls.saxs.reduction.curves import read_dat, write_dat

log = logging.getLogger(__name__)


def _members(project_dir: Path) -> dict[str, list[SeriesMember]]:
    """The project's subtracted batch samples with a concentration, grouped by series stem."""
    latest: dict[str, tuple[float, SeriesMember]] = {}
    for result_path in project_dir.glob("*/*_firstlook.json"):
        try:
            result = json.loads(result_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        name = result.get("sample_name") or ""
        concentration = (result.get("parameters") or {}).get("concentration_mg_ml")
        curve_path = result_path.parent / f"A_S_{name}.dat"
        if not isinstance(concentration, (int, float)) or "species" in result or not curve_path.is_file():
            continue
        try:
            curve = read_dat(curve_path)
        except (OSError, ValueError) as exc:
            log.warning("series member %s skipped: %s", curve_path, exc)
            continue
        when = result_path.stat().st_mtime
        if name not in latest or latest[name][0] < when:
            latest[name] = (when, SeriesMember(name, float(concentration), curve))
    groups: dict[str, list[SeriesMember]] = {}
    for _, member in latest.values():
        groups.setdefault(series_stem(member.sample_code), []).append(member)
    return groups


def series_summary(result: SeriesResult) -> dict[str, Any]:
    """The series as JSON: points, extrapolations, dependence flag, merge and notes."""
    data = result.model_dump(mode="json", exclude={"merged"})
    if result.merged is not None:
        data["merged"] = result.merged.model_dump(mode="json", exclude={"curve"})
    data["flags"] = [result.dependence.flag] if result.dependence.flag else []
    return data


def write_project_series(processed_dir: Path | str, project: str) -> dict[str, SeriesResult]:
    """(Re)analyse every concentration series of the project (two or more members at different
    concentrations) and write ``series_<stem>.json`` and ``series_<stem>_merged.dat``; the results by stem."""
    out = Path(processed_dir) / safe_part(project, "_no_project")
    found: dict[str, SeriesResult] = {}
    for stem, members in sorted(_members(out).items()):
        if len({m.concentration for m in members}) < 2:
            continue
        try:
            result = analyse_series(stem, members)
        except ValueError as exc:  # SeriesError: too few usable members; the runs' own results stand
            log.info("series %s of %s: %s", stem, project, exc)
            continue
        file_stem = f"series_{safe_part(stem, 'series')}"
        atomic_write_text(out / f"{file_stem}.json", json.dumps(series_summary(result), indent=1) + "\n")
        if result.merged is not None:
            merged = result.merged
            header = {"series": stem, "merged_from": ", ".join(merged.curve.meta["merged_from"]),
                      "scale": f"{merged.scale:.6g}", "q_split": f"{merged.q_split:.5f}"}  # fmt: skip
            write_dat(out / f"{file_stem}_merged.dat", merged.curve, header)
        found[stem] = result
    return found
