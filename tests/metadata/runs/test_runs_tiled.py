"""A real plan's run, written by the TiledWriter into a real Tiled server, read back equal."""

from __future__ import annotations

import stat

import h5py
import numpy as np
import pytest

pytestmark = pytest.mark.slow


def _stream_events(docs, stream):
    desc = next(d for n, d in docs if n == "descriptor" and d["name"] == stream)
    return desc, [d for n, d in docs if n == "event" and d["descriptor"] == desc["uid"]]


def test_run_reads_back_from_tiled_equal_to_what_was_emitted(xchg_runs, tiled_server):
    uid = xchg_runs["uids"]["Prot_x"]
    docs = xchg_runs["recorder"].of_run(uid)
    run = tiled_server.client()[uid]
    start = next(d for n, d in docs if n == "start")
    assert run.metadata["start"]["sample_code"] == start["sample_code"] == "Prot_x"
    assert run.metadata["stop"]["exit_status"] == "success"

    desc, events = _stream_events(docs, "primary")
    table = run["primary"].base["internal"].read()
    assert list(table["seq_num"]) == [e["seq_num"] for e in events]
    for key in ("pilatus_total_counts", "i0_counts", "bs_diode_counts"):
        assert np.allclose(table[key], [e["data"][key] for e in events]), key

    _, base_events = _stream_events(docs, "baseline")
    base = run["baseline"].base["internal"].read()
    assert len(base) == len(base_events) == 2
    for key in ("ring_current", "mono_wavelength", "detector_distance", "cell_temperature"):
        assert np.allclose(base[key], [e["data"][key] for e in base_events]), key

    resources = {d["uid"]: d for n, d in docs if n == "resource"}
    files = ["/" + r["resource_path"] for r in resources.values()]
    expected = []
    for path in files:
        with h5py.File(path) as fh:
            expected.append(fh["entry/data/data"][()])
    expected = np.concatenate(expected)
    frames = run["primary"]["pilatus_image"].read()
    assert frames.shape == expected.shape == (3, *expected.shape[1:])
    assert np.array_equal(frames, expected)
    assert (frames == -1).any()  # module gaps survive the trip


def test_api_key_stays_out_of_the_log_and_the_generated_key_file_is_private(tiled_server):
    log_text = tiled_server.log_path.read_text(errors="replace")
    assert tiled_server.api_key not in log_text
    assert "redacted" in log_text
    assert tiled_server.api_key not in " ".join(tiled_server.process.args)
    mode = stat.S_IMODE(tiled_server.api_key_file.stat().st_mode)
    assert mode == 0o600
    assert tiled_server.api_key_file.read_text().strip() == tiled_server.api_key
    assert tiled_server.api_key not in repr(tiled_server)


def test_tiled_refuses_a_wrong_key(tiled_server):
    import httpx

    response = httpx.get(f"{tiled_server.url}/api/v1/metadata/", headers={"Authorization": "Apikey nope"})
    assert response.status_code == 401
