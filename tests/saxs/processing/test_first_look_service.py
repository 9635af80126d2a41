"""The first-look service on real runs of the simulated beamline: a buffer, then samples subtracted
with it; results in the records (valid), products on disk, the truth recovered."""

from __future__ import annotations

import pytest
import yaml
from beamline_helpers import sibyls_run_engine

from sibyls.metadata.records_schema import RecordValidator
from sibyls.metadata.runs.doclog import DocumentLog
from sibyls.plans import saxs_exposure
from sibyls.saxs.processing.service import FirstLookService
from sibyls.startup.cli import main as sibyls

pytestmark = pytest.mark.slow

PROJECT = "FIRSTLOOK"


@pytest.fixture
def session(beamline, simulation, tmp_path):
    RE, writer = sibyls_run_engine(beamline, tmp_path)
    service = FirstLookService(tmp_path / "records", tmp_path / "processed")
    RE.subscribe(service)
    RE.subscribe(DocumentLog(tmp_path / "runs"))
    simulation.put_in_cell(None)
    yield RE, writer, service, tmp_path
    service.close()


def test_buffer_then_sample_gives_rg_and_mw_in_the_record(session, simulation, upstream_schema_dir):
    RE, writer, service, tmp_path = session
    simulation.put_in_cell({"sample_code": "buf1", "kind": "buffer"})
    (buffer_uid,) = RE(saxs_exposure("buf1", PROJECT, exposure_time=1.0, num_frames=5,
                                     sample_role="buffer_blank")).run_start_uids  # fmt: skip
    sample = {"sample_code": "prot1", "kind": "sample", "rg_a": 28.0, "concentration_mg_ml": 5.0,
              "mw_kda": 60.0}  # fmt: skip
    simulation.put_in_cell(sample)
    (uid,) = RE(saxs_exposure("prot1", PROJECT, exposure_time=1.0, num_frames=5, concentration_mg_ml=5.0,
                              buffer_run_uid=buffer_uid)).run_start_uids  # fmt: skip
    assert writer.flush(30) and service.flush(60)
    assert service.failures == []
    processed = {p.uid: p for p in service.processed}
    assert set(processed) == {buffer_uid, uid}
    record = yaml.safe_load(processed[uid].record_path.read_text())
    run = record["experiment_runs"][0]
    rg = run["quality_metrics"]["rg"]["numeric_value"]
    print("rg", rg, run["saxs_results"])
    results = run["saxs_results"]
    assert results["buffer_run_uid"] == buffer_uid
    # The standard Guinier Rg in quality_metrics; P(r), the Porod volume and the consensus MW beside it.
    for key in (
        "pr_rg_a",
        "pr_rg_sigma_a",
        "dmax_a",
        "dmax_sigma_a",
        "pr_i_zero",
        "guinier_qrg_min",
        "guinier_qrg_max",
        "porod_volume_a3",
        "molecular_weight_porod_kda",
        "molecular_weight_kda",
    ):
        assert results[key] > 0, key  # fmt: skip
    assert results["pr_rg_a"] == pytest.approx(28.0, rel=0.02)
    errors = RecordValidator(upstream_schema_dir, with_extension=True).validate(record)
    assert errors == []
    names = sorted(p.name for p in processed[uid].out_dir.iterdir())
    assert "A_S_prot1.dat" in names and "prot1_00001.dat" in names and "prot1_Guinier_plot.png" in names
    assert "prot1_pr.dat" in names


def test_sibyls_process_redoes_a_run_with_another_buffer(session, simulation, capsys):
    RE, writer, service, tmp_path = session
    uids = {}
    for name in ("bufA", "bufB"):
        simulation.put_in_cell({"sample_code": name, "kind": "buffer"})
        (uids[name],) = RE(saxs_exposure(name, PROJECT, exposure_time=1.0, num_frames=3,
                                         sample_role="buffer_blank")).run_start_uids  # fmt: skip
    protein = {"sample_code": "prot2", "kind": "sample", "rg_a": 22.0, "concentration_mg_ml": 4.0}
    protein["mw_kda"] = 40.0
    simulation.put_in_cell(protein)
    (uid,) = RE(saxs_exposure("prot2", PROJECT, exposure_time=1.0, num_frames=3, concentration_mg_ml=4.0,
                              buffer_run_uid=uids["bufA"])).run_start_uids  # fmt: skip
    assert writer.flush(30) and service.flush(60) and service.failures == []
    record_path = next(p.record_path for p in service.processed if p.uid == uid)
    before = yaml.safe_load(record_path.read_text())
    assert before["experiment_runs"][0]["saxs_results"]["buffer_run_uid"] == uids["bufA"]

    code = sibyls(["process", "--runs-dir", str(tmp_path / "runs"), "--uid", uid[:8],
                   "--buffer-uid", uids["bufB"], "--var-dir", str(tmp_path)])  # fmt: skip
    assert code == 0
    assert "Rg" in capsys.readouterr().out
    after = yaml.safe_load(record_path.read_text())
    run = after["experiment_runs"][0]
    assert run["saxs_results"]["buffer_run_uid"] == uids["bufB"]
    assert run["processing_status"] == "completed"
    assert len(after["workflow_runs"]) == 1
    assert "buffer=bufB" in after["workflow_runs"][0]["processing_parameters"]
    summary = (tmp_path / "processed" / PROJECT / "summary.csv").read_text()
    assert "prot2" in summary

    assert sibyls(["process", "--runs-dir", str(tmp_path / "runs"), "--uid", uid[:8],
                   "--buffer-uid", uid, "--var-dir", str(tmp_path)]) == 2  # fmt: skip
    assert "is not a stored buffer_blank run" in capsys.readouterr().err
    assert yaml.safe_load(record_path.read_text()) == after


def test_sibyls_calibrate_puts_the_next_runs_on_absolute_scale(session, simulation, capsys,
                                                               upstream_schema_dir):  # fmt: skip
    """Water and the empty cell measured, ``sibyls calibrate`` with their uids: the runs after it are in
    1/cm with MW by I(0)/c, the scale and its lambda-ber calibration record stored in the stack."""
    RE, writer, service, tmp_path = session

    def expose(code, contents, role="sample", **kwargs):
        simulation.put_in_cell(contents)
        (uid,) = RE(saxs_exposure(code, PROJECT, exposure_time=1.0, num_frames=3, sample_role=role,
                                  **kwargs)).run_start_uids  # fmt: skip
        return uid

    water = expose("water", {"sample_code": "water", "kind": "buffer"}, "standard")
    empty = expose("empty_cell", None, "standard")
    assert writer.flush(30) and service.flush(60)
    runs = str(tmp_path / "runs")
    assert sibyls(["calibrate", "--water", water[:8], "--empty", water[:8], "--runs-dir", runs,
                   "--var-dir", str(tmp_path)]) == 2  # fmt: skip
    assert "is the water run" in capsys.readouterr().err
    assert sibyls(["calibrate", "--water", water[:8], "--empty", empty[:8], "--runs-dir", runs,
                   "--var-dir", str(tmp_path)]) == 0  # fmt: skip
    assert "the first look uses it from the next run on" in capsys.readouterr().out
    folder = tmp_path / "processed" / ".calibration"
    (record_path,) = folder.glob("calibration_*.yaml")
    record = yaml.safe_load(record_path.read_text())
    assert RecordValidator(upstream_schema_dir, with_extension=False).validate(record) == []
    assert f"water_run_uid={water}" in record["workflow_runs"][0]["processing_parameters"]

    buffer_uid = expose("bufC", {"sample_code": "bufC", "kind": "buffer"}, "buffer_blank")
    sample = {"sample_code": "prot3", "kind": "sample", "rg_a": 25.0, "concentration_mg_ml": 5.0}
    sample["mw_kda"] = 50.0
    uid = expose("prot3", sample, concentration_mg_ml=5.0, buffer_run_uid=buffer_uid)
    assert writer.flush(30) and service.flush(60) and service.failures == []
    run = yaml.safe_load(next(p.record_path for p in service.processed if p.uid == uid).read_text())
    run = run["experiment_runs"][0]
    assert run["quality_metrics"]["i_zero"]["unit"] == "1/cm"
    assert run["saxs_results"]["molecular_weight_i0_kda"] == pytest.approx(50.0, rel=0.10)
