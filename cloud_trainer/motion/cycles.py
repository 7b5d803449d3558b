"""One gait cycle as a clean loop: extraction, drift removal, heading alignment, tiling, symmetric completion.

A *cycle trajectory* holds the frames of one stride plus its closing frame (the next cycle's first), so ``N + 1``
frames span one period ``N · dt``; ``meta`` carries ``cyclic``, ``period_s``, ``stride_length_m`` and ``speed_m_s``.
A loop repeats frames ``[0, N)`` with the root advanced by one stride along +x each time.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.spatial.transform import Rotation

from cloud_trainer.motion.errors import MotionQualityError
from cloud_trainer.motion.rotations import axis_angle_matrix, make_quat_continuous, matrix_from_wxyz, wxyz_from_matrix
from cloud_trainer.motion.segmentation import GaitCycle
from cloud_trainer.motion.trajectory import JointTrajectory

FloatArray = NDArray[np.float64]


def extract_cycle(trajectory: JointTrajectory, cycle: GaitCycle) -> JointTrajectory:
    """Frames ``[start, end]`` of ``trajectory`` (the closing frame included), time starting at 0."""
    if cycle.end >= trajectory.n_frames:
        raise MotionQualityError(f"cycle [{cycle.start}, {cycle.end}) has no closing frame in {trajectory.source}")
    part = trajectory.slice(cycle.start, cycle.end + 1)
    return part.with_values(
        time_s=part.time_s - part.time_s[0],
        source=f"{trajectory.source} [{cycle.start_time_s:.2f} s]",
        meta={"cycle_start_s": cycle.start_time_s, "cycle_start_frame": cycle.start},
    )


def make_cyclic(cycle: JointTrajectory) -> JointTrajectory:
    """A cycle trajectory whose closing frame repeats its first exactly, except for the root's advance along +x.

    The whole cycle is turned about z and shifted so that its root travels from (0, 0) along +x (or, without
    measured horizontal root, so that the pelvis faces +x on average); the mismatch between the closing and the first
    frame in joint angles, root height, root sideways position and pelvis orientation is removed linearly over the
    cycle (the loop seam otherwise asks for huge velocities). Adds ``cyclic``, ``period_s``, ``stride_length_m`` and
    ``speed_m_s`` to ``meta`` (stride and speed NaN without measured horizontal root).
    """
    n = cycle.n_frames - 1
    if n < 2:
        raise MotionQualityError(f"a cycle needs at least 3 frames (2 plus the closing one), got {cycle.n_frames}")
    s = np.linspace(0.0, 1.0, n + 1)
    pos = cycle.root_pos_m.copy()
    R = matrix_from_wxyz(cycle.root_quat_wxyz)
    has_root = bool(cycle.root_pos_measured[:2].all())
    travel = pos[-1, :2] - pos[0, :2]
    if has_root and np.linalg.norm(travel) > 1e-6:
        yaw = float(np.arctan2(travel[1], travel[0]))
    else:
        forward = R[:, :2, 0].mean(axis=0)
        yaw = float(np.arctan2(forward[1], forward[0]))
    turn = axis_angle_matrix([0.0, 0.0, 1.0], -yaw)
    pos = (pos - np.array([pos[0, 0], pos[0, 1], 0.0])) @ turn.T
    R = turn @ R
    # Orientation seam: spread the closing frame's rotation relative to the first over the cycle.
    seam = Rotation.from_matrix(R[-1] @ R[0].T).as_rotvec()
    R = Rotation.from_rotvec(-s[:, None] * seam).as_matrix() @ R
    pos[:, 1] -= s * pos[-1, 1]
    pos[:, 2] -= s * (pos[-1, 2] - pos[0, 2])
    angles = cycle.joint_angles_rad - s[:, None] * (cycle.joint_angles_rad[-1] - cycle.joint_angles_rad[0])
    period = cycle.duration_s
    stride = float(pos[-1, 0]) if has_root else float("nan")
    return cycle.with_values(
        time_s=cycle.time_s - cycle.time_s[0],
        joint_angles_rad=angles,
        root_pos_m=pos,
        root_quat_wxyz=make_quat_continuous(wxyz_from_matrix(R)),
        meta={"cyclic": True, "period_s": period, "stride_length_m": stride, "speed_m_s": stride / period},
    )


def tile_cycle(cycle: JointTrajectory, n_cycles: int) -> JointTrajectory:
    """``n_cycles`` repetitions of a cyclic cycle trajectory (closing frame at the end), the root advancing a stride
    each time."""
    if not cycle.meta.get("cyclic"):
        raise MotionQualityError("tile_cycle needs a cyclic cycle trajectory (see make_cyclic)")
    if n_cycles < 1:
        raise MotionQualityError(f"n_cycles must be at least 1, got {n_cycles}")
    n = cycle.n_frames - 1
    advance = cycle.root_pos_m[-1] - cycle.root_pos_m[0]
    idx = np.concatenate([np.arange(n)] * n_cycles + [[0]])
    rep = np.concatenate([np.full(n, k) for k in range(n_cycles)] + [[n_cycles]])
    return cycle.with_values(
        time_s=np.arange(len(idx)) * cycle.dt_s,
        joint_angles_rad=cycle.joint_angles_rad[idx],
        root_pos_m=cycle.root_pos_m[idx] + rep[:, None] * advance,
        root_quat_wxyz=make_quat_continuous(cycle.root_quat_wxyz[idx]),
        meta={"period_s": cycle.duration_s * n_cycles, "n_cycles": n_cycles},
    )


def symmetric_cycle_from_step(trajectory: JointTrajectory, start: int, end: int) -> JointTrajectory:
    """A full cycle from one step: frames ``[start, end]`` (right heel strike to left heel strike) then their mirror.

    For clips shorter than a stride (LocoMuJoCo's 1 s sample). Assumes left-right symmetry, which healthy gait
    meets within a few degrees; the result is marked ``meta['symmetrised'] = True``.
    """
    step = trajectory.slice(start, end + 1)
    step = step.with_values(time_s=step.time_s - step.time_s[0])
    advance = step.root_pos_m[-1] - step.root_pos_m[0]
    yaw = float(np.arctan2(advance[1], advance[0])) if step.root_pos_measured[:2].all() else 0.0
    turn = axis_angle_matrix([0.0, 0.0, 1.0], -yaw)
    pos = (step.root_pos_m - step.root_pos_m[0] * np.array([1.0, 1.0, 0.0])) @ turn.T
    R = turn @ matrix_from_wxyz(step.root_quat_wxyz)
    aligned = step.with_values(root_pos_m=pos, root_quat_wxyz=wxyz_from_matrix(R))
    mirrored = aligned.mirrored()
    shift = np.array([pos[-1, 0], pos[-1, 1], 0.0])
    second = mirrored.root_pos_m + shift
    n = step.n_frames - 1
    whole = JointTrajectory.create(
        np.arange(2 * n + 1) * step.dt_s,
        np.concatenate([aligned.joint_angles_rad[:n], mirrored.joint_angles_rad]),
        np.concatenate([pos[:n], second]),
        make_quat_continuous(np.concatenate([aligned.root_quat_wxyz[:n], mirrored.root_quat_wxyz])),
        joints_measured=step.joints_measured & mirrored.joints_measured,
        root_pos_measured=step.root_pos_measured,
        joint_weights=np.minimum(step.joint_weights, mirrored.joint_weights),
        source=f"{trajectory.source} [one step, symmetrised]",
        meta={**trajectory.meta, "symmetrised": True},
    )
    return make_cyclic(whole)


def roll_cycle(cycle: JointTrajectory, start_frame: int) -> JointTrajectory:
    """A cyclic cycle trajectory restarted at ``start_frame`` (e.g. the left heel strike); the loop is unchanged."""
    if not cycle.meta.get("cyclic"):
        raise MotionQualityError("roll_cycle needs a cyclic cycle trajectory (see make_cyclic)")
    n = cycle.n_frames - 1
    k = int(start_frame) % n
    two = tile_cycle(cycle, 2)
    part = two.slice(k, k + n + 1)
    pos = part.root_pos_m - np.array([part.root_pos_m[0, 0], part.root_pos_m[0, 1], 0.0])
    return part.with_values(
        time_s=part.time_s - part.time_s[0], root_pos_m=pos, meta={"period_s": cycle.duration_s, "n_cycles": 1}
    )
