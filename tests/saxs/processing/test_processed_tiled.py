"""Processed curves into a real Tiled server (SQLite) beside a run bluesky's TiledWriter wrote there."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sibyls.saxs.processing.processed import load_processed, store_processed
from sibyls.saxs.reduction.curves import Curve

pytestmark = pytest.mark.slow

N_Q, N_FRAMES = 120, 6


def _sphere_curve(rg: float, i0: float, seed: int, qdev: bool = False, unit: str = "1/cm") -> Curve:
    """A noisy sphere I(q) of radius of gyration ``rg`` (Å) on q 0.01–0.4 Å⁻¹."""
    q = np.linspace(0.01, 0.4, N_Q)
    r = rg / np.sqrt(3 / 5)
    x = q * r
    intensity = i0 * (3 * (np.sin(x) - x * np.cos(x)) / x**3) ** 2
    sigma = 0.01 * intensity + 1e-6
    noisy = intensity + np.random.default_rng(seed).normal(0, sigma)
    return Curve(q, noisy, sigma, unit, np.full(N_Q, 0.002) if qdev else None, {"seed": seed})


@pytest.fixture(scope="module")
def run_uid(tiled_server):
    """A run bluesky's TiledWriter stored in the server (ophyd's simulated detector, three events)."""
    import bluesky.plans as bp
    from bluesky import RunEngine
    from ophyd.sim import det

    from sibyls.metadata.runs.tiled import make_tiled_writer

    RE = RunEngine({})
    RE.subscribe(make_tiled_writer(tiled_server.url, tiled_server.api_key, raise_errors=True))
    (uid,) = RE(bp.count([det], num=3), sample_code="Proc_x", project_code="PROC_TEST")
    return uid


def _metadata() -> dict:
    return {
        "guinier": {"rg": np.float64(20.4), "i_zero": np.float32(0.051), "q_rg_max": 1.29, "chi2": np.nan},
        "frames_kept": np.int64(5),
        "flags": ("damage",),
        "buffer_run_uid": "b" * 36,
    }


def test_curves_read_back_with_the_tiled_client(tiled_server, run_uid):
    frames = [_sphere_curve(20.0, 0.05, seed, qdev=True) for seed in range(N_FRAMES)]
    averaged = _sphere_curve(20.0, 0.05, 100, qdev=True)
    subtracted = _sphere_curve(20.0, 0.05, 101)
    store_processed(
        tiled_server.client(),
        run_uid,
        {"averaged": averaged, "subtracted": subtracted},
        _metadata(),
        frames=frames,
    )

    from tiled.client import from_uri

    processed = from_uri(tiled_server.url, api_key=tiled_server.api_key)[run_uid]["processed"]
    table = processed["subtracted"].read()
    assert list(table.columns) == ["q", "intensity", "sigma"]
    assert np.array_equal(table["q"], subtracted.q)
    assert np.array_equal(table["intensity"], subtracted.intensity)
    assert np.array_equal(table["sigma"], subtracted.sigma)
    assert processed["subtracted"].metadata["intensity_unit"] == "1/cm"
    assert processed["subtracted"].metadata["q_unit"] == "1/angstrom"
    assert np.array_equal(processed["averaged"].read()["qdev"], averaged.qdev)

    meta = processed.metadata
    assert meta["complete"] is True
    assert meta["guinier"] == {"rg": 20.4, "i_zero": pytest.approx(0.051), "q_rg_max": 1.29, "chi2": None}
    assert meta["frames_kept"] == 5 and meta["flags"] == ["damage"]
    assert meta["curves"] == ["averaged", "subtracted"] and meta["frame_count"] == N_FRAMES

    intensity = processed["frames"]["intensity"]
    assert intensity.shape == (N_FRAMES, N_Q)
    assert np.array_equal(intensity[3], frames[3].intensity)  # one frame, without the others
    assert np.array_equal(processed["frames"]["sigma"].read(), np.stack([f.sigma for f in frames]))
    assert np.array_equal(processed["frames"]["q"].read(), frames[0].q)
    assert processed["frames"].metadata["frame_meta"][4] == {"seed": 4}

    curves, back_frames, back_meta = load_processed(tiled_server.url, run_uid, api_key=tiled_server.api_key)
    assert set(curves) == {"averaged", "subtracted"}
    for name, curve in (("averaged", averaged), ("subtracted", subtracted)):
        got = curves[name]
        assert np.array_equal(got.intensity, curve.intensity) and got.unit == curve.unit
        assert (got.qdev is None) == (curve.qdev is None) and got.meta == curve.meta
    assert len(back_frames) == N_FRAMES
    assert np.array_equal(back_frames[5].qdev, frames[5].qdev) and back_frames[5].meta == {"seed": 5}
    assert back_meta["buffer_run_uid"] == "b" * 36


def _files_under(tiled_server, run_uid: str) -> set[str]:
    root = Path(tiled_server.api_key_file).parent / "files" / run_uid / "processed"
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_processing_again_replaces_everything(tiled_server, run_uid):
    client = tiled_server.client()
    first = [_sphere_curve(20.0, 0.05, seed) for seed in range(N_FRAMES)]
    store_processed(
        client, run_uid, {"averaged": first[0], "subtracted": first[1]}, _metadata(), frames=first
    )
    assert any(name.startswith("subtracted/") for name in _files_under(tiled_server, run_uid))

    again = _sphere_curve(30.0, 0.08, 7, unit="arbitrary")
    node = store_processed(client, run_uid, {"averaged": again}, {"guinier": {"rg": 30.1}}, frames=first[:2])

    assert sorted(node) == ["averaged", "frames"]
    assert node.metadata["guinier"] == {"rg": 30.1} and "frames_kept" not in node.metadata
    assert node["frames"]["intensity"].shape == (2, N_Q)
    assert np.array_equal(node["averaged"].read()["intensity"], again.intensity)
    assert node["averaged"].metadata["intensity_unit"] == "arbitrary"
    # The old curves' files went with them.
    assert not any(name.startswith("subtracted/") for name in _files_under(tiled_server, run_uid))


def test_refusals_leave_what_was_stored(tiled_server, run_uid):
    client = tiled_server.client()
    good = _sphere_curve(20.0, 0.05, 1)
    store_processed(client, run_uid, {"subtracted": good}, {"guinier": {"rg": 20.0}})

    with pytest.raises(KeyError, match="not in Tiled"):
        store_processed(client, "no-such-run", {"subtracted": good}, {})
    other_grid = Curve(good.q * 1.01, good.intensity, good.sigma, good.unit)
    with pytest.raises(ValueError, match="q grid"):
        store_processed(client, run_uid, {"subtracted": good}, {}, frames=[good, other_grid])
    with pytest.raises(ValueError, match="written by store_processed"):
        store_processed(client, run_uid, {"subtracted": good}, {"complete": True})
    with pytest.raises(ValueError, match="curve names"):
        store_processed(client, run_uid, {"frames": good}, {})

    curves, frames, meta = load_processed(client, run_uid)
    assert list(curves) == ["subtracted"] and frames == [] and meta["guinier"] == {"rg": 20.0}
    with pytest.raises(KeyError, match="no processed curves"):
        load_processed(client, "no-such-run")


def test_the_run_reads_back_the_same_with_its_processed_curves(tiled_server, run_uid):
    from sibyls.metadata.runs.sources import TiledRunSource

    store_processed(tiled_server.client(), run_uid, {"subtracted": _sphere_curve(20.0, 0.05, 2)}, {})
    run = TiledRunSource(tiled_server.url, tiled_server.api_key).load(run_uid)
    assert set(run.streams) == {"primary"}
    assert len(run.streams["primary"].columns["det"]) == 3
