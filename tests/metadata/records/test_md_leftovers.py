"""Start-up cleanup: leftovers of a dead process go; live and recoverable files stay."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

from sibyls.metadata.housekeeping import acquisition_partial, cleanup_leftovers
from sibyls.metadata.runs.doclog import DocumentLog

START = {"uid": "6f1c2a3b-0000-4000-8000-00000000000b", "time": 1.0, "scan_id": 2, "sample_code": "S",
         "project_code": "P"}  # fmt: skip
OLD = time.time() - 3600


def _file(path: Path, text: str = "", old: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if old:
        os.utime(path, (OLD, OLD))
    return path


def test_cleanup_removes_only_dead_leftovers(tmp_path):
    var = tmp_path / "var"
    runs, records, spool, data = (var / n for n in ("runs", "records", "spool", "data"))
    empty_part = _file(runs / ".6f1c2a3b-0000-4000-8000-00000000000a.q1w2e3.jsonl.part", '["sta')
    recoverable = _file(runs / f".{START['uid']}.r4t5y6.jsonl.part", json.dumps(["start", START]) + "\n")
    done = dict(START, uid="7a2d3c4e-0000-4000-8000-00000000000c")
    finished = _file(runs / f".{done['uid']}.u7i8o9.jsonl.part", json.dumps(["start", done]) + "\n")
    _file(runs / "P" / f"00002_S_{done['uid'][:8]}.jsonl", json.dumps(["start", done]) + "\n")
    live_log = DocumentLog(runs)  # a run open in a live process: its part file is locked
    live_log("start", dict(START, uid="6f1c2a3b-0000-4000-8000-00000000000d"))
    (live,) = [p for p in runs.glob(".6f1c2a3b-0000-4000-8000-00000000000d.*")]
    os.utime(live, (OLD, OLD))

    old_tmp = _file(records / "P" / ".00002_S_6f1c2a3b.yaml.k2j3h4_x.tmp", "half a rec")
    fresh_tmp = _file(records / "P" / ".00003_S_6f1c2a3b.yaml.abcdef12.tmp", "being written", old=False)
    other = _file(records / "P" / ".keep-me.tmp")
    spool_tmp = _file(spool / "P" / ".00004_S_6f1c2a3b.run.json.zz9abc.tmp")
    dead_frame = _file(data / "P" / "S_00001.h5.partial")
    current = _file(data / "P" / "S_00002.h5.partial")
    fresh_frame = _file(data / "P2" / "T_00001.h5.partial", old=False)
    complete = _file(data / "P" / "S_00003.h5")
    dead_reserve = _file(data / "P" / "S_00001.h5.partial.reserve")
    current_reserve = _file(data / "P" / "S_00002.h5.partial.reserve")

    removed = cleanup_leftovers(var, keep=[current, None])
    assert sorted(removed.part_files) == sorted([empty_part, finished])
    assert sorted(removed.temp_files) == sorted([old_tmp, spool_tmp])
    assert removed.partial_frames == [dead_frame, dead_reserve]
    for kept in (recoverable, live, fresh_tmp, other, current, current_reserve, fresh_frame, complete):
        assert kept.exists(), kept
    assert len(cleanup_leftovers(var, keep=[current])) == 0  # idempotent
    live_log("stop", {"uid": "s", "run_start": "6f1c2a3b-0000-4000-8000-00000000000d", "time": 2.0,
                      "exit_status": "success"})  # fmt: skip
    assert not live.exists()


def test_cleanup_with_separate_folders_and_no_age_limit(tmp_path):
    records, data = tmp_path / "somewhere" / "records", tmp_path / "frames"
    tmp = _file(records / ".00001_S_abcd1234.yaml.a1b2c3.tmp", old=False)
    partial = _file(data / "S_00001.h5.partial", old=False)
    removed = cleanup_leftovers(records_dir=records, data_dir=data, min_age_s=0)
    assert removed.temp_files == [tmp] and removed.partial_frames == [partial]


class _PV:
    def __init__(self, value):
        self.value = value

    def get(self, use_monitor=True):
        return self.value


def test_acquisition_partial_names_the_file_the_ioc_is_writing():
    pilatus = SimpleNamespace(
        name="pilatus",
        detector_state=_PV("Acquire"),
        file_template=_PV("%s%s_%5.5d.h5"),
        file_path=_PV("/data/P1/"),
        file_name=_PV("GluRS_1"),
        file_number=_PV(3),
    )
    assert acquisition_partial(pilatus) == Path("/data/P1/GluRS_1_00003.h5.partial")
    pilatus.detector_state = _PV("Idle")
    assert acquisition_partial(pilatus) is None
    assert acquisition_partial(SimpleNamespace(name="broken")) is None
