"""Unit tests of the detector geometry and the simulation physics (no IOC)."""

from __future__ import annotations

import numpy as np
import pytest
from beamline_helpers import beam
from pydantic import ValidationError

from sibyls.devices.geometry import FULL_SHAPE, DetectorGeometry, azimuthal_average, module_gap_mask
from sibyls.devices.sim import physics
from sibyls.devices.sim.physics import PlateDefinition, ScatteringSample

PROTEIN = ScatteringSample(sample_code="GluRS_1", rg_a=30.0, concentration_mg_ml=5.0, mw_kda=54.0)


def test_full_frame_is_a_pilatus3_2m_with_its_module_gaps():
    assert FULL_SHAPE == (1679, 1475)
    gaps = module_gap_mask(1)
    # 7 horizontal gaps of 17 rows and 2 vertical gaps of 7 columns.
    assert gaps[:, 0].sum() == 7 * 17
    assert gaps[0, :].sum() == 2 * 7
    assert DetectorGeometry(binning=4).shape == (419, 368)


def test_q_range_matches_the_sibyls_setup():
    geometry = DetectorGeometry()
    assert geometry.q_to_radius_mm(0.01) == pytest.approx(3.77, abs=0.05)
    mask = physics.pixel_mask(geometry, (0.0, 0.0)) != 0
    q_visible = geometry.q_map()[~mask]
    assert q_visible.min() < 0.01
    assert 0.45 < q_visible.max() < 0.6  # the corners (SIBYLS: 0.01-0.4, instrument record to 0.6)


def test_sphere_guinier_region_gives_back_its_rg():
    q = np.linspace(0.002, 1.3 / 40.0, 50)
    intensity = physics.sphere_form_factor(q, 40.0)
    slope = np.polyfit(q**2, np.log(intensity), 1)[0]
    # A sphere's Guinier fit up to qRg = 1.3 reads ~2% high (its higher-order terms).
    assert np.sqrt(-3 * slope) == pytest.approx(40.0, rel=0.025)


def test_closed_shutter_gives_a_dark_frame():
    geometry = DetectorGeometry(binning=8)
    frame = physics.simulate_frame(
        geometry, beam(PROTEIN, fast_shutter_open=False), 1.0, np.random.default_rng(1)
    )
    assert frame.max() == 0
    assert (frame[module_gap_mask(8)] == -1).all()


def test_sample_scatters_more_than_its_buffer_only_at_low_q():
    geometry = DetectorGeometry(binning=4)
    mask = physics.pixel_mask(geometry, (0.0, 0.0))
    edges = np.linspace(0.006, 0.5, 60)
    sample = azimuthal_average(physics.expected_counts(geometry, beam(PROTEIN), 1.0), geometry, mask, edges)
    buffer = azimuthal_average(
        physics.expected_counts(geometry, beam(PROTEIN.with_concentration(0)), 1.0), geometry, mask, edges
    )
    ratio = sample.intensity / buffer.intensity
    assert ratio[0] > 2.0
    assert ratio[-1] == pytest.approx(1.0, abs=0.01)


def test_sec_peak_sits_at_the_elution_volume():
    sample = PROTEIN.model_copy(update={"elution_volume_ml": 8.0})
    volumes = np.linspace(5, 11, 601)
    uv = [physics.uv280_mau(sample, v) for v in volumes]
    assert volumes[int(np.argmax(uv))] == pytest.approx(8.0 + physics.UV_OFFSET_ML, abs=0.02)
    assert physics.elution_volume_ml(
        ScatteringSample(sample_code="big", rg_a=50, concentration_mg_ml=1, mw_kda=670)
    ) == pytest.approx(6.3)


@pytest.mark.parametrize(
    ("plate", "field"),
    [
        ({"plate_id": "P1", "wells": {"Z99": {"sample_code": "b", "kind": "buffer"}}}, "wells"),
        ({"plate_id": "bad id!", "wells": {"A1": {"sample_code": "b", "kind": "buffer"}}}, "plate_id"),
        ({"plate_id": "P1", "wells": {"A1": {"sample_code": "s", "kind": "sample"}}}, "wells.A1"),
    ],
)
def test_bad_plate_definitions_name_the_field(plate, field):
    with pytest.raises(ValidationError) as info:
        PlateDefinition.model_validate(plate)
    assert field in str(info.value).replace("\n", ".")
