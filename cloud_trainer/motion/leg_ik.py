"""Hip and knee flexion solved to put each foot at a target in the sagittal plane of the pelvis's heading.

Shared by the reference edits that move the feet and keep the rest of the gait: the climb
(:mod:`cloud_trainer.motion.climb`) lifts them onto treads, the planting (:mod:`cloud_trainer.motion.planting`) holds
a stance foot where it landed. A planar two-link estimate starts the solve (near a straight knee the two joints move
the foot almost alike), then damped Gauss-Newton steps on the twin's forward kinematics close the rest.
"""

from __future__ import annotations

import mujoco
import numpy as np

from cloud_trainer.motion.reference import ReferenceMotion
from cloud_trainer.twin.constants import BODY_NAMES, JOINT_NAMES, N_ROOT_QPOS
from cloud_trainer.twin.kinematics import Kinematics, forward_kinematics, lowest_sole_m, rotate_into_heading

#: Damped Gauss-Newton steps of the hip-knee solve, their damping (m²/rad²: near a straight knee the Jacobian is
#: singular), and the largest change of a joint in one step, rad.
IK_STEPS = 16
IK_DAMPING = 1e-3
IK_MAX_STEP_RAD = 0.2
#: Finite-difference step of the Jacobian, rad.
IK_DELTA_RAD = 1e-4
_LEG_JOINTS = (("hip_flexion_r", "knee_flexion_r"), ("hip_flexion_l", "knee_flexion_l"))
#: qpos columns of (hip, knee) flexion per leg, in the legs' order of the limb ends (right, left).
LEG_COLUMNS = np.array([[N_ROOT_QPOS + JOINT_NAMES.index(j) for j in leg] for leg in _LEG_JOINTS])
_THIGH_BODIES = [BODY_NAMES.index(b) for b in ("thigh_r", "thigh_l")]
_SHANK_BODIES = [BODY_NAMES.index(b) for b in ("shank_r", "shank_l")]


def in_sagittal_plane(kin: Kinematics, points_m: np.ndarray) -> np.ndarray:
    """World points (T, K, 3) relative to the pelvis in the heading frame, forward and up, (T, K, 2)."""
    return rotate_into_heading(points_m - kin.root_pos_m[:, None], kin.root_yaw_rad)[..., [0, 2]]


def _feet_xz(model: mujoco.MjModel, qpos: np.ndarray) -> np.ndarray:
    """Both feet (right, left) relative to the pelvis in the heading frame, forward and up, (T, 2, 2)."""
    kin = forward_kinematics(model, qpos)
    return in_sagittal_plane(kin, kin.end_pos_m[:, :2])


def solve_legs(
    model: mujoco.MjModel, frames: np.ndarray, target: np.ndarray, *, up_weight: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """``frames`` (T, nq; changed in place and returned) with each leg's hip and knee flexion moved, within their
    ranges, so that its foot reaches ``target`` (T, 2 legs, [forward, up] from the pelvis in its heading frame), and
    the farthest a foot stays from its target forward and up, m (0 up to the solve's precision where every target is
    in reach). Out of reach, the least-squares fit weighs an up miss ``up_weight`` times a forward one."""
    low = np.array([[model.joint(j).range[0] for j in leg] for leg in _LEG_JOINTS])
    high = np.array([[model.joint(j).range[1] for j in leg] for leg in _LEG_JOINTS])
    frames[:, LEG_COLUMNS] = np.clip(frames[:, LEG_COLUMNS] + _planar_guess(model, frames, target), low, high)
    for _ in range(IK_STEPS):
        feet = _feet_xz(model, frames)
        # one joint of each leg at a time: each moves its own foot only, so both legs share the evaluations
        jacobian = np.empty((len(frames), 2, 2, 2))  # (T, leg, [x, z], [hip, knee])
        for k in range(2):
            moved = frames.copy()
            moved[:, LEG_COLUMNS[:, k]] += IK_DELTA_RAD
            jacobian[:, :, :, k] = (_feet_xz(model, moved) - feet) / IK_DELTA_RAD
        jt_w = np.swapaxes(jacobian, -1, -2) * np.array([1.0, up_weight])
        step = np.linalg.solve(jt_w @ jacobian + IK_DAMPING * np.eye(2), jt_w @ (target - feet)[..., None])[..., 0]
        angles = frames[:, LEG_COLUMNS] + np.clip(step, -IK_MAX_STEP_RAD, IK_MAX_STEP_RAD)
        frames[:, LEG_COLUMNS] = np.clip(angles, low, high)
    return frames, np.abs(_feet_xz(model, frames) - target).max(axis=(0, 1))


def with_feet_at(
    reference: ReferenceMotion, model: mujoco.MjModel, target: np.ndarray, change: str, *, up_weight: float = 1.0
) -> tuple[ReferenceMotion, np.ndarray]:
    """``reference`` (one gait cycle) with its feet moved to ``target`` by :func:`solve_legs` and its root raised or
    lowered frame by frame so that the soles' lowest point stays as high above the ground as recorded (a bent stance
    leg lowers the pelvis), its ``source`` ending with ``change``; and the solve's farthest miss forward and up, m."""
    qpos = reference.qpos
    frames, miss_m = solve_legs(model, qpos.copy(), target, up_weight=up_weight)
    frames[:, 2] += lowest_sole_m(model, qpos) - lowest_sole_m(model, frames)
    moved = ReferenceMotion.from_qpos(
        model, frames, reference.dt_s, cyclic=True, joint_weights=reference.joint_weights, name=reference.name,
        source=f"{reference.source}, {change}",
    )  # fmt: skip
    return moved, miss_m


def _planar_guess(model: mujoco.MjModel, frames: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Hip and knee flexion changes (T, 2 legs, 2) that put the feet at ``target`` if each leg were a planar two-link
    chain (hip → knee → foot) in the sagittal plane: the knee sets the hip-foot distance (law of cosines), the hip
    the direction."""
    kin = forward_kinematics(model, frames)
    hip = in_sagittal_plane(kin, kin.body_pos_m[:, _THIGH_BODIES])
    knee = in_sagittal_plane(kin, kin.body_pos_m[:, _SHANK_BODIES])
    foot = in_sagittal_plane(kin, kin.end_pos_m[:, :2])
    thigh_m, shank_m = np.linalg.norm(knee - hip, axis=-1), np.linalg.norm(foot - knee, axis=-1)

    def angles(to_foot: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        reach_m = np.clip(np.linalg.norm(to_foot, axis=-1), np.abs(thigh_m - shank_m) + 1e-6, thigh_m + shank_m - 1e-6)
        at_knee = np.arccos((thigh_m**2 + shank_m**2 - reach_m**2) / (2 * thigh_m * shank_m))  # π: straight
        at_hip = np.arccos((thigh_m**2 + reach_m**2 - shank_m**2) / (2 * thigh_m * reach_m))  # thigh to hip-foot line
        forward = np.arctan2(to_foot[..., 0], -to_foot[..., 1])  # hip-foot line from straight down, forward +
        return at_knee, at_hip, forward

    knee_now, hip_now, line_now = angles(foot - hip)
    knee_new, hip_new, line_new = angles(target - hip)
    # a flexed knee puts the foot behind the thigh: thigh angle = hip-foot line + angle at the hip
    return np.stack([line_new - line_now + hip_new - hip_now, knee_now - knee_new], axis=-1)
