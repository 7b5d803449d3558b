"""Phase-locked filling, the five-IMU path, roots from speed, and the clip → reference-cycles pipeline."""

from __future__ import annotations

import numpy as np
import pytest

from cloud_trainer.motion.errors import MotionQualityError
from cloud_trainer.motion.filling import PhaseLockedFiller, gait_phase
from cloud_trainer.motion.joints import IMU_MEASURED_JOINTS, JOINT_INDEX, JOINT_NAMES, N_JOINTS
from cloud_trainer.motion.kinematics import LightKinematics
from cloud_trainer.motion.pipeline import MIN_STRIDES, ReferenceCycleBuilder
from cloud_trainer.motion.root import compare_stride, from_segment_orientations, root_from_speed
from cloud_trainer.motion.rotations import wxyz_from_matrix
from cloud_trainer.motion.segmentation import time_normalised
from cloud_trainer.motion.trajectory import FILLED_WEIGHT, JointTrajectory

from .gait_fixtures import synthetic_gait

UNMEASURED = [j for j in JOINT_NAMES if j not in IMU_MEASURED_JOINTS]


def test_gait_phase_is_linear_between_heel_strikes_and_extends_outside() -> None:
    phase = gait_phase([0.0, 0.5, 1.0, 1.5, 2.25, 3.5], [0.5, 1.5, 2.5])
    np.testing.assert_allclose(phase, [0.5, 0.0, 0.5, 0.0, 0.75, 0.0])
    with pytest.raises(MotionQualityError, match="at least 2 increasing heel-strike times"):
        gait_phase([0.0], [1.0])


def imu_clip(n_cycles: float = 6.2) -> tuple[JointTrajectory, JointTrajectory]:
    """The synthetic gait as five IMUs see it: segment orientations of pelvis, thighs, shanks; no root travel."""
    truth = synthetic_gait(n_cycles=n_cycles, phase_offset=0.5)
    pose = LightKinematics().pose(truth.root_pos_m, truth.root_quat_wxyz, truth.joint_angles_rad)
    sites = ("pelvis", "thigh_r", "thigh_l", "shank_r", "shank_l")
    quats = {s: wxyz_from_matrix(pose.rotations[s]) for s in sites}
    return truth, from_segment_orientations(truth.time_s, quats)


def test_five_imus_give_hips_and_knees_only() -> None:
    truth, clip = imu_clip(1.0)
    measured = {JOINT_NAMES[i] for i in np.flatnonzero(clip.joints_measured)}
    assert measured == set(IMU_MEASURED_JOINTS)
    cols = [JOINT_INDEX[j] for j in IMU_MEASURED_JOINTS]
    np.testing.assert_allclose(clip.joint_angles_rad[:, cols], truth.joint_angles_rad[:, cols], atol=1e-9)
    assert not clip.root_pos_measured.any()


def test_filler_puts_the_healthy_pattern_at_the_same_phase() -> None:
    truth, clip = imu_clip(3.2)
    period = 1.1
    pattern = time_normalised(truth, 33, 99)  # one cycle of the truth, right heel strike to right heel strike
    strikes = (np.arange(4) + 0.5) * period
    filler = PhaseLockedFiller(pattern).fill(clip, strikes)
    out = filler.trajectory_
    assert set(filler.filled_joints_) == set(UNMEASURED)
    cols = [JOINT_INDEX[j] for j in UNMEASURED]
    np.testing.assert_allclose(out.joint_angles_rad[:, cols], truth.joint_angles_rad[:, cols], atol=np.radians(0.5))
    np.testing.assert_allclose(out.joint_weights[cols], FILLED_WEIGHT)
    assert not out.joints_measured[cols].any()
    assert out.joint_weights[JOINT_INDEX["knee_flexion_r"]] == 1.0


def test_filler_refuses_a_pattern_of_the_wrong_shape() -> None:
    _, clip = imu_clip(2.0)
    with pytest.raises(MotionQualityError, match=r"mean cycle must have shape \(n_phase ≥ 2, 15\)"):
        PhaseLockedFiller(np.zeros((10, 12))).fill(clip, [0.0, 1.0])


def test_root_from_speed_walks_the_pelvis_and_checks_the_speed() -> None:
    _, clip = imu_clip(2.0)
    walked = root_from_speed(clip, 0.8)
    assert walked.root_pos_measured.all()
    assert walked.root_pos_m[-1, 0] - walked.root_pos_m[0, 0] == pytest.approx(0.8 * clip.duration_s, rel=0.02)
    assert 0.8 < walked.root_pos_m[:, 2].mean() < 1.0
    with pytest.raises(MotionQualityError, match=r"speed 0.0 m/s outside the accepted 0.05–2.5 m/s"):
        root_from_speed(clip, 0.0)


def test_imu_clip_to_clean_filled_reference_cycles() -> None:
    truth, clip = imu_clip(6.2)
    builder = ReferenceCycleBuilder(filler=PhaseLockedFiller()).build(clip)
    assert len(builder.cycles_) >= MIN_STRIDES
    reference = builder.reference_
    assert reference.meta["cyclic"]
    assert reference.meta["cleanup"]["max_slide_m"] < 0.01
    assert reference.meta["cleanup"]["min_height_m"] > -1e-6
    cols = [JOINT_INDEX[j] for j in UNMEASURED]
    np.testing.assert_allclose(reference.joint_weights[cols], FILLED_WEIGHT)
    # Stride from the planted feet alone (the clip had no root travel): a normal walking stride and cadence.
    assert 1.0 < reference.meta["stride_length_m"] < 1.7
    assert reference.meta["period_s"] == pytest.approx(1.1, abs=0.02)
    # The measured joints keep their shape (clean-up corrects by a few degrees at most where feet are planted).
    knee = JOINT_INDEX["knee_flexion_r"]
    assert np.ptp(reference.joint_angles_rad[:, knee]) == pytest.approx(
        np.ptp(truth.joint_angles_rad[:, knee]), rel=0.1
    )


def test_a_clip_with_too_few_strides_is_refused_naming_the_minimum() -> None:
    _, clip = imu_clip(3.2)
    with pytest.raises(
        MotionQualityError, match=rf"2 usable gait cycles \(of 2 found\); at least {MIN_STRIDES} needed"
    ):
        ReferenceCycleBuilder().build(clip)


def test_a_clip_with_nans_is_refused_naming_the_problem() -> None:
    angles = np.zeros((100, N_JOINTS))
    angles[40:45, JOINT_INDEX["knee_flexion_l"]] = np.nan
    with pytest.raises(MotionQualityError, match=r"NaN or infinite values in 5 of 100 frames \(first at frame 40"):
        JointTrajectory.create(np.arange(100) / 60, angles, source="patient clip")


def test_stride_from_planted_feet_is_compared_with_a_measured_one() -> None:
    _, clip = imu_clip(6.2)
    reference = ReferenceCycleBuilder().build(clip).reference_
    comparison = compare_stride(reference, 1.3)
    assert comparison["kinematic_stride_m"] == reference.meta["stride_length_m"]
    assert comparison["ratio"] == pytest.approx(reference.meta["stride_length_m"] / 1.3)
