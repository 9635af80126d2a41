"""The first look on degenerate data (synthetic curves): no buffer, a flat curve, every frame rejected
by CorMap, one frame, zero or missing concentration, a negative subtracted curve, a buffer of another
exposure or cell. None of them crashes: each gets its curve products, a valid record and, where no
Guinier fit exists, a note why; a first look that truly fails says so in the record."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import yaml
from synthetic_saxs import BUFFER_PER_CM, PARTICLES, Q, buffer_frames, noisy, sample_frames

from sibyls.metadata.mapping import documents_to_dataset, record_relpath
from sibyls.metadata.record_yaml import dump_record
from sibyls.saxs.analysis.flags import FLAG_FAILED_FIT, FLAG_LOW_SIGNAL, FLAG_NO_BUFFER
from sibyls.saxs.processing.run_processor import ReducedRun
from sibyls.saxs.processing.service import FirstLookService
from sibyls.saxs.reduction.curves import Curve

PROJECT = "DEGENERATE"
PROTEIN = PARTICLES[1]


def _start(code: str, role: str = "sample", **extra) -> dict:
    uid = str(uuid.uuid4())
    return {"uid": uid, "time": time.time(), "scan_id": 7, "plan_name": "saxs_exposure",
            "plan_type": "saxs_exposure", "sample_code": code, "project_code": PROJECT,
            "sample_role": role, **extra}  # fmt: skip


def _write_record(records: Path, start: dict) -> Path:
    stop = {"uid": str(uuid.uuid4()), "run_start": start["uid"], "time": time.time(),
            "exit_status": "success", "num_events": {}}  # fmt: skip
    path = records / record_relpath(start)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dump_record(documents_to_dataset([("start", start), ("stop", stop)]).to_dict()))
    return path


@pytest.fixture
def service(tmp_path):
    service = FirstLookService(tmp_path / "records", tmp_path / "processed")
    yield service
    service.close()


def _look(service, frames, buffer_frames_=None, **start_extra):
    """Buffer (if any) then sample through the service; the sample's record and run entry."""
    if buffer_frames_ is not None:
        buffer_start = _start("buf", "buffer_blank")
        _write_record(service.records_dir, buffer_start)
        service.finish(ReducedRun(start=buffer_start, curves=buffer_frames_))
        start_extra.setdefault("buffer_run_uid", buffer_start["uid"])
    start = _start("S1", **start_extra)
    record_path = _write_record(service.records_dir, start)
    service._finish(ReducedRun(start=start, curves=frames))
    service.flush(60)
    record = yaml.safe_load(record_path.read_text())
    return record, record["experiment_runs"][0]


def _workflow_note(record) -> str:
    (workflow,) = record["workflow_runs"]
    return workflow.get("description") or ""


def _product_names(record) -> set[str]:
    return {f["file_name"] for f in record.get("data_files") or []} | {
        i["file_name"] for i in record.get("images") or []
    }


def _check(record, extended_validator):
    assert extended_validator.validate(record) == []


def test_no_buffer_gives_results_flagged_unsubtracted(service, extended_validator):
    rng = np.random.default_rng(1)
    record, run = _look(service, sample_frames(PROTEIN, 2.0, 5, rng), concentration_mg_ml=2.0)
    _check(record, extended_validator)
    assert run["processing_status"] == "completed" and service.failures == []
    assert FLAG_NO_BUFFER in run["saxs_results"]["flags"]
    assert "no buffer given" in _workflow_note(record)
    assert "A_S1.dat" in _product_names(record) and "S1_Iq_plot.png" in _product_names(record)


def test_flat_curve_has_no_guinier_region_and_says_why(service, extended_validator):
    flat = [Curve(Q.copy(), np.full_like(Q, 0.02), np.full_like(Q, 1e-4), "1/cm") for _ in range(3)]
    record, run = _look(service, flat, concentration_mg_ml=2.0)
    _check(record, extended_validator)
    assert run["processing_status"] == "completed" and service.failures == []
    assert "rg" not in (run.get("quality_metrics") or {})
    assert FLAG_FAILED_FIT in run["saxs_results"]["flags"]
    assert "Guinier" in _workflow_note(record)
    assert {"A_S1.dat", "S1_Iq_plot.png"} <= _product_names(record)


def test_noise_only_sample_is_flagged_low_signal(service, extended_validator):
    rng = np.random.default_rng(2)
    record, run = _look(service, buffer_frames(5, rng), buffer_frames(5, rng), concentration_mg_ml=2.0)
    _check(record, extended_validator)
    assert run["processing_status"] == "completed" and service.failures == []
    assert {FLAG_LOW_SIGNAL, FLAG_FAILED_FIT} & set(run["saxs_results"]["flags"])
    assert {"A_S1.dat", "A_S_S1.dat", "S1_Iq_plot.png"} <= _product_names(record)


def test_every_frame_differs_from_the_first_keeps_one_and_flags_damage(service, extended_validator):
    rng = np.random.default_rng(3)
    # each frame twice the last: CorMap rejects everything after the first
    frames = [noisy((BUFFER_PER_CM + 0.05 * np.exp(-((Q * 20) ** 2) / 3)) * 2**i, rng) for i in range(4)]
    record, run = _look(service, frames, buffer_frames(4, rng), concentration_mg_ml=1.0)
    _check(record, extended_validator)
    assert run["processing_status"] == "completed" and service.failures == []
    assert run["saxs_results"]["frames_kept"] >= 1 and run["saxs_results"]["frames_total"] == 4


def test_one_frame(service, extended_validator):
    rng = np.random.default_rng(4)
    record, run = _look(service, sample_frames(PROTEIN, 2.0, 1, rng), buffer_frames(1, rng),
                        concentration_mg_ml=2.0)  # fmt: skip
    _check(record, extended_validator)
    assert run["processing_status"] == "completed" and run["saxs_results"]["frames_kept"] == 1


@pytest.mark.parametrize("concentration", [0.0, None], ids=["zero", "missing"])
def test_zero_or_missing_concentration_gives_rg_without_mw_from_i0(
    service, extended_validator, concentration
):
    rng = np.random.default_rng(5)
    extra = {} if concentration is None else {"concentration_mg_ml": concentration}
    record, run = _look(service, sample_frames(PROTEIN, 2.0, 4, rng), buffer_frames(4, rng), **extra)
    _check(record, extended_validator)
    assert run["processing_status"] == "completed"
    assert run["quality_metrics"]["rg"]["numeric_value"] == pytest.approx(PROTEIN.rg, rel=0.05)
    assert "molecular_weight_i0_kda" not in run["saxs_results"]
    assert "MW (I0/c)" in _workflow_note(record)


def test_negative_subtracted_curve_has_no_guinier_region(service, extended_validator):
    rng = np.random.default_rng(6)
    thin = [noisy(np.full_like(Q, BUFFER_PER_CM * 0.5), rng) for _ in range(3)]  # less than the buffer
    record, run = _look(service, thin, buffer_frames(3, rng), concentration_mg_ml=2.0)
    _check(record, extended_validator)
    assert run["processing_status"] == "completed" and service.failures == []
    assert FLAG_FAILED_FIT in run["saxs_results"]["flags"]
    assert "A_S_S1.dat" in _product_names(record)


def test_buffer_on_another_q_grid_is_interpolated(service, extended_validator):
    rng = np.random.default_rng(7)
    other_q = Q[::2]  # another binning: another q grid over the same range
    other = [noisy(np.full_like(other_q, BUFFER_PER_CM), rng, other_q) for _ in range(3)]
    record, run = _look(service, sample_frames(PROTEIN, 2.0, 3, rng), other, concentration_mg_ml=2.0)
    _check(record, extended_validator)
    assert run["processing_status"] == "completed" and service.failures == []
    assert "buffer_run_uid" in run["saxs_results"] and "A_S_S1.dat" in _product_names(record)


def test_buffer_of_another_cell_without_common_q_range_is_left_out_with_a_note(service, extended_validator):
    rng = np.random.default_rng(11)
    far_q = Q + 1.0  # another camera length: no q in common
    far = [noisy(np.full_like(far_q, BUFFER_PER_CM), rng, far_q) for _ in range(3)]
    record, run = _look(service, sample_frames(PROTEIN, 2.0, 3, rng), far, concentration_mg_ml=2.0)
    _check(record, extended_validator)
    assert run["processing_status"] == "completed" and service.failures == []
    assert FLAG_NO_BUFFER in run["saxs_results"]["flags"] and "buffer_run_uid" not in run["saxs_results"]
    assert "buffer not subtracted" in _workflow_note(record) and "does not overlap" in _workflow_note(record)


def test_buffer_of_another_exposure_on_the_same_grid_is_subtracted(service, extended_validator):
    rng = np.random.default_rng(8)
    strong = [
        noisy(np.full_like(Q, BUFFER_PER_CM * 3), rng) for _ in range(3)
    ]  # longer exposure, thicker cell
    record, run = _look(service, sample_frames(PROTEIN, 2.0, 3, rng), strong, concentration_mg_ml=2.0)
    _check(record, extended_validator)
    assert run["processing_status"] == "completed" and service.failures == []


def test_no_frames_at_all_is_a_failure_in_the_record_and_a_later_success_replaces_it(
    service, extended_validator
):
    start = _start("S1", concentration_mg_ml=2.0)
    record_path = _write_record(service.records_dir, start)
    service._finish(ReducedRun(start=start, curves=[], problems=["event 1: frames not reduced (gone)"]))
    service.flush(60)  # the first look runs on the service's executor
    record = yaml.safe_load(record_path.read_text())
    _check(record, extended_validator)
    assert record["experiment_runs"][0]["processing_status"] == "failed"
    assert "frames not reduced (gone)" in _workflow_note(record)
    rng = np.random.default_rng(9)
    service.finish(ReducedRun(start=start, curves=sample_frames(PROTEIN, 2.0, 3, rng)))
    record = yaml.safe_load(record_path.read_text())
    _check(record, extended_validator)
    assert record["experiment_runs"][0]["processing_status"] == "completed"
    assert "failed" not in _workflow_note(record)


def test_a_scan_gets_not_applicable_in_its_record(service, extended_validator):
    start = {**_start("scan1"), "plan_name": "scan", "plan_type": "scan"}
    record_path = _write_record(service.records_dir, start)
    service("start", start)
    service("stop", {"uid": str(uuid.uuid4()), "run_start": start["uid"], "time": time.time(),
                     "exit_status": "success", "num_events": {}})  # fmt: skip
    service.flush(30)
    record = yaml.safe_load(record_path.read_text())
    _check(record, extended_validator)
    assert record["experiment_runs"][0]["processing_status"] == "raw"
    assert _workflow_note(record).startswith("first look not applicable to scan")


def test_curve_with_nan_values_is_refused_by_name(service):
    rng = np.random.default_rng(10)
    frames = sample_frames(PROTEIN, 2.0, 2, rng)
    broken = Curve(
        frames[0].q, np.where(Q > 0.2, np.nan, frames[0].intensity), frames[0].sigma, frames[0].unit
    )
    _look(service, [broken, frames[1]])
    (failure,) = service.failures
    assert "non-finite intensity" in failure[1]


def test_sec_run_without_a_peak_is_all_buffer_with_a_note(service, extended_validator):
    from synthetic_saxs import sec_run

    rng = np.random.default_rng(12)
    frames, traces, _ = sec_run([(PROTEIN, 30.0, 3.0, 0.0)], 40, rng)  # the sample never elutes
    start = {**_start("S1"), "plan_name": "sec_saxs", "plan_type": "sec_saxs"}
    record_path = _write_record(service.records_dir, start)
    run_traces = {
        "uv280_mau": list(traces["uv"]),
        "mals_v": list(traces["mals"]),
        "ri_riu": list(traces["ri"]),
    }
    service._finish(ReducedRun(start=start, curves=frames, traces=run_traces))
    service.flush(60)
    record = yaml.safe_load(record_path.read_text())
    _check(record, extended_validator)
    run = record["experiment_runs"][0]
    assert run["processing_status"] == "completed" and service.failures == []
    assert "no elution peak" in _workflow_note(record)
    assert {"A_buff_S1.dat", "S1_SEC_chromatogram.png"} <= _product_names(record)


def test_plots_that_fail_leave_the_numbers_and_say_so(service, extended_validator, monkeypatch):
    import sibyls.saxs.analysis.firstlook as firstlook

    def no_plots(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(firstlook, "write_plots", no_plots)
    rng = np.random.default_rng(13)
    record, run = _look(
        service, sample_frames(PROTEIN, 2.0, 3, rng), buffer_frames(3, rng), concentration_mg_ml=2.0
    )
    _check(record, extended_validator)
    assert run["processing_status"] == "failed" and run["quality_metrics"]["rg"]["numeric_value"] > 0
    assert "plots not drawn (No space left on device)" in _workflow_note(record)
    assert run["bluesky_uid"] in {uid for uid, _ in service.failures}  # the buffer's plots failed, too
