"""PONI files: the SIBYLS geometry written with pyFAI and read back; pyFAI's 2θ of every pixel equals
DetectorGeometry's; flipped and tilted calibrations; bad files."""

from __future__ import annotations

import numpy as np
import pytest
from frame_files import write_frame_file

from sibyls.devices.geometry import POLARIZATION_FACTOR, DetectorGeometry, module_gap_mask
from sibyls.metadata.errors import ExchangeError
from sibyls.saxs.reduction.integrate import PixelCorrections
from sibyls.saxs.reduction.poni import pyfai_integrator, read_poni, write_poni
from sibyls.saxs.reduction.reducer import FrameReducer

GEOMETRY = DetectorGeometry(wavelength_a=1.127, distance_mm=2105.0, beam_center_x=737.3, beam_center_y=900.6)


def _binned(binning: int) -> DetectorGeometry:
    g = GEOMETRY
    return DetectorGeometry(g.wavelength_a, g.distance_mm, g.beam_center_x, g.beam_center_y, binning)


@pytest.mark.parametrize("binning", [1, 4])
def test_poni_round_trip_and_pyfai_two_theta_equals_the_q_map(tmp_path, binning):
    geometry = _binned(binning)
    path = write_poni(geometry, tmp_path / "sibyls.poni")
    text = path.read_text()
    assert "Detector: Pilatus2M" in text and '"orientation": 3' in text
    assert "Rot1: 0" in text and "Rot2: 0" in text and "Rot3: 0" in text
    poni = read_poni(path)
    assert poni.geometry is not None and not poni.tilted
    back = poni.geometry
    assert back.binning == binning and back.shape == geometry.shape
    for name in ("wavelength_a", "distance_mm", "beam_center_x", "beam_center_y", "pixel_size_mm"):
        assert getattr(back, name) == pytest.approx(getattr(geometry, name), rel=1e-9, abs=1e-9), name
    # pyFAI's own 2θ of each pixel centre, against the q-map the simulator paints frames with.
    two_theta = poni.integrator.center_array(geometry.shape, unit="2th_rad", scale=False)
    q_pyfai = 4.0 * np.pi * np.sin(two_theta / 2.0) / geometry.wavelength_a
    assert np.max(np.abs(q_pyfai / geometry.q_map() - 1.0)) < 1e-6
    # And the corrections: solid angle relative to the PONI pixel, polarisation in pyFAI's convention.
    ours = PixelCorrections.from_geometry(geometry)
    theirs = PixelCorrections.from_pyfai(poni.integrator)
    assert np.allclose(ours.solid_angle, theirs.solid_angle, rtol=1e-6, atol=0)
    assert np.allclose(ours.polarization, theirs.polarization, rtol=1e-6, atol=0)
    assert ours.reference_solid_angle_sr == pytest.approx(theirs.reference_solid_angle_sr, rel=1e-9)


def test_poni_beam_centre_is_the_pixel_centre_plus_half_a_pixel(tmp_path):
    ai = pyfai_integrator(GEOMETRY)
    assert ai.poni1 == pytest.approx((900.6 + 0.5) * 172e-6, rel=1e-12)
    assert ai.poni2 == pytest.approx((737.3 + 0.5) * 172e-6, rel=1e-12)
    assert (ai.rot1, ai.rot2, ai.rot3) == (0.0, 0.0, 0.0)


def test_unbinned_calibration_serves_binned_frames(tmp_path):
    poni = read_poni(write_poni(GEOMETRY, tmp_path / "full.poni")).for_binning(4)
    expected = _binned(4)
    for name in ("wavelength_a", "distance_mm", "beam_center_x", "beam_center_y", "pixel_size_mm", "binning"):
        assert getattr(poni.geometry, name) == pytest.approx(getattr(expected, name), rel=1e-12), name
    assert tuple(poni.integrator.detector.shape) == _binned(4).shape


@pytest.mark.parametrize("orientation", [1, 2, 4])
def test_flipped_detector_orientation_gives_the_same_two_theta(tmp_path, orientation):
    from pyFAI.detectors import Pilatus2M
    from pyFAI.integrator.azimuthal import AzimuthalIntegrator
    from pyFAI.io.ponifile import PoniFile

    ai = AzimuthalIntegrator(
        dist=2.0, poni1=0.15, poni2=0.13, detector=Pilatus2M(orientation=orientation), wavelength=1.0e-10
    )
    path = tmp_path / f"o{orientation}.poni"
    with open(path, "w") as fh:
        PoniFile(ai).write(fh)
    poni = read_poni(path)
    geometry = poni.geometry
    assert geometry is not None
    two_theta = poni.integrator.center_array(geometry.shape, unit="2th_rad", scale=False)
    q_pyfai = 4.0 * np.pi * np.sin(two_theta / 2.0) / geometry.wavelength_a
    assert np.max(np.abs(q_pyfai / geometry.q_map() - 1.0)) < 1e-6


def test_tilted_calibration_reduces_with_pyfai_pixel_arrays(tmp_path):
    from pyFAI.io.ponifile import PoniFile

    ai = pyfai_integrator(_binned(4))
    ai.rot1, ai.rot2 = 0.01, -0.005
    path = tmp_path / "tilted.poni"
    with open(path, "w") as fh:
        PoniFile(ai).write(fh)
    poni = read_poni(path)
    assert poni.tilted and poni.geometry is None
    mask = module_gap_mask(4).astype(np.uint8)
    frame = np.random.default_rng(0).poisson(50.0, _binned(4).shape).astype(np.int32)
    q = PixelCorrections.from_pyfai(poni.integrator).q
    theirs = poni.integrator.integrate1d(
        frame,
        150,
        unit="q_A^-1",
        radial_range=(float(q[mask == 0].min()) * 0.999, 0.45),
        mask=mask,
        correctSolidAngle=True,
        polarization_factor=POLARIZATION_FACTOR,
        error_model="poisson",
        method=("no", "csr", "cython"),
    )
    delta = (theirs.radial[-1] - theirs.radial[0]) / 149
    edges = np.concatenate([theirs.radial - delta / 2, [theirs.radial[-1] + delta / 2]])
    reducer = FrameReducer.from_geometry(poni, mask, q_edges=edges)
    integrated = reducer.integrator.integrate(frame)
    filled = theirs.count > 0
    assert np.allclose(integrated.intensity[0], theirs.intensity[filled], rtol=1e-5, atol=0)
    assert np.allclose(integrated.sigma[0], theirs.sigma[filled], rtol=1e-5, atol=0)
    assert reducer.qdev is not None and np.all(reducer.qdev > 0)
    with pytest.raises(ExchangeError, match="tilted detector"):
        poni.for_binning(1)


def test_missing_or_garbage_poni_is_a_clear_error(tmp_path):
    with pytest.raises(ExchangeError, match="does not exist"):
        read_poni(tmp_path / "nope.poni")
    bad = tmp_path / "bad.poni"
    bad.write_text("this is not a calibration\n")
    with pytest.raises(ExchangeError, match=str(bad.name)):
        read_poni(bad)


def test_reducer_from_frame_file_takes_the_poni_calibration_over_the_file_geometry(tmp_path):
    frame_geometry = _binned(4)
    mask = module_gap_mask(4).astype(np.uint32)
    frames = np.random.default_rng(2).poisson(30.0, (2, *frame_geometry.shape)).astype(np.int32)
    frames[:, module_gap_mask(4)] = -1
    path = tmp_path / "frames.h5"
    write_frame_file(path, frame_geometry, frames, mask)
    from_file = FrameReducer.from_frame_file(path, bins=100)
    same = FrameReducer.from_frame_file(path, poni=write_poni(GEOMETRY, tmp_path / "same.poni"), bins=100)
    a, b = from_file.reduce(frames, exposure=0.5), same.reduce(frames, exposure=0.5)
    assert np.allclose(a[0].q, b[0].q, rtol=1e-12) and np.allclose(a[1].intensity, b[1].intensity, rtol=1e-9)
    moved = DetectorGeometry(GEOMETRY.wavelength_a, 2300.0, 700.0, 950.0)  # a later calibration
    calibrated = FrameReducer.from_frame_file(path, poni=write_poni(moved, tmp_path / "moved.poni"), bins=100)
    assert calibrated.geometry is not None and calibrated.geometry.distance_mm == pytest.approx(2300.0)
    assert calibrated.geometry.binning == 4
    assert not np.allclose(calibrated.q, from_file.q)
    assert calibrated.reduce(frames)[0].unit == "arbitrary"
    absolute = FrameReducer.from_frame_file(path, absolute_scale=2.0e-5, bins=100)
    curve = absolute.reduce(frames, exposure=0.5)[0]
    assert curve.unit == "1/cm" and np.allclose(curve.intensity, a[0].intensity * 2.0e-5, rtol=1e-12)
