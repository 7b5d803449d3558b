"""Orientation filter equations of ``ahrs`` 0.4, run over a block of one sensor's samples in a tight loop.

``ahrs`` filters cost 40 µs (Madgwick) to 140 µs (EKF) per sample, mostly numpy overhead on 3-vectors. The same
equations written on Python floats cost about 3-5 µs per sample (Madgwick, Mahony); the EKF keeps small numpy
matrices (its 4×4 covariance algebra) at about a third of ahrs's cost. ``ahrs`` stays the reference: tests run both
on the same samples and require agreement to 1e-12. Deliberate differences are listed per class.

Frames (checked against the ahrs sources, not its docstrings): every filter takes the accelerometer's *specific
force* (still and z-up it reads +9.81 on z) and treats the direction it points to at rest as world +z, so the world
frame is z-up. Without a magnetometer the heading is arbitrary (zero yaw at the initial quaternion). With one:

- Madgwick MARG aligns world x with the horizontal magnetic field: North-West-Up (NWU).
- Mahony MARG aligns world y with it: East-North-Up (ENU).
- EKF aligns with its reference ``m_ref``; ahrs's ``frame='NED'`` option only sets the gravity reference
  ``a_ref = (0, 0, 1)``, which with specific-force input is z-*up*; its ``'ENU'`` option (``a_ref = (0, 0, -1)``)
  would be z-down. We use ``a_ref = (0, 0, 1)`` and give ``m_ref`` in ENU, so the EKF's world is ENU.

:data:`WORLD_FRAME_MARG` names each; :class:`~capture_app.core.orientation.fusion.OrientationFusion` converts to the
project's world frame in one place. Quaternions are w-first and rotate sensor vectors into the filter's world
(``quat_wxyz_world_sensor``), as ahrs's are.

``run(state, gyr_rad_s, acc, mag, dt_s)`` advances one sensor over ``m`` consecutive samples (all valid: the caller
drops gaps and passes each sample's own step in ``dt_s``) and returns the new state and the ``m`` quaternions.
As in ahrs, an all-zero gyroscope row leaves Madgwick and Mahony unchanged, and an all-zero accelerometer row skips
the correction (a caller gates the accelerometer by zeroing it); an all-zero magnetometer row uses the gravity-only
update. ``acc`` and ``mag`` may be in any unit: only their directions are used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

#: World frame each filter converges to with a magnetometer (all are z-up; without one the heading is arbitrary).
WORLD_FRAME_MARG = {"madgwick": "NWU", "mahony": "ENU", "ekf": "ENU"}


@dataclass
class FilterState:
    """One sensor's filter state."""

    quat_wxyz: tuple[float, float, float, float]
    #: Mahony's integral term (its gyroscope bias estimate), rad/s; unused by the others.
    bias_rad_s: tuple[float, float, float] = (0.0, 0.0, 0.0)
    #: EKF state covariance (4, 4); ``None``: identity (the ahrs default); unused by the others.
    cov: FloatArray | None = None

    @classmethod
    def at(cls, quat_wxyz: FloatArray | tuple[float, ...]) -> FilterState:
        """A fresh state at an orientation: zero bias, identity covariance (the ahrs defaults)."""
        q = [float(v) for v in quat_wxyz]
        n = math.sqrt(sum(v * v for v in q))
        return cls((q[0] / n, q[1] / n, q[2] / n, q[3] / n))


def _rows(values: FloatArray | None, m: int) -> list[tuple[float, float, float]]:
    """Array rows as float tuples (cheap to index in a Python loop); zeros for an absent channel."""
    if values is None:
        return [(0.0, 0.0, 0.0)] * m
    return [tuple(row) for row in np.asarray(values, dtype=float).tolist()]


def _dts(dt_s: float | FloatArray, m: int) -> list[float]:
    if np.ndim(dt_s) == 0:
        return [float(dt_s)] * m
    return np.asarray(dt_s, dtype=float).tolist()


class Madgwick:
    """Madgwick's gradient-descent filter (Madgwick, Harrison & Vaidyanathan 2011, eqs. 12-13, 25-34, 45-46),
    as ``ahrs.filters.Madgwick.updateIMU`` / ``updateMARG``. ``gain`` is β, rad/s."""

    name = "madgwick"

    def __init__(self, gain: float = 0.033) -> None:
        self.gain = gain

    def run(
        self,
        state: FilterState,
        gyr_rad_s: FloatArray,
        acc: FloatArray,
        mag: FloatArray | None,
        dt_s: float | FloatArray,
    ) -> tuple[FilterState, FloatArray]:
        """Advance over ``m`` samples; returns the new state and the (m, 4) quaternions."""
        m = len(gyr_rad_s)
        gyrs, accs, mags, dts = _rows(gyr_rad_s, m), _rows(acc, m), _rows(mag, m), _dts(dt_s, m)
        beta = self.gain
        qw, qx, qy, qz = state.quat_wxyz
        out = [(qw, qx, qy, qz)] * m
        for k in range(m):
            gx, gy, gz = gyrs[k]
            if gx == 0.0 and gy == 0.0 and gz == 0.0:
                out[k] = (qw, qx, qy, qz)
                continue
            # eq. 12: rate of change from the gyroscope, ½ q ⊗ (0, ω)
            dw = 0.5 * (-qx * gx - qy * gy - qz * gz)
            dx = 0.5 * (qw * gx + qy * gz - qz * gy)
            dy = 0.5 * (qw * gy - qx * gz + qz * gx)
            dz = 0.5 * (qw * gz + qx * gy - qy * gx)
            ax, ay, az = accs[k]
            a_norm = math.sqrt(ax * ax + ay * ay + az * az)
            if a_norm > 0.0:
                ax, ay, az = ax / a_norm, ay / a_norm, az / a_norm
                # eq. 25: gravity objective; its Jacobian (eq. 26) transposed times f, written out (eq. 34)
                f0 = 2.0 * (qx * qz - qw * qy) - ax
                f1 = 2.0 * (qw * qx + qy * qz) - ay
                f2 = 2.0 * (0.5 - qx * qx - qy * qy) - az
                g0 = -2.0 * qy * f0 + 2.0 * qx * f1
                g1 = 2.0 * qz * f0 + 2.0 * qw * f1 - 4.0 * qx * f2
                g2 = -2.0 * qw * f0 + 2.0 * qz * f1 - 4.0 * qy * f2
                g3 = 2.0 * qx * f0 + 2.0 * qy * f1
                mx, my, mz = mags[k]
                m_norm = math.sqrt(mx * mx + my * my + mz * mz)
                if m_norm > 0.0:
                    mx, my, mz = mx / m_norm, my / m_norm, mz / m_norm
                    # eq. 45: the field in the earth frame, h = q ⊗ m ⊗ q*; eq. 46: its reference (bx, 0, bz)
                    hx, hy, hz = _rotate((qw, qx, qy, qz), (mx, my, mz))
                    bx, bz = math.hypot(hx, hy), hz
                    f3 = 2.0 * bx * (0.5 - qy * qy - qz * qz) + 2.0 * bz * (qx * qz - qw * qy) - mx  # eq. 31
                    f4 = 2.0 * bx * (qx * qy - qw * qz) + 2.0 * bz * (qw * qx + qy * qz) - my
                    f5 = 2.0 * bx * (qw * qy + qx * qz) + 2.0 * bz * (0.5 - qx * qx - qy * qy) - mz
                    g0 += -2.0 * bz * qy * f3 + (-2.0 * bx * qz + 2.0 * bz * qx) * f4 + 2.0 * bx * qy * f5  # eq. 32
                    g1 += (
                        2.0 * bz * qz * f3 + (2.0 * bx * qy + 2.0 * bz * qw) * f4 + (2.0 * bx * qz - 4.0 * bz * qx) * f5
                    )
                    g2 += (
                        (-4.0 * bx * qy - 2.0 * bz * qw) * f3
                        + (2.0 * bx * qx + 2.0 * bz * qz) * f4
                        + (2.0 * bx * qw - 4.0 * bz * qy) * f5
                    )
                    g3 += (
                        (-4.0 * bx * qz + 2.0 * bz * qx) * f3
                        + (-2.0 * bx * qw + 2.0 * bz * qy) * f4
                        + 2.0 * bx * qx * f5
                    )
                g_norm = math.sqrt(g0 * g0 + g1 * g1 + g2 * g2 + g3 * g3)
                if g_norm > 0.0:
                    s = beta / g_norm  # eq. 33: step along the normalised gradient
                    dw, dx, dy, dz = dw - s * g0, dx - s * g1, dy - s * g2, dz - s * g3
            dt = dts[k]
            qw, qx, qy, qz = qw + dw * dt, qx + dx * dt, qy + dy * dt, qz + dz * dt  # eq. 13
            n = math.sqrt(qw * qw + qx * qx + qy * qy + qz * qz)
            qw, qx, qy, qz = qw / n, qx / n, qy / n, qz / n
            out[k] = (qw, qx, qy, qz)
        return FilterState((qw, qx, qy, qz), state.bias_rad_s, state.cov), np.array(out, dtype=float).reshape(m, 4)


class Mahony:
    """Mahony's explicit complementary filter (Mahony, Hamel & Pflimlin 2008, eqs. 32, 48), as
    ``ahrs.filters.Mahony.updateIMU`` / ``updateMARG``. ``k_p`` (rad/s) pulls towards the measured directions,
    ``k_i`` (rad/s²) integrates them into a gyroscope bias estimate.

    Difference from ahrs: where the accelerometer row is zero (gated), ahrs also stops subtracting its bias
    estimate; here the bias is still subtracted (only the correction and the bias integration pause).
    """

    name = "mahony"

    def __init__(self, k_p: float = 1.0, k_i: float = 0.3) -> None:
        self.k_p = k_p
        self.k_i = k_i

    def run(
        self,
        state: FilterState,
        gyr_rad_s: FloatArray,
        acc: FloatArray,
        mag: FloatArray | None,
        dt_s: float | FloatArray,
    ) -> tuple[FilterState, FloatArray]:
        """Advance over ``m`` samples; returns the new state and the (m, 4) quaternions."""
        m = len(gyr_rad_s)
        gyrs, accs, mags, dts = _rows(gyr_rad_s, m), _rows(acc, m), _rows(mag, m), _dts(dt_s, m)
        k_p, k_i = self.k_p, self.k_i
        qw, qx, qy, qz = state.quat_wxyz
        bx_, by_, bz_ = state.bias_rad_s
        out = [(qw, qx, qy, qz)] * m
        for k in range(m):
            gx, gy, gz = gyrs[k]
            if gx == 0.0 and gy == 0.0 and gz == 0.0:
                out[k] = (qw, qx, qy, qz)
                continue
            ax, ay, az = accs[k]
            a_norm = math.sqrt(ax * ax + ay * ay + az * az)
            ex = ey = ez = 0.0
            if a_norm > 0.0:
                ax, ay, az = ax / a_norm, ay / a_norm, az / a_norm
                # Rᵀ (0, 0, 1): expected gravity direction in the sensor frame
                vx, vy, vz = 2.0 * (qx * qz - qw * qy), 2.0 * (qw * qx + qy * qz), 1.0 - 2.0 * (qx * qx + qy * qy)
                ex, ey, ez = ay * vz - az * vy, az * vx - ax * vz, ax * vy - ay * vx  # eqs. 32c, 48a
                mx, my, mz = mags[k]
                m_norm = math.sqrt(mx * mx + my * my + mz * mz)
                if m_norm > 0.0:
                    mx, my, mz = mx / m_norm, my / m_norm, mz / m_norm
                    hx, hy, hz = _rotate((qw, qx, qy, qz), (mx, my, mz))  # the field in the world frame
                    # Expected field direction in the sensor frame: Rᵀ (0, |h_xy|, h_z), normalised
                    wx, wy, wz = _rotate((qw, -qx, -qy, -qz), (0.0, math.hypot(hx, hy), hz))
                    w_norm = math.sqrt(wx * wx + wy * wy + wz * wz)
                    wx, wy, wz = wx / w_norm, wy / w_norm, wz / w_norm
                    ex, ey, ez = ex + my * wz - mz * wy, ey + mz * wx - mx * wz, ez + mx * wy - my * wx
                bx_, by_, bz_ = bx_ - k_i * ex * dts[k], by_ - k_i * ey * dts[k], bz_ - k_i * ez * dts[k]  # eq. 48c
            ox, oy, oz = gx - bx_ + k_p * ex, gy - by_ + k_p * ey, gz - bz_ + k_p * ez  # eq. 48b
            h = 0.5 * dts[k]
            qw, qx, qy, qz = (
                qw + h * (-qx * ox - qy * oy - qz * oz),
                qx + h * (qw * ox + qy * oz - qz * oy),
                qy + h * (qw * oy - qx * oz + qz * ox),
                qz + h * (qw * oz + qx * oy - qy * ox),
            )
            n = math.sqrt(qw * qw + qx * qx + qy * qy + qz * qz)
            qw, qx, qy, qz = qw / n, qx / n, qy / n, qz / n
            out[k] = (qw, qx, qy, qz)
        return FilterState((qw, qx, qy, qz), (bx_, by_, bz_), state.cov), np.array(out, dtype=float).reshape(m, 4)


class Ekf:
    """The quaternion extended Kalman filter of ``ahrs.filters.EKF`` (after Sabatini 2006; Solà 2017): state q,
    prediction (I + ½Δt Ω(ω)) q with process noise ``var_gyr``·W Wᵀ, correction with the normalised accelerometer
    (and magnetometer) against ``a_ref = (0, 0, 1)`` (and ``m_ref``, ENU).

    Differences from ahrs: where the accelerometer row is zero (gated), ahrs returns the prior unchanged, skipping
    the prediction too (the attitude would freeze during a jolt); here the prediction runs and only the correction
    is skipped. A zero magnetometer row uses the gravity-only correction (ahrs decides that per filter, not per row).
    """

    name = "ekf"

    def __init__(
        self,
        var_gyr: float = 0.3**2,
        var_acc: float = 0.5**2,
        var_mag: float = 0.8**2,
        m_ref: tuple[float, float, float] = (0.0, 0.423, -0.906),
    ) -> None:
        self.var_gyr = var_gyr
        self.var_acc = var_acc
        self.var_mag = var_mag
        self.m_ref = m_ref

    def run(
        self,
        state: FilterState,
        gyr_rad_s: FloatArray,
        acc: FloatArray,
        mag: FloatArray | None,
        dt_s: float | FloatArray,
    ) -> tuple[FilterState, FloatArray]:
        """Advance over ``m`` samples; returns the new state and the (m, 4) quaternions."""
        m = len(gyr_rad_s)
        gyr = np.asarray(gyr_rad_s, dtype=float)
        a_all = np.asarray(acc, dtype=float)
        m_all = None if mag is None else np.asarray(mag, dtype=float)
        dts = _dts(dt_s, m)
        m_ref = np.asarray(self.m_ref, dtype=float)
        m_ref = m_ref / np.linalg.norm(m_ref)
        H_acc_ref = _jacobian_rows(np.array([0.0, 0.0, 1.0]))
        H_mag_ref = _jacobian_rows(m_ref)
        R_acc = self.var_acc * np.eye(3)
        R_marg = np.diag([self.var_acc] * 3 + [self.var_mag] * 3)
        q = np.array(state.quat_wxyz, dtype=float)
        P = np.eye(4) if state.cov is None else np.array(state.cov, dtype=float)
        out = np.empty((m, 4))
        eye4 = np.eye(4)
        for k in range(m):
            wx, wy, wz = 0.5 * dts[k] * gyr[k]
            F = np.array([[1.0, -wx, -wy, -wz], [wx, 1.0, wz, -wy], [wy, -wz, 1.0, wx], [wz, wy, -wx, 1.0]])
            qw, qx, qy, qz = q
            h = 0.5 * dts[k]
            W = h * np.array([[-qx, -qy, -qz], [qw, -qz, qy], [qz, qw, -qx], [-qy, qx, qw]])
            q_t = F @ q  # prediction
            P_t = F @ P @ F.T + self.var_gyr * (W @ W.T)
            a = a_all[k]
            a_norm = math.sqrt(a @ a)
            if a_norm > 0.0:
                H_rows = H_acc_ref
                z = a / a_norm
                R = R_acc
                qn = q_t / math.sqrt(q_t @ q_t)  # ahrs builds the expected measurement from the normalised prior
                dcm = _dcm(qn)  # C = dcmᵀ maps world references into the sensor frame
                y = dcm[2]  # C (0, 0, 1)
                if m_all is not None:
                    mm = m_all[k]
                    m_norm = math.sqrt(mm @ mm)
                    if m_norm > 0.0:
                        H_rows = np.concatenate([H_acc_ref, H_mag_ref])
                        z = np.concatenate([z, mm / m_norm])
                        y = np.concatenate([y, dcm.T @ m_ref])
                        R = R_marg
                H = 2.0 * (H_rows @ q_t)  # ahrs's dhdq, from the raw prior
                S = H @ P_t @ H.T + R
                K = P_t @ H.T @ np.linalg.inv(S)
                P = (eye4 - K @ H) @ P_t
                q = q_t + K @ (z - y)
            else:
                P = P_t
                q = q_t
            q = q / math.sqrt(q @ q)
            out[k] = q
        return FilterState(tuple(q.tolist()), state.bias_rad_s, P), out


def _rotate(q: tuple[float, float, float, float], v: tuple[float, float, float]) -> tuple[float, float, float]:
    """q ⊗ (0, v) ⊗ q* for a unit quaternion, as three floats."""
    qw, qx, qy, qz = q
    vx, vy, vz = v
    # t = 2 q_v × v; v' = v + w t + q_v × t
    tx, ty, tz = 2.0 * (qy * vz - qz * vy), 2.0 * (qz * vx - qx * vz), 2.0 * (qx * vy - qy * vx)
    return (
        vx + qw * tx + qy * tz - qz * ty,
        vy + qw * ty + qz * tx - qx * tz,
        vz + qw * tz + qx * ty - qy * tx,
    )


def _dcm(q: FloatArray) -> FloatArray:
    """The rotation matrix of a unit quaternion, as ``ahrs.Quaternion.to_DCM``."""
    w, x, y, z = q
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (w * x + y * z), 1 - 2 * (x * x + y * y)],
        ]
    )


def _jacobian_rows(v: FloatArray) -> FloatArray:
    """ahrs's ``dhdq`` for a reference ``v`` is linear in q: returns M (3, 4, 4) with ``dhdq(q) = 2 M @ q``;
    ``M[i, j]`` holds the coefficients of (qw, qx, qy, qz) in entry (i, j)."""
    v0, v1, v2 = v
    return np.array(
        [
            [[v0, 0.0, -v2, v1], [0.0, v0, v1, v2], [-v2, v1, -v0, 0.0], [v1, v2, 0.0, -v0]],
            [[v1, v2, 0.0, -v0], [v2, -v1, v0, 0.0], [0.0, v0, v1, v2], [-v0, 0.0, v2, -v1]],
            [[v2, -v1, v0, 0.0], [-v1, -v2, 0.0, v0], [v0, 0.0, -v2, v1], [0.0, v0, v1, v2]],
        ]
    )


FILTERS = {"madgwick": Madgwick, "mahony": Mahony, "ekf": Ekf}
