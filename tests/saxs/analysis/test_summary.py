"""The plate summary a mail-in user reads: CSV and self-contained HTML with every sample's numbers,
flags and links to its files."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from synthetic_saxs import buffer_frames, damaged_frames, dumbbell, ellipsoid, sample_frames, sec_run, sphere

from sibyls.saxs.analysis.firstlook import first_look_batch, first_look_sec, write_products
from sibyls.saxs.analysis.summary import COLUMNS, summary_row, write_summary


@pytest.fixture(scope="module")
def plate(tmp_path_factory):
    out = tmp_path_factory.mktemp("plate")
    rng = np.random.default_rng(12)
    good, hurt = ellipsoid(20.0, 40.0), ellipsoid(55.0, 25.0)
    rows, results = [], {}
    results["A2"] = first_look_batch(
        sample_frames(good, 2.0, 8, rng), buffer_frames(8, rng), 2.0, sample_name="Lyz_1"
    )
    results["A4"] = first_look_batch(
        damaged_frames(hurt, 1.0, 12, 5, 0.02, rng), buffer_frames(8, rng), 1.0, sample_name="Hurt_2"
    )
    results["A6"] = first_look_batch(sample_frames(good, 2.0, 5, rng), None, None, sample_name="NoBuf_3")
    frames, traces, _ = sec_run(
        [(dumbbell(20.0, 40.0), 135.0, 7.0, 0.5), (sphere(20.0), 175.0, 7.0, 1.0)], 260, rng
    )
    results["SEC"] = first_look_sec(frames, traces, sample_name="Mix_4")
    files = {"A2": write_products(results["A2"], out / "Lyz_1")}
    for well, result in results.items():
        rows.append(summary_row(result, well=well, files=files.get(well, ()), relative_to=out))
    paths = write_summary(rows, out, title="Plate P1 <mail-in> & co")
    return out, results, rows, paths


def test_csv_lists_every_sample_with_numbers_and_flags(plate):
    out, results, _, (csv_path, _) = plate
    table = list(csv.DictReader(io.StringIO(csv_path.read_text())))
    assert tuple(table[0].keys()) == COLUMNS
    by_well = {r["well"]: r for r in table}
    assert list(by_well) == ["A2", "A4", "A6", "SEC"]
    lyz = by_well["A2"]
    # The Guinier Rg is autoRg's straight line (the record's); Rg and Dmax from P(r) beside it.
    assert float(lyz["Rg_Guinier_A"]) == pytest.approx(results["A2"].guinier.rg, abs=0.005)
    pr = results["A2"].shape.pr
    assert float(lyz["Rg_Pr_A"]) == pytest.approx(pr.rg, abs=0.005)
    assert float(lyz["Dmax_A"]) == pytest.approx(pr.dmax, abs=0.05)
    mw = results["A2"].shape.mw
    assert float(lyz["MW_kDa"]) == pytest.approx(mw.mw_kda, abs=0.05)
    assert float(lyz["MW_Porod_kDa"]) == pytest.approx(results["A2"].shape.mw_porod.mw_kda, abs=0.05)
    assert "Lyz_1/Lyz_1_pr.dat" in lyz["files"].split()
    assert float(lyz["MW_I0_c_kDa"]) == pytest.approx(results["A2"].mw_i0.mw_kda, abs=0.05)
    assert float(lyz["MW_Vc_kDa"]) > 0 and lyz["MW_MALS_kDa"] == ""
    assert lyz["frames_kept"] == "8" and lyz["frames_total"] == "8" and lyz["flags"] == ""
    assert lyz["sample_code"] == "Lyz_1" and lyz["I0_unit"] == "1/cm"
    assert (
        "Lyz_1/A_S_Lyz_1.dat" in lyz["files"].split()
        and "Lyz_1/Lyz_1_Guinier_plot.png" in lyz["files"].split()
    )
    hurt = by_well["A4"]
    assert (
        "damage" in hurt["flags"].split() and int(hurt["frames_kept"]) < 12 and hurt["frames_total"] == "12"
    )
    assert "no-buffer" in by_well["A6"]["flags"].split() and by_well["A6"]["MW_I0_c_kDa"] == ""
    sec = by_well["SEC"]
    assert sec["collection"] == "sec_saxs" and "2-species" in sec["flags"].split()
    assert float(sec["MW_MALS_kDa"]) == pytest.approx(sphere(20.0).mw_kda, rel=0.05)  # the main (higher) peak


def test_html_is_self_contained_and_readable(plate):
    out, results, rows, (_, html_path) = plate
    page = html_path.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert "<title>Plate P1 &lt;mail-in&gt; &amp; co</title>" in page
    lowered = page.lower()
    assert "<script" not in lowered and "http://" not in lowered and "https://" not in lowered
    assert "<link" not in lowered and "@import" not in lowered and "src=" not in lowered
    assert page.count("<tr>") == 1 + len(rows)
    for code in ("Lyz_1", "Hurt_2", "NoBuf_3", "Mix_4"):
        assert f"<td>{code}</td>" in page
    guinier = results["A2"].guinier
    assert f"{guinier.rg:.2f} ± {guinier.rg_sigma:.2f}" in page
    pr = results["A2"].shape.pr
    assert f"{pr.rg:.2f} ± {pr.rg_sigma:.2f}" in page
    assert '<a href="Lyz_1/A_S_Lyz_1.dat">A_S_Lyz_1.dat</a>' in page
    mw = f'<td class="num">{results["A2"].mw_i0.mw_kda:.1f}</td>'
    assert mw in page
    header = page.split("<thead>")[1].split("</thead>")[0]
    first_row = page.split("<tbody>")[1].split("</tr>")[0]
    assert header.count("<th>") == first_row.count("<td")  # one cell per column
    assert (out / "Lyz_1" / "A_S_Lyz_1.dat").is_file()  # the link resolves from the page's folder
    assert "damage" in page and "no-buffer" in page
