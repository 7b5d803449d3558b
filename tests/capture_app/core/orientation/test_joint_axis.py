"""Functional axes: the hinge axis and the joint centre are recovered from synthetic motion with known answers."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from capture_app.core.orientation.joint_axis import (
    angular_acceleration_rad_s2,
    hinge_axes,
    joint_centre,
    point_acceleration,
    principal_axis,
)
from capture_app.core.orientation.rotations import angle_between_deg
from sensor_drivers.frames import G_M_S2

RATE_HZ = 100.0


def _smooth_rates(rng: np.random.Generator, n: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Angular rates (n, 3) as sums of sinusoids, and their exact derivatives."""
    t = np.arange(n) / RATE_HZ
    rate, derivative = np.zeros((n, 3)), np.zeros((n, 3))
    for _ in range(4):
        amplitude = rng.normal(0.0, scale, 3)
        freq = rng.uniform(0.3, 2.0) * 2 * np.pi
        phase = rng.uniform(0, 2 * np.pi, 3)
        rate += amplitude * np.sin(freq * t[:, None] + phase)
        derivative += amplitude * freq * np.cos(freq * t[:, None] + phase)
    return rate, derivative


def test_hinge_axes_recovered_in_both_sensor_frames() -> None:
    rng = np.random.default_rng(1)
    n = 2000
    w_thigh, _ = _smooth_rates(rng, n, 1.0)  # thigh segment rates, segment frame
    t = np.arange(n) / RATE_HZ
    knee = 0.6 + 0.5 * np.sin(2 * np.pi * 0.9 * t)  # flexion about the segment y axis, rad
    knee_rate = 0.5 * 2 * np.pi * 0.9 * np.cos(2 * np.pi * 0.9 * t)
    R_knee = Rotation.from_rotvec(knee[:, None] * [0.0, 1.0, 0.0]).as_matrix()
    w_shank = np.einsum("nji,nj->ni", R_knee, w_thigh + knee_rate[:, None] * [0.0, 1.0, 0.0])
    M1 = Rotation.from_euler("xyz", [20, -70, 35], degrees=True).as_matrix()  # R_segment_sensor
    M2 = Rotation.from_euler("xyz", [-100, 15, 60], degrees=True).as_matrix()
    g1 = w_thigh @ M1 + rng.normal(0.0, 0.01, (n, 3))  # rows: M1ᵀ w
    g2 = w_shank @ M2 + rng.normal(0.0, 0.01, (n, 3))
    fit = hinge_axes(g1, g2)
    for found, truth in ((fit.axis_1, M1.T @ [0.0, 1.0, 0.0]), (fit.axis_2, M2.T @ [0.0, 1.0, 0.0])):
        assert min(angle_between_deg(found, truth), angle_between_deg(-found, truth)) < 1.0
    assert fit.residual_ratio < 0.05


def test_hinge_fit_says_when_there_is_no_hinge() -> None:
    rng = np.random.default_rng(2)
    g1, _ = _smooth_rates(rng, 1500, 1.0)
    g2, _ = _smooth_rates(rng, 1500, 1.0)  # unrelated motion
    assert hinge_axes(g1, g2).residual_ratio > 0.2


def test_principal_axis() -> None:
    rng = np.random.default_rng(3)
    g = np.outer(np.sin(np.linspace(0, 30, 1000)), [0.0, 0.6, 0.8]) * 3.0 + rng.normal(0.0, 0.1, (1000, 3))
    axis, explained = principal_axis(g)
    assert min(angle_between_deg(axis, [0.0, 0.6, 0.8]), angle_between_deg(-axis, [0.0, 0.6, 0.8])) < 1.0
    assert explained > 0.95


def test_joint_centre_recovered() -> None:
    """Two bodies sharing a ball joint whose centre accelerates; each sensor sits at a known offset."""
    rng = np.random.default_rng(4)
    n = 3000
    k = np.arange(n)
    a_joint = np.column_stack([np.sin(k / 17.0), np.cos(k / 23.0), 0.5 * np.sin(k / 9.0)])
    o1, o2 = np.array([-0.10, 0.05, 0.08]), np.array([0.02, -0.22, 0.07])  # sensor relative to joint, body frames
    signals = []
    for o, scale in ((o1, 0.8), (o2, 2.5)):
        rate, rate_dot = _smooth_rates(rng, n, scale)
        steps = Rotation.from_rotvec(rate / RATE_HZ)
        R = [Rotation.identity()]
        for k in range(1, n):
            R.append(R[-1] * steps[k])
        R = Rotation.concatenate(R).as_matrix()
        # Specific force of a body-fixed point: Rᵀ(a_J − g) + ω̇ × o + ω × (ω × o), all in the body frame.
        acc = np.einsum("nji,nj->ni", R, a_joint - [0.0, 0.0, -G_M_S2]) + np.cross(rate_dot, o) + np.cross(
            rate, np.cross(rate, o))
        signals.append((acc, rate, rate_dot))
    (a1, g1, d1), (a2, g2, d2) = signals
    fit = joint_centre(a1, g1, d1, a2, g2, d2, np.zeros(3), np.zeros(3))
    np.testing.assert_allclose(fit.position_1_m, o1, atol=5e-3)
    np.testing.assert_allclose(fit.position_2_m, o2, atol=5e-3)
    # and the joint-centre acceleration computed from either side has one norm
    p1 = point_acceleration(a1, g1, d1, fit.position_1_m)
    p2 = point_acceleration(a2, g2, d2, fit.position_2_m)
    assert np.abs(np.linalg.norm(p1, axis=1) - np.linalg.norm(p2, axis=1)).max() < 0.05


def test_angular_acceleration_by_central_differences() -> None:
    t = np.arange(200) / RATE_HZ
    rate = np.column_stack([np.sin(3 * t), np.cos(2 * t), t])
    d = angular_acceleration_rad_s2(rate, RATE_HZ)
    expected = np.column_stack([3 * np.cos(3 * t), -2 * np.sin(2 * t), np.ones_like(t)])
    np.testing.assert_allclose(d[1:-1], expected[1:-1], atol=2e-3)
    assert np.isnan(d[0]).all()
    assert np.isnan(d[-1]).all()
