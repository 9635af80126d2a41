"""Records written at each run's stop: contents against the documents, exit statuses, failure handling."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import bluesky.plan_stubs as bps
import bluesky.plans as bp
import pytest
import yaml
from bluesky.utils import Msg, RunEngineInterrupted

from sibyls.metadata import RunMetadata, inject_run_metadata
from sibyls.metadata import writer as writer_module
from sibyls.metadata.mapping import RunSummary, documents_to_dataset
from sibyls.metadata.records_schema import linkml_validate_cli
from sibyls.metadata.writer import RecordWriter

pytestmark = pytest.mark.slow

META = RunMetadata(
    sample_code="GluRS_1", project_code="PRJ-7", plan_type="saxs_exposure", sample_type="protein",
    concentration_mg_ml=5.0, molecular_weight_kda=54.8, buffer_name="Tris-NaCl",
    buffer_composition=["20 mM Tris-HCl", "150 mM NaCl"], buffer_ph=7.5, sample_role="sample",
    cell_temperature_c=20, operator="kb", description="first exposure",
)  # fmt: skip


@pytest.fixture
def writer(RE, tmp_path):
    w = RecordWriter(tmp_path / "records", spool_dir=tmp_path / "spool")
    RE.subscribe(w)
    return w


def _docs(RE, name):
    return [d for n, d in RE.captured if n == name]


def _record(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def test_success_record_matches_documents(RE, writer, beamline, extended_validator):
    uv = beamline["sec_uv280"]

    def shot(detectors):
        yield from bps.mv(uv, uv.get() + 0.5)  # the monitor stream records each change
        yield from bps.trigger_and_read(detectors)

    (uid,) = RE(inject_run_metadata(bp.count([beamline["pilatus"]], num=3, per_shot=shot), META))
    assert writer.flush(30)
    start, stop = _docs(RE, "start")[0], _docs(RE, "stop")[0]
    assert writer.last_status == "written"
    path = writer.last_record_path
    assert path == writer.records_dir / "PRJ-7" / f"{start['scan_id']:05d}_GluRS_1_{uid[:8]}.yaml"
    rec = _record(path)
    assert extended_validator.validate(rec) == []

    (study,) = rec["studies"]
    assert study["bluesky_uid"] == uid and study["scan_id"] == start["scan_id"]
    assert study["plan_name"] == start["plan_name"] == "count" and study["plan_type"] == "saxs_exposure"
    assert study["time_start"] == start["time"] and study["project_code"] == "PRJ-7"

    (sample,) = rec["samples"]
    assert sample["sample_code"] == "GluRS_1" and sample["sample_type"] == "protein"
    assert sample["concentration"] == {"numeric_value": 5.0, "unit": "milligrams per milliliter"}
    assert sample["molecular_weight"]["numeric_value"] == 54.8
    assert sample["buffer_composition"] == {
        "description": "Tris-NaCl",
        "ph": {"numeric_value": 7.5, "unit": "pH units"},
        "components": ["20 mM Tris-HCl", "150 mM NaCl"],
    }

    (inst,) = rec["instruments"]
    assert inst["instrument_registry_id"] == "ALS_SIBYLS" and inst["daq_system"] == "bluesky"

    (run,) = rec["experiment_runs"]
    assert run["id"] == f"urn:uuid:{uid}" and run["technique"] == "saxs"
    assert run["exit_status"] == stop["exit_status"] == "success" and run["processing_status"] == "collected"
    assert run["time_stop"] == stop["time"] and run["operator_id"] == "kb"
    cond, strat = run["experimental_conditions"], run["data_collection_strategy"]
    assert cond["temperature"] == {"numeric_value": 20.0, "unit": "degrees Celsius"}  # baseline reading
    assert cond["beam_energy"] == {"numeric_value": 11.0, "unit": "kiloelectronvolts"}
    assert cond["exposure_time"] == {"numeric_value": 0.2, "unit": "seconds"}  # pilatus configuration
    assert strat["collection_mode"] == "batch"
    assert strat["total_frames"]["numeric_value"] == 3 * 5  # 3 events x pilatus_num_images
    assert strat["detector_distance_mm"]["numeric_value"] == 2105.0
    assert strat["wavelength_a"] == {"numeric_value": 1.127, "unit": "Angstroms"}
    streams = {s["stream_name"]: s for s in run["bluesky_streams"]}
    descriptors = {d["name"]: d for d in _docs(RE, "descriptor")}
    assert set(streams) == set(descriptors) == {"primary", "baseline", "sec_uv280_monitor"}
    for name, s in streams.items():
        events = [e for e in _docs(RE, "event") if e["descriptor"] == descriptors[name]["uid"]]
        assert s["bluesky_descriptor_uid"] == descriptors[name]["uid"]
        assert s["event_count"] == len(events) == stop["num_events"][name], (name, s)
        assert s.get("seq_num") == max(e["seq_num"] for e in events), (name, s, events)
        assert s["event_time_first"] == min(e["time"] for e in events)
    assert streams["primary"]["event_count"] == 3 and streams["baseline"]["event_count"] == 2
    assert streams["sec_uv280_monitor"]["event_count"] >= 3

    (resource,) = _docs(RE, "resource")
    (df,) = rec["data_files"]
    frame_file = Path(resource["root"]) / resource["resource_path"]
    assert df["file_path"] == str(frame_file) and df["file_name"] == frame_file.name
    assert df["file_format"] == "hdf5" and df["resource_spec"] == "AD_HDF5"
    assert df["file_size_bytes"]["numeric_value"] == frame_file.stat().st_size
    assert df["checksum"] == "sha256:" + hashlib.sha256(frame_file.read_bytes()).hexdigest()
    assert df["bluesky_resource_uid"] == resource["uid"] and df["resource_path"] == resource["resource_path"]
    assert df["bluesky_datum_ids"] == [d["datum_id"] for d in _docs(RE, "datum")]
    assert df["related_entity"] == run["id"] and df["creation_date"]
    assert rec["experiment_sample_associations"][0]["role"] == "target"
    assert rec["experiment_instrument_associations"][0]["instrument_id"] == inst["id"]

    # the pure mapping gives the same record from the stored documents
    assert documents_to_dataset(RE.captured).to_dict() == rec


def _pausing_plan(detector):
    yield from bps.stage(detector)
    yield from bps.open_run()
    yield from bps.trigger_and_read([detector])
    yield from bps.checkpoint()
    yield Msg("pause")
    yield from bps.trigger_and_read([detector])
    yield from bps.close_run()


def _failing_plan(detector):
    yield from bps.stage(detector)
    yield from bps.open_run()
    yield from bps.trigger_and_read([detector])
    raise RuntimeError("sample cell leak")


@pytest.mark.parametrize("how,expected", [("abort", "abort"), ("halt", "abort"), ("stop", "success")])
def test_interrupted_runs_get_one_record(RE, writer, beamline, extended_validator, how, expected):
    with pytest.raises(RunEngineInterrupted):
        RE(inject_run_metadata(_pausing_plan(beamline["pilatus"]), META))
    getattr(RE, how)()
    assert writer.flush(30)
    stops = _docs(RE, "stop")
    assert len(stops) == 1 and stops[0]["exit_status"] == expected
    files = list(writer.records_dir.rglob("*.yaml"))
    assert files == [writer.last_record_path]
    run = _record(files[0])["experiment_runs"][0]
    assert run["exit_status"] == expected
    assert extended_validator.validate(_record(files[0])) == []


def test_exception_in_plan_gives_fail_record(RE, writer, beamline, extended_validator):
    with pytest.raises(RuntimeError, match="sample cell leak"):
        RE(inject_run_metadata(_failing_plan(beamline["pilatus"]), META))
    assert writer.flush(30)
    (path,) = writer.records_dir.rglob("*.yaml")
    run = _record(path)["experiment_runs"][0]
    assert run["exit_status"] == "fail" and "sample cell leak" in run["exit_reason"]
    assert run["processing_status"] == "failed"
    assert extended_validator.validate(_record(path)) == []


def test_failure_mid_write_leaves_no_partial_file_and_spools(RE, writer, beamline, monkeypatch):
    real_fsync = os.fsync
    records = str(writer.records_dir)

    def broken_fsync(fd):
        if os.readlink(f"/proc/self/fd/{fd}").startswith(records):
            raise OSError(5, "simulated disk error")
        return real_fsync(fd)

    monkeypatch.setattr(writer_module.os, "fsync", broken_fsync)
    RE(inject_run_metadata(bp.count([beamline["pilatus"]]), META))
    assert writer.flush(30)
    assert writer.last_status == "spooled"
    assert [p for p in writer.records_dir.rglob("*") if p.is_file()] == []  # no partial, no temp file
    (spooled,) = writer.spool_dir.rglob("*.yaml")
    assert _record(spooled)["studies"][0]["bluesky_uid"] == _docs(RE, "start")[0]["uid"]
    monkeypatch.setattr(writer_module.os, "fsync", real_fsync)
    (landed,) = writer.retry_spooled()
    assert landed == writer.records_dir / spooled.relative_to(writer.spool_dir)
    assert (
        not spooled.exists() and _record(landed)["studies"][0]["bluesky_uid"] == _docs(RE, "start")[0]["uid"]
    )


def test_unwritable_records_folder_spools_then_lands_on_next_stop(RE, tmp_path, beamline, caplog):
    blocker = tmp_path / "records"
    blocker.write_text("not a directory")  # works even as root, unlike chmod
    w = RecordWriter(blocker, spool_dir=tmp_path / "spool")
    RE.subscribe(w)
    with caplog.at_level(logging.WARNING, logger="sibyls.metadata.writer"):
        RE(inject_run_metadata(bp.count([beamline["pilatus"]]), META))
        assert w.flush(30)
    assert w.last_status == "spooled" and "spooled" in caplog.text
    first_uid = _docs(RE, "start")[0]["uid"]
    blocker.unlink()
    RE(inject_run_metadata(bp.count([beamline["pilatus"]]), META))
    assert w.flush(30)
    uids = sorted(_record(p)["studies"][0]["bluesky_uid"] for p in blocker.rglob("*.yaml"))
    assert uids == sorted(d["uid"] for d in _docs(RE, "start")) and first_uid in uids
    assert list((tmp_path / "spool").rglob("*.yaml")) == []


def test_spool_also_unwritable_keeps_record_in_memory(RE, tmp_path, beamline):
    (tmp_path / "records").write_text("x")
    (tmp_path / "spool").write_text("x")
    w = RecordWriter(tmp_path / "records", spool_dir=tmp_path / "spool")
    RE.subscribe(w)
    RE(inject_run_metadata(bp.count([beamline["pilatus"]]), META))
    assert w.flush(30)
    assert w.last_status == "pending" and len(w.pending) == 1
    (tmp_path / "records").unlink()
    (landed,) = w.retry_spooled()
    assert landed.is_file() and w.pending == []


def test_writer_never_raises_into_the_run_engine(RE, writer, beamline, caplog):
    writer("stop", {"nonsense": True})
    writer("event", {})
    RE(inject_run_metadata(bp.count([beamline["pilatus"]]), META))
    assert writer.flush(30)
    assert writer.last_status == "written"


def test_missing_data_file_is_logged_not_fatal(RE, writer, beamline, caplog):
    def deleting():
        # delete the frame file before the stop document: the record still lands, without checksum
        yield from bps.open_run()
        yield from bps.stage(beamline["pilatus"])
        yield from bps.trigger_and_read([beamline["pilatus"]])
        yield from bps.unstage(beamline["pilatus"])
        for p in beamline["pilatus"].write_dir.iterdir():
            p.unlink()
        yield from bps.close_run()

    with caplog.at_level(logging.WARNING, logger="sibyls.metadata.mapping"):
        RE(inject_run_metadata(deleting(), META))
        assert writer.flush(30)
    df = _record(writer.last_record_path)["data_files"][0]
    assert "checksum" not in df and "file_size_bytes" not in df
    assert "missing or unreadable" in caplog.text


def test_stream_resource_and_sec_mode_without_sample_type():
    uid = "6f1c2a3b-0000-4000-8000-000000000001"
    docs = [
        ("start", {"uid": uid, "time": 1.0, "scan_id": 4, "plan_type": "sec_saxs", "plan_name": "sec",
                   "sample_code": "B1", "project_code": "P"}),
        ("stream_resource", {"uid": "sr1", "run_start": uid, "uri": "file://localhost/nonexistent/x.h5",
                             "data_key": "pilatus_image", "mimetype": "application/x-hdf5"}),
        ("stop", {"uid": "s", "run_start": uid, "time": 2.0, "exit_status": "success", "num_events": {}}),
    ]  # fmt: skip
    rec = documents_to_dataset(docs).to_dict()
    assert "samples" not in rec  # sample_type unknown: no Sample invented
    run = rec["experiment_runs"][0]
    assert run["data_collection_strategy"]["collection_mode"] == "sec_saxs" and run["sample_code"] == "B1"
    assert "experimental_conditions" not in run
    assert rec["data_files"][0]["file_path"] == "/nonexistent/x.h5"


def test_summary_counts_event_pages():
    s = RunSummary()
    s("start", {"uid": "u", "time": 0})
    s("descriptor", {"uid": "d", "name": "primary", "configuration": {}})
    s("event_page", {"descriptor": "d", "seq_num": [1, 2], "time": [1.0, 2.0],
                     "data": {"pilatus_num_images": [10, 10]}})  # fmt: skip
    assert s.total_frames() == 20 and s.streams["d"].count == 2


def test_records_pass_linkml_validate_cli(RE, writer, beamline, upstream_schema_dir):
    RE(inject_run_metadata(bp.count([beamline["pilatus"]], num=2), META))
    with pytest.raises(RunEngineInterrupted):
        RE(inject_run_metadata(_pausing_plan(beamline["pilatus"]), META))
    RE.abort()
    assert writer.flush(30)
    files = sorted(writer.records_dir.rglob("*.yaml"))
    assert len(files) == 2
    result = linkml_validate_cli(files, upstream_schema_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No issues found" in result.stdout
    strict = linkml_validate_cli(files[:1], upstream_schema_dir, with_extension=False)
    assert strict.returncode != 0  # per-run records use the extension slots
