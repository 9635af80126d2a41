"""First looks on Dask: real runs of the simulated beamline (document logs and frame files), their
first looks on a real ``LocalCluster`` of 2 worker processes and on a scheduler and a worker started
as separate processes on loopback (``tcp://``); one broken run (its frame file gone) is reported
(record, log, summary, exit status) while the others finish."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from beamline_helpers import sibyls_run_engine

from sibyls.metadata.mapping import record_relpath
from sibyls.metadata.runs.doclog import DocumentLog, read_document_log
from sibyls.metadata.runs.sources import FolderRunSource
from sibyls.plans import saxs_exposure
from sibyls.saxs.processing.cluster import FirstLookCluster, scheduler_processes
from sibyls.saxs.processing.reprocess import reprocess
from sibyls.saxs.processing.service import FirstLookService
from sibyls.startup.cli import main as sibyls
from sibyls.startup.config import ProfileConfig

pytestmark = pytest.mark.slow

PROJECT = "DASKLOOK"
SAMPLES = {"protA": 22.0, "protB": 30.0}


@pytest.fixture(scope="module")
def stored(beamline, simulation, tmp_path_factory):
    """A buffer, two samples and a broken sample (its frame file deleted after the run): document
    logs, records and frame files as the RunEngine wrote them."""
    folder = tmp_path_factory.mktemp("dask_runs")
    RE, writer = sibyls_run_engine(beamline, folder)
    RE.subscribe(DocumentLog(folder / "runs"))
    uids = {}
    try:
        simulation.put_in_cell({"sample_code": "buf", "kind": "buffer"})
        (uids["buf"],) = RE(saxs_exposure("buf", PROJECT, exposure_time=1.0, num_frames=3,
                                          sample_role="buffer_blank")).run_start_uids  # fmt: skip
        for code, rg in [*SAMPLES.items(), ("broken", 25.0)]:
            sample = {
                "sample_code": code,
                "kind": "sample",
                "rg_a": rg,
                "concentration_mg_ml": 4.0,
                "mw_kda": 40.0,
            }
            simulation.put_in_cell(sample)
            plan = saxs_exposure(code, PROJECT, exposure_time=1.0, num_frames=3, concentration_mg_ml=4.0,
                                 buffer_run_uid=uids["buf"])  # fmt: skip
            (uids[code],) = RE(plan).run_start_uids
    finally:
        simulation.put_in_cell(None)
    assert writer.flush(30)
    for path in _frame_files(folder / "runs", uids["broken"]):
        path.unlink()
    return folder, uids


def _frame_files(runs: Path, uid: str) -> list[Path]:
    for log_path in runs.rglob("*.jsonl"):
        documents = list(read_document_log(log_path))
        if documents[0][1]["uid"] == uid:
            return [Path(d.get("root") or "/") / d["resource_path"] for n, d in documents if n == "resource"]
    raise AssertionError(f"no document log of run {uid}")


def _run(folder: Path, uid: str) -> dict:
    """The run's entry in its record."""
    (start,) = [s for s in _starts(folder) if s["uid"] == uid]
    return yaml.safe_load((folder / "records" / record_relpath(start)).read_text())["experiment_runs"][0]


def _starts(folder: Path) -> list[dict]:
    return [next(read_document_log(p))[1] for p in (folder / "runs").rglob("*.jsonl")]


def _check_results(folder: Path, uids: dict) -> None:
    for code, rg in SAMPLES.items():
        run = _run(folder, uids[code])
        assert run["processing_status"] == "completed", code
        assert run["saxs_results"]["buffer_run_uid"] == uids["buf"]
        assert run["quality_metrics"]["rg"]["numeric_value"] == pytest.approx(rg, rel=0.05)
    assert _run(folder, uids["buf"])["processing_status"] == "completed"
    assert _run(folder, uids["broken"])["processing_status"] == "failed"


def test_reprocess_on_a_local_cluster_of_two_worker_processes(stored):
    folder, uids = stored
    progress = []
    with FirstLookCluster(workers=2) as cluster:
        client = cluster.client()
        workers = client.scheduler_info()["workers"]
        assert len(workers) == 2 and all(a.startswith("tcp://127.0.0.1:") for a in workers)
        assert set(client.run(os.getpid).values()).isdisjoint({os.getpid()})  # separate processes
        outcome = reprocess(FolderRunSource(folder / "runs"), folder / "records", folder / "processed",
                            project=PROJECT, cluster=cluster,
                            on_progress=lambda *step: progress.append(step))  # fmt: skip
    assert sorted(p.uid for p in outcome.done) == sorted(uids[c] for c in ("buf", *SAMPLES))
    (failure,) = outcome.failures
    assert (
        uids["broken"][:8] in failure
        and "no frames to look at" in failure
        and "frames not reduced" in failure
    )
    assert [step[:2] for step in progress] == [(i, 4) for i in range(1, 5)]
    assert any("failed" in step[2] and uids["broken"][:8] in step[2] for step in progress)
    _check_results(folder, uids)
    summary = (folder / "processed" / PROJECT / "summary.csv").read_text()
    assert all(code in summary for code in SAMPLES)


def test_sibyls_process_project_reports_the_broken_run_and_finishes_the_others(stored, monkeypatch, capsys):
    folder, uids = stored
    monkeypatch.setenv(ProfileConfig.env_name("dask_workers"), "2")
    monkeypatch.delenv(ProfileConfig.env_name("dask_scheduler"), raising=False)
    code = sibyls(
        ["process", "--runs-dir", str(folder / "runs"), "--project", PROJECT, "--var-dir", str(folder)]
    )
    out, err = capsys.readouterr()
    assert code == 1
    assert "3 ok, 1 failed, 0 without a first look" in out
    assert "local Dask cluster of 2 worker processes" in err
    assert [line for line in err.splitlines() if line.startswith("[")][-1].startswith("[4/4]")  # not a tty
    (failed,) = [line for line in err.splitlines() if line.startswith("failed:")]
    assert uids["broken"][:8] in failed and "no frames to look at" in failed
    _check_results(folder, uids)


def test_the_service_submits_first_looks_to_the_cluster_and_survives_a_failing_one(stored, caplog):
    """The live path: documents in, frames reduced in the service, each stop's first look on the
    cluster; the broken run's failure is in its record and the log, and the run after it is done."""
    folder, uids = stored
    logs = {next(read_document_log(p))[1]["uid"]: p for p in (folder / "runs").rglob("*.jsonl")}
    order = [uids["buf"], uids["broken"], *(uids[c] for c in SAMPLES)]
    with FirstLookCluster(workers=2) as cluster:
        service = FirstLookService(folder / "records", folder / "processed", executor=cluster.executor())
        try:
            for uid in order:
                for name, doc in read_document_log(logs[uid]):
                    service(name, doc)
            assert service.flush(120)
        finally:
            service.close()
    assert [uid for uid, _ in service.failures] == [uids["broken"]]
    assert "no frames to look at" in service.failures[0][1]
    assert any(uids["broken"] in r.getMessage() and r.levelname == "ERROR" for r in caplog.records)
    assert {p.uid for p in service.processed} == {uids[c] for c in ("buf", *SAMPLES)}
    _check_results(folder, uids)


def test_sibyls_process_all_through_a_tcp_scheduler_and_a_worker_process(
    stored, tmp_path, monkeypatch, capsys
):
    folder, uids = stored
    with scheduler_processes(tmp_path) as (address, processes):
        cluster = FirstLookCluster(address)
        try:
            cluster.client().wait_for_workers(1, timeout=60)
            (worker,) = cluster.client().run(os.getpid).values()
            assert worker not in {os.getpid(), *(p.pid for p in processes)}  # the nanny's worker process
        finally:
            cluster.close()
        monkeypatch.setenv(ProfileConfig.env_name("dask_scheduler"), address)
        code = sibyls(["process", "--runs-dir", str(folder / "runs"), "--all", "--var-dir", str(folder)])
        out, err = capsys.readouterr()
        assert all(p.poll() is None for p in processes), "the facility's cluster outlives sibyls process"
    assert code == 1, err
    assert f"first looks on {address}" in err
    assert "3 ok, 1 failed" in out
    _check_results(folder, uids)


def test_a_bad_scheduler_setting_names_the_setting(stored, monkeypatch, capsys):
    folder, _ = stored
    monkeypatch.setenv(ProfileConfig.env_name("dask_scheduler"), "localhost:8786")
    code = sibyls(["process", "--runs-dir", str(folder / "runs"), "--all", "--var-dir", str(folder)])
    assert code == 2 and "dask_scheduler" in capsys.readouterr().err


def test_task_outputs_pickle(stored):
    """What crosses to a worker and back pickles (cloudpickle, as distributed sends it)."""
    import cloudpickle

    from sibyls.saxs.processing.tasks import FirstLookSettings, reprocess_run

    folder, uids = stored
    (path,) = [
        p for p in (folder / "runs").rglob("*.jsonl") if next(read_document_log(p))[1]["uid"] == uids["buf"]
    ]
    documents = json.loads(json.dumps(list(read_document_log(path))))
    output = reprocess_run(documents, None, FirstLookSettings(folder / "processed-pickle"))
    back = cloudpickle.loads(cloudpickle.dumps(output))
    assert back.error is None and back.buffer.uid == uids["buf"] and len(back.buffer.curves) == 3
