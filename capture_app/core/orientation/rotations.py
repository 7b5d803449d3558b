"""Small rotation helpers for the orientation package, vectorised over leading axes, quaternions w-first.

Conventions as in :mod:`sensor_drivers.frames`: Hamilton quaternions, ``quat_wxyz_a_b`` and ``R_a_b`` map vectors of
frame ``b`` into frame ``a``. Heading is the angle about world z, counter-clockwise from world x.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from sensor_drivers.quaternion import rotation_from_wxyz, wxyz_from_rotation

FloatArray = NDArray[np.float64]


def matrix_from_quat(quat_wxyz: ArrayLike) -> FloatArray:
    """Rotation matrices (…, 3, 3) from unit quaternions (…, 4); NaN quaternions give NaN matrices."""
    q = np.asarray(quat_wxyz, dtype=float)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    R = np.empty((*q.shape[:-1], 3, 3))
    R[..., 0, 0] = 1.0 - 2.0 * (y * y + z * z)
    R[..., 0, 1] = 2.0 * (x * y - w * z)
    R[..., 0, 2] = 2.0 * (x * z + w * y)
    R[..., 1, 0] = 2.0 * (x * y + w * z)
    R[..., 1, 1] = 1.0 - 2.0 * (x * x + z * z)
    R[..., 1, 2] = 2.0 * (y * z - w * x)
    R[..., 2, 0] = 2.0 * (x * z - w * y)
    R[..., 2, 1] = 2.0 * (w * x + y * z)
    R[..., 2, 2] = 1.0 - 2.0 * (x * x + y * y)
    return R


def quat_multiply(a_wxyz: ArrayLike, b_wxyz: ArrayLike) -> FloatArray:
    """Hamilton product ``a ⊗ b`` (as :func:`sensor_drivers.quaternion.multiply`, without its axis moves: this one
    runs per live block)."""
    a = np.asarray(a_wxyz, dtype=float)
    b = np.asarray(b_wxyz, dtype=float)
    aw, ax, ay, az = a[..., 0], a[..., 1], a[..., 2], a[..., 3]
    bw, bx, by, bz = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    out = np.empty(np.broadcast_shapes(a.shape, b.shape))
    out[..., 0] = aw * bw - ax * bx - ay * by - az * bz
    out[..., 1] = aw * bx + ax * bw + ay * bz - az * by
    out[..., 2] = aw * by - ax * bz + ay * bw + az * bx
    out[..., 3] = aw * bz + ax * by - ay * bx + az * bw
    return out


def quat_from_matrix(R: ArrayLike) -> FloatArray:
    """Unit quaternions (…, 4), w ≥ 0, from rotation matrices (…, 3, 3); rows with NaN stay NaN."""
    R = np.asarray(R, dtype=float)
    flat = R.reshape(-1, 3, 3)
    out = np.full((flat.shape[0], 4), np.nan)
    ok = np.all(np.isfinite(flat), axis=(1, 2))
    if ok.any():
        from scipy.spatial.transform import Rotation

        out[ok] = wxyz_from_rotation(Rotation.from_matrix(flat[ok]))
    return out.reshape(*R.shape[:-2], 4)


def rot_z(angle_rad: ArrayLike) -> FloatArray:
    """Rotations about z by ``angle_rad`` (…) as matrices (…, 3, 3)."""
    a = np.asarray(angle_rad, dtype=float)
    c, s = np.cos(a), np.sin(a)
    R = np.zeros((*a.shape, 3, 3))
    R[..., 0, 0], R[..., 0, 1] = c, -s
    R[..., 1, 0], R[..., 1, 1] = s, c
    R[..., 2, 2] = 1.0
    return R


def quat_rot_z(angle_rad: float) -> FloatArray:
    """The quaternion of a rotation about z by ``angle_rad``."""
    return np.array([np.cos(angle_rad / 2.0), 0.0, 0.0, np.sin(angle_rad / 2.0)])


def heading_rad(vec: ArrayLike) -> FloatArray:
    """Heading of vectors (…, 3): the angle of their horizontal part about world z, from world x."""
    v = np.asarray(vec, dtype=float)
    return np.arctan2(v[..., 1], v[..., 0])


def wrap_rad(angle_rad: ArrayLike) -> FloatArray:
    """Angles wrapped into [-π, π)."""
    return (np.asarray(angle_rad, dtype=float) + np.pi) % (2.0 * np.pi) - np.pi


def circular_mean_rad(angle_rad: ArrayLike, weights: ArrayLike | None = None) -> float:
    """The mean direction of angles (NaN ignored); NaN when there are none."""
    a = np.asarray(angle_rad, dtype=float).ravel()
    w = np.ones_like(a) if weights is None else np.asarray(weights, dtype=float).ravel()
    ok = np.isfinite(a) & np.isfinite(w)
    if not ok.any():
        return float("nan")
    return float(np.arctan2(np.sum(w[ok] * np.sin(a[ok])), np.sum(w[ok] * np.cos(a[ok]))))


def unit(vec: ArrayLike) -> FloatArray:
    """Vectors (…, 3) scaled to unit length (zero vectors become NaN)."""
    v = np.asarray(vec, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return v / np.linalg.norm(v, axis=-1, keepdims=True)


def frame_from_z_and_y(z_axis: ArrayLike, y_hint: ArrayLike) -> FloatArray:
    """A right-handed frame (columns x, y, z) whose z is ``z_axis`` exactly and whose y is ``y_hint`` made
    orthogonal to it (Gram–Schmidt). All vectors in one common frame; the result maps frame vectors into it."""
    z = unit(z_axis)
    y = np.asarray(y_hint, dtype=float)
    y = unit(y - np.sum(y * z, axis=-1, keepdims=True) * z)
    x = np.cross(y, z)
    return np.stack([x, y, z], axis=-1)


def angle_between_deg(a: ArrayLike, b: ArrayLike) -> FloatArray:
    """Angles between vectors (…, 3), degrees."""
    ua, ub = unit(a), unit(b)
    return np.degrees(np.arccos(np.clip(np.sum(ua * ub, axis=-1), -1.0, 1.0)))


def rotation_angle_deg(R: ArrayLike) -> FloatArray:
    """The angle of rotation matrices (…, 3, 3), degrees."""
    R = np.asarray(R, dtype=float)
    trace = np.trace(R, axis1=-2, axis2=-1)
    return np.degrees(np.arccos(np.clip((trace - 1.0) / 2.0, -1.0, 1.0)))


def gyr_from_quat_rad_s(quat_wxyz: ArrayLike, rate_hz: float, previous_wxyz: ArrayLike | None = None) -> FloatArray:
    """Angular velocity in the sensor frame, rad/s, from consecutive orientations ``quat_wxyz_world_sensor`` (N, 4).

    For devices that send orientation but no gyroscope (the OpenSense Xsens export). Backward differences, so that
    a stream can be converted block by block: ω_k is the rotation vector of ``q_(k-1)* ⊗ q_k`` times the rate
    (the mean rate over the preceding sample period); ``previous_wxyz`` is the row before the first (NaN: none).
    NaN where either quaternion is NaN.
    """
    q = np.asarray(quat_wxyz, dtype=float)
    prev = np.full(4, np.nan) if previous_wxyz is None else np.asarray(previous_wxyz, dtype=float)
    before = np.concatenate([prev[None], q[:-1]])
    out = np.full((q.shape[0], 3), np.nan)
    ok = np.all(np.isfinite(before), axis=1) & np.all(np.isfinite(q), axis=1)
    if ok.any():
        rel = rotation_from_wxyz(before[ok]).inv() * rotation_from_wxyz(q[ok])
        out[ok] = rel.as_rotvec() * rate_hz
    return out
