"""Sensor-to-segment calibration recovers the virtual patient's true mountings, and says when it cannot."""

from __future__ import annotations

import numpy as np
import pytest

from bench.accuracy_angles import mounting_errors_deg
from capture_app.core.orientation.calibration import SegmentCalibration, StandingPose
from capture_app.core.orientation.fusion import OrientationFusion
from capture_app.core.orientation.pipeline import OrientationPipeline
from capture_app.core.orientation.rotations import angle_between_deg
from capture_app.core.signals import KitSignals, SiteSignals
from sensor_drivers.sites import Site


def _rows(kit: KitSignals, rows: slice) -> KitSignals:
    return KitSignals(kit.rate_hz, kit.time_s[rows], {
        site: SiteSignals(s.sensor_id, s.valid[rows], s.acc_m_s2[rows], s.gyr_rad_s[rows])
        for site, s in kit.sites.items()
    })


def test_conformance() -> None:
    params = {"min_walk_s": 3.0, "moving_gyr_rad_s": 0.5, "max_axis_tilt_deg": 15.0, "max_hinge_residual_ratio": 0.2,
              "max_samples": 2000, "min_pelvis_confidence": 0.4,
              "max_turn_deg": 30.0}
    calibration = SegmentCalibration(**params)
    for name, value in params.items():
        assert getattr(calibration, name) == value


def test_recovers_the_true_mountings(healthy) -> None:
    kit, truth = healthy
    pipeline = OrientationPipeline().estimate(kit)
    cal = pipeline.calibration_
    assert cal.calibrate is not None
    assert set(cal.sites_) == set(kit.sites)
    errors = mounting_errors_deg(pipeline, truth)
    for site, error in errors.items():
        limit = 8.0 if site == "pelvis" else 4.0  # the pelvis's forward axis comes from the hip link, looser
        assert error < limit, (site, error)
    for site in (Site.THIGH_L, Site.THIGH_R, Site.SHANK_L, Site.SHANK_R):
        assert cal.sites_[site].method == "hinge"
        assert cal.sites_[site].confidence > 0.9
    assert cal.sites_[Site.PELVIS].method in ("hip_link", "walking_direction")  # whichever is more certain
    assert not [v for v in cal.verdicts_ if v.level != "ok"]


def test_recovers_a_sensor_turned_30_degrees_about_the_limb(rotated_thigh) -> None:
    kit, truth = rotated_thigh
    pipeline = OrientationPipeline().estimate(kit)
    errors = mounting_errors_deg(pipeline, truth)
    assert errors["thigh_l"] < 4.0
    # the recovered mounting really is the turned one, not the default one
    R_true = truth.sensors[Site.THIGH_L].mounting.rotation_segment_sensor
    R_found = pipeline.calibration_.R_segment_sensor_[Site.THIGH_L]
    assert angle_between_deg(R_found[0], R_true[0]) < 4.0  # the sensor axes' anterior components


def test_standing_still_patient_gets_a_clear_verdict(healthy) -> None:
    kit, _ = healthy
    standing_only = _rows(kit, slice(0, int(2.5 * kit.rate_hz)))
    pipeline = OrientationPipeline().estimate(standing_only)
    codes = {v.code: v for v in pipeline.verdicts_}
    assert codes["calibration.too_little_walking"].level == "fail"
    assert "walk" in codes["calibration.too_little_walking"].action.lower()
    assert pipeline.angles_deg_ == {}
    assert all(np.isfinite(q[-1]).all() for q in pipeline.quat_wxyz_world_sensor_.values())  # orientation still known


def test_walk_starting_without_standing_uses_the_final_standing(healthy) -> None:
    kit, truth = healthy
    late = _rows(kit, slice(int(4.0 * kit.rate_hz), None))  # the recording starts mid-walk
    pipeline = OrientationPipeline().estimate(late)
    assert pipeline.calibration_.standing_s_[0] > truth.walk_end_s - 1.0  # the standing pose at the end
    walking = (late.time_s > 5.0) & (late.time_s < truth.walk_end_s)
    knee = pipeline.angles_deg_["knee_flexion_l_deg"]
    assert np.isfinite(knee[walking]).mean() > 0.95  # the backward pass covers the walk


def test_walk_without_any_standing_is_flagged(healthy) -> None:
    kit, truth = healthy
    middle = _rows(kit, slice(int(4.0 * kit.rate_hz), int((truth.walk_end_s - 1.5) * kit.rate_hz)))
    pipeline = OrientationPipeline(fusion=OrientationFusion(max_still_search_s=3.0)).estimate(middle)
    codes = {v.code for v in pipeline.verdicts_}
    assert {"orientation.no_still_period", "calibration.no_standing"} <= codes


def test_standing_pose_from_rows(healthy) -> None:
    kit, _ = healthy
    quats = {site: np.tile([1.0, 0.0, 0.0, 0.0], (kit.n_samples, 1)) for site in kit.sites}
    pose = StandingPose.from_rows(kit, quats, 0.5, 2.0)
    assert set(pose.acc_mean_m_s2) == set(kit.sites)
    for acc in pose.acc_mean_m_s2.values():
        assert np.linalg.norm(acc) == pytest.approx(9.81, abs=0.6)  # realistic bias and scale errors
    assert StandingPose.from_rows(kit, quats, 100.0, 101.0) is None
