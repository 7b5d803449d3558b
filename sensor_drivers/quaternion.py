"""Quaternion helpers, w-first (``quat_wxyz``), Hamilton convention, vectorised over leading axes.

The only place that converts to scipy's x,y,z,w order (:func:`wxyz_to_scipy`, :func:`scipy_to_wxyz`).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.spatial.transform import Rotation

FloatArray = NDArray[np.float64]


def wxyz_to_scipy(quat_wxyz: ArrayLike) -> FloatArray:
    """w,x,y,z → x,y,z,w (scipy's order)."""
    q = np.asarray(quat_wxyz, dtype=float)
    return np.concatenate([q[..., 1:], q[..., :1]], axis=-1)


def scipy_to_wxyz(quat_xyzw: ArrayLike) -> FloatArray:
    """x,y,z,w (scipy's order) → w,x,y,z."""
    q = np.asarray(quat_xyzw, dtype=float)
    return np.concatenate([q[..., 3:], q[..., :3]], axis=-1)


def rotation_from_wxyz(quat_wxyz: ArrayLike) -> Rotation:
    """A scipy ``Rotation`` from w-first quaternions."""
    return Rotation.from_quat(wxyz_to_scipy(quat_wxyz))


def wxyz_from_rotation(rotation: Rotation) -> FloatArray:
    """W-first quaternions from a scipy ``Rotation``, with a non-negative w (one of the two equal signs)."""
    q = scipy_to_wxyz(rotation.as_quat())
    return np.where(q[..., :1] < 0.0, -q, q)


def multiply(a_wxyz: ArrayLike, b_wxyz: ArrayLike) -> FloatArray:
    """Hamilton product ``a ⊗ b`` (apply ``b`` first, then ``a``)."""
    a = np.asarray(a_wxyz, dtype=float)
    b = np.asarray(b_wxyz, dtype=float)
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        axis=-1,
    )


def conjugate(quat_wxyz: ArrayLike) -> FloatArray:
    """The inverse of a unit quaternion."""
    q = np.array(quat_wxyz, dtype=float)
    q[..., 1:] *= -1.0
    return q


def rotate(quat_wxyz: ArrayLike, vec: ArrayLike) -> FloatArray:
    """Rotate vectors (…, 3) by unit quaternions (…, 4): ``q v q*``."""
    q = np.asarray(quat_wxyz, dtype=float)
    v = np.asarray(vec, dtype=float)
    w = q[..., :1]
    u = q[..., 1:]
    t = 2.0 * np.cross(u, v)
    return v + w * t + np.cross(u, t)
