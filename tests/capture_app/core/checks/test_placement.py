"""The placement guide in code equals the virtual patient's default mountings, and the mounting maths is right."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from capture_app.core.checks.placement import (
    EXPECTED_ROTATION_SEGMENT_SENSOR,
    PLACEMENT_TEXT,
    angle_deg,
    expected_left_sensor,
    expected_up_sensor,
    site_name,
    twist_about_up_deg,
)
from sensor_drivers.sim import VirtualPatient, default_mounting, from_source_options
from sensor_drivers.sites import KIT_SITES, Site


@pytest.mark.parametrize("height", ["1.5", "1.75", "2.0"])
def test_guide_equals_virtual_patient_default_mountings(height: str) -> None:
    body = VirtualPatient(from_source_options("healthy", {"height": height})).body
    for site in KIT_SITES:
        np.testing.assert_allclose(default_mounting(site, body).rotation_segment_sensor,
                                   EXPECTED_ROTATION_SEGMENT_SENSOR[site], atol=1e-12)


def test_every_sensor_points_its_x_axis_up_and_faces_out_of_the_skin() -> None:
    for site, R in EXPECTED_ROTATION_SEGMENT_SENSOR.items():
        np.testing.assert_allclose(R.T @ R, np.eye(3), atol=1e-12)
        assert np.linalg.det(R) == pytest.approx(1.0)
        np.testing.assert_allclose(expected_up_sensor(R), [1.0, 0.0, 0.0], atol=1e-12)  # x up
        assert site in PLACEMENT_TEXT
    # Thighs face laterally (left thigh's z to the left), shanks anteromedially, the pelvis backwards.
    z = {site: R[:, 2] for site, R in EXPECTED_ROTATION_SEGMENT_SENSOR.items()}
    assert z[Site.THIGH_L][1] == pytest.approx(1.0)
    assert z[Site.THIGH_R][1] == pytest.approx(-1.0)
    assert z[Site.PELVIS][0] == pytest.approx(-1.0)
    assert z[Site.SHANK_L][0] > 0.7
    assert z[Site.SHANK_L][1] < -0.7
    assert z[Site.SHANK_R][0] > 0.7
    assert z[Site.SHANK_R][1] > 0.7
    # The left axis of a left thigh sensor is its z axis (the flexion axis sticks out of the lateral face).
    np.testing.assert_allclose(expected_left_sensor(EXPECTED_ROTATION_SEGMENT_SENSOR[Site.THIGH_L]), [0, 0, 1],
                               atol=1e-12)


@pytest.mark.parametrize("twist", [-170.0, -60.0, 0.0, 25.0, 90.0, 179.0])
def test_twist_about_the_long_axis_is_recovered_and_ignores_a_small_tilt(twist: float) -> None:
    expected = EXPECTED_ROTATION_SEGMENT_SENSOR[Site.SHANK_L]
    turned = Rotation.from_euler("z", twist, degrees=True).as_matrix() @ expected
    assert twist_about_up_deg(turned, expected) == pytest.approx(twist, abs=1e-9)
    tilted = Rotation.from_euler("x", 8.0, degrees=True).as_matrix() @ turned
    assert twist_about_up_deg(tilted, expected) == pytest.approx(twist, abs=1.0)


def test_small_helpers() -> None:
    assert site_name(Site.THIGH_L) == "left thigh"
    assert site_name(Site.PELVIS) == "pelvis"
    assert angle_deg(np.array([1.0, 0, 0]), np.array([0, 1.0, 0])) == pytest.approx(90.0)
    assert angle_deg(np.zeros(3), np.array([0, 1.0, 0])) == 0.0
