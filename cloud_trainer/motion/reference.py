"""The reference motion an environment imitates, and a vectorised sampler over several of them.

A :class:`ReferenceMotion` is a sequence of model poses (``qpos``, ``qvel`` in the twin's coordinates,
:mod:`cloud_trainer.twin.constants`) at a fixed time step, with the gait parameters the goal-conditioned policy is told
about, per-joint imitation weights, and forward-kinematics targets (centre of mass and limb ends relative to the root
in the heading frame, :func:`cloud_trainer.twin.kinematics.imitation_targets`).

Cyclic motions hold exactly one gait cycle: frame ``n_frames`` would be frame 0 moved by ``cycle_offset_m`` (the
root's displacement over one stride, no turn), so the cycle period is ``n_frames * dt_s`` and playing on past the end
walks on. Non-cyclic motions hold their frames once and stay at the last one.

Time resampling (Dai et al. 2025, Methods, Stage I: the clip nearest to a sampled (speed, stride length) goal is
"time-resampled so that its walking speed and total number of frames match the sampled target"): the cycle is
stretched in time to the period ``stride / speed``, and the root's horizontal path is scaled to the target stride.
Joint trajectories keep their shape; velocities scale with the time stretch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import mujoco
import numpy as np

from cloud_trainer.errors import ReferenceMotionError
from cloud_trainer.twin.constants import END_EFFECTOR_SITES, JOINT_NAMES, N_JOINTS, N_ROOT_QPOS, NQ, NV
from cloud_trainer.twin.kinematics import imitation_targets

#: Imitation weight of each joint by default: 1 for what the five IMUs (pelvis, thighs, shanks) measure (hips,
#: knees), 0.2 for what a clip fills from healthy phase-locked patterns (lumbar, ankles).
MEASURED_JOINT_WEIGHT, FILLED_JOINT_WEIGHT = 1.0, 0.2
DEFAULT_JOINT_WEIGHTS = np.array(
    [FILLED_JOINT_WEIGHT if j.startswith(("lumbar", "ankle")) else MEASURED_JOINT_WEIGHT for j in JOINT_NAMES]
)
#: Largest quaternion norm error accepted in root orientations.
QUAT_NORM_TOLERANCE = 1e-3


@dataclass(frozen=True)
class ReferenceFrames:
    """Reference state sampled at some times: one row per sample."""

    qpos: np.ndarray  # (N, NQ)
    qvel: np.ndarray  # (N, NV)
    com_rel_m: np.ndarray  # (N, 3)
    ends_rel_m: np.ndarray  # (N, n_ends, 3)

    def blended(self, other: ReferenceFrames, share: np.ndarray) -> ReferenceFrames:
        """Each row ``share`` (N,) of the way from this sample to ``other``'s, linearly; root orientations
        renormalised (meant for motions that differ in joint angles and pelvis height, not in heading)."""

        def mix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            w = share.reshape(-1, *([1] * (a.ndim - 1)))
            return a + w * (b - a)

        qpos = mix(self.qpos, other.qpos)
        qpos[:, 3:7] /= np.linalg.norm(qpos[:, 3:7], axis=1, keepdims=True)
        return ReferenceFrames(
            qpos=qpos,
            qvel=mix(self.qvel, other.qvel),
            com_rel_m=mix(self.com_rel_m, other.com_rel_m),
            ends_rel_m=mix(self.ends_rel_m, other.ends_rel_m),
        )


@dataclass(frozen=True, eq=False)
class ReferenceMotion:
    """One reference motion in model coordinates.

    Raises:
        ReferenceMotionError: inconsistent shapes, rates or flags, or values that are not finite.
    """

    #: Poses, (n_frames, NQ): root position (m, world), root quat_wxyz, joint angles (rad, ``JOINT_NAMES``).
    qpos: np.ndarray
    #: Velocities, (n_frames, NV): root linear (m/s, world), root angular (rad/s, pelvis frame), joint rates (rad/s).
    qvel: np.ndarray
    #: Time between frames, s.
    dt_s: float
    #: Whether the frames are one gait cycle that repeats (see the module docstring).
    cyclic: bool
    #: Duration of one gait cycle (stride), s; ``n_frames * dt_s`` for cyclic motions.
    cycle_period_s: float
    #: Mean walking speed, m/s.
    speed_m_s: float
    #: Stride length (distance covered by one gait cycle), m.
    stride_length_m: float
    #: Root displacement over one cycle (m, world); zero for a motion that does not travel.
    cycle_offset_m: np.ndarray
    #: Imitation weight per joint, (N_JOINTS,), non-negative, not all zero.
    joint_weights: np.ndarray
    #: Centre of mass relative to the root, heading frame, (n_frames, 3), m.
    com_rel_m: np.ndarray
    #: Limb ends (``END_EFFECTOR_SITES``) relative to the root, heading frame, (n_frames, n_ends, 3), m.
    ends_rel_m: np.ndarray
    name: str = ""
    #: Where the motion came from (file, clip id, retargeting), for provenance.
    source: str = ""
    #: Which DoFs were measured or filled, per joint name, for the record; not used by the maths.
    notes: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        def array(name: str, shape: tuple[int, ...]) -> np.ndarray:
            value = np.array(getattr(self, name), dtype=float)
            if value.shape != shape:
                raise ReferenceMotionError(f"{self._label()}{name} must have shape {shape}, got {value.shape}")
            if not np.all(np.isfinite(value)):
                bad = np.argwhere(~np.isfinite(value))[0]
                raise ReferenceMotionError(f"{self._label()}{name} holds a non-finite value at index {tuple(bad)}")
            value.flags.writeable = False
            object.__setattr__(self, name, value)
            return value

        qpos = np.asarray(self.qpos)
        if qpos.ndim != 2 or qpos.shape[0] < 2:
            raise ReferenceMotionError(f"{self._label()}qpos must be (n_frames ≥ 2, {NQ}), got shape {qpos.shape}")
        n = qpos.shape[0]
        array("qpos", (n, NQ))
        array("qvel", (n, NV))
        array("cycle_offset_m", (3,))
        weights = array("joint_weights", (N_JOINTS,))
        array("com_rel_m", (n, 3))
        array("ends_rel_m", (n, len(END_EFFECTOR_SITES), 3))
        for name in ("dt_s", "cycle_period_s"):
            value = float(getattr(self, name))
            if not np.isfinite(value) or value <= 0:
                raise ReferenceMotionError(f"{self._label()}{name} must be a positive number of seconds, got {value}")
            object.__setattr__(self, name, value)
        for name in ("speed_m_s", "stride_length_m"):
            value = float(getattr(self, name))
            if not np.isfinite(value) or value < 0:
                raise ReferenceMotionError(f"{self._label()}{name} must be ≥ 0, got {value}")
            object.__setattr__(self, name, value)
        object.__setattr__(self, "cyclic", bool(self.cyclic))
        if self.cyclic and abs(self.cycle_period_s - n * self.dt_s) > 0.5 * self.dt_s:
            raise ReferenceMotionError(
                f"{self._label()}a cyclic motion holds one cycle: cycle_period_s must be n_frames * dt_s = "
                f"{n * self.dt_s:.4f} s, got {self.cycle_period_s:.4f} s"
            )
        if np.any(weights < 0) or weights.sum() <= 0:
            raise ReferenceMotionError(f"{self._label()}joint_weights must be ≥ 0 and not all zero, got {weights}")
        norms = np.linalg.norm(self.qpos[:, 3:7], axis=1)
        worst = int(np.argmax(np.abs(norms - 1.0)))
        if abs(norms[worst] - 1.0) > QUAT_NORM_TOLERANCE:
            raise ReferenceMotionError(
                f"{self._label()}root quaternion of frame {worst} has norm {norms[worst]:.4f}; "
                "unit quaternions expected"
            )

    def _label(self) -> str:
        return f"reference motion {self.name!r}: " if self.name else "reference motion: "

    @property
    def n_frames(self) -> int:
        return int(self.qpos.shape[0])

    @property
    def duration_s(self) -> float:
        """Time spanned by the frames: ``n_frames * dt_s`` if cyclic (it wraps), else ``(n_frames - 1) * dt_s``."""
        return self.n_frames * self.dt_s if self.cyclic else (self.n_frames - 1) * self.dt_s

    @classmethod
    def from_qpos(
        cls,
        model: mujoco.MjModel,
        qpos: np.ndarray,
        dt_s: float,
        *,
        cyclic: bool,
        cycle_period_s: float | None = None,
        stride_length_m: float | None = None,
        joint_weights: np.ndarray | None = None,
        name: str = "",
        source: str = "",
    ) -> ReferenceMotion:
        """Build a reference from poses alone: velocities by central differences, gait parameters from the root path,
        forward-kinematics targets from ``model``.

        For a cyclic motion the last frame's successor is frame 0 moved by the cycle offset, estimated from the
        root's mean velocity over the frames (so a clean cycle needs no seam frame). For a non-cyclic motion,
        ``cycle_period_s`` and ``stride_length_m`` are needed unless it does not travel (standing).
        """
        frames = np.array(qpos, dtype=float)
        if frames.ndim != 2 or frames.shape[1] != NQ or frames.shape[0] < 2:
            raise ReferenceMotionError(f"qpos must be (n_frames ≥ 2, {NQ}), got shape {frames.shape}")
        if not np.all(np.isfinite(frames)):
            raise ReferenceMotionError("qpos holds non-finite values")
        frames[:, 3:7] /= np.linalg.norm(frames[:, 3:7], axis=1, keepdims=True)
        n = len(frames)
        root = frames[:, :3]
        if cyclic:
            offset = (root[-1] - root[0]) * n / (n - 1)
            offset[2] = 0.0
            period = n * dt_s
            stride = float(np.linalg.norm(offset[:2]))
            successor, predecessor = frames[0].copy(), frames[-1].copy()
            successor[:3] += offset
            predecessor[:3] -= offset
            following = np.vstack([frames[1:], successor])
            preceding = np.vstack([predecessor, frames[:-1]])
        else:
            offset = np.zeros(3)
            travelled = float(np.linalg.norm(root[-1, :2] - root[0, :2]))
            if travelled > 1e-6 and (cycle_period_s is None or stride_length_m is None):
                raise ReferenceMotionError(
                    "a non-cyclic motion that travels needs cycle_period_s and stride_length_m"
                )
            period = float(cycle_period_s) if cycle_period_s is not None else (n - 1) * dt_s
            stride = float(stride_length_m) if stride_length_m is not None else 0.0
            # one-sided differences at the two ends
            following = np.vstack([frames[1:], frames[-1:]])
            preceding = np.vstack([frames[:1], frames[:-1]])
        qvel = np.empty((n, NV))
        span_s = np.full(n, 2 * dt_s)
        if not cyclic:
            span_s[[0, -1]] = dt_s
        for i in range(n):
            mujoco.mj_differentiatePos(model, qvel[i], span_s[i], preceding[i], following[i])
        duration = n * dt_s if cyclic else (n - 1) * dt_s
        speed = stride / period if cyclic else float(np.linalg.norm(root[-1, :2] - root[0, :2])) / duration
        com, ends = imitation_targets(model, frames)
        return cls(
            qpos=frames,
            qvel=qvel,
            dt_s=dt_s,
            cyclic=cyclic,
            cycle_period_s=period,
            speed_m_s=speed,
            stride_length_m=stride,
            cycle_offset_m=offset,
            joint_weights=DEFAULT_JOINT_WEIGHTS if joint_weights is None else joint_weights,
            com_rel_m=com,
            ends_rel_m=ends,
            name=name,
            source=source,
        )

    def sample(self, time_s: np.ndarray | float) -> ReferenceFrames:
        """The reference at times ``time_s`` (s from frame 0), interpolated; cyclic motions walk on past the end."""
        times = np.atleast_1d(np.asarray(time_s, dtype=float))
        return ReferenceBank([self]).sample(np.zeros(times.shape, dtype=np.intp), times)

    def phase_to_time_s(self, phase: np.ndarray | float) -> np.ndarray:
        """Time of phase (0..1) within the cycle (cyclic) or within the whole motion (non-cyclic)."""
        span = self.cycle_period_s if self.cyclic else self.duration_s
        return np.asarray(phase, dtype=float) * span

    def at_phase(self, phase: np.ndarray | float) -> ReferenceFrames:
        """The reference at phase (0..1) of the cycle, interpolated between frames."""
        return self.sample(self.phase_to_time_s(phase))

    def resampled(self, speed_m_s: float, stride_length_m: float | None = None) -> ReferenceMotion:
        """This motion stretched in time to walk at ``speed_m_s`` with ``stride_length_m`` (default: its own).

        The period becomes ``stride / speed``; the root's horizontal path is scaled by the stride ratio; the frame
        step stays as close to ``dt_s`` as a whole number of frames per cycle allows.

        Raises:
            ReferenceMotionError: the motion does not travel, or a target is not positive.
        """
        if self.speed_m_s <= 0 or self.stride_length_m <= 0:
            raise ReferenceMotionError(f"{self._label()}cannot be resampled: it does not travel (speed 0)")
        stride = self.stride_length_m if stride_length_m is None else float(stride_length_m)
        if not (np.isfinite(speed_m_s) and speed_m_s > 0 and np.isfinite(stride) and stride > 0):
            raise ReferenceMotionError(
                f"resampling needs a positive speed and stride length, got {speed_m_s} m/s, {stride} m"
            )
        new_period = stride / speed_m_s
        time_scale = self.cycle_period_s / new_period
        stride_scale = stride / self.stride_length_m
        new_duration = self.duration_s / time_scale
        if self.cyclic:
            n_new = max(2, round(new_duration / self.dt_s))
            dt_new = new_duration / n_new
        else:
            n_new = max(2, round(new_duration / self.dt_s) + 1)
            dt_new = new_duration / (n_new - 1)
        times = np.arange(n_new) * dt_new
        bank = ReferenceBank([self])
        frames = bank.sample(
            np.zeros(n_new, dtype=np.intp), times * time_scale, time_scale=time_scale, stride_scale=stride_scale
        )
        offset = self.cycle_offset_m.copy()
        offset[:2] *= stride_scale
        return ReferenceMotion(
            qpos=frames.qpos,
            qvel=frames.qvel,
            dt_s=dt_new,
            cyclic=self.cyclic,
            cycle_period_s=new_period,
            speed_m_s=float(speed_m_s),
            stride_length_m=stride,
            cycle_offset_m=offset,
            joint_weights=self.joint_weights,
            com_rel_m=frames.com_rel_m,
            ends_rel_m=frames.ends_rel_m,
            name=self.name,
            source=f"{self.source} resampled to {speed_m_s:.3f} m/s, {stride:.3f} m".strip(),
            notes=dict(self.notes),
        )


class ReferenceBank:
    """Several reference motions stacked (padded to the longest) so that N samples take a few numpy operations.

    ``sample(ref_index, clip_time_s, time_scale, stride_scale)`` plays motion ``ref_index`` at ``clip_time_s`` of its
    own clock, as if resampled: root horizontal displacement from frame 0 times ``stride_scale``, velocities times
    ``time_scale`` (the clip clock's rate relative to real time; root horizontal velocity also times
    ``stride_scale``). With both scales 1 it is plain interpolation.
    """

    def __init__(self, motions: Sequence[ReferenceMotion]) -> None:
        if not motions:
            raise ReferenceMotionError("a reference bank needs at least one reference motion")
        self.motions = tuple(motions)
        n_max = max(m.n_frames for m in motions)
        r = len(motions)
        n_ends = len(END_EFFECTOR_SITES)
        self.qpos = np.zeros((r, n_max, NQ))
        self.qvel = np.zeros((r, n_max, NV))
        self.com_rel_m = np.zeros((r, n_max, 3))
        self.ends_rel_m = np.zeros((r, n_max, n_ends, 3))
        for i, m in enumerate(motions):
            self.qpos[i, : m.n_frames] = m.qpos
            self.qvel[i, : m.n_frames] = m.qvel
            self.com_rel_m[i, : m.n_frames] = m.com_rel_m
            self.ends_rel_m[i, : m.n_frames] = m.ends_rel_m
        self.n_frames = np.array([m.n_frames for m in motions])
        self.dt_s = np.array([m.dt_s for m in motions])
        self.cyclic = np.array([m.cyclic for m in motions])
        self.cycle_offset_m = np.array([m.cycle_offset_m for m in motions])
        self.cycle_period_s = np.array([m.cycle_period_s for m in motions])
        self.duration_s = np.array([m.duration_s for m in motions])
        self.speed_m_s = np.array([m.speed_m_s for m in motions])
        self.stride_length_m = np.array([m.stride_length_m for m in motions])
        self.joint_weights = np.array([m.joint_weights for m in motions])
        self.root0_xy_m = self.qpos[:, 0, :2].copy()

    def __len__(self) -> int:
        return len(self.motions)

    def phase(self, ref_index: np.ndarray, clip_time_s: np.ndarray) -> np.ndarray:
        """Phase in [0, 1) of the cycle (cyclic) or fraction of the motion played (non-cyclic, clipped to 1)."""
        cyclic = self.cyclic[ref_index]
        period = self.cycle_period_s[ref_index]
        return np.where(
            cyclic, np.mod(clip_time_s / period, 1.0), np.clip(clip_time_s / self.duration_s[ref_index], 0.0, 1.0)
        )

    def sample(
        self,
        ref_index: np.ndarray,
        clip_time_s: np.ndarray,
        time_scale: np.ndarray | float = 1.0,
        stride_scale: np.ndarray | float = 1.0,
        *,
        kinematic_targets: bool = True,
    ) -> ReferenceFrames:
        """Reference state of motions ``ref_index`` (N,) at their clip times (N,), see the class docstring."""
        ref = np.asarray(ref_index, dtype=np.intp)
        t = np.asarray(clip_time_s, dtype=float)
        n_frames, dt = self.n_frames[ref], self.dt_s[ref]
        cyclic = self.cyclic[ref]
        period = n_frames * dt
        cycles = np.where(cyclic, np.floor(t / period), 0.0)
        local = np.where(cyclic, t - cycles * period, np.clip(t, 0.0, (n_frames - 1) * dt))
        position = local / dt
        i0 = np.minimum(np.floor(position).astype(np.intp), n_frames - 1)
        alpha = np.clip(position - i0, 0.0, 1.0)[:, None]
        i1 = i0 + 1
        wrapped = i1 >= n_frames
        i1 = np.where(wrapped, np.where(cyclic, 0, n_frames - 1), i1)
        q0, q1 = self.qpos[ref, i0], self.qpos[ref, i1]
        offset = self.cycle_offset_m[ref]
        qpos = np.empty_like(q0)
        root1 = q1[:, :3] + (wrapped & cyclic)[:, None] * offset
        qpos[:, :3] = (1 - alpha) * q0[:, :3] + alpha * root1 + cycles[:, None] * offset
        quat1 = q1[:, 3:7] * np.where(np.sum(q0[:, 3:7] * q1[:, 3:7], axis=1, keepdims=True) < 0, -1.0, 1.0)
        quat = (1 - alpha) * q0[:, 3:7] + alpha * quat1
        qpos[:, 3:7] = quat / np.linalg.norm(quat, axis=1, keepdims=True)
        qpos[:, N_ROOT_QPOS:] = (1 - alpha) * q0[:, N_ROOT_QPOS:] + alpha * q1[:, N_ROOT_QPOS:]
        k = np.broadcast_to(np.asarray(stride_scale, dtype=float), ref.shape)[:, None]
        s = np.broadcast_to(np.asarray(time_scale, dtype=float), ref.shape)[:, None]
        root0 = self.root0_xy_m[ref]
        qpos[:, :2] = root0 + k * (qpos[:, :2] - root0)
        qvel = (1 - alpha) * self.qvel[ref, i0] + alpha * self.qvel[ref, i1]
        qvel *= s
        qvel[:, :2] *= k
        if kinematic_targets:
            a3 = alpha[:, :, None]
            com = (1 - alpha) * self.com_rel_m[ref, i0] + alpha * self.com_rel_m[ref, i1]
            ends = (1 - a3) * self.ends_rel_m[ref, i0] + a3 * self.ends_rel_m[ref, i1]
        else:
            com = ends = np.empty((len(ref), 0))
        return ReferenceFrames(qpos=qpos, qvel=qvel, com_rel_m=com, ends_rel_m=ends)

