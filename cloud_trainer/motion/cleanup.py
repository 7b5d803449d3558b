"""Kinematic clean-up of foot contact: no floating, no ground penetration, no sliding of the stance foot.

Dai et al. 2025 refine segmented clips "via the physics-based model to eliminate sensor-induced artifacts" such as
floating, vibration and ground penetration (Fig. 2b, d). This module does it kinematically on the model's chain;
the chain is injected (any :class:`~cloud_trainer.motion.kinematics.KinematicModel`: the light numpy chain here, or
the MuJoCo twin's forward kinematics once it exists):

1. **Stance.** With the pelvis at the origin (orientation kept), a foot is in stance where one of its points (heel,
   toe) is within ``contact_height_m`` of the lowest of the four and moves backward relative to the pelvis along
   the walking direction (a planted foot recedes as the body passes over it; a swinging one advances). Runs shorter
   than ``min_contact_s`` are dropped and gaps shorter than that closed. No root translation is needed, so this
   works for IMU clips and treadmill data alike.
2. **Height.** The root is raised or lowered frame by frame so that the lowest foot point touches the ground
   (z = 0): walking always has a foot down, so nothing floats and nothing penetrates.
3. **Horizontal path.** The foot planted most recently carries the root: from frame to frame the root moves by
   minus the displacement, relative to the pelvis, of that foot's lowest point (its pivot: heel, then toe), so the
   pivot stays exactly in place. Frames without stance keep the input's root velocity where it was measured.
4. **Planted points.** Within stance a foot's lowest point, and the other one while within ``flat_tolerance_m`` of
   it (foot flat), are planted where they landed (at z = 0). Damped least-squares inverse kinematics on each
   stance leg's six hinges holds them there, frame by frame, pulled toward the input pose plus the previous frame's
   correction decaying with time constant ``relax_s``: the correction starts from zero at landing, fades smoothly
   after lift-off, and absorbs what the model's hinges cannot follow (e.g. foot yaw from a dropped ankle rotation,
   the trailing foot in double support, a body with other proportions than the capture's).

What remains is measured and reported: ``max_slide_m_`` (largest horizontal drift of a planted point over one
contact), ``min_height_m_`` (penetration) and ``max_contact_height_m_`` (floating).
A physics pass in MuJoCo (the twin's PD controller tracking the cleaned reference) can follow once the twin exists.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from cloud_trainer.motion.cycles import make_cyclic, tile_cycle
from cloud_trainer.motion.joints import SIDES, joint_indices
from cloud_trainer.motion.kinematics import FOOT_POINTS_OF_SIDE, KinematicModel, LightKinematics
from cloud_trainer.motion.trajectory import JointTrajectory

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

#: Largest change of any hinge in one Gauss-Newton iteration, and the finite-difference step, rad.
_MAX_IK_STEP_RAD = 0.1
_FD_STEP_RAD = 1e-6
#: Weight of the pull toward the input pose relative to the pull toward the previous frame's correction.
_INPUT_PULL = 0.2
#: The leg hinges the inverse kinematics moves, per side, in this order, and how strongly each is held to its input:
#: the ankle three times more than hip and knee, so that a planted point is held by moving the leg, not by tilting the
#: foot (which would lift the toe at heel strike or dig it in).
LEG_JOINTS = ("hip_flexion", "hip_adduction", "hip_rotation", "knee_flexion", "ankle_dorsiflexion", "ankle_inversion")
LEG_PRIOR_WEIGHTS = (1.0, 1.0, 1.0, 1.0, 3.0, 3.0)


def runs(mask: BoolArray) -> list[tuple[int, int]]:
    """``[start, end)`` of each run of True in a 1-D mask."""
    padded = np.concatenate([[False], np.asarray(mask, bool), [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def _clean_runs(mask: BoolArray, min_frames: int) -> BoolArray:
    out = mask.copy()
    for start, end in runs(~out):  # close short gaps between contacts
        if start > 0 and end < len(out) and end - start < min_frames:
            out[start:end] = True
    for start, end in runs(out):  # drop short contacts
        if end - start < min_frames:
            out[start:end] = False
    return out


def contact_slides_m(points: FloatArray, contacts: BoolArray) -> FloatArray:
    """For every contact run of every point, the largest horizontal distance the point moved from where it landed."""
    slides = []
    for i in range(points.shape[1]):
        for start, end in runs(contacts[:, i]):
            xy = points[start:end, i, :2]
            slides.append(float(np.max(np.linalg.norm(xy - xy[0], axis=1))))
    return np.array(slides)


def _smooth(x: FloatArray, window: int) -> FloatArray:
    pad = window // 2
    padded = np.pad(x, (pad, window - 1 - pad), mode="edge")
    return np.convolve(padded, np.ones(window) / window, mode="valid")


class FootContactCleaner:
    """Contact clean-up of a walking trajectory (see the module docstring).

    Parameters:
        kinematics: the body whose feet are cleaned (default: the light chain at 1.75 m).
        contact_height_m: a foot within this height of the lowest foot point may be in stance.
        flat_tolerance_m: a stance foot's second point counts as planted while within this height of its lowest.
        min_contact_s: stance runs and gaps shorter than this are removed.
        anchor_horizontal: rebuild the root's horizontal path from the planted feet (step 3).
        hold_planted_points: run the inverse kinematics of step 4.
        relax_s: time constant with which an inverse-kinematics correction fades once no longer needed.
        ik_iterations: Gauss-Newton iterations per frame.
        ik_damping: weight of staying near the input pose, m²/rad² (1e-4: 1 rad costs as much as 1 cm of slide).

    Results (after :meth:`clean`): ``trajectory_`` (cleaned; cyclic inputs stay cyclic), ``stance_`` (T, 2) per
    side, ``contacts_`` (T, 4) planted points in :data:`~cloud_trainer.motion.kinematics.FOOT_POINTS` order,
    ``foot_points_m_`` (T, 4, 3), ``slides_m_`` (per contact run), ``max_slide_m_``, ``min_height_m_`` (≥ 0: no
    penetration), ``max_contact_height_m_`` (how high a planted point rises: floating), ``max_correction_rad_``.
    """

    def __init__(
        self,
        kinematics: KinematicModel | None = None,
        contact_height_m: float = 0.03,
        flat_tolerance_m: float = 0.005,
        min_contact_s: float = 0.05,
        anchor_horizontal: bool = True,
        hold_planted_points: bool = True,
        relax_s: float = 0.1,
        ik_iterations: int = 4,
        ik_damping: float = 1e-4,
    ) -> None:
        self.kinematics = kinematics if kinematics is not None else LightKinematics()
        self.contact_height_m = contact_height_m
        self.flat_tolerance_m = flat_tolerance_m
        self.min_contact_s = min_contact_s
        self.anchor_horizontal = anchor_horizontal
        self.hold_planted_points = hold_planted_points
        self.relax_s = relax_s
        self.ik_iterations = ik_iterations
        self.ik_damping = ik_damping

    def clean(self, trajectory: JointTrajectory) -> FootContactCleaner:
        """Clean ``trajectory``; a cyclic cycle trajectory is cleaned as the middle of three repetitions."""
        if trajectory.meta.get("cyclic"):
            n = trajectory.n_frames - 1
            cleaned, stance, contacts, correction = self._clean(tile_cycle(trajectory, 3))
            middle = cleaned.slice(n, 2 * n + 1)
            result = make_cyclic(middle.with_values(time_s=middle.time_s - middle.time_s[0]))
            stance, contacts, correction = stance[n : 2 * n + 1], contacts[n : 2 * n + 1], correction[n : 2 * n + 1]
            # Closing the loop spreads a small seam over the cycle; keep everything above the ground after it.
            points = self.kinematics.foot_points(result.root_pos_m, result.root_quat_wxyz, result.joint_angles_rad)
            pos = result.root_pos_m.copy()
            pos[:, 2] -= np.minimum(points[..., 2].min(axis=1), 0.0)
            result = result.with_values(root_pos_m=pos)
        else:
            result, stance, contacts, correction = self._clean(trajectory)
        points = self.kinematics.foot_points(result.root_pos_m, result.root_quat_wxyz, result.joint_angles_rad)
        self.stance_ = stance
        self.contacts_ = contacts
        self.foot_points_m_ = points
        self.slides_m_ = contact_slides_m(points, contacts)
        self.max_slide_m_ = float(self.slides_m_.max()) if self.slides_m_.size else 0.0
        self.min_height_m_ = float(points[..., 2].min())
        heights = points[..., 2][contacts]
        self.max_contact_height_m_ = float(heights.max()) if heights.size else 0.0
        self.max_correction_rad_ = float(np.abs(correction).max())
        self.trajectory_ = result.with_values(
            meta={
                "cleanup": {
                    "max_slide_m": self.max_slide_m_,
                    "min_height_m": self.min_height_m_,
                    "max_contact_height_m": self.max_contact_height_m_,
                    "max_correction_rad": self.max_correction_rad_,
                    "stance_fraction": stance.mean(axis=0).round(3).tolist(),
                }
            }
        )
        return self

    # --- step 1 ---------------------------------------------------------------------------------------------------

    def detect_stance(self, trajectory: JointTrajectory) -> BoolArray:
        """(T, 2) stance flags per side (r, l) from the pose alone (step 1 of the module docstring)."""
        n = trajectory.n_frames
        relative = self.kinematics.foot_points(np.zeros((n, 3)), trajectory.root_quat_wxyz, trajectory.joint_angles_rad)
        height = relative[..., 2] - relative[..., 2].min(axis=1, keepdims=True)
        heading = _smooth(trajectory.heading_rad(), max(1, round(0.5 * trajectory.sampling_rate_hz)))
        forward = np.stack([np.cos(heading), np.sin(heading)], axis=1)
        velocity = np.gradient(relative[..., :2], trajectory.time_s, axis=0)
        receding = np.einsum("tpk,tk->tp", velocity, forward) < 0.0
        low = height < self.contact_height_m
        min_frames = max(1, round(self.min_contact_s * trajectory.sampling_rate_hz))
        stance = []
        for side in SIDES:
            idx = list(FOOT_POINTS_OF_SIDE[side])
            raw = (low[:, idx] & receding[:, idx]).any(axis=1)
            stance.append(_clean_runs(raw, min_frames))
        return np.stack(stance, axis=1)

    # --- steps 2-4 ------------------------------------------------------------------------------------------------

    def _clean(self, trajectory: JointTrajectory) -> tuple[JointTrajectory, BoolArray, BoolArray, FloatArray]:
        n = trajectory.n_frames
        quat = trajectory.root_quat_wxyz
        angles = trajectory.joint_angles_rad.copy()
        stance = self.detect_stance(trajectory)
        relative = self.kinematics.foot_points(np.zeros((n, 3)), quat, angles)
        weights = self.support_weights(stance)
        pivot_index = np.stack(
            [np.asarray(FOOT_POINTS_OF_SIDE[s])[np.argmin(relative[:, list(FOOT_POINTS_OF_SIDE[s]), 2], axis=1)]
             for s in SIDES], axis=1
        )  # (T, 2): index into FOOT_POINTS of each foot's lowest point (its pivot)  # fmt: skip
        pos = trajectory.root_pos_m.copy()
        supported = weights.sum(axis=1) > 0
        pivot_z = np.take_along_axis(relative[..., 2], pivot_index, axis=1)
        pos[:, 2] = np.where(supported, -(weights * pivot_z).sum(axis=1), -relative[..., 2].min(axis=1))
        if self.anchor_horizontal:
            pos[:, :2] = self._root_xy(trajectory, relative, pivot_index, stance, weights)
        contacts = self._planted_points(relative + pos[:, None, :], stance)
        correction = np.zeros_like(angles)
        if self.hold_planted_points:
            angles, correction = self._hold(trajectory, pos, angles, contacts)
        lowest = self.kinematics.foot_points(np.zeros((n, 3)), quat, angles)[..., 2].min(axis=1)
        pos[:, 2] = np.maximum(pos[:, 2], -lowest)  # lift only where something would still dip below the ground
        measured = trajectory.root_pos_measured.copy()
        measured[2] = True
        if self.anchor_horizontal:
            measured[:2] = True
        cleaned = trajectory.with_values(
            joint_angles_rad=angles,
            root_pos_m=pos,
            root_pos_measured=measured,
            meta={"root_translation": "from planted feet" if self.anchor_horizontal else "height from feet"},
        )
        return cleaned, stance, contacts, correction

    @staticmethod
    def support_weights(stance: BoolArray) -> FloatArray:
        """(T, 2) share of the root each foot carries: 1 in single stance; in double support the foot that landed
        last ramps from 0 at its landing to 1 at the other foot's lift-off; 0 where neither foot is down."""
        n = stance.shape[0]
        weights = stance.astype(float)
        since = np.full((n, 2), -1)
        for foot in range(2):
            for start, end in runs(stance[:, foot]):
                since[start:end, foot] = start
        for start, end in runs(stance.all(axis=1)):
            new = 0 if since[start, 0] > since[start, 1] else 1
            ramp = (np.arange(start, end) - start + 1.0) / (end - start + 1.0)
            weights[start:end, new] = ramp
            weights[start:end, 1 - new] = 1.0 - ramp
        return weights

    def _root_xy(
        self,
        trajectory: JointTrajectory,
        relative: FloatArray,
        pivot_index: NDArray[np.intp],
        stance: BoolArray,
        weights: FloatArray,
    ) -> FloatArray:
        """Root displacement per frame: minus the support-weighted displacement of the feet's pivots (each foot's
        pivot at the later frame, followed from the earlier one, so a heel-to-toe hand-over adds no jump)."""
        both = stance[1:] & stance[:-1]
        w = weights[1:] * both
        total = w.sum(axis=1)
        later = np.take_along_axis(relative[1:, :, None, :2], pivot_index[1:, :, None, None], axis=1)[:, :, 0]
        earlier = np.take_along_axis(relative[:-1, :, None, :2], pivot_index[1:, :, None, None], axis=1)[:, :, 0]
        moved = later - earlier
        delta = -(w[..., None] * moved).sum(axis=1) / np.maximum(total, 1e-12)[:, None]
        delta[total <= 0] = np.nan
        if trajectory.root_pos_measured[:2].all():
            delta = np.where(np.isnan(delta), np.diff(trajectory.root_pos_m[:, :2], axis=0), delta)
        valid = ~np.isnan(delta).any(axis=1)
        if valid.any() and not valid.all():
            steps = np.arange(len(delta))
            delta = np.stack([np.interp(steps, steps[valid], d[valid]) for d in delta.T], axis=1)
        elif not valid.any():
            delta = np.zeros_like(delta)
        return trajectory.root_pos_m[0, :2] + np.concatenate([np.zeros((1, 2)), np.cumsum(delta, axis=0)])

    def _planted_points(self, world: FloatArray, stance: BoolArray) -> BoolArray:
        contacts = np.zeros(world.shape[:2], dtype=bool)
        for foot, side in enumerate(SIDES):
            idx = list(FOOT_POINTS_OF_SIDE[side])
            z = world[:, idx, 2]
            planted = (z - z.min(axis=1, keepdims=True)) <= self.flat_tolerance_m
            contacts[:, idx] = planted & stance[:, foot : foot + 1]
        return contacts

    def _hold(
        self, trajectory: JointTrajectory, pos: FloatArray, angles: FloatArray, contacts: BoolArray
    ) -> tuple[FloatArray, FloatArray]:
        """Step 4: per leg, frame by frame, damped Gauss-Newton toward the planted points' anchors.

        A point's anchor is where it stands, in the pose carried over from the previous frame, at the frame it is
        planted (its z set to the ground): anchors of heel and toe therefore always agree with the foot's geometry.
        """
        n = trajectory.n_frames
        decay = float(np.exp(-trajectory.dt_s / self.relax_s)) if self.relax_s > 0 else 0.0
        out = angles.copy()
        correction = np.zeros_like(angles)
        quat = trajectory.root_quat_wxyz
        for side in SIDES:
            cols = joint_indices([f"{d}_{side}" for d in LEG_JOINTS])
            idx = list(FOOT_POINTS_OF_SIDE[side])
            previous = np.zeros(len(cols))
            anchors = np.full((len(idx), 3), np.nan)
            for t in range(n):
                prior = angles[t, cols] + decay * previous
                planted = contacts[t, idx]
                landing = planted & ((t == 0) | ~contacts[max(t - 1, 0), idx])
                if landing.any():
                    pose = angles[t].copy()
                    pose[cols] = prior
                    here = self.kinematics.foot_points(pos[t : t + 1], quat[t : t + 1], pose[None])[0, idx]
                    anchors[landing, :2] = here[landing, :2]
                    anchors[landing, 2] = 0.0
                q = self._solve_leg(pos[t], quat[t], angles[t], cols, idx, planted, anchors, prior)
                out[t, cols] = q
                previous = q - angles[t, cols]
                correction[t, cols] = previous
        return out, correction

    def _solve_leg(
        self,
        pos: FloatArray,
        quat: FloatArray,
        pose: FloatArray,
        cols: list[int],
        idx: list[int],
        planted: BoolArray,
        targets: FloatArray,
        prior: FloatArray,
    ) -> FloatArray:
        """One leg at one frame: planted points to their anchors, any other point below the ground up to z = 0,
        hinges pulled toward ``prior`` (continuity) and, more weakly, toward the input pose (so that a correction
        cannot drift along directions the constraints leave free, e.g. a nearly straight knee). Returns ``prior``
        untouched where nothing is constrained."""
        k = len(cols)
        q = prior.copy()
        original = pose[cols]
        W = self.ik_damping * np.asarray(LEG_PRIOR_WEIGHTS)
        W_input = _INPUT_PULL * W
        for iteration in range(self.ik_iterations + 1):
            # One FK call: the current pose and one finite-difference bump per hinge.
            batch = np.repeat(pose[None], k + 1, axis=0)
            batch[:, cols] = q
            batch[1:, cols] += _FD_STEP_RAD * np.eye(k)
            points = self.kinematics.foot_points(
                np.repeat(pos[None], k + 1, axis=0), np.repeat(quat[None], k + 1, axis=0), batch
            )[:, idx]
            weight = np.zeros((len(idx), 3))
            weight[planted] = 1.0
            weight[~planted & (points[0, :, 2] < 0.0), 2] = 1.0
            if not weight.any() or iteration == self.ik_iterations:
                break
            goal = np.where(np.isnan(targets), 0.0, targets)
            residual = ((points[0] - goal) * weight).ravel()
            J = ((points[1:] - points[0]) * weight).reshape(k, -1).T / _FD_STEP_RAD
            rhs = -J.T @ residual - W * (q - prior) - W_input * (q - original)
            step = np.linalg.solve(J.T @ J + np.diag(W + W_input), rhs)
            # Trust region: the chain is far from linear over large steps (a Gauss-Newton overshoot flips a knee).
            q = q + step * min(1.0, _MAX_IK_STEP_RAD / max(float(np.abs(step).max()), 1e-12))
        return q
