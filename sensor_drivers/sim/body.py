"""A lower-limb kinematic body scaled to a height: pelvis, thighs, shanks and feet.

Segment frames follow :mod:`sensor_drivers.frames`: at neutral standing, facing world x, every segment frame is aligned
with the world (x anterior, y left, z superior). Segment origins: pelvis at the midpoint of the two hip joint centres
(HJC), thigh at its HJC, shank at the knee joint centre, foot at the ankle joint centre. The knee is a hinge about the
thigh's y axis (positive = flexion); hips and ankles are ball joints.

Leg length from height (Winter DA, *Biomechanics and Motor Control of Human Movement*, 4th ed., 2009, Fig. 4.1,
after Drillis & Contini 1966): thigh (HJC to knee) 0.245 H plus shank (knee to ankle) 0.246 H. Its split into thigh
and shank, the hip-joint-centre spacing and the foot contact geometry are scaled from the skeleton the gait library
was recorded on (by the ratio of leg lengths), so that the recorded joint angles keep producing the recorded heel and
toe contacts.

All functions are vectorised over a leading sample axis; rotations are (n, 3, 3) matrices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from sensor_drivers.sim.gait_library import SourceDimensions

FloatArray = NDArray[np.float64]

THIGH_PER_HEIGHT = 0.245
SHANK_PER_HEIGHT = 0.246
SIDES: tuple[str, str] = ("l", "r")


def rotvec_to_matrix(rotvec: FloatArray) -> FloatArray:
    """Rodrigues' formula, vectorised: (..., 3) rotation vectors → (..., 3, 3) matrices."""
    r = np.asarray(rotvec, dtype=float)
    theta = np.linalg.norm(r, axis=-1)[..., None, None]
    small = theta < 1e-8
    safe = np.where(small, 1.0, theta)
    k = skew(r)
    a = np.where(small, 1.0 - theta**2 / 6.0, np.sin(safe) / safe)
    b = np.where(small, 0.5 - theta**2 / 24.0, (1.0 - np.cos(safe)) / safe**2)
    return np.eye(3) + a * k + b * (k @ k)


def matrix_to_rotvec(matrix: FloatArray) -> FloatArray:
    """Inverse of :func:`rotvec_to_matrix` for rotations below π (vectorised)."""
    m = np.asarray(matrix, dtype=float)
    cos = np.clip((np.trace(m, axis1=-2, axis2=-1) - 1.0) / 2.0, -1.0, 1.0)
    theta = np.arccos(cos)
    v = np.stack([m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], axis=-1)
    sin = np.sin(theta)
    small = sin < 1e-8
    scale = np.where(small, 0.5 + theta**2 / 12.0, theta / (2.0 * np.where(small, 1.0, sin)))
    return v * scale[..., None]


def skew(v: FloatArray) -> FloatArray:
    """(..., 3) → (..., 3, 3) cross-product matrices."""
    v = np.asarray(v, dtype=float)
    z = np.zeros(v.shape[:-1])
    x, y, w = v[..., 0], v[..., 1], v[..., 2]
    return np.stack([np.stack([z, -w, y], -1), np.stack([w, z, -x], -1), np.stack([-y, x, z], -1)], -2)


def axis_rotation(axis: int, angle_rad: FloatArray) -> FloatArray:
    """Rotations about a coordinate axis (0 = x, 1 = y, 2 = z) by the given angles: (...,) → (..., 3, 3)."""
    a = np.asarray(angle_rad, dtype=float)
    c, s = np.cos(a), np.sin(a)
    one, zero = np.ones_like(a), np.zeros_like(a)
    if axis == 0:
        rows = [[one, zero, zero], [zero, c, -s], [zero, s, c]]
    elif axis == 1:
        rows = [[c, zero, s], [zero, one, zero], [-s, zero, c]]
    else:
        rows = [[c, -s, zero], [s, c, zero], [zero, zero, one]]
    return np.stack([np.stack(r, -1) for r in rows], -2)


def apply(matrix: FloatArray, vec: FloatArray) -> FloatArray:
    """Rotate vectors: (..., 3, 3) @ (..., 3) → (..., 3)."""
    return np.einsum("...ij,...j->...i", matrix, vec)


def minimal_rotation(a: FloatArray, b: FloatArray) -> FloatArray:
    """The smallest rotation taking direction ``a`` to direction ``b`` (both (..., 3), any length)."""
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    axis = np.cross(a, b)
    sin = np.linalg.norm(axis, axis=-1)
    cos = np.sum(a * b, axis=-1)
    angle = np.arctan2(sin, cos)
    unit = axis / np.where(sin > 1e-15, sin, 1.0)[..., None]
    return rotvec_to_matrix(unit * angle[..., None])


@dataclass(frozen=True)
class BodyModel:
    """Dimensions of the simulated lower body, m."""

    height_m: float
    mass_kg: float
    thigh_m: float
    shank_m: float
    hip_half_width_m: float
    #: Foot contact points relative to the ankle joint centre in the foot frame: heel (x < 0), toe pivot under the
    #: metatarsal heads / toes (x > 0), both at sole height ``sole_z_m`` (< 0).
    heel_x_m: float
    toe_x_m: float
    sole_z_m: float
    #: Ratio of this body's leg to the gait library skeleton's leg.
    leg_scale: float

    @classmethod
    def from_height(cls, height_m: float, mass_kg: float, source: SourceDimensions) -> BodyModel:
        """Scale segment lengths to a standing height (Winter 2009) and the rest to the library skeleton."""
        leg = (THIGH_PER_HEIGHT + SHANK_PER_HEIGHT) * height_m
        scale = leg / source.leg_m
        # Split the leg as the library skeleton does (thigh 50.7 %, Winter 49.9 %): the recorded joint angles keep
        # both feet on the floor in double support only with the proportions they were recorded on.
        thigh = source.thigh_m * scale
        shank = source.shank_m * scale
        return cls(
            height_m=height_m,
            mass_kg=mass_kg,
            thigh_m=thigh,
            shank_m=shank,
            hip_half_width_m=source.hip_half_width_m * scale,
            heel_x_m=source.heel_x_m * scale,
            toe_x_m=source.toe_x_m * scale,
            sole_z_m=source.sole_z_m * scale,
            leg_scale=scale,
        )

    @property
    def leg_m(self) -> float:
        """Hip joint centre to ankle joint centre, straight knee."""
        return self.thigh_m + self.shank_m

    @property
    def standing_pelvis_height_m(self) -> float:
        """Height of the pelvis origin (HJC midpoint) above the floor in the neutral standing pose."""
        return self.leg_m - self.sole_z_m

    def hip_offset_m(self, side: str) -> FloatArray:
        """Hip joint centre in the pelvis frame."""
        return np.array([0.0, self.hip_half_width_m if side == "l" else -self.hip_half_width_m, 0.0])


@dataclass
class LegPose:
    """One leg's segment orientations (relative to a common frame) and joint/contact positions (relative to the
    pelvis origin), for n samples."""

    thigh_rot: FloatArray
    shank_rot: FloatArray
    foot_rot: FloatArray
    knee_flexion_rad: FloatArray
    hip_m: FloatArray
    knee_m: FloatArray
    ankle_m: FloatArray
    heel_m: FloatArray
    toe_m: FloatArray


def pitch_foot(body: BodyModel, leg: LegPose, point_x_m: float, rise_m: FloatArray) -> LegPose:
    """Rotate each foot about its ankle (the foot's y axis) so that the sole point ``point_x_m`` ahead of the ankle
    (negative: the heel) rises by ``rise_m`` (negative: sinks); at most a quarter turn."""
    rise = np.asarray(rise_m, dtype=float)
    if not np.any(np.abs(rise) > 1e-12):
        return leg
    point = apply(leg.foot_rot, np.array([point_x_m, 0.0, body.sole_z_m]))
    axis = leg.foot_rot[..., :, 1]
    r_perp = point - axis * np.sum(point * axis, axis=-1, keepdims=True)
    tangent = np.cross(axis, r_perp)  # velocity of the point for a unit rotation about +y
    r_z, t_z = r_perp[:, 2], tangent[:, 2]
    # Solve (cos θ − 1)·r_z + sin θ·t_z = rise: with A = hypot(r_z, t_z), cos(θ − α) = (r_z + rise)/A.
    amp = np.hypot(r_z, t_z)
    alpha = np.arctan2(t_z, r_z)
    target = np.clip((r_z + rise) / np.maximum(amp, 1e-9), -1.0, 1.0)
    candidates = np.stack([alpha + np.arccos(target), alpha - np.arccos(target)])
    candidates = np.mod(candidates + np.pi, 2 * np.pi) - np.pi
    theta = np.where(np.abs(candidates[0]) < np.abs(candidates[1]), candidates[0], candidates[1])
    theta = np.where(np.abs(rise) > 1e-12, np.clip(theta, -0.5 * np.pi, 0.5 * np.pi), 0.0)
    foot_rot = rotvec_to_matrix(axis * theta[:, None]) @ leg.foot_rot
    return LegPose(
        thigh_rot=leg.thigh_rot,
        shank_rot=leg.shank_rot,
        foot_rot=foot_rot,
        knee_flexion_rad=leg.knee_flexion_rad,
        hip_m=leg.hip_m,
        knee_m=leg.knee_m,
        ankle_m=leg.ankle_m,
        heel_m=leg.ankle_m + apply(foot_rot, np.array([body.heel_x_m, 0.0, body.sole_z_m])),
        toe_m=leg.ankle_m + apply(foot_rot, np.array([body.toe_x_m, 0.0, body.sole_z_m])),
    )


def leg_forward(
    body: BodyModel, side: str, pelvis_rot: FloatArray, hip_rot: FloatArray, knee_rad: FloatArray, ankle_rot: FloatArray
) -> LegPose:
    """Forward kinematics of one leg from the pelvis orientation and the joint rotations."""
    thigh_rot = pelvis_rot @ hip_rot
    shank_rot = thigh_rot @ axis_rotation(1, knee_rad)
    foot_rot = shank_rot @ ankle_rot
    hip = apply(pelvis_rot, body.hip_offset_m(side))
    knee = hip + thigh_rot[..., :, 2] * -body.thigh_m
    ankle = knee + shank_rot[..., :, 2] * -body.shank_m
    return LegPose(
        thigh_rot=thigh_rot,
        shank_rot=shank_rot,
        foot_rot=foot_rot,
        knee_flexion_rad=np.asarray(knee_rad, dtype=float),
        hip_m=hip,
        knee_m=knee,
        ankle_m=ankle,
        heel_m=ankle + apply(foot_rot, np.array([body.heel_x_m, 0.0, body.sole_z_m])),
        toe_m=ankle + apply(foot_rot, np.array([body.toe_x_m, 0.0, body.sole_z_m])),
    )


def leg_shift_ankle(body: BodyModel, leg: LegPose, shift_m: FloatArray, max_reach: float = 0.9995,
                    keep_knee: bool = False) -> LegPose:
    """Move the ankle (and with it the whole foot, keeping its orientation) by ``shift_m`` with two-link inverse
    kinematics: the hip stays, the knee angle follows from the new hip-ankle distance (law of cosines), and the thigh
    turns by the smallest rotation that points the leg at the new ankle (with ``keep_knee`` only the latter, so the
    ankle may end short of or beyond the target along the leg). Reach is limited to ``max_reach`` of the
    straight leg (or its current length, if longer); a shift asking for more leaves the ankle short of its target along
    the leg.
    """
    a, b = body.thigh_m, body.shank_m
    target = leg.ankle_m + shift_m
    d = target - leg.hip_m
    if keep_knee:
        # Swing the leg at the hip only: near a straight knee, changing the leg's length would need large knee
        # motions; the ankle then lands on the target's direction at the leg's current length.
        knee = leg.knee_flexion_rad
    else:
        length = np.linalg.norm(d, axis=-1)
        # Never force a straight leg to bend: the reach limit applies only to lengthening beyond the current length.
        current = np.linalg.norm(leg.ankle_m - leg.hip_m, axis=-1)
        length = np.clip(length, abs(a - b) + 1e-3, np.maximum(current, max_reach * (a + b)))
        cos_knee = np.clip((length**2 - a * a - b * b) / (2.0 * a * b), -1.0, 1.0)
        knee = np.arccos(cos_knee)
    # The old thigh orientation with the new knee angle, then the smallest rotation onto the target direction.
    shank_rel = axis_rotation(1, knee)
    d_old = leg.thigh_rot[..., :, 2] * -a + apply(leg.thigh_rot @ shank_rel, np.array([0.0, 0.0, -b]))
    turn = minimal_rotation(d_old, d)
    thigh_rot = turn @ leg.thigh_rot
    shank_rot = thigh_rot @ shank_rel
    knee_pos = leg.hip_m + thigh_rot[..., :, 2] * -a
    ankle = knee_pos + shank_rot[..., :, 2] * -b
    moved = ankle - leg.ankle_m
    return LegPose(
        thigh_rot=thigh_rot,
        shank_rot=shank_rot,
        foot_rot=leg.foot_rot,
        knee_flexion_rad=knee,
        hip_m=leg.hip_m,
        knee_m=knee_pos,
        ankle_m=ankle,
        heel_m=leg.heel_m + moved,
        toe_m=leg.toe_m + moved,
    )
