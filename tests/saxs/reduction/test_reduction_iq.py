"""I(q) reduction: without corrections the fast integrator gives the plain reference azimuthal average
(devices.geometry.azimuthal_average) on a full-size frame, dead pixels outside the mask included."""

from __future__ import annotations

import numpy as np

from sibyls.devices.geometry import DetectorGeometry, azimuthal_average, module_gap_mask
from sibyls.saxs.reduction.integrate import CorrectedIntegrator, PixelCorrections


def test_uncorrected_integration_matches_the_plain_azimuthal_average_on_a_full_size_frame():
    geometry = DetectorGeometry(binning=1)
    rng = np.random.default_rng(3)
    frame = rng.poisson(50.0, size=geometry.shape).astype(np.int32)
    frame[module_gap_mask(1)] = -1
    frame[100:110, 200:210] = -1  # a dead patch outside the static mask
    q = geometry.q_map()
    edges = np.linspace(0.0, float(q[frame >= 0].max()), 400)
    ones = np.ones(geometry.shape)
    plain = PixelCorrections(q, ones, ones, 1.0, None)
    ref = azimuthal_average(frame, geometry, q_edges=edges)
    ours = CorrectedIntegrator(plain, module_gap_mask(1), edges).integrate(frame)
    filled = np.isfinite(ours.intensity[0])
    assert filled.sum() == len(ref.q)
    assert np.allclose(ours.intensity[0][filled], ref.intensity)
    assert np.allclose(ours.sigma[0][filled], ref.sigma)
    assert np.allclose(ours.normalization[0][filled], ref.pixels)
    assert ours.bad_pixels[0] == 100


def test_counters_of_a_multi_frame_trigger_are_shared_by_its_frames(tmp_path):
    """ht_plate records one event per well for a file of several frames: each frame gets its share."""
    from types import SimpleNamespace

    import h5py
    import numpy as np

    from sibyls.saxs.reduction.iq import per_frame_monitors

    files = []
    for index, frames in enumerate((3, 2)):
        path = tmp_path / f"well_{index}.h5"
        with h5py.File(path, "w") as fh:
            fh["entry/data/data"] = np.zeros((frames, 2, 2), dtype=np.int32)
        files.append(path)

    def run_of(i0, frame_files):
        primary = SimpleNamespace(columns={"i0_counts": i0, "bs_diode_counts": [2 * v for v in i0]})
        return SimpleNamespace(streams={"primary": primary}, frame_files=frame_files)

    shared = per_frame_monitors(run_of([30.0, 10.0], files))
    np.testing.assert_allclose(shared["i0"], [10, 10, 10, 5, 5])
    np.testing.assert_allclose(shared["bs_diode"], [20, 20, 20, 10, 10])
    singles = []
    for index in range(3):
        path = tmp_path / f"frame_{index}.h5"
        with h5py.File(path, "w") as fh:
            fh["entry/data/data"] = np.zeros((1, 2, 2), dtype=np.int32)
        singles.append(path)
    own = per_frame_monitors(run_of([1.0, 2.0, 3.0], singles))  # an event per frame keeps its counts
    np.testing.assert_allclose(own["i0"], [1, 2, 3])
