"""A light forward-kinematics chain in numpy, and its inverse (segment orientations → joint angles).

The chain is the model's: pelvis (free root) → trunk over the lumbar joint; pelvis → thigh (hip) → shank (knee) →
foot (ankle) on each side. Segments are straight rods along their frame's −z (legs) or +z (trunk) at the neutral
pose; the foot is a rigid sole with a heel and a toe point ``ankle_height_m`` below the ankle. This is enough for
contact clean-up, phase detection and round-trip tests; the MuJoCo model's own FK (``cloud_trainer.twin``) can be
used instead wherever a :class:`KinematicModel` is accepted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

from cloud_trainer.motion.errors import MotionQualityError
from cloud_trainer.motion.joints import BALL_JOINT_BY_NAME, BALL_JOINTS, JOINT_INDEX, N_JOINTS, SIDES, joint_indices
from cloud_trainer.motion.rotations import compose, decompose, matrix_from_wxyz

FloatArray = NDArray[np.float64]

#: The contact points :meth:`KinematicModel.foot_points` returns, in this order.
FOOT_POINTS: tuple[str, ...] = ("heel_r", "toe_r", "heel_l", "toe_l")
FOOT_POINT_INDEX: dict[str, int] = {n: i for i, n in enumerate(FOOT_POINTS)}
#: Indices of each side's (heel, toe) in :data:`FOOT_POINTS`.
FOOT_POINTS_OF_SIDE: dict[str, tuple[int, int]] = {"r": (0, 1), "l": (2, 3)}


class KinematicModel(Protocol):
    """What the clean-up and the segmenter need from a body: leg length and world foot contact points."""

    @property
    def leg_length_m(self) -> float:
        """Hip joint centre to sole at the neutral pose."""
        ...

    def foot_points(self, root_pos_m: ArrayLike, root_quat_wxyz: ArrayLike, joint_angles_rad: ArrayLike) -> FloatArray:
        """World positions (T, 4, 3) of :data:`FOOT_POINTS` for poses (T, 3), (T, 4), (T, 15)."""
        ...


@dataclass(frozen=True)
class Skeleton:
    """Segment geometry of the light chain, metres, in segment frames at the neutral pose (x fwd, y left, z up).

    Attributes:
        hip_offset_m: right hip joint centre from the pelvis origin (the left one mirrors y).
        thigh_length_m: hip to knee joint centre.
        shank_length_m: knee to ankle joint centre.
        ankle_height_m: ankle joint centre above the sole.
        heel_back_m: heel contact point behind the ankle (along −x of the foot).
        toe_forward_m: toe contact point ahead of the ankle.
        lumbar_offset_m: lumbar joint from the pelvis origin.
        trunk_length_m: lumbar joint to the top of the trunk (base of the neck).
        name: where the numbers come from.
    """

    hip_offset_m: tuple[float, float, float]
    thigh_length_m: float
    shank_length_m: float
    ankle_height_m: float
    heel_back_m: float
    toe_forward_m: float
    lumbar_offset_m: tuple[float, float, float] = (0.0, 0.0, 0.0)
    trunk_length_m: float = 0.45
    name: str = "custom"

    #: Accepted body heights for :meth:`from_height`, m.
    HEIGHT_RANGE_M = (1.0, 2.3)

    @classmethod
    def from_height(cls, height_m: float) -> Skeleton:
        """Segment lengths as fractions of body height.

        Winter, *Biomechanics and Motor Control of Human Movement*, 4th ed. (2009), Fig. 4.1: hip joint height 0.530 H,
        knee 0.285 H, ankle 0.039 H (thigh 0.245 H, shank 0.246 H), foot length 0.152 H, shoulder height 0.818 H.
        Hip joint centres 0.093 H apart (OpenSim gait2392 generic model: ±0.0835 m at 1.80 m, Delp et al. 1990).
        The ankle sits a quarter of the foot length ahead of the heel (same model's calcaneus/talus geometry). The
        toe contact point is the ball of the foot (metatarsal heads, about 72 % of the foot length from the heel, the
        shoe-last convention), not the toe tip: the foot is one rigid segment, and real toes bend at push-off, so a
        sole reaching the tip would dig into the ground in late stance and early swing.
        """
        lo, hi = cls.HEIGHT_RANGE_M
        if not lo <= height_m <= hi:
            raise MotionQualityError(f"body height {height_m} m outside the accepted {lo}–{hi} m")
        foot = 0.152 * height_m
        return cls(
            hip_offset_m=(0.0, -0.0465 * height_m, 0.0),
            thigh_length_m=0.245 * height_m,
            shank_length_m=0.246 * height_m,
            ankle_height_m=0.039 * height_m,
            heel_back_m=0.25 * foot,
            toe_forward_m=(0.72 - 0.25) * foot,
            lumbar_offset_m=(0.0, 0.0, 0.0),
            trunk_length_m=(0.818 - 0.530) * height_m,
            name=f"Winter 2009 proportions, height {height_m:.3f} m",
        )

    @classmethod
    def deepmimic_humanoid3d(cls) -> Skeleton:
        """The DeepMimic ``humanoid3d`` character (xbpeng/DeepMimic ``data/characters/character_humanoid3d.txt``, MIT).

        Hips ±0.084887 m beside the root, thigh 0.421546 m, shank 0.40987 m; the foot box (0.177 × 0.055 × 0.09 m)
        is centred 0.045 m ahead of and 0.0225 m below the ankle, so the sole is 0.05 m below it, the heel 0.0435 m
        behind and the toe 0.1335 m ahead. Chest joint 0.236151 m above the root, neck 0.223894 m above the chest.
        """
        return cls(
            hip_offset_m=(0.0, -0.084887, 0.0),
            thigh_length_m=0.421546,
            shank_length_m=0.40987,
            ankle_height_m=0.0225 + 0.0275,
            heel_back_m=0.0885 - 0.045,
            toe_forward_m=0.0885 + 0.045,
            lumbar_offset_m=(0.0, 0.0, 0.236151),
            trunk_length_m=0.223894,
            name="DeepMimic humanoid3d",
        )

    @property
    def leg_length_m(self) -> float:
        """Hip joint centre to sole at the neutral pose."""
        return self.thigh_length_m + self.shank_length_m + self.ankle_height_m

    def hip_offset(self, side: str) -> FloatArray:
        """Hip joint centre of ``side`` ('r' or 'l') from the pelvis origin."""
        x, y, z = self.hip_offset_m
        return np.array([x, y if side == "r" else -y, z])


@dataclass(frozen=True)
class BodyPose:
    """Forward kinematics of one trajectory: world rotations and origins per segment, and the foot contact points.

    ``rotations[segment]`` is ``R_world_segment`` (T, 3, 3); ``origins[segment]`` the segment's joint centre (T, 3)
    (the pelvis origin for the pelvis); ``ends`` the distal points: ``knee_*``, ``ankle_*``, ``trunk_top``;
    ``foot_points`` (T, 4, 3) in :data:`FOOT_POINTS` order.
    """

    rotations: dict[str, FloatArray]
    origins: dict[str, FloatArray]
    ends: dict[str, FloatArray]
    foot_points: FloatArray


class LightKinematics:
    """Forward kinematics of :class:`Skeleton` in numpy; satisfies :class:`KinematicModel`."""

    def __init__(self, skeleton: Skeleton | None = None) -> None:
        self.skeleton = skeleton if skeleton is not None else Skeleton.from_height(1.75)

    @property
    def leg_length_m(self) -> float:
        """Hip joint centre to sole at the neutral pose."""
        return self.skeleton.leg_length_m

    def pose(self, root_pos_m: ArrayLike, root_quat_wxyz: ArrayLike, joint_angles_rad: ArrayLike) -> BodyPose:
        """World segment rotations, joint centres and foot points for poses (T, 3), (T, 4), (T, 15)."""
        sk = self.skeleton
        p0 = np.asarray(root_pos_m, dtype=float)
        q = np.asarray(joint_angles_rad, dtype=float)
        if q.shape[-1] != N_JOINTS:
            raise MotionQualityError(f"joint angles need {N_JOINTS} columns, got {q.shape[-1]}")
        R_pelvis = matrix_from_wxyz(root_quat_wxyz)
        rotations = {"pelvis": R_pelvis}
        origins = {"pelvis": p0}
        ends: dict[str, FloatArray] = {}
        lumbar = BALL_JOINT_BY_NAME["lumbar"]
        rotations["trunk"] = R_pelvis @ compose(lumbar, q[..., joint_indices(lumbar.joints)])
        origins["trunk"] = p0 + R_pelvis @ np.asarray(sk.lumbar_offset_m)
        ends["trunk_top"] = origins["trunk"] + rotations["trunk"] @ np.array([0.0, 0.0, sk.trunk_length_m])
        points = []
        for side in SIDES:
            R = R_pelvis
            hip = p0 + R @ sk.hip_offset(side)
            origin = hip
            for ball_name, segment, length, end in (
                (f"hip_{side}", f"thigh_{side}", sk.thigh_length_m, f"knee_{side}"),
                (f"knee_{side}", f"shank_{side}", sk.shank_length_m, f"ankle_{side}"),
                (f"ankle_{side}", f"foot_{side}", None, None),
            ):
                ball = BALL_JOINT_BY_NAME[ball_name]
                R = R @ compose(ball, q[..., joint_indices(ball.joints)])
                rotations[segment] = R
                origins[segment] = origin
                if length is not None:
                    origin = origin + R @ np.array([0.0, 0.0, -length])
                    ends[end] = origin
            heel = origin + R @ np.array([-sk.heel_back_m, 0.0, -sk.ankle_height_m])
            toe = origin + R @ np.array([sk.toe_forward_m, 0.0, -sk.ankle_height_m])
            points += [heel, toe]
        return BodyPose(rotations, origins, ends, np.stack(points, axis=-2))

    def foot_points(self, root_pos_m: ArrayLike, root_quat_wxyz: ArrayLike, joint_angles_rad: ArrayLike) -> FloatArray:
        """World positions (T, 4, 3) of :data:`FOOT_POINTS`."""
        return self.pose(root_pos_m, root_quat_wxyz, joint_angles_rad).foot_points


def angles_from_segment_rotations(
    rotations: dict[str, ArrayLike],
) -> tuple[FloatArray, NDArray[np.bool_], dict[str, float]]:
    """Joint angles (T, 15) from world segment rotations ``R_world_segment`` (T, 3, 3), the inverse of FK.

    ``rotations`` needs ``pelvis`` and any of ``trunk``, ``thigh_{r,l}``, ``shank_{r,l}``, ``foot_{r,l}``; a joint
    is solved where both its parent and child segment are given (e.g. five IMUs give both hips and knees).
    Returns the angles (zero where not solvable), a (15,) mask of solved joints, and per ball joint the largest
    rotation (rad) the model's hinges could not express (knee varus/valgus and axial rotation, ankle abduction).
    """
    if "pelvis" not in rotations:
        raise MotionQualityError("segment rotations need the pelvis; got " + ", ".join(sorted(rotations)))
    R = {k: np.asarray(v, dtype=float) for k, v in rotations.items()}
    n = R["pelvis"].shape[0]
    angles = np.zeros((n, N_JOINTS))
    solved = np.zeros(N_JOINTS, dtype=bool)
    dropped: dict[str, float] = {}
    for ball in BALL_JOINTS:
        if ball.parent not in R or ball.child not in R:
            continue
        relative = np.einsum("tji,tjk->tik", R[ball.parent], R[ball.child])
        values, rest = decompose(ball, relative)
        cols = [JOINT_INDEX[j] for j in ball.joints]
        angles[:, cols] = values
        solved[cols] = True
        if rest.size:
            dropped[ball.name] = float(np.abs(rest).max())
    return angles, solved, dropped
