"""Forward kinematics of the twin and the heading frame the imitation targets are expressed in.

The heading frame of a pose is the world frame turned about z by the pelvis's yaw and moved to the pelvis origin:
positions relative to the root in it do not change when the walker turns or walks on, so a reference's centre of
mass and limb ends can be compared with the simulation's anywhere on the course.

Quaternions are ``quat_wxyz`` (MuJoCo's order). All functions here take stacked poses, (..., 4) and (..., 3).
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from cloud_trainer.twin.constants import BODY_NAMES, END_EFFECTOR_SITES, NQ

#: Capsule geoms of the soles, by side.
SOLE_GEOMS = ("heel_r", "forefoot_r", "heel_l", "forefoot_l")


def quat_yaw_rad(quat_wxyz: np.ndarray) -> np.ndarray:
    """Yaw (rotation about world z) of the body x axis of each quaternion, rad in (-pi, pi]."""
    w, x, y, z = np.moveaxis(np.asarray(quat_wxyz, dtype=float), -1, 0)
    return np.arctan2(2.0 * (x * y + w * z), 1.0 - 2.0 * (y * y + z * z))


def quat_tilt_rad(quat_wxyz: np.ndarray) -> np.ndarray:
    """Angle between the body z axis and world z (how far the segment leans, in any direction), rad."""
    x, y = np.moveaxis(np.asarray(quat_wxyz, dtype=float), -1, 0)[1:3]
    return np.arccos(np.clip(1.0 - 2.0 * (x * x + y * y), -1.0, 1.0))


def rotate_into_heading(vectors_world: np.ndarray, yaw_rad: np.ndarray) -> np.ndarray:
    """World-frame vectors (..., K, 3) or (..., 3) expressed in the heading frame of yaw (...,)."""
    v = np.asarray(vectors_world, dtype=float)
    yaw = np.asarray(yaw_rad, dtype=float)
    while yaw.ndim < v.ndim - 1:
        yaw = yaw[..., None]
    c, s = np.cos(yaw), np.sin(yaw)
    out = np.empty_like(v)
    out[..., 0] = c * v[..., 0] + s * v[..., 1]
    out[..., 1] = -s * v[..., 0] + c * v[..., 1]
    out[..., 2] = v[..., 2]
    return out


@dataclass(frozen=True)
class Kinematics:
    """Positions for a stack of poses (T frames), world frame, m."""

    #: Origins of the bodies in ``BODY_NAMES`` order, (T, n_bodies, 3).
    body_pos_m: np.ndarray
    #: Orientations of the bodies, (T, n_bodies, 4) quat_wxyz.
    body_quat_wxyz: np.ndarray
    #: Limb-end sites in ``END_EFFECTOR_SITES`` order, (T, n_ends, 3).
    end_pos_m: np.ndarray
    #: Whole-body centre of mass, (T, 3).
    com_m: np.ndarray

    @property
    def root_pos_m(self) -> np.ndarray:
        """Pelvis origin (the mid-point of the hip joint centres), (T, 3)."""
        return self.body_pos_m[:, 0]

    @property
    def root_yaw_rad(self) -> np.ndarray:
        return quat_yaw_rad(self.body_quat_wxyz[:, 0])

    def com_in_heading_m(self) -> np.ndarray:
        """Centre of mass relative to the root, heading frame, (T, 3)."""
        return rotate_into_heading(self.com_m - self.root_pos_m, self.root_yaw_rad)

    def ends_in_heading_m(self) -> np.ndarray:
        """Limb ends relative to the root, heading frame, (T, n_ends, 3)."""
        return rotate_into_heading(self.end_pos_m - self.root_pos_m[:, None], self.root_yaw_rad)


def forward_kinematics(model: mujoco.MjModel, qpos: np.ndarray, data: mujoco.MjData | None = None) -> Kinematics:
    """Body, limb-end and centre-of-mass positions of poses ``qpos`` ((nq,) or (T, nq)) with ``mj_kinematics``.

    Raises:
        ValueError: qpos does not have the model's nq columns.
    """
    frames = np.atleast_2d(np.asarray(qpos, dtype=float))
    if frames.shape[-1] != model.nq:
        raise ValueError(f"qpos must have {model.nq} columns (the model's nq), got shape {np.shape(qpos)}")
    data = data or mujoco.MjData(model)
    body_ids = [model.body(name).id for name in BODY_NAMES]
    site_ids = [model.site(name).id for name in END_EFFECTOR_SITES]
    masses = model.body_mass[body_ids]
    n = len(frames)
    body_pos = np.empty((n, len(body_ids), 3))
    body_quat = np.empty((n, len(body_ids), 4))
    ends = np.empty((n, len(site_ids), 3))
    com = np.empty((n, 3))
    for i, q in enumerate(frames):
        data.qpos[:] = q
        mujoco.mj_kinematics(model, data)
        body_pos[i] = data.xpos[body_ids]
        body_quat[i] = data.xquat[body_ids]
        ends[i] = data.site_xpos[site_ids]
        com[i] = masses @ data.xipos[body_ids] / masses.sum()
    return Kinematics(body_pos, body_quat, ends, com)


def imitation_targets(model: mujoco.MjModel, qpos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre of mass (T, 3) and limb ends (T, n_ends, 3) relative to the root in the heading frame, for qpos (T, nq).

    These are what :class:`cloud_trainer.motion.reference.ReferenceMotion` stores as its forward-kinematics targets.
    """
    if np.shape(qpos)[-1] != NQ:
        raise ValueError(f"qpos must have {NQ} columns, got shape {np.shape(qpos)}")
    kin = forward_kinematics(model, qpos)
    return kin.com_in_heading_m(), kin.ends_in_heading_m()


def lowest_sole_m(model: mujoco.MjModel, qpos: np.ndarray) -> np.ndarray:
    """Height of the lowest point of the sole capsules above z = 0 for each pose (n, NQ)."""
    data = mujoco.MjData(model)
    geoms = [model.geom(name).id for name in SOLE_GEOMS]
    lowest = np.empty(len(qpos))
    for i, q in enumerate(qpos):
        data.qpos[:] = q
        mujoco.mj_kinematics(model, data)
        axis_z = data.geom_xmat[geoms].reshape(-1, 3, 3)[:, 2, 2]
        centre_z = data.geom_xpos[geoms, 2]
        radius, half_length = model.geom_size[geoms, 0], model.geom_size[geoms, 1]
        lowest[i] = np.min(centre_z - half_length * np.abs(axis_z) - radius)
    return lowest
