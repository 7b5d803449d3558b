"""Bring a reader's samples onto the uniform time grid :class:`JointTrajectory` requires."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from cloud_trainer.motion.errors import MotionQualityError
from cloud_trainer.motion.trajectory import JointTrajectory, slerp_wxyz

#: Relative spread of intervals below which a grid counts as uniform (and is only re-spaced, not interpolated).
UNIFORM_TOLERANCE = 1e-3


def to_uniform_trajectory(
    time_s: ArrayLike,
    joint_angles_rad: ArrayLike,
    root_pos_m: ArrayLike | None,
    root_quat_wxyz: ArrayLike,
    *,
    source: str,
    meta: dict[str, Any],
    **flags: Any,
) -> JointTrajectory:
    """A trajectory on a uniform grid: sample times that jitter by less than 0.1 % are re-spaced evenly; others are
    interpolated (angles and position linearly, orientation by slerp) at the median rate, noted in ``meta``."""
    t = np.asarray(time_s, dtype=float)
    if t.ndim != 1 or len(t) < 2:
        raise MotionQualityError(f"{source}: needs at least 2 frames, got {t.size}")
    dt = np.diff(t)
    if not np.all(np.isfinite(t)) or np.any(dt <= 0.0):
        bad = int(np.flatnonzero(~np.isfinite(dt) | (dt <= 0.0))[0]) if len(dt) else 0
        raise MotionQualityError(f"{source}: time is not strictly increasing (at frame {bad + 1})")
    step = float(np.median(dt))
    angles = np.asarray(joint_angles_rad, dtype=float)
    quat = np.asarray(root_quat_wxyz, dtype=float)
    pos = None if root_pos_m is None else np.asarray(root_pos_m, dtype=float)
    if np.ptp(dt) <= UNIFORM_TOLERANCE * step:
        uniform = t[0] + np.arange(len(t)) * (t[-1] - t[0]) / (len(t) - 1)
    else:
        n = int(np.floor((t[-1] - t[0]) / step + 1e-9)) + 1
        uniform = t[0] + np.arange(n) * step
        angles = np.stack([np.interp(uniform, t, a) for a in angles.T], axis=1)
        if pos is not None:
            pos = np.stack([np.interp(uniform, t, p) for p in pos.T], axis=1)
        if np.all(np.isfinite(quat)) and np.all(np.linalg.norm(quat, axis=1) > 0):
            quat = slerp_wxyz(t, quat / np.linalg.norm(quat, axis=1, keepdims=True), uniform)
        else:
            quat = np.full((n, 4), np.nan)
        meta = {**meta, "resampled_from_nonuniform_grid": True, "sampling_rate_hz": 1.0 / step}
    return JointTrajectory.create(uniform, angles, pos, quat, source=source, meta=meta, **flags)
