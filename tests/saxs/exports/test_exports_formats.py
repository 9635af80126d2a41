"""Exports of real runs: NXcanSAS checked group by group, Guinier Rg, CSV/JSON/SPEC/PNG, bad input."""

from __future__ import annotations

import csv
import json

import h5py
import numpy as np
import pytest
from real_runs import PROJECT, RG_A

from sibyls.metadata.errors import ExchangeError
from sibyls.metadata.runs.sources import FolderRunSource, RunNotFoundError, TiledRunSource
from sibyls.saxs.analysis.guinier import guinier_fit
from sibyls.saxs.exports.formats import export

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def folder(xchg_runs):
    return FolderRunSource(xchg_runs["dirs"]["runs"])


def _scan(xchg_runs, code):
    docs = xchg_runs["recorder"].of_run(xchg_runs["uids"][code])
    return docs[0][1]["scan_id"]


def _read_sasdata(path):
    with h5py.File(path) as fh:
        data = fh["sasentry01/sasdata01"]
        return data["Q"][()], data["I"][()], data["Idev"][()]


def test_nxcansas_has_every_required_group_attribute_and_unit(xchg_runs, folder, tmp_path):
    (path,) = export(folder, "nxcansas", tmp_path, scan_id=_scan(xchg_runs, "Prot_x"))
    baseline = folder.load(xchg_runs["uids"]["Prot_x"]).streams["baseline"].columns
    with h5py.File(path) as fh:
        assert fh.attrs["default"] == "sasentry01"
        entry = fh["sasentry01"]
        assert entry.attrs["NX_class"] == "NXentry" and entry.attrs["canSAS_class"] == "SASentry"
        assert entry.attrs["version"] == "1.1" and entry.attrs["default"] == "sasdata01"
        assert entry["definition"][()] == b"NXcanSAS"
        data = entry["sasdata01"]
        assert (data.attrs["NX_class"], data.attrs["canSAS_class"]) == ("NXdata", "SASdata")
        assert data.attrs["signal"] == "I" and data.attrs["I_axes"] == "Q" and data.attrs["Q_indices"] == 0
        assert data["Q"].attrs["units"] == "1/angstrom"
        assert data["I"].attrs["units"] == data["Idev"].attrs["units"]
        assert data["I"].attrs["uncertainties"] == "Idev"
        assert data["Q"].shape == data["I"].shape == data["Idev"].shape and data["Q"].shape[0] > 100
        assert np.all(np.diff(data["Q"][()]) > 0) and np.all(data["Idev"][()] > 0)
        inst = entry["sasinstrument"]
        assert (inst.attrs["NX_class"], inst.attrs["canSAS_class"]) == ("NXinstrument", "SASinstrument")
        for group, nx, cs in (
            ("sassource", "NXsource", "SASsource"),
            ("sascollimation01", "NXcollimator", "SAScollimation"),
            ("sasdetector01", "NXdetector", "SASdetector"),
        ):
            assert (inst[group].attrs["NX_class"], inst[group].attrs["canSAS_class"]) == (nx, cs)
        assert inst["sassource/incident_wavelength"].attrs["units"] == "angstrom"
        assert inst["sassource/incident_wavelength"][()] == pytest.approx(
            baseline["mono_wavelength"][0], rel=1e-6
        )
        assert inst["sasdetector01/SDD"].attrs["units"] == "mm"
        assert inst["sasdetector01/SDD"][()] == pytest.approx(baseline["detector_distance"][0], rel=1e-6)
        assert inst["sasdetector01/x_pixel_size"].attrs["units"] == "mm"
        sample = entry["sassample"]
        assert (sample.attrs["NX_class"], sample.attrs["canSAS_class"]) == ("NXsample", "SASsample")
        assert sample["name"][()] == b"Prot_x"


def test_guinier_rg_from_exported_iq_matches_the_simulated_sample(xchg_runs, folder, tmp_path):
    (sample_path,) = export(folder, "nxcansas", tmp_path, scan_id=_scan(xchg_runs, "Prot_x"))
    (buffer_path,) = export(folder, "nxcansas", tmp_path, scan_id=_scan(xchg_runs, "HEPES_x"))
    q, i_sample, s_sample = _read_sasdata(sample_path)
    qb, i_buffer, s_buffer = _read_sasdata(buffer_path)
    assert np.allclose(q, qb)
    fit = guinier_fit(q, i_sample - i_buffer, np.hypot(s_sample, s_buffer))
    assert fit.rg == pytest.approx(RG_A, rel=0.10)
    assert fit.points >= 5


def test_tiled_source_exports_the_same_iq_as_the_document_log(xchg_runs, folder, tiled_server, tmp_path):
    scan = _scan(xchg_runs, "Prot_x")
    (a,) = export(folder, "nxcansas", tmp_path / "folder", scan_id=scan)
    (b,) = export(TiledRunSource(tiled_server.client()), "nxcansas", tmp_path / "tiled", scan_id=scan)
    for x, y in zip(_read_sasdata(a), _read_sasdata(b), strict=True):
        assert np.array_equal(x, y)


def test_csv_json_spec_png_exports_of_a_project(xchg_runs, folder, tmp_path):
    docs = xchg_runs["recorder"].of_run(xchg_runs["uids"]["Prot_x"])
    desc = next(d for n, d in docs if n == "descriptor" and d["name"] == "primary")
    events = [d for n, d in docs if n == "event" and d["descriptor"] == desc["uid"]]
    csv_files = export(folder, "csv", tmp_path, project=PROJECT)
    assert len(csv_files) == 4  # 2 runs x (primary, baseline)
    primary_csv = next(p for p in csv_files if "Prot_x" in p.name and p.name.endswith("_primary.csv"))
    rows = list(csv.DictReader(primary_csv.open()))
    assert [float(r["i0_counts"]) for r in rows] == [e["data"]["i0_counts"] for e in events]
    assert all(r["pilatus_image_file"].endswith(".h5") for r in rows)

    (json_file,) = export(folder, "json", tmp_path, uid=xchg_runs["uids"]["Prot_x"][:8])
    data = json.loads(json_file.read_text())
    assert data["start"]["sample_code"] == "Prot_x" and data["stop"]["exit_status"] == "success"
    assert data["streams"]["primary"]["columns"]["seq_num"] == [1, 2, 3]
    assert "mono_wavelength" in data["streams"]["baseline"]["columns"]

    (spec_file,) = export(folder, "spec", tmp_path, project=PROJECT)
    text = spec_file.read_text()
    assert text.startswith(f"#F {spec_file}")
    assert text.count("\n#S ") == 2 and "i0_counts" in text

    (png,) = export(folder, "png", tmp_path, scan_id=_scan(xchg_runs, "Prot_x"))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.rglob(".*.tmp")) and not list(tmp_path.rglob("*.part"))  # no temp file left


def test_unknown_scan_id_is_a_clear_error_and_writes_nothing(folder, tmp_path):
    with pytest.raises(RunNotFoundError, match="no stored run with scan id 99999"):
        export(folder, "nxcansas", tmp_path / "out", scan_id=99999)
    assert not (tmp_path / "out").exists()


def test_corrupt_frame_file_is_a_clear_error_and_leaves_no_partial_file(xchg_runs, folder, tmp_path):
    import shutil

    from sibyls.metadata.runs.doclog import read_document_log, write_document_log
    from sibyls.metadata.runs.sources import run_from_documents

    run = folder.load(xchg_runs["uids"]["Prot_x"])
    bad_frame = tmp_path / "broken.h5"
    bad_frame.write_bytes(run.frame_files[0].read_bytes()[:4096])  # truncated HDF5
    docs = []
    for name, doc in run.documents():
        if name == "resource":
            doc = {**doc, "resource_path": str(bad_frame).lstrip("/")}
        docs.append((name, doc))
    runs_dir = tmp_path / "runs"
    write_document_log(runs_dir / "bad.jsonl", docs)
    assert run_from_documents(read_document_log(runs_dir / "bad.jsonl")).frame_files[0] == bad_frame
    out = tmp_path / "out"
    for fmt in ("nxcansas", "png"):
        with pytest.raises(ExchangeError, match="broken.h5"):
            export(FolderRunSource(runs_dir), fmt, out, uid=run.uid)
    assert not out.exists() or not any(p.is_file() for p in out.rglob("*"))
    shutil.rmtree(runs_dir)


def test_nxcansas_loads_in_sasdata_with_units_qdev_and_beam_centre_in_mm(xchg_runs, folder, tmp_path):
    """SasView's loader reads the file: I normalised (arbitrary units without a water calibration),
    Qdev as its dx, and the beam centre as a length (mm from the first pixel's outer corner)."""
    from sasdata.dataloader.loader import Loader

    (path,) = export(folder, "nxcansas", tmp_path, scan_id=_scan(xchg_runs, "Prot_x"))
    with h5py.File(path) as fh:
        data = fh["sasentry01/sasdata01"]
        assert data["I"].attrs["units"] == "arbitrary" and data["Q"].attrs["resolutions"] == "Qdev"
        assert data["Qdev"].attrs["units"] == "1/angstrom" and np.all(data["Qdev"][()] > 0)
        det = fh["sasentry01/sasinstrument/sasdetector01"]
        assert det["beam_center_x"].attrs["units"] == det["beam_center_y"].attrs["units"] == "mm"
        beam_x, beam_y = det["beam_center_x"][()], det["beam_center_y"][()]
    run = folder.load(xchg_runs["uids"]["Prot_x"])
    with h5py.File(run.frame_files[0]) as fh:
        frame_det = fh["entry/instrument/detector"]
        binning = int(frame_det["binning"][()])
        full_pixel = float(frame_det["x_pixel_size"][()]) / binning
        centre_x = float(frame_det["beam_center_x"][()]) * binning  # full-resolution pixel centres
        centre_y = float(frame_det["beam_center_y"][()]) * binning
    assert beam_x == pytest.approx((centre_x + 0.5) * full_pixel, rel=1e-9)
    assert beam_y == pytest.approx((centre_y + 0.5) * full_pixel, rel=1e-9)
    (loaded,) = Loader().load(str(path))
    q, i, _ = _read_sasdata(path)
    assert np.allclose(loaded.x, q) and np.allclose(loaded.y, i)
    assert loaded.dx is not None and np.all(loaded.dx > 0)
    detector = loaded.detector[0]
    assert detector.beam_center_unit == "mm"
    assert detector.beam_center.x == pytest.approx(beam_x) and detector.beam_center.y == pytest.approx(beam_y)
