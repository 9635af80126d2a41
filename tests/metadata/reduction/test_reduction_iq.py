"""I(q) reduction: the many-frame integrator gives the reference azimuthal average on a full-size frame."""

from __future__ import annotations

import numpy as np

from sibyls.devices.geometry import AzimuthalIntegrator, DetectorGeometry, azimuthal_average, module_gap_mask


def test_integrator_matches_azimuthal_average_on_a_full_size_frame():
    geometry = DetectorGeometry(binning=1)
    rng = np.random.default_rng(3)
    frame = rng.poisson(50.0, size=geometry.shape).astype(np.int32)
    frame[module_gap_mask(1)] = -1
    frame[100:110, 200:210] = -1  # a dead patch outside the static mask
    edges = np.linspace(0.0, float(geometry.q_map()[frame >= 0].max()), 400)
    ref = azimuthal_average(frame, geometry)
    ours = AzimuthalIntegrator(geometry, module_gap_mask(1), edges).integrate(frame)
    for field in ("q", "intensity", "sigma", "pixels"):
        assert np.allclose(getattr(ours, field), getattr(ref, field)), field
