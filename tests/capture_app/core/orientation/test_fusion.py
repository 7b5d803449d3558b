"""Orientation fusion: conformance, live = batch, still period and bias, gaps, device orientation, verdicts."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from bench.accuracy_angles import blocks
from capture_app.core.orientation.filters import Madgwick
from capture_app.core.orientation.fusion import OrientationFusion, quat_from_gravity
from capture_app.core.orientation.rotations import matrix_from_quat, rotation_angle_deg
from capture_app.core.orientation.still import StillDetector
from capture_app.core.signals import KitSignals, SiteSignals
from sensor_drivers.frames import EARTH_FIELD_WORLD_UT, G_M_S2
from sensor_drivers.quaternion import wxyz_from_rotation
from sensor_drivers.sites import Site

RATE_HZ = 100.0
BIAS_RAD_S = np.array([0.02, -0.015, 0.01])


def _synthetic(still_s: float = 3.0, turn_s: float = 2.0, rate_rad_s: float = 1.0, attitude=None,
               gap: slice | None = None, ramp_s: float = 0.5, wobble_hz: float = 0.0) -> tuple[KitSignals, Rotation]:
    """One sensor: still in ``attitude`` for ``still_s``, then turning about world z at ``rate_rad_s`` (reached
    smoothly over ``ramp_s``; with ``wobble_hz`` the rate also swings ±50 % at that frequency); the gyroscope carries
    a constant bias. Returns the kit and the sensor's true orientations (sensor → world)."""
    attitude = attitude or Rotation.from_euler("xy", [25.0, -10.0], degrees=True)
    n = int((still_s + turn_s) * RATE_HZ)
    t = np.arange(n) / RATE_HZ
    tau = np.clip(t - still_s, 0.0, None)
    # rate(τ) = r·(1 − cos(πτ/T))/2 for τ < T, then r (times the wobble); yaw is its exact integral.
    ramp = np.where(tau < ramp_s, (1 - np.cos(np.pi * tau / ramp_s)) / 2, 1.0)
    ramp_integral = np.where(tau < ramp_s, (tau - ramp_s / np.pi * np.sin(np.pi * tau / ramp_s)) / 2,
                             ramp_s / 2 + (tau - ramp_s))
    rate = rate_rad_s * ramp
    yaw = rate_rad_s * ramp_integral
    if wobble_hz:
        w = 2 * np.pi * wobble_hz
        rate = rate_rad_s * (1 + 0.5 * np.sin(w * tau))
        yaw = rate_rad_s * (tau + 0.5 * (1 - np.cos(w * tau)) / w)
    truth = Rotation.from_euler("z", yaw[:, None]) * attitude
    R = truth.as_matrix()
    w_world = np.zeros((n, 3))
    w_world[:, 2] = np.where(t >= still_s, rate, 0.0)
    gyr = np.einsum("nji,nj->ni", R, w_world) + BIAS_RAD_S
    acc = np.einsum("nji,j->ni", R, [0.0, 0.0, G_M_S2])
    valid = np.ones(n, dtype=bool)
    if gap is not None:
        valid[gap] = False
        gyr[gap], acc[gap] = np.nan, np.nan
    site = SiteSignals("s1", valid, acc, gyr)
    return KitSignals(RATE_HZ, t, {Site.SHANK_L: site}), truth


def _error_deg(quat: np.ndarray, truth: Rotation, rows: np.ndarray) -> np.ndarray:
    """Angle of (estimate relative to truth), after removing the constant heading offset of a 6-axis filter."""
    R_est = matrix_from_quat(quat[rows])
    R_true = truth.as_matrix()[rows]
    rel = R_est @ np.swapaxes(R_true, 1, 2)  # fusion world ← true world: a constant z rotation if all is well
    return rotation_angle_deg(np.swapaxes(rel[:1], 1, 2) @ rel)


def test_conformance() -> None:
    params = {"filter": Madgwick(gain=0.01), "use_mag": False, "acc_gate_m_s2": None, "still": StillDetector(),
              "still_period_s": None, "max_still_search_s": 8.0, "max_bridge_s": 0.2, "reinit_boost": 5.0,
              "reinit_boost_s": 1.0, "device_orientation": "never", "smooth": False}
    fusion = OrientationFusion(**params)
    for name, value in params.items():
        assert getattr(fusion, name) is value
    kit, _ = _synthetic()
    assert fusion.estimate(kit) is fusion
    assert fusion.reset() is fusion
    assert fusion.update(kit) is fusion
    for name in ("quat_wxyz_world_sensor_", "gyr_rad_s_", "gyr_bias_rad_s_", "still_period_s_", "reinit_times_s_",
                 "verdicts_"):
        assert hasattr(fusion, name)
    with pytest.raises(ValueError, match="accepted"):
        OrientationFusion(filter="kalman").estimate(kit)


def test_still_period_bias_and_integration() -> None:
    kit, truth = _synthetic()
    fusion = OrientationFusion(smooth=False).estimate(kit)
    np.testing.assert_allclose(fusion.gyr_bias_rad_s_[Site.SHANK_L], BIAS_RAD_S, atol=1e-6)
    start, end = fusion.still_period_s_[Site.SHANK_L]
    assert start == pytest.approx(0.0, abs=0.02)
    assert 3.0 < end < 3.3
    q = fusion.quat_wxyz_world_sensor_[Site.SHANK_L]
    # No orientation before the first still window (80 % of a 1-s window must be valid).
    assert np.isnan(q[: int(0.8 * RATE_HZ) - 1]).all()
    assert np.isfinite(q[int(RATE_HZ):]).all()
    rows = np.flatnonzero(np.isfinite(q[:, 0]))
    assert _error_deg(q, truth, rows).max() < 0.2  # 2 rad of turning, tilt and heading kept


@pytest.mark.parametrize("filter_name", ["mahony", "madgwick", "ekf"])
def test_still_sensor_in_a_known_attitude_gives_the_known_quaternion(filter_name: str) -> None:
    attitude = Rotation.from_euler("ZXY", [30.0, -40.0, 15.0], degrees=True)  # sensor → world (ENU)
    kit, _ = _synthetic(still_s=4.0, turn_s=0.0, attitude=attitude)
    # 6-axis: the attitude with the true tilt and zero yaw (ahrs's acc2q convention: roll, pitch, no heading).
    q = OrientationFusion(filter=filter_name, smooth=False).estimate(kit).quat_wxyz_world_sensor_[Site.SHANK_L]
    expected = quat_from_gravity(attitude.inv().apply([0.0, 0.0, G_M_S2]))
    # (Madgwick's fixed-size gradient step dithers around the answer by about β·Δt = 5e-5 rad.)
    np.testing.assert_allclose(q[-1] * np.sign(q[-1][0]), expected * np.sign(expected[0]), atol=1e-4)
    np.testing.assert_allclose(matrix_from_quat(q[-1])[2], attitude.as_matrix()[2], atol=1e-4)  # same tilt
    # 9-axis: the full attitude in ENU, whatever the filter's own world (Madgwick converges in NWU).
    s = kit.sites[Site.SHANK_L]
    mag = attitude.inv().apply(np.tile(EARTH_FIELD_WORLD_UT, (kit.n_samples, 1)))
    marg = KitSignals(RATE_HZ, kit.time_s, {Site.SHANK_L: SiteSignals("s1", s.valid, s.acc_m_s2, s.gyr_rad_s, mag)})
    q = OrientationFusion(filter=filter_name, use_mag=True, smooth=False).estimate(marg)
    q = q.quat_wxyz_world_sensor_[Site.SHANK_L][-1]
    assert rotation_angle_deg(matrix_from_quat(q) @ attitude.as_matrix().T) < 0.05


def test_short_gap_is_bridged() -> None:
    gap = slice(380, 386)  # 60 ms lost while turning at 3 rad/s (10° of rotation)
    kit, truth = _synthetic(rate_rad_s=3.0, gap=gap)
    fusion = OrientationFusion(smooth=False).estimate(kit)
    q = fusion.quat_wxyz_world_sensor_[Site.SHANK_L]
    assert np.isnan(q[gap]).all()
    rows = np.flatnonzero(np.isfinite(q[:, 0]))
    assert _error_deg(q, truth, rows).max() < 0.3
    assert not fusion.verdicts_


def test_long_gap_reinitialises_with_a_verdict() -> None:
    kit, _ = _synthetic(turn_s=4.0, gap=slice(400, 450))
    fusion = OrientationFusion(smooth=False).estimate(kit)
    assert fusion.reinit_times_s_[Site.SHANK_L] == [pytest.approx(4.5)]
    assert [v.code for v in fusion.verdicts_] == ["orientation.reinitialised"]
    q = fusion.quat_wxyz_world_sensor_[Site.SHANK_L]
    assert np.isfinite(q[450:]).all()


def test_no_still_period_gives_a_warning_and_still_an_orientation() -> None:
    # (A turn at a *constant* rate about the vertical would look still: it is indistinguishable from a bias.)
    kit, _ = _synthetic(still_s=0.0, turn_s=12.0, wobble_hz=0.7)
    fusion = OrientationFusion(smooth=False, max_still_search_s=5.0).estimate(kit)
    assert [v.code for v in fusion.verdicts_] == ["orientation.no_still_period"]
    q = fusion.quat_wxyz_world_sensor_[Site.SHANK_L]
    assert np.isfinite(q[-100:]).all()


def test_device_orientation_is_passed_through_for_a_sensor_without_gyroscope() -> None:
    kit, truth = _synthetic()
    s = kit.sites[Site.SHANK_L]
    quat = wxyz_from_rotation(truth)
    device = SiteSignals("s1", s.valid, s.acc_m_s2, np.full_like(s.gyr_rad_s, np.nan), None, quat)
    fusion = OrientationFusion().estimate(KitSignals(RATE_HZ, kit.time_s, {Site.SHANK_L: device}))
    np.testing.assert_allclose(fusion.quat_wxyz_world_sensor_[Site.SHANK_L], quat, atol=1e-12)
    # The gyroscope is derived from it: the mean rate over each preceding sample period.
    gyr = fusion.gyr_rad_s_[Site.SHANK_L]
    assert np.isnan(gyr[0]).all()
    np.testing.assert_allclose(gyr[1:], s.gyr_rad_s[1:] - BIAS_RAD_S, atol=0.02)
    assert 3.0 < fusion.still_period_s_[Site.SHANK_L][1] < 3.3


def test_live_blocks_equal_batch(healthy) -> None:
    kit, _ = healthy
    batch = OrientationFusion(smooth=False).estimate(kit)
    live = OrientationFusion(smooth=False).reset()
    parts: dict[Site, list[np.ndarray]] = {}
    for block in blocks(kit, block_s=0.07):
        live.update(block)
        for site, q in live.quat_wxyz_world_sensor_.items():
            parts.setdefault(site, []).append(q)
    for site, q in batch.quat_wxyz_world_sensor_.items():
        np.testing.assert_allclose(np.concatenate(parts[site]), q, atol=1e-12, equal_nan=True)
        assert np.isfinite(q).all(axis=1).mean() > 0.9
    assert live.gyr_bias_rad_s_.keys() == batch.gyr_bias_rad_s_.keys()


def test_smoothing_blends_in_the_backward_pass(healthy) -> None:
    kit, truth = healthy
    forward = OrientationFusion(smooth=False).estimate(kit)
    smooth = OrientationFusion().estimate(kit)
    assert set(smooth.smoothed_sites_) == set(kit.sites)
    step = truth.time_s[1] - truth.time_s[0]
    idx = np.clip(np.round(kit.time_s / step).astype(int), 0, truth.time_s.size - 1)
    walking = (kit.time_s > truth.walk_start_s) & (kit.time_s < truth.walk_end_s)
    for site in kit.sites:
        up_true = matrix_from_quat(truth.sensors[site].quat_wxyz_world_sensor[idx])[:, 2]
        errors = []
        for fusion in (forward, smooth):
            up = matrix_from_quat(fusion.quat_wxyz_world_sensor_[site])[:, 2]
            ok = walking & np.isfinite(up[:, 0])
            errors.append(np.degrees(np.arccos(np.clip(np.sum(up[ok] * up_true[ok], axis=1), -1, 1))).mean())
        assert errors[1] < errors[0] + 0.3, site  # never much worse; usually better
