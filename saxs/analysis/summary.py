"""The per-plate / per-project summary a mail-in user reads: one row per sample (well, sample code,
Rg ± σ, I(0), MW by each method, frames kept/total, flags, links to its files), as CSV and as one
self-contained HTML page (no script, no external style or font)."""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Iterable, Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from sibyls.metadata.atomic import atomic_write_text
from sibyls.saxs.analysis.firstlook import FirstLookResult
from sibyls.saxs.analysis.results import guinier_metrics, guinier_numbers
from sibyls.saxs.analysis.sec import SecResult

COLUMNS = (
    "well",
    "sample_code",
    "collection",
    "Rg_A",
    "Rg_sigma_A",
    "Rg_autoRg_A",
    "I0",
    "I0_unit",
    "MW_Vc_kDa",
    "MW_I0_c_kDa",
    "MW_MALS_kDa",
    "frames_kept",
    "frames_total",
    "flags",
    "files",
)
_STYLE = (
    "body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
    "th,td{border:1px solid #bbb;padding:3px 7px;text-align:left;font-size:0.9em}"
    "th{background:#eee}td.num{text-align:right;font-variant-numeric:tabular-nums}"
    "td.flags{color:#a00}"
)


class SummaryRow(BaseModel):
    """One sample's line in the summary."""

    model_config = ConfigDict(frozen=True)

    well: str
    sample_code: str
    collection: str  # batch or sec_saxs
    rg_a: float | None
    rg_sigma_a: float | None
    rg_autorg_a: float | None  # autoRg's straight-line Rg (rg_a is the curvature-corrected one)
    i0: float | None
    i0_unit: str
    mw_vc_kda: float | None
    mw_i0_kda: float | None
    mw_mals_kda: float | None
    frames_kept: int
    frames_total: int
    flags: list[str]
    files: list[str]  # relative to the summary's folder


def summary_row(
    result: FirstLookResult | SecResult,
    well: str = "",
    sample_code: str | None = None,
    files: Iterable[Path | str] = (),
    relative_to: Path | str | None = None,
) -> SummaryRow:
    """The summary line of one first-look result; ``files`` become links relative to ``relative_to``."""
    links = []
    for f in files:
        path = Path(f)
        if relative_to is not None:
            try:
                path = path.relative_to(relative_to)
            except ValueError:
                pass
        links.append(path.as_posix())
    if isinstance(result, SecResult):
        main = result.main_species
        guinier = main.guinier if main else None
        mw_vc = main.mw_vc if main else None
        mw_i0 = main.mw_i0 if main else None
        mw_mals = main.mw_mals if main else None
        kept, total, collection = (len(main.averaged_frames) if main else 0), result.frames_total, "sec_saxs"
        flags = list(result.flags) + ([f"{len(result.species)}-species"] if len(result.species) > 1 else [])
    else:
        guinier, mw_vc, mw_i0, mw_mals = result.guinier, result.mw_vc, result.mw_i0, None
        kept, total, collection = result.frames_kept, result.frames_total, "batch"
        flags = list(result.flags)
    numbers: dict[str, float | None] = {}
    if guinier is not None:
        metrics = guinier_metrics(guinier, result.intensity_unit)
        numbers = {k: float(v["numeric_value"]) for k, v in metrics.items()}
        numbers["rg_sigma_a"] = guinier_numbers(guinier)["rg_sigma_a"]
    return SummaryRow(
        well=well,
        sample_code=sample_code or result.sample_name,
        collection=collection,
        rg_a=numbers.get("rg"),
        rg_sigma_a=numbers.get("rg_sigma_a"),
        rg_autorg_a=guinier.rg if guinier else None,
        i0=numbers.get("i_zero"),
        i0_unit=result.intensity_unit,
        mw_vc_kda=mw_vc.mw_kda if mw_vc else None,
        mw_i0_kda=mw_i0.mw_kda if mw_i0 else None,
        mw_mals_kda=mw_mals.mw_kda if mw_mals else None,
        frames_kept=kept,
        frames_total=total,
        flags=flags,
        files=links,
    )


def _fmt(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def _cells(row: SummaryRow) -> list[str]:
    return [
        row.well,
        row.sample_code,
        row.collection,
        _fmt(row.rg_a, ".2f"),
        _fmt(row.rg_sigma_a, ".2f"),
        _fmt(row.rg_autorg_a, ".2f"),
        _fmt(row.i0, ".4g"),
        row.i0_unit,
        _fmt(row.mw_vc_kda, ".1f"),
        _fmt(row.mw_i0_kda, ".1f"),
        _fmt(row.mw_mals_kda, ".1f"),
        str(row.frames_kept),
        str(row.frames_total),
        " ".join(row.flags),
        " ".join(row.files),
    ]


def summary_csv(rows: Sequence[SummaryRow]) -> str:
    """The summary as CSV text (one header line, one line per sample)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow(_cells(row))
    return buf.getvalue()


def summary_html(rows: Sequence[SummaryRow], title: str) -> str:
    """The summary as one self-contained HTML page (inline style only, links to the files)."""
    esc = html.escape
    head = "".join(
        f"<th>{esc(h)}</th>"
        for h in (
            "Well",
            "Sample",
            "Mode",
            "Rg (Å)",
            "I(0)",
            "MW Vc (kDa)",
            "MW I(0)/c (kDa)",
            "MW MALS (kDa)",
            "Frames kept",
            "Flags",
            "Files",
        )
    )
    body = []
    for row in rows:
        c = _cells(row)
        rg = f"{c[3]} ± {c[4]}" if row.rg_a is not None else "—"
        i0 = f"{c[6]} {esc(row.i0_unit)}" if row.i0 is not None else "—"
        links = " ".join(f'<a href="{esc(f, quote=True)}">{esc(Path(f).name)}</a>' for f in row.files)
        cells = [
            f"<td>{esc(row.well)}</td>",
            f"<td>{esc(row.sample_code)}</td>",
            f"<td>{esc(row.collection)}</td>",
            f'<td class="num">{rg}</td>',
            f'<td class="num">{i0}</td>',
            f'<td class="num">{c[8] or "—"}</td>',
            f'<td class="num">{c[9] or "—"}</td>',
            f'<td class="num">{c[10] or "—"}</td>',
            f'<td class="num">{row.frames_kept}/{row.frames_total}</td>',
            f'<td class="flags">{esc(", ".join(row.flags)) or "none"}</td>',
            f"<td>{links}</td>",
        ]
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title><style>{_STYLE}</style></head>\n<body><h1>{esc(title)}</h1>\n"
        f"<p>{len(rows)} samples. Rg and I(0) from the Guinier region FreeSAS autoRg finds, fitted with a q⁴ "
        "term that takes up the shape's own curvature (autoRg's straight-line Rg is in the CSV); MW from the "
        "Rambo–Tainer invariant Vc, from I(0)/c, and from MALS for SEC runs. Flags: damage (frames left out "
        "by CorMap), aggregation, low-signal, failed-fit, flexible (Kratky), no-buffer.</p>\n"
        f"<table><thead><tr>{head}</tr></thead><tbody>\n"
        + "\n".join(body)
        + "\n</tbody></table></body></html>\n"
    )


def write_summary(
    rows: Sequence[SummaryRow], out_dir: Path | str, title: str, stem: str = "summary"
) -> list[Path]:
    """Write ``<stem>.csv`` and ``<stem>.html`` into ``out_dir`` (atomically); return both paths."""
    out = Path(out_dir)
    csv_path, html_path = out / f"{stem}.csv", out / f"{stem}.html"
    atomic_write_text(csv_path, summary_csv(rows))
    atomic_write_text(html_path, summary_html(rows, title))
    return [csv_path, html_path]
