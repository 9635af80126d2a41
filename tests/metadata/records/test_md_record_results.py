"""First-look results merged into a run's lambda-ber record: whichever of record and results comes
first, the record ends with every entity kind of the SIBYLS example, valid with the extension, and
the strict export stays valid upstream alone."""

from __future__ import annotations

import bluesky.plans as bp
import numpy as np
import pytest
import yaml

from sibyls.metadata import RunMetadata, inject_run_metadata
from sibyls.metadata.exports.lambda_ber import to_upstream
from sibyls.metadata.lambda_ber import BlueskyDataset
from sibyls.metadata.record_results import (
    RunResults,
    apply_results,
    describe_product,
    merge_results,
    results_path,
)
from sibyls.metadata.writer import RecordWriter

pytestmark = pytest.mark.slow


def _products(folder):
    from matplotlib.figure import Figure

    folder.mkdir(parents=True, exist_ok=True)
    dat = folder / "A_S_S1.dat"
    rows = (f"{q:.4f} {np.exp(-q):.5f} 0.01" for q in np.linspace(0.01, 0.3, 30))
    dat.write_text("# q I sigma\n" + "\n".join(rows))
    fig = Figure(figsize=(4, 3), dpi=50)
    fig.add_subplot().plot([1, 2, 3])
    png = folder / "S1_guinier.png"
    fig.savefig(png)
    return [describe_product(dat, "averaged, buffer-subtracted I(q)"), describe_product(png, "Guinier plot")]


def _results(uid, products, rg=25.0):
    return RunResults(
        run_uid=uid,
        quality_metrics={
            "rg": {"numeric_value": rg, "unit": "Angstroms"},
            "i_zero": {"numeric_value": 0.031, "unit": "1/cm"},
            "signal_to_noise": {"numeric_value": 42.0, "unit": "signal to noise ratio"},
        },
        saxs_results={
            "rg_sigma_a": 0.2,
            "molecular_weight_vc_kda": 61.0,
            "frames_total": 2,
            "frames_kept": 2,
            "flags": [],
        },  # fmt: skip
        workflow={
            "workflow_type": "saxs_analysis",
            "software_name": "sibyls-bluesky first look",
            "software_version": "0.1.0",
            "processing_parameters": "q_range=0.01-0.3",
        },  # fmt: skip
        products=products,
    )


@pytest.mark.parametrize("results_first", [False, True], ids=["record-first", "results-first"])
def test_results_reach_the_record_whichever_comes_first(
    RE, tmp_path, beamline, results_first, extended_validator, upstream_validator
):
    writer = RecordWriter(tmp_path / "records", spool_dir=tmp_path / "spool")
    md = RunMetadata(sample_code="S1", project_code="P", plan_type="saxs_exposure", concentration_mg_ml=2.0)
    products = _products(tmp_path / "processed")
    if results_first:
        # The service finished before the writer: it leaves the results beside the future record.
        from sibyls.metadata.mapping import record_relpath

        uids = []
        RE.subscribe(lambda n, d: uids.append(d["uid"]) if n == "start" else None)
        writer_token = RE.subscribe(writer)
        RE.unsubscribe(writer_token)
        RE(inject_run_metadata(bp.count([beamline["pilatus"]], num=2), md))
        start = next(d for n, d in RE.captured if n == "start")
        record_path = writer.records_dir / record_relpath(start)
        assert apply_results(record_path, _results(start["uid"], products)) is False
        assert not record_path.exists()
        for name, doc in RE.captured:
            writer(name, doc)
    else:
        RE.subscribe(writer)
        RE(inject_run_metadata(bp.count([beamline["pilatus"]], num=2), md))
        start = next(d for n, d in RE.captured if n == "start")
    assert writer.flush(30)
    record_path = writer.last_record_path
    if not results_first:
        assert apply_results(record_path, _results(start["uid"], products)) is True
    record = yaml.safe_load(record_path.read_text())

    run = record["experiment_runs"][0]
    assert run["quality_metrics"]["rg"] == {"numeric_value": 25.0, "unit": "Angstroms"}
    assert run["saxs_results"]["molecular_weight_vc_kda"] == 61.0
    assert run["processing_status"] == "completed"
    (workflow,) = record["workflow_runs"]
    assert workflow["workflow_type"] == "saxs_analysis"
    processed = [f for f in record["data_files"] if f.get("file_role") == "processed"]
    assert [f["file_name"] for f in processed] == ["A_S_S1.dat"]
    assert processed[0]["checksum"] == f"sha256:{products[0].sha256}"
    assert [i["file_name"] for i in record["images"]] == ["S1_guinier.png"]
    assert record["images"][0]["dimensions_x"] == {"numeric_value": 200, "unit": "pixels"}
    assert record["workflow_output_associations"] == [
        {"workflow_id": workflow["id"], "file_id": processed[0]["id"], "output_type": "processed_data"}
    ]
    assert record["workflow_experiment_associations"][0]["experiment_id"] == run["id"]
    assert record["study_workflow_associations"][0]["study_id"] == record["studies"][0]["id"]
    assert extended_validator.validate(record) == []
    # The first update (numbers before the plots) is a valid record too.
    halfway = merge_results(record, _results(start["uid"], products).model_copy(update={"complete": False}))
    assert halfway["experiment_runs"][0]["processing_status"] == "processing"
    assert extended_validator.validate(halfway) == []
    strict = to_upstream(BlueskyDataset.model_validate(record)).to_dict()
    assert upstream_validator.validate(strict) == []
    assert "MW (Vc) 61.0 kDa" in strict["experiment_runs"][0]["description"]
    assert results_path(record_path).is_file()
    assert sorted(p.name for p in record_path.parent.iterdir()) == sorted(
        [record_path.name, results_path(record_path).name]
    )


def test_reprocessing_replaces_earlier_results(RE, tmp_path, beamline):
    writer = RecordWriter(tmp_path / "records", spool_dir=tmp_path / "spool")
    RE.subscribe(writer)
    md = RunMetadata(sample_code="S1", project_code="P", plan_type="saxs_exposure")
    RE(inject_run_metadata(bp.count([beamline["pilatus"]], num=1), md))
    assert writer.flush(30)
    uid = next(d for n, d in RE.captured if n == "start")["uid"]
    products = _products(tmp_path / "processed")
    apply_results(writer.last_record_path, _results(uid, products, rg=25.0))
    apply_results(writer.last_record_path, _results(uid, products, rg=31.5))
    record = yaml.safe_load(writer.last_record_path.read_text())
    assert record["experiment_runs"][0]["quality_metrics"]["rg"]["numeric_value"] == 31.5
    assert len(record["workflow_runs"]) == 1
    assert len([f for f in record["data_files"] if f.get("file_role") == "processed"]) == 1
    assert len(record["images"]) == 1 and len(record["workflow_output_associations"]) == 1


def test_results_that_break_the_record_model_leave_the_record_untouched(RE, tmp_path, beamline):
    writer = RecordWriter(tmp_path / "records", spool_dir=tmp_path / "spool")
    RE.subscribe(writer)
    md = RunMetadata(sample_code="S1", project_code="P", plan_type="saxs_exposure")
    RE(inject_run_metadata(bp.count([beamline["pilatus"]], num=1), md))
    assert writer.flush(30)
    before = writer.last_record_path.read_text()
    uid = next(d for n, d in RE.captured if n == "start")["uid"]
    bad = _results(uid, []).model_copy(update={"quality_metrics": {"rg": {"numeric_value": "not a number"}}})
    with pytest.raises(ValueError):
        merge_results(yaml.safe_load(before), bad)
    with pytest.raises(ValueError):
        apply_results(writer.last_record_path, bad)
    with pytest.raises(ValueError, match="numeric_value"):
        RunResults.model_validate(bad.model_dump())
    assert writer.last_record_path.read_text() == before
    assert not results_path(writer.last_record_path).exists()
