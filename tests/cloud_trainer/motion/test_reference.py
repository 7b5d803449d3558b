"""ReferenceMotion: validation, interpolation, cyclic playback, time resampling and the vectorised bank."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from cloud_trainer.errors import ReferenceMotionError
from cloud_trainer.motion.reference import ReferenceBank, ReferenceMotion
from cloud_trainer.motion.synthetic import sinusoidal_gait_reference, standing_reference
from cloud_trainer.twin.constants import N_ROOT_QPOS, N_ROOT_QVEL
from cloud_trainer.twin.kinematics import imitation_targets
from cloud_trainer.twin.model import build_twin


@pytest.fixture(scope="module")
def model():
    return build_twin().model


@pytest.fixture(scope="module")
def gait(model) -> ReferenceMotion:
    return sinusoidal_gait_reference(model, speed_m_s=1.0, stride_length_m=1.2)


def test_gait_parameters_from_the_root_path(gait: ReferenceMotion) -> None:
    assert gait.cyclic
    assert gait.cycle_period_s == pytest.approx(1.2)
    assert gait.speed_m_s == pytest.approx(1.0)
    assert gait.stride_length_m == pytest.approx(1.2)
    np.testing.assert_allclose(gait.cycle_offset_m, [1.2, 0.0, 0.0], atol=1e-12)


def test_sampling_at_frame_times_returns_the_frames(gait: ReferenceMotion) -> None:
    frames = gait.sample(np.arange(gait.n_frames) * gait.dt_s)
    np.testing.assert_allclose(frames.qpos, gait.qpos, atol=1e-12)
    np.testing.assert_allclose(frames.qvel, gait.qvel, atol=1e-12)
    np.testing.assert_allclose(frames.com_rel_m, gait.com_rel_m, atol=1e-12)


def test_between_frames_joint_angles_interpolate_linearly(gait: ReferenceMotion) -> None:
    mid = gait.sample(2.5 * gait.dt_s)
    expected = 0.5 * (gait.qpos[2, N_ROOT_QPOS:] + gait.qpos[3, N_ROOT_QPOS:])
    np.testing.assert_allclose(mid.qpos[0, N_ROOT_QPOS:], expected, atol=1e-12)


def test_cyclic_motion_walks_on_past_its_end(gait: ReferenceMotion) -> None:
    t = np.array([0.3, 0.3 + 2 * gait.cycle_period_s])
    frames = gait.sample(t)
    assert frames.qpos[1, 0] - frames.qpos[0, 0] == pytest.approx(2 * gait.stride_length_m)
    np.testing.assert_allclose(frames.qpos[1, 1:], frames.qpos[0, 1:], atol=1e-12)
    # the seam between the last frame and the next cycle's first is as smooth as any other step
    seam = gait.sample(np.array([gait.cycle_period_s - gait.dt_s, gait.cycle_period_s]))
    assert np.all(np.abs(np.diff(seam.qpos[:, N_ROOT_QPOS:], axis=0)) < 0.2)


def test_velocities_are_the_derivative_of_the_poses(model) -> None:
    fine = sinusoidal_gait_reference(model, speed_m_s=1.0, stride_length_m=1.2, dt_s=1 / 240)
    h = 1e-5
    for t in (0.05, 0.41, 0.9):
        before, after, now = fine.sample(t - h), fine.sample(t + h), fine.sample(t)
        numeric = (after.qpos[0, N_ROOT_QPOS:] - before.qpos[0, N_ROOT_QPOS:]) / (2 * h)
        # central differences of the frames, interpolated: agree to within the pattern's curvature over a frame
        np.testing.assert_allclose(now.qvel[0, N_ROOT_QVEL:], numeric, rtol=0.02, atol=0.02)
        assert now.qvel[0, 0] == pytest.approx(fine.speed_m_s, rel=1e-6)


def test_at_phase_is_time_within_the_cycle(gait: ReferenceMotion) -> None:
    np.testing.assert_allclose(gait.at_phase(0.25).qpos, gait.sample(0.25 * gait.cycle_period_s).qpos)


def test_kinematic_targets_are_the_poses_forward_kinematics(model, gait: ReferenceMotion) -> None:
    com, ends = imitation_targets(model, gait.qpos)
    np.testing.assert_allclose(gait.com_rel_m, com)
    np.testing.assert_allclose(gait.ends_rel_m, ends)


def test_resampling_to_a_speed_keeps_the_stride_and_the_pattern(gait: ReferenceMotion) -> None:
    slow = gait.resampled(speed_m_s=0.6)
    assert slow.speed_m_s == pytest.approx(0.6)
    assert slow.stride_length_m == pytest.approx(gait.stride_length_m)
    assert slow.cycle_period_s == pytest.approx(2.0)
    assert slow.n_frames * slow.dt_s == pytest.approx(2.0)
    # same phase, same joint angles; velocities slower by the period ratio
    for phase in (0.1, 0.37, 0.8):
        a, b = gait.at_phase(phase), slow.at_phase(phase)
        np.testing.assert_allclose(b.qpos[0, N_ROOT_QPOS:], a.qpos[0, N_ROOT_QPOS:], atol=0.03)
    np.testing.assert_allclose(slow.qvel[:, 0].mean(), 0.6, rtol=1e-6)
    assert np.abs(slow.qvel[:, N_ROOT_QVEL:]).max() == pytest.approx(
        np.abs(gait.qvel[:, N_ROOT_QVEL:]).max() * 0.6, rel=0.1
    )


def test_resampling_to_a_stride_scales_the_root_path(gait: ReferenceMotion) -> None:
    longer = gait.resampled(speed_m_s=1.3, stride_length_m=1.5)
    assert longer.cycle_period_s == pytest.approx(1.5 / 1.3)
    np.testing.assert_allclose(longer.cycle_offset_m, [1.5, 0.0, 0.0], atol=1e-12)
    two_cycles = longer.sample(np.array([0.0, 2 * longer.cycle_period_s]))
    assert two_cycles.qpos[1, 0] - two_cycles.qpos[0, 0] == pytest.approx(3.0)


def test_bank_plays_a_motion_as_its_resampled_copy(gait: ReferenceMotion) -> None:
    target = gait.resampled(speed_m_s=0.8, stride_length_m=1.0)
    time_scale = gait.cycle_period_s / target.cycle_period_s
    stride_scale = target.stride_length_m / gait.stride_length_m
    bank = ReferenceBank([gait])
    t = np.linspace(0.0, 3 * target.cycle_period_s, 17)
    played = bank.sample(np.zeros(len(t), np.intp), t * time_scale, time_scale, stride_scale)
    copied = target.sample(t)
    # the copy re-interpolates between re-sampled frames: equal to the linear-interpolation error
    np.testing.assert_allclose(played.qpos, copied.qpos, atol=0.02)
    np.testing.assert_allclose(played.qvel[:, :2], copied.qvel[:, :2], atol=1e-9)  # constant root speed
    np.testing.assert_allclose(played.qvel[:, N_ROOT_QVEL:], copied.qvel[:, N_ROOT_QVEL:], rtol=0.1, atol=0.1)


def test_bank_samples_several_motions_at_once(model, gait: ReferenceMotion) -> None:
    stand = standing_reference(model)
    bank = ReferenceBank([stand, gait])
    frames = bank.sample(np.array([0, 1, 1]), np.array([0.5, 0.0, 0.6]))
    np.testing.assert_allclose(frames.qpos[0], stand.qpos[0], atol=1e-12)
    np.testing.assert_allclose(frames.qpos[2], gait.sample(0.6).qpos[0], atol=1e-12)


def test_standing_cannot_be_resampled(model) -> None:
    with pytest.raises(ReferenceMotionError, match="does not travel"):
        standing_reference(model).resampled(speed_m_s=1.0)


def _replace(motion: ReferenceMotion, **changes) -> ReferenceMotion:
    return dataclasses.replace(motion, **changes)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda m: {"qvel": m.qvel[:, :-1]}, "qvel must have shape"),
        (lambda m: {"qpos": m.qpos[:1], "qvel": m.qvel[:1]}, "n_frames ≥ 2"),
        (lambda m: {"dt_s": 0.0}, "dt_s must be a positive"),
        (lambda m: {"cycle_period_s": 2.0}, "cycle_period_s must be n_frames * dt_s"),
        (lambda m: {"joint_weights": -np.ones(15)}, "joint_weights"),
        (lambda m: {"speed_m_s": float("nan")}, "speed_m_s"),
        (lambda m: {"qpos": np.where(np.arange(22) == 3, 2.0, m.qpos)}, "unit quaternions"),
        (lambda m: {"com_rel_m": np.full_like(m.com_rel_m, np.nan)}, "com_rel_m holds a non-finite value"),
    ],
)
def test_inconsistent_reference_is_refused(gait: ReferenceMotion, change, fragment: str) -> None:
    with pytest.raises(ReferenceMotionError, match=fragment.replace("*", r"\*")):
        _replace(gait, **change(gait))


def test_from_qpos_refuses_nan_and_travelling_non_cyclic_without_gait(model, gait: ReferenceMotion) -> None:
    bad = gait.qpos.copy()
    bad[3, 10] = np.nan
    with pytest.raises(ReferenceMotionError, match="non-finite"):
        ReferenceMotion.from_qpos(model, bad, gait.dt_s, cyclic=True)
    with pytest.raises(ReferenceMotionError, match="cycle_period_s and stride_length_m"):
        ReferenceMotion.from_qpos(model, gait.qpos, gait.dt_s, cyclic=False)
