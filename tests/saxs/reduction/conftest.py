"""Fixtures of the reduction tests: stored runs over frame files laid out like the IOC's."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from frame_files import write_frame_file

from sibyls.metadata.runs.sources import StoredRun, StreamData


@pytest.fixture
def stored_run(tmp_path):
    """``stored_run(geometry, frames, mask, i0, bs)``: a StoredRun over one frame file of ``frames``,
    with the I0 and beamstop-diode counts as its primary stream's columns."""

    def make(geometry, frames, mask, i0, bs, count_time=0.5) -> StoredRun:
        uid = str(uuid.uuid4())
        path = write_frame_file(tmp_path / f"{uid[:8]}.h5", geometry, frames, mask, count_time)
        columns = {
            "seq_num": np.arange(1, len(frames) + 1),
            "i0_counts": np.asarray(i0, dtype=float),
            "bs_diode_counts": np.asarray(bs, dtype=float),
        }
        return StoredRun(
            {"uid": uid, "scan_id": 1}, None, {"primary": StreamData("primary", {}, columns)}, [path]
        )

    return make
