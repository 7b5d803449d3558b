"""Joint conventions, ball-joint (de)composition, the light FK chain and its inverse: round trips with known truth."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from cloud_trainer.motion.errors import MotionQualityError
from cloud_trainer.motion.joints import BALL_JOINT_BY_NAME, BALL_JOINTS, JOINT_INDEX, JOINT_NAMES, N_JOINTS
from cloud_trainer.motion.kinematics import FOOT_POINT_INDEX, LightKinematics, Skeleton, angles_from_segment_rotations
from cloud_trainer.motion.rotations import compose, decompose, matrix_from_wxyz, wxyz_from_matrix
from cloud_trainer.motion.trajectory import JointTrajectory

#: Angles inside the physiological range of every joint (well away from the ±90° gimbal lock of the middle angle).
angle_rows = arrays(np.float64, (8, N_JOINTS), elements=st.floats(-1.3, 1.3))


def _random_quat(rng: np.random.Generator, n: int) -> np.ndarray:
    q = rng.normal(size=(n, 4))
    return q / np.linalg.norm(q, axis=1, keepdims=True)


@pytest.mark.parametrize("ball", BALL_JOINTS, ids=lambda b: b.name)
def test_compose_then_decompose_is_identity(ball) -> None:
    rng = np.random.default_rng(1)
    angles = rng.uniform(-1.4, 1.4, (500, len(ball.joints)))
    recovered, dropped = decompose(ball, compose(ball, angles))
    np.testing.assert_allclose(recovered, angles, atol=1e-12)
    np.testing.assert_allclose(dropped, 0.0, atol=1e-12)


@settings(max_examples=50, deadline=None)
@given(angles=angle_rows)
def test_fk_then_inverse_recovers_joint_angles(angles: np.ndarray) -> None:
    # Joint angles in → forward kinematics (world segment rotations) → joint angles out.
    rng = np.random.default_rng(0)
    pose = LightKinematics(Skeleton.from_height(1.7)).pose(rng.normal(size=(8, 3)), _random_quat(rng, 8), angles)
    recovered, solved, dropped = angles_from_segment_rotations(pose.rotations)
    assert solved.all()
    np.testing.assert_allclose(recovered, angles, atol=1e-6)
    assert max(dropped.values()) < 1e-9


def test_signs_mean_what_the_names_say() -> None:
    kin = LightKinematics(Skeleton.from_height(1.75))
    zero = np.zeros((1, N_JOINTS))
    origin, identity = np.zeros((1, 3)), np.array([[1.0, 0.0, 0.0, 0.0]])

    def moved(joint: str, degrees: float, end: str) -> np.ndarray:
        q = zero.copy()
        q[0, JOINT_INDEX[joint]] = np.radians(degrees)
        return kin.pose(origin, identity, q).ends[end][0] - kin.pose(origin, identity, zero).ends[end][0]

    assert moved("hip_flexion_r", 30, "knee_r")[0] > 0.1  # knee goes forward
    assert moved("hip_adduction_r", 20, "knee_r")[1] > 0.05  # right knee toward the midline (+y)
    assert moved("hip_adduction_l", 20, "knee_l")[1] < -0.05  # left knee toward the midline (−y)
    assert moved("knee_flexion_r", 40, "ankle_r")[0] < -0.1  # shank swings back
    assert moved("lumbar_extension", 20, "trunk_top")[0] < -0.05  # trunk leans back
    assert moved("lumbar_bending", 20, "trunk_top")[1] > 0.05  # trunk bends left
    toe_up = kin.pose(origin, identity, _with(zero, "ankle_dorsiflexion_r", 20)).foot_points[
        0, FOOT_POINT_INDEX["toe_r"]
    ]
    assert toe_up[2] > kin.pose(origin, identity, zero).foot_points[0, FOOT_POINT_INDEX["toe_r"], 2]
    # Internal rotation turns the right toes toward the midline (+y), the left ones toward −y.
    assert (
        kin.pose(origin, identity, _with(zero, "hip_rotation_r", 30)).foot_points[0, FOOT_POINT_INDEX["toe_r"], 1]
        > (kin.pose(origin, identity, zero).foot_points[0, FOOT_POINT_INDEX["toe_r"], 1])
    )
    assert (
        kin.pose(origin, identity, _with(zero, "hip_rotation_l", 30)).foot_points[0, FOOT_POINT_INDEX["toe_l"], 1]
        < (kin.pose(origin, identity, zero).foot_points[0, FOOT_POINT_INDEX["toe_l"], 1])
    )


def _with(q: np.ndarray, joint: str, degrees: float) -> np.ndarray:
    out = q.copy()
    out[0, JOINT_INDEX[joint]] = np.radians(degrees)
    return out


def test_neutral_pose_stands_on_the_ground_with_the_skeletons_lengths() -> None:
    sk = Skeleton.from_height(1.75)
    pose = LightKinematics(sk).pose([[0.0, 0.0, sk.leg_length_m]], [[1.0, 0.0, 0.0, 0.0]], np.zeros((1, N_JOINTS)))
    np.testing.assert_allclose(pose.foot_points[0, :, 2], 0.0, atol=1e-12)
    assert sk.leg_length_m == pytest.approx((0.245 + 0.246 + 0.039) * 1.75)
    np.testing.assert_allclose(
        pose.foot_points[0, FOOT_POINT_INDEX["toe_r"], :2], [0.47 * 0.152 * 1.75, -0.0465 * 1.75]
    )


def test_skeleton_refuses_an_implausible_height() -> None:
    with pytest.raises(MotionQualityError, match=r"height 0.3 m outside the accepted 1.0–2.3 m"):
        Skeleton.from_height(0.3)


def test_ankle_decomposition_reports_what_the_model_cannot_express() -> None:
    ankle = BALL_JOINT_BY_NAME["ankle_r"]
    twist = compose(BALL_JOINT_BY_NAME["lumbar"], np.array([[0.0, 0.0, 0.3]]))  # 0.3 rad about z: foot abduction
    values, dropped = decompose(ankle, twist)
    np.testing.assert_allclose(values, 0.0, atol=1e-12)
    assert dropped[0, 0] == pytest.approx(0.3)


def test_mirroring_twice_is_identity_and_swaps_sides() -> None:
    rng = np.random.default_rng(3)
    t = np.arange(5) / 30
    angles = rng.uniform(-0.5, 0.5, (5, N_JOINTS))
    traj = JointTrajectory.create(t, angles, rng.normal(size=(5, 3)), _random_quat(rng, 5))
    mirrored = traj.mirrored()
    np.testing.assert_allclose(mirrored.angle("hip_flexion_l"), traj.angle("hip_flexion_r"))
    np.testing.assert_allclose(mirrored.angle("lumbar_bending"), -traj.angle("lumbar_bending"))
    np.testing.assert_allclose(mirrored.root_pos_m[:, 1], -traj.root_pos_m[:, 1])
    back = mirrored.mirrored()
    np.testing.assert_allclose(back.joint_angles_rad, traj.joint_angles_rad)
    np.testing.assert_allclose(matrix_from_wxyz(back.root_quat_wxyz), matrix_from_wxyz(traj.root_quat_wxyz), atol=1e-12)
    # The mirrored body is the reflection of the original: feet swap and y flips.
    kin = LightKinematics()
    p = kin.foot_points(traj.root_pos_m, traj.root_quat_wxyz, traj.joint_angles_rad)
    pm = kin.foot_points(mirrored.root_pos_m, mirrored.root_quat_wxyz, mirrored.joint_angles_rad)
    np.testing.assert_allclose(pm[:, [2, 3, 0, 1]], p * np.array([1.0, -1.0, 1.0]), atol=1e-12)


def test_qpos_layout_and_free_joint_velocities() -> None:
    t = np.arange(200) / 100.0
    yaw_rate = 0.5
    quat = wxyz_from_matrix(np.stack([_rot_z(yaw_rate * ti) for ti in t]))
    angles = np.zeros((200, N_JOINTS))
    angles[:, JOINT_INDEX["knee_flexion_r"]] = 0.3 * t
    traj = JointTrajectory.create(t, angles, np.stack([t, 0 * t, 0.9 + 0 * t], axis=1), quat)
    qpos, qvel = traj.qpos(), traj.qvel()
    assert qpos.shape == (200, 22)
    assert qvel.shape == (200, 21)
    np.testing.assert_allclose(qpos[:, 7 + JOINT_NAMES.index("knee_flexion_r")], 0.3 * t)
    np.testing.assert_allclose(qvel[:, :3], [[1.0, 0.0, 0.0]] * 200, atol=1e-9)
    np.testing.assert_allclose(qvel[5:-5, 3:6], [[0.0, 0.0, yaw_rate]] * 190, atol=1e-4)
    np.testing.assert_allclose(qvel[:, 6 + JOINT_NAMES.index("knee_flexion_r")], 0.3, atol=1e-9)


def _rot_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def test_trajectory_refuses_nans_naming_where() -> None:
    angles = np.zeros((10, N_JOINTS))
    angles[4, 3] = np.nan
    with pytest.raises(MotionQualityError, match=r"NaN or infinite values in 1 of 10 frames \(first at frame 4"):
        JointTrajectory.create(np.arange(10) / 30, angles, source="clip.mot")


def test_trajectory_refuses_a_non_uniform_grid() -> None:
    with pytest.raises(MotionQualityError, match="not uniform"):
        JointTrajectory.create([0.0, 0.1, 0.3], np.zeros((3, N_JOINTS)))
