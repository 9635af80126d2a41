"""Run → record → replayed documents (event-model valid) → the same record; stored runs → records."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sibyls.metadata import documents_to_dataset
from sibyls.metadata.errors import ExchangeError
from sibyls.metadata.replay.records import records_from_runs, replay_record
from sibyls.metadata.runs.sources import FolderRunSource, TiledRunSource
from sibyls.startup.cli import main

pytestmark = pytest.mark.slow


def _live_record(xchg_runs, code):
    uid = xchg_runs["uids"][code]
    (path,) = [p for p in xchg_runs["dirs"]["records"].rglob("*.yaml") if uid[:8] in p.name]
    return path, yaml.safe_load(path.read_text())


def test_record_replays_to_valid_documents_that_map_back_to_the_same_record(xchg_runs):
    path, record = _live_record(xchg_runs, "Prot_x")
    documents = replay_record(path)  # validated against event-model's schemas
    names = [n for n, _ in documents]
    assert names[0] == "start" and names[-1] == "stop" and names.count("event") > 3
    assert documents_to_dataset(documents).to_dict() == record


def test_replayed_record_reingests_into_tiled(xchg_runs, tiled_server, tmp_path):
    path, record = _live_record(xchg_runs, "HEPES_x")
    client = tiled_server.client()
    uid = xchg_runs["uids"]["HEPES_x"]
    # The original is already in Tiled; replay into a fresh container of the same server.
    target = client.create_container(key=f"replay-{uid[:8]}")
    from bluesky.callbacks.tiled_writer import TiledWriter

    from sibyls.metadata.runs.tiled import SPEC_TO_MIMETYPE, _frame_dataset_patch

    writer = TiledWriter(
        target, patches={"resource": _frame_dataset_patch}, spec_to_mimetype=SPEC_TO_MIMETYPE
    )
    replay_record(path, [writer])
    assert target[uid].metadata["start"]["sample_code"] == "HEPES_x"
    assert target[uid]["primary"].base["pilatus_image"].shape[0] == 3


def test_records_from_folder_and_tiled_use_the_live_mapping(xchg_runs, tiled_server, tmp_path):
    _, live = _live_record(xchg_runs, "Prot_x")
    uid = xchg_runs["uids"]["Prot_x"]
    (from_folder,) = records_from_runs(FolderRunSource(xchg_runs["dirs"]["runs"]), tmp_path / "a", uid=uid)
    assert yaml.safe_load(from_folder.read_text()) == live
    (from_tiled,) = records_from_runs(TiledRunSource(tiled_server.client()), tmp_path / "b", uid=uid)
    rec = yaml.safe_load(from_tiled.read_text())
    assert from_tiled.name == from_folder.name
    for key in ("studies", "samples", "instruments"):
        assert rec[key] == live[key], key
    run, live_run = rec["experiment_runs"][0], live["experiment_runs"][0]
    for key in ("bluesky_uid", "exit_status", "data_collection_strategy", "experimental_conditions"):
        assert run[key] == live_run[key], key
    assert [f["checksum"] for f in rec["data_files"]] == [f["checksum"] for f in live["data_files"]]


def test_record_with_missing_data_files_is_a_clear_error_and_no_output(xchg_runs, tmp_path, capsys):
    path, record = _live_record(xchg_runs, "Prot_x")
    moved = tmp_path / "moved"
    moved.mkdir()
    frame = record["data_files"][0]["file_path"]
    record["data_files"][0]["file_path"] = str(moved / "gone.h5")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(record))
    with pytest.raises(ExchangeError, match="data files of the record are missing: .*gone.h5"):
        replay_record(bad)
    out = tmp_path / "replayed.jsonl"
    assert main(["replay-record", str(bad), "--out", str(out)]) == 2
    assert "missing" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob(".*part"))
    assert main(["replay-record", str(path), "--out", str(out)]) == 0
    assert out.is_file()
    assert Path(frame).is_file()
