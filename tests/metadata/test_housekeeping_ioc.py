"""Start-up cleanup against the simulated IOC: the frame file it is writing now is never removed."""

from __future__ import annotations

import os
import time

import pytest

from sibyls.metadata.housekeeping import acquisition_partial, cleanup_leftovers

pytestmark = pytest.mark.slow


def test_the_iocs_current_partial_file_is_kept_and_dead_ones_go(beamline, tmp_path):
    pilatus = beamline.pilatus
    dead = tmp_path / "frames_00000.h5.partial"  # an acquisition the IOC never finished
    dead.write_bytes(b"\0" * 64)
    os.utime(dead, (time.time() - 3600,) * 2)
    pilatus.set_file_destination(str(tmp_path), "frames")
    pilatus.num_images.put(5, wait=True)
    pilatus.acquire_time.put(4.0, wait=True)
    pilatus.acquire_period.put(4.0, wait=True)
    assert acquisition_partial(pilatus) is None  # idle
    status = pilatus.trigger()
    try:
        deadline = time.monotonic() + 20
        while pilatus.detector_state.get(use_monitor=False) != "Acquire" and time.monotonic() < deadline:
            time.sleep(0.01)
        current = acquisition_partial(pilatus)
        assert current is not None and current.exists(), (current, sorted(tmp_path.iterdir()))
        removed = cleanup_leftovers(data_dir=tmp_path, keep=[current], min_age_s=0)
        assert removed.partial_frames == [dead] and current.exists()
    finally:
        status.wait(60)
    assert (tmp_path / "frames_00001.h5").exists() and not list(tmp_path.glob("*.partial"))
