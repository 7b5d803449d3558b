"""Body motion over time: exact segment poses at any times, and splines for sampling sensors between them.

:class:`BodyMotion` evaluates the walk kinematics at given true times (the body is still before the walk's onset and
after it stops, so those poses are computed once). :class:`MotionSpline` fits quintic splines through poses on a fine
uniform grid: each segment's orientation as a rotation vector r(t), each sensor's position p(t). A sensor then reads
exactly the motion of the spline: orientation exp(r), body angular velocity ω = J_r(r)·ṙ (the right Jacobian of
SO(3)), acceleration p̈. Integrating the gyroscope reproduces the orientation; integrating the accelerometer twice
reproduces the position.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.interpolate import BSpline, make_interp_spline

from sensor_drivers.sim.body import SIDES, apply, matrix_to_rotvec, rotvec_to_matrix, skew
from sensor_drivers.sim.walk import BodyState
from sensor_drivers.sim.walk_plan import WalkPlan

FloatArray = NDArray[np.float64]

SEGMENTS: tuple[str, ...] = ("pelvis", "thigh_l", "thigh_r", "shank_l", "shank_r", "foot_l", "foot_r")


@dataclass
class BodyFrames:
    """Segment orientations (world ← segment) and origins (world, m) at ``time_s``, plus the state they came from."""

    time_s: FloatArray
    rotation: dict[str, FloatArray]
    origin_m: dict[str, FloatArray]
    state: BodyState

    def point(self, segment: str, offset_m: FloatArray) -> FloatArray:
        """World positions of a point fixed on a segment (offset in the segment frame)."""
        return self.origin_m[segment] + apply(self.rotation[segment], np.asarray(offset_m, dtype=float))


def _frames_from_state(time_s: FloatArray, state: BodyState) -> BodyFrames:
    root = state.root_m
    rotation = {"pelvis": state.joints.pelvis_rot}
    origin = {"pelvis": root}
    for side in SIDES:
        leg = state.legs[side]
        rotation[f"thigh_{side}"], origin[f"thigh_{side}"] = leg.thigh_rot, root + leg.hip_m
        rotation[f"shank_{side}"], origin[f"shank_{side}"] = leg.shank_rot, root + leg.knee_m
        rotation[f"foot_{side}"], origin[f"foot_{side}"] = leg.foot_rot, root + leg.ankle_m
    return BodyFrames(time_s, rotation, origin, state)


class BodyMotion:
    """The planned walk as segment poses over true time."""

    def __init__(self, plan: WalkPlan):
        self.plan = plan
        self.walker = plan.walker()
        self.timeline = plan.timeline
        self._still = {
            which: self.walker.evaluate(np.array([phi]))
            for which, phi in (("start", self.timeline.phi_start), ("end", self.timeline.phi_end))
        }

    def state(self, time_s: FloatArray) -> BodyState:
        """Corrected kinematics at true times (standing poses shared, not recomputed)."""
        t = np.asarray(time_s, dtype=float)
        phi = self.timeline.phase(t)
        before = t <= self.timeline.onset_s
        after = t >= self.timeline.stop_s
        moving = ~(before | after)
        index = np.zeros(len(t), dtype=int)
        parts = [self._still["start"], self._still["end"]]
        index[after] = 1
        if np.any(moving):
            parts.append(self.walker.evaluate(phi[moving]))
            index[moving] = 2
        rows = np.zeros(len(t), dtype=int)
        rows[moving] = np.arange(int(moving.sum()))
        return _gather(parts, index, rows)

    def frames(self, time_s: FloatArray) -> BodyFrames:
        """Segment poses at true times."""
        t = np.asarray(time_s, dtype=float)
        return _frames_from_state(t, self.state(t))


def _gather(parts: list[BodyState], index: NDArray[np.int_], rows: NDArray[np.int_]) -> BodyState:
    """Assemble per-sample rows from several states (part ``index[i]``, row ``rows[i]``)."""

    def pick(get):  # type: ignore[no-untyped-def]
        first = get(parts[0])
        out = np.empty((len(index), *np.shape(first)[1:]), dtype=np.asarray(first).dtype)
        for k, part in enumerate(parts):
            m = index == k
            if np.any(m):
                out[m] = get(part)[rows[m]]
        return out

    from sensor_drivers.sim.body import LegPose
    from sensor_drivers.sim.gait_pattern import JointPose

    joints = JointPose(
        pelvis_rot=pick(lambda s: s.joints.pelvis_rot),
        hip_rot={side: pick(lambda s, side=side: s.joints.hip_rot[side]) for side in SIDES},
        knee_rad={side: pick(lambda s, side=side: s.joints.knee_rad[side]) for side in SIDES},
        ankle_rot={side: pick(lambda s, side=side: s.joints.ankle_rot[side]) for side in SIDES},
    )
    legs = {
        side: LegPose(**{k: pick(lambda s, k=k, side=side: getattr(s.legs[side], k))
                         for k in parts[0].legs[side].__dict__})
        for side in SIDES
    }
    return BodyState(
        phi=pick(lambda s: s.phi),
        amplitude=pick(lambda s: s.amplitude),
        joints=joints,
        legs=legs,
        root_m=pick(lambda s: s.root_m),
        anchor=pick(lambda s: s.anchor),
        support=None,  # type: ignore[arg-type]
    )


def right_jacobian(rotvec: FloatArray) -> FloatArray:
    """J_r(r) with Rᵀ Ṙ = [J_r(r) ṙ]× for R = exp([r]×), vectorised: (n, 3) → (n, 3, 3)."""
    r = np.asarray(rotvec, dtype=float)
    theta = np.linalg.norm(r, axis=-1)[:, None, None]
    small = theta < 1e-6
    safe = np.where(small, 1.0, theta)
    a = np.where(small, 0.5 - theta**2 / 24.0, (1.0 - np.cos(safe)) / safe**2)
    b = np.where(small, 1.0 / 6.0 - theta**2 / 120.0, (safe - np.sin(safe)) / safe**3)
    k = skew(r)
    return np.eye(3) - a * k + b * (k @ k)


class MotionSpline:
    """Quintic splines of segment orientations and of fixed points, fitted to poses on a uniform time grid."""

    def __init__(self, frames: BodyFrames, points: dict[str, tuple[str, FloatArray]]):
        t = frames.time_s
        self._rotation: dict[str, BSpline] = {
            seg: make_interp_spline(t, matrix_to_rotvec(frames.rotation[seg]), k=5) for seg in frames.rotation
        }
        self._points: dict[str, BSpline] = {
            name: make_interp_spline(t, frames.point(seg, offset), k=5) for name, (seg, offset) in points.items()
        }

    def orientation(self, segment: str, time_s: FloatArray) -> tuple[FloatArray, FloatArray]:
        """World ← segment rotation matrices and body-frame angular velocity (rad/s) at ``time_s``."""
        spline = self._rotation[segment]
        r = spline(time_s)
        rate = spline(time_s, 1)
        omega = np.einsum("nij,nj->ni", right_jacobian(r), rate)
        return rotvec_to_matrix(r), omega

    def point(self, name: str, time_s: FloatArray) -> tuple[FloatArray, FloatArray]:
        """World position and acceleration of a fixed point."""
        spline = self._points[name]
        return spline(time_s), spline(time_s, 2)
