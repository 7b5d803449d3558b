"""Rotations for the reference-motion pipeline: w-first quaternions, frame changes, ball-joint (de)composition.

Quaternions are w-first (``quat_wxyz``), Hamilton; scipy's x,y,z,w order is converted to only here.
Rotation matrices ``R_a_b`` map vectors from frame b into frame a; they stack along leading axes.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.spatial.transform import Rotation

from cloud_trainer.motion.joints import EULER_SEQUENCE, JOINT_AXES, BallJoint

FloatArray = NDArray[np.float64]

#: Maps a y-up, z-right frame (OpenSim, DeepMimic: X forward, Y up, Z right) into ours (x forward, y left, z up).
C_OURS_FROM_YUP_ZRIGHT = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


def matrix_from_wxyz(quat_wxyz: ArrayLike) -> FloatArray:
    """Rotation matrices (…, 3, 3) from w-first quaternions (…, 4); quaternions need not be normalised."""
    q = np.asarray(quat_wxyz, dtype=float)
    return (
        Rotation.from_quat(np.concatenate([q[..., 1:], q[..., :1]], axis=-1).reshape(-1, 4))
        .as_matrix()
        .reshape((*q.shape[:-1], 3, 3))
    )


def wxyz_from_matrix(R: ArrayLike) -> FloatArray:
    """W-first unit quaternions (…, 4) with w ≥ 0 from rotation matrices (…, 3, 3)."""
    M = np.asarray(R, dtype=float)
    xyzw = Rotation.from_matrix(M.reshape(-1, 3, 3)).as_quat().reshape((*M.shape[:-2], 4))
    q = np.concatenate([xyzw[..., 3:], xyzw[..., :3]], axis=-1)
    return np.where(q[..., :1] < 0.0, -q, q)


def make_quat_continuous(quat_wxyz: ArrayLike) -> FloatArray:
    """Flip signs along the first axis (time) so that consecutive quaternions have a non-negative dot product."""
    q = np.array(quat_wxyz, dtype=float)
    for i in range(1, len(q)):
        if np.dot(q[i], q[i - 1]) < 0.0:
            q[i] = -q[i]
    return q


def axis_angle_matrix(axis: ArrayLike, angle_rad: ArrayLike) -> FloatArray:
    """Rotation matrices (…, 3, 3) by ``angle_rad`` (…) about the unit ``axis`` (3,) (Rodrigues)."""
    a = np.asarray(axis, dtype=float)
    t = np.asarray(angle_rad, dtype=float)[..., None, None]
    K = np.array([[0.0, -a[2], a[1]], [a[2], 0.0, -a[0]], [-a[1], a[0], 0.0]])
    return np.eye(3) + np.sin(t) * K + (1.0 - np.cos(t)) * (K @ K)


def change_frame(R: ArrayLike, C: ArrayLike) -> FloatArray:
    """A rotation expressed in another frame: ``C R Cᵀ`` for ``C`` mapping the old frame's axes into the new one."""
    C = np.asarray(C, dtype=float)
    return C @ np.asarray(R, dtype=float) @ C.T


def compose(ball: BallJoint, angles_rad: ArrayLike) -> FloatArray:
    """``R_parent_child`` (…, 3, 3) of a ball joint from its hinge angles (…, n_hinges), in chain order."""
    angles = np.asarray(angles_rad, dtype=float)
    R = np.broadcast_to(np.eye(3), (*angles.shape[:-1], 3, 3)).copy()
    for k, joint in enumerate(ball.joints):
        R = R @ axis_angle_matrix(JOINT_AXES[joint], angles[..., k])
    return R


def decompose(ball: BallJoint, R_parent_child: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Hinge angles (…, n_hinges) of a ball joint whose child is rotated by ``R_parent_child`` (…, 3, 3).

    The rotation is split along the intrinsic y-x-z sequence (:data:`~cloud_trainer.motion.joints.EULER_SEQUENCE`),
    each angle taking its hinge's axis sign. Joints with fewer than three hinges (knee: y; ankle: y, x) keep the
    leading angles; the rest is returned as ``dropped_rad`` (…, 3 - n_hinges): how far the data leave the model's
    degrees of freedom. A round trip ``decompose(compose(angles))`` is exact while the middle (x) angle stays inside
    ±90° (the sequence's gimbal lock), i.e. for any hip adduction, trunk bending or ankle inversion a person can make.
    """
    M = np.asarray(R_parent_child, dtype=float)
    euler = Rotation.from_matrix(M.reshape(-1, 3, 3)).as_euler(EULER_SEQUENCE).reshape((*M.shape[:-2], 3))
    n = len(ball.joints)
    signs = ball.signs
    return euler[..., :n] * signs, euler[..., n:]
