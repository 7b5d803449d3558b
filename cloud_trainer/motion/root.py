"""Root trajectories for clips that lack one, and the five-IMU path from segment orientations to joint angles.

An IMU clip (segment orientations from the capture core) or a treadmill file has no travel of the pelvis. The
pelvis is then walked along its mean heading at the measured speed (constant, the walkway's average), at the height
that puts the lowest foot point on the ground; :class:`~cloud_trainer.motion.cleanup.FootContactCleaner` afterwards
replaces the horizontal path by the one the planted feet imply; :func:`compare_stride` sets the stride that implies
against the measured one (their ratio shows how well the body model and the clip agree).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import ArrayLike

from cloud_trainer.motion.errors import MotionQualityError
from cloud_trainer.motion.kinematics import KinematicModel, LightKinematics, angles_from_segment_rotations
from cloud_trainer.motion.rotations import matrix_from_wxyz, wxyz_from_matrix
from cloud_trainer.motion.trajectory import JointTrajectory

#: Walking speeds accepted for a root built from a measured speed, m/s (a stroke patient's slowest to a brisk walk).
SPEED_RANGE_M_S = (0.05, 2.5)


def root_from_speed(
    trajectory: JointTrajectory, speed_m_s: float, kinematics: KinematicModel | None = None
) -> JointTrajectory:
    """The pelvis moved at a constant ``speed_m_s`` along its mean heading, its height putting the feet on the ground.

    Axes the trajectory already measured are kept. Raises :class:`MotionQualityError` for a speed outside
    :data:`SPEED_RANGE_M_S`.
    """
    lo, hi = SPEED_RANGE_M_S
    if not lo <= speed_m_s <= hi:
        raise MotionQualityError(f"walking speed {speed_m_s} m/s outside the accepted {lo}–{hi} m/s")
    kin = kinematics if kinematics is not None else LightKinematics()
    n = trajectory.n_frames
    heading = float(np.mean(trajectory.heading_rad()))
    travel = speed_m_s * (trajectory.time_s - trajectory.time_s[0])
    built = np.stack([travel * np.cos(heading), travel * np.sin(heading), np.zeros(n)], axis=1)
    relative = kin.foot_points(np.zeros((n, 3)), trajectory.root_quat_wxyz, trajectory.joint_angles_rad)
    built[:, 2] = -relative[..., 2].min(axis=1)
    measured = trajectory.root_pos_measured
    pos = np.where(measured[None, :], trajectory.root_pos_m, built)
    return trajectory.with_values(
        root_pos_m=pos,
        root_pos_measured=np.ones(3, dtype=bool),
        meta={
            "root_from_speed_m_s": speed_m_s,
            "root_axes_built": [a for a, m in zip("xyz", measured, strict=True) if not m],
        },
    )


def compare_stride(cleaned_cycle: JointTrajectory, measured_stride_m: float) -> dict[str, float]:
    """Stride implied by the planted feet of a cleaned cyclic cycle versus a measured one (ratio and difference)."""
    kinematic = float(cleaned_cycle.meta.get("stride_length_m", np.nan))
    return {
        "kinematic_stride_m": kinematic,
        "measured_stride_m": float(measured_stride_m),
        "ratio": kinematic / measured_stride_m if measured_stride_m > 0 else float("nan"),
    }


def from_segment_orientations(
    time_s: ArrayLike,
    quat_wxyz_world_segment: Mapping[str, ArrayLike],
    *,
    source: str = "imu clip",
) -> JointTrajectory:
    """Joint angles from world segment orientations (T, 4), e.g. the capture core's fused pelvis, thighs, shanks.

    Keys are segment names (``pelvis``, ``thigh_r``, ``thigh_l``, ``shank_r``, ``shank_l``; ``trunk``, ``foot_*``
    too where available); each quaternion maps that segment's frame (x anterior, y left, z superior, aligned with
    the world at the neutral standing pose) into the world frame. Hips and knees are solved wherever both segments
    are given; the rest is marked unmeasured (fill it with :class:`~cloud_trainer.motion.filling.PhaseLockedFiller`).
    The root has the pelvis orientation and no translation (see :func:`root_from_speed`).
    """
    if "pelvis" not in quat_wxyz_world_segment:
        raise MotionQualityError(f"{source}: segment orientations need the pelvis")
    rotations = {name: matrix_from_wxyz(q) for name, q in quat_wxyz_world_segment.items()}
    angles, solved, dropped = angles_from_segment_rotations(rotations)
    return JointTrajectory.create(
        time_s,
        angles,
        None,
        wxyz_from_matrix(rotations["pelvis"]),
        joints_measured=solved,
        source=source,
        meta={"format": "segment_orientations", "dropped_rad": dropped, "segments": sorted(rotations)},
    )
