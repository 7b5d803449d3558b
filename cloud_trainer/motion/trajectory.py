"""``JointTrajectory``: a motion on the model's joints, independent of MuJoCo.

A time grid, the fifteen hinge angles of :data:`~cloud_trainer.motion.joints.JOINT_NAMES` in radians, the free root
(pelvis position in the world frame and ``quat_wxyz_world_pelvis``), which of those came from measurement, per-joint
imitation weights and metadata (source file, license, what a reader had to drop). Every stage of the pipeline
(readers, segmentation, clean-up, filling, the healthy library) takes and returns this type.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.spatial.transform import Rotation, Slerp

from cloud_trainer.motion.errors import MotionQualityError
from cloud_trainer.motion.joints import JOINT_INDEX, JOINT_NAMES, N_JOINTS, mirror_joint_name
from cloud_trainer.motion.rotations import make_quat_continuous, matrix_from_wxyz, wxyz_from_matrix

FloatArray = NDArray[np.float64]

#: Imitation weight of a joint taken from measurement, and of one filled from healthy phase-locked patterns
#: (the twin's ReferenceMotion uses the same 1 and 0.2 by default).
MEASURED_WEIGHT = 1.0
FILLED_WEIGHT = 0.2

#: Relative spread of sample intervals accepted as one uniform grid.
_UNIFORM_TOLERANCE = 1e-3


@dataclass(frozen=True)
class JointTrajectory:
    """A motion on the model's joints, sampled on a uniform time grid.

    Attributes:
        time_s: (T,) sample times, strictly increasing and uniform.
        joint_angles_rad: (T, 15) hinge angles in :data:`JOINT_NAMES` order and sign convention.
        root_pos_m: (T, 3) pelvis origin in the world frame (x forward, y left, z up).
        root_quat_wxyz: (T, 4) ``quat_wxyz_world_pelvis``, continuous in sign.
        joints_measured: (15,) True where the angle came from the data, False where it was filled or set to zero.
        root_pos_measured: (3,) True per world axis whose root translation came from the data.
        joint_weights: (15,) imitation weight per joint (1 measured, low where filled).
        source: what the motion came from (file path, library clip id, "synthetic").
        meta: anything else a stage records (license, reader notes, dropped degrees of freedom, clean-up figures).
    """

    time_s: FloatArray
    joint_angles_rad: FloatArray
    root_pos_m: FloatArray
    root_quat_wxyz: FloatArray
    joints_measured: NDArray[np.bool_]
    root_pos_measured: NDArray[np.bool_]
    joint_weights: FloatArray
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    # --- construction ---------------------------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        time_s: ArrayLike,
        joint_angles_rad: ArrayLike,
        root_pos_m: ArrayLike | None = None,
        root_quat_wxyz: ArrayLike | None = None,
        joints_measured: ArrayLike | None = None,
        root_pos_measured: ArrayLike | None = None,
        joint_weights: ArrayLike | None = None,
        source: str = "",
        meta: dict[str, Any] | None = None,
    ) -> JointTrajectory:
        """Validate and build a trajectory; missing root parts become zeros / identity and are marked unmeasured.

        Raises :class:`MotionQualityError` naming the problem for NaNs, a non-uniform or non-increasing time grid,
        fewer than two frames, or arrays of the wrong shape.
        """
        t = np.asarray(time_s, dtype=float)
        angles = np.asarray(joint_angles_rad, dtype=float)
        n = len(t)
        where = f" ({source})" if source else ""
        if t.ndim != 1 or n < 2:
            raise MotionQualityError(
                f"a trajectory needs a 1-D time grid of at least 2 frames, got shape {t.shape}{where}"
            )
        if angles.shape != (n, N_JOINTS):
            raise MotionQualityError(f"joint angles must have shape ({n}, {N_JOINTS}), got {angles.shape}{where}")
        dt = np.diff(t)
        if np.any(~np.isfinite(t)) or np.any(dt <= 0.0):
            raise MotionQualityError(f"time must be finite and strictly increasing{where}")
        if np.ptp(dt) > _UNIFORM_TOLERANCE * np.median(dt):
            raise MotionQualityError(
                f"time grid is not uniform (intervals {dt.min():.6g}…{dt.max():.6g} s){where}; resample it first"
            )
        if root_pos_m is None:
            pos = np.zeros((n, 3))
            pos_measured = np.zeros(3, dtype=bool)
        else:
            pos = np.asarray(root_pos_m, dtype=float)
            pos_measured = np.ones(3, dtype=bool)
        if root_pos_measured is not None:
            pos_measured = np.asarray(root_pos_measured, dtype=bool)
        quat = np.tile([1.0, 0.0, 0.0, 0.0], (n, 1)) if root_quat_wxyz is None else np.asarray(root_quat_wxyz, float)
        if pos.shape != (n, 3) or quat.shape != (n, 4):
            raise MotionQualityError(
                f"root position must be ({n}, 3) and root quaternion ({n}, 4), got {pos.shape} and {quat.shape}{where}"
            )
        for name, arr in (("joint angles", angles), ("root position", pos), ("root orientation", quat)):
            bad = ~np.isfinite(arr)
            if bad.any():
                frames = np.flatnonzero(bad.any(axis=1))
                raise MotionQualityError(
                    f"{name} contain NaN or infinite values in {len(frames)} of {n} frames (first at frame "
                    f"{frames[0]}, t = {t[frames[0]]:.3f} s){where}; a reference motion needs finite values throughout"
                )
        norms = np.linalg.norm(quat, axis=1)
        if np.any(norms < 1e-9):
            raise MotionQualityError(f"root quaternion of zero length{where}")
        quat = make_quat_continuous(quat / norms[:, None])
        measured = np.ones(N_JOINTS, dtype=bool) if joints_measured is None else np.asarray(joints_measured, bool)
        if joint_weights is None:
            weights = np.where(measured, MEASURED_WEIGHT, FILLED_WEIGHT)
        else:
            weights = np.asarray(joint_weights, dtype=float)
        if measured.shape != (N_JOINTS,) or weights.shape != (N_JOINTS,) or pos_measured.shape != (3,):
            raise MotionQualityError(f"per-joint flags and weights must have shape ({N_JOINTS},){where}")
        return cls(t, angles, pos, quat, measured, pos_measured, weights, source, dict(meta or {}))

    def __repr__(self) -> str:
        measured = int(self.joints_measured.sum())
        return (
            f"JointTrajectory({self.n_frames} frames over {self.duration_s:.3f} s at {self.sampling_rate_hz:.4g} Hz, "
            f"{measured}/{len(self.joints_measured)} joints measured, source={self.source!r})"
        )

    # --- derived values -------------------------------------------------------------------------------------------

    @property
    def n_frames(self) -> int:
        """Number of frames T."""
        return len(self.time_s)

    @property
    def dt_s(self) -> float:
        """Sample interval."""
        return float((self.time_s[-1] - self.time_s[0]) / (self.n_frames - 1))

    @property
    def sampling_rate_hz(self) -> float:
        """Frames per second."""
        return 1.0 / self.dt_s

    @property
    def duration_s(self) -> float:
        """Time from the first to the last frame."""
        return float(self.time_s[-1] - self.time_s[0])

    def angle(self, name: str) -> FloatArray:
        """One joint's angle over time, rad."""
        return self.joint_angles_rad[:, JOINT_INDEX[name]]

    def heading_rad(self) -> FloatArray:
        """Yaw of the pelvis forward (x) axis in the world's horizontal plane, unwrapped, rad."""
        x_axis = matrix_from_wxyz(self.root_quat_wxyz)[:, :, 0]
        return np.unwrap(np.arctan2(x_axis[:, 1], x_axis[:, 0]))

    # --- transformations ------------------------------------------------------------------------------------------

    def with_values(self, **changes: Any) -> JointTrajectory:
        """A copy with some fields replaced (arrays are not copied); ``meta`` entries are merged, not replaced."""
        if "meta" in changes:
            changes["meta"] = {**self.meta, **changes["meta"]}
        return replace(self, **changes)

    def slice(self, start: int, end: int) -> JointTrajectory:
        """Frames ``[start, end)``, time kept as it was."""
        if not 0 <= start < end <= self.n_frames or end - start < 2:
            raise MotionQualityError(f"slice [{start}, {end}) outside 0…{self.n_frames} or shorter than 2 frames")
        return self.with_values(
            time_s=self.time_s[start:end].copy(),
            joint_angles_rad=self.joint_angles_rad[start:end].copy(),
            root_pos_m=self.root_pos_m[start:end].copy(),
            root_quat_wxyz=self.root_quat_wxyz[start:end].copy(),
        )

    def resample(self, time_s: ArrayLike) -> JointTrajectory:
        """Values at new times inside the current span: angles and position linearly, orientation by slerp."""
        t_new = np.asarray(time_s, dtype=float)
        if t_new.ndim != 1 or len(t_new) < 2:
            raise MotionQualityError("resampling needs at least 2 new times")
        if t_new[0] < self.time_s[0] - 1e-9 or t_new[-1] > self.time_s[-1] + 1e-9:
            raise MotionQualityError(
                f"resampling times {t_new[0]:.3f}…{t_new[-1]:.3f} s leave the clip's span "
                f"{self.time_s[0]:.3f}…{self.time_s[-1]:.3f} s"
            )
        t_new = np.clip(t_new, self.time_s[0], self.time_s[-1])
        angles = np.stack([np.interp(t_new, self.time_s, a) for a in self.joint_angles_rad.T], axis=1)
        pos = np.stack([np.interp(t_new, self.time_s, p) for p in self.root_pos_m.T], axis=1)
        return self.with_values(
            time_s=t_new,
            joint_angles_rad=angles,
            root_pos_m=pos,
            root_quat_wxyz=slerp_wxyz(self.time_s, self.root_quat_wxyz, t_new),
        )

    def resample_uniform(self, sampling_rate_hz: float) -> JointTrajectory:
        """The same span on a uniform grid at ``sampling_rate_hz``."""
        n = int(np.floor(self.duration_s * sampling_rate_hz + 1e-9)) + 1
        return self.resample(self.time_s[0] + np.arange(n) / sampling_rate_hz)

    def time_scaled(self, factor: float) -> JointTrajectory:
        """The same poses played ``factor`` times slower (times multiplied by ``factor``); paths are unchanged."""
        if not factor > 0.0:
            raise MotionQualityError(f"time scale factor must be positive, got {factor}")
        return self.with_values(time_s=self.time_s[0] + (self.time_s - self.time_s[0]) * factor)

    def mirrored(self) -> JointTrajectory:
        """The left-right mirror image (reflection through the world x-z plane): right and left swap.

        Lumbar bending and rotation change sign; the other angles swap sides with their signs kept (the sign
        convention is anatomical on both sides). Root y is negated; the pelvis orientation is reflected.
        """
        order = [JOINT_INDEX[mirror_joint_name(n)] for n in JOINT_NAMES]
        angles = self.joint_angles_rad[:, order].copy()
        for name in ("lumbar_bending", "lumbar_rotation"):
            angles[:, JOINT_INDEX[name]] *= -1.0
        M = np.diag([1.0, -1.0, 1.0])
        R = M @ matrix_from_wxyz(self.root_quat_wxyz) @ M
        pos = self.root_pos_m * np.array([1.0, -1.0, 1.0])
        return self.with_values(
            joint_angles_rad=angles,
            root_pos_m=pos,
            root_quat_wxyz=make_quat_continuous(wxyz_from_matrix(R)),
            joints_measured=self.joints_measured[order].copy(),
            joint_weights=self.joint_weights[order].copy(),
            source=f"{self.source} (mirrored)",
            meta={"mirrored": not self.meta.get("mirrored", False)},
        )

    # --- the model's layout ---------------------------------------------------------------------------------------

    def qpos(self) -> FloatArray:
        """(T, 22): free root (pos xyz, quat wxyz), then the hinge angles in :data:`JOINT_NAMES` order."""
        return np.concatenate([self.root_pos_m, self.root_quat_wxyz, self.joint_angles_rad], axis=1)

    def qvel(self) -> FloatArray:
        """(T, 21) finite-difference velocities in MuJoCo's free-joint layout.

        Root linear velocity in the world frame, root angular velocity in the pelvis (local) frame as MuJoCo's free
        joint has it, then hinge velocities; central differences inside, one-sided at the ends.
        """
        t = self.time_s
        lin = np.gradient(self.root_pos_m, t, axis=0)
        joints = np.gradient(self.joint_angles_rad, t, axis=0)
        R = matrix_from_wxyz(self.root_quat_wxyz)
        dR = np.gradient(R, t, axis=0)
        # ω̂_local = Rᵀ Ṙ (skew-symmetric); take its vee.
        W = np.einsum("tji,tjk->tik", R, dR)
        ang = 0.5 * np.stack([W[:, 2, 1] - W[:, 1, 2], W[:, 0, 2] - W[:, 2, 0], W[:, 1, 0] - W[:, 0, 1]], axis=1)
        return np.concatenate([lin, ang, joints], axis=1)


def slerp_wxyz(time_s: ArrayLike, quat_wxyz: ArrayLike, new_time_s: ArrayLike) -> FloatArray:
    """Spherical linear interpolation of w-first quaternions (T, 4) at new times inside the span."""
    q = np.asarray(quat_wxyz, dtype=float)
    rotations = Rotation.from_quat(np.concatenate([q[:, 1:], q[:, :1]], axis=1))
    rot = Slerp(np.asarray(time_s, float), rotations)(np.asarray(new_time_s, float))
    return make_quat_continuous(wxyz_from_matrix(rot.as_matrix()))
