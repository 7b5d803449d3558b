"""Functional axes from walking: the hinge axis shared by two segments, and the principal axis of one segment.

**Hinge axis** (Seel, Raisch & Schauer 2014, Sensors 14:6891, Section 3.1 "Joint axis identification"): two
segments joined by a hinge rotate relative to each other only about the joint axis ``j``, fixed in both sensor
frames (``j1`` in sensor 1, ``j2`` in sensor 2). Their angular rates ``g1``, ``g2`` therefore differ only along
``j``, and their projections onto the plane normal to ``j`` have equal length at every instant:
``‖g1(t) × j1‖ − ‖g2(t) × j2‖ = 0``. With each axis in spherical coordinates,
``j = (cos φ cos θ, cos φ sin θ, sin φ)``, the four angles minimise the sum of squares of these residuals by
Gauss–Newton. The residuals do not depend on the axes' signs, so signs are fixed afterwards (calibration.py).
Starting points: each segment's principal angular-velocity axis (below), and the same with ``j2`` turned by π in θ
(Olsson, Kok, Seel & Halvorsen 2020, Sensors 20:3534, Algorithm 1); the lower cost wins.

**Principal axis**: the eigenvector of the largest eigenvalue of the angular-velocity second-moment matrix. In
walking the thigh and shank swing mostly about their medio-lateral axis, so it is that axis (up to sign) when no
partner segment is available; the explained fraction says how planar the motion was.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class HingeAxes:
    """Result of :func:`hinge_axes`: the axis in each sensor frame, and how well the constraint holds."""

    axis_1: FloatArray
    axis_2: FloatArray
    #: RMS of the residuals ‖g1×j1‖ − ‖g2×j2‖, rad/s.
    residual_rms_rad_s: float
    #: That RMS divided by the RMS angular rate: small (≪ 0.1) for a clean hinge.
    residual_ratio: float
    n_samples: int
    #: The unconstrained solution (equal to the axes above when no planes were given): how far it leans out of the
    #: planes says how well the standing pose and the walk agree.
    free_axis_1: FloatArray | None = None
    free_axis_2: FloatArray | None = None


def _axis(phi: float, theta: float) -> FloatArray:
    return np.array([np.cos(phi) * np.cos(theta), np.cos(phi) * np.sin(theta), np.sin(phi)])


def _angles(axis: FloatArray) -> tuple[float, float]:
    a = axis / np.linalg.norm(axis)
    return float(np.arcsin(np.clip(a[2], -1.0, 1.0))), float(np.arctan2(a[1], a[0]))


def principal_axis(gyr_rad_s: FloatArray) -> tuple[FloatArray, float]:
    """The dominant rotation axis of angular rates (N, 3) and the fraction of the rotation energy about it."""
    g = gyr_rad_s[np.all(np.isfinite(gyr_rad_s), axis=1)]
    if g.shape[0] < 3:
        return np.full(3, np.nan), float("nan")
    moment = g.T @ g / g.shape[0]
    values, vectors = np.linalg.eigh(moment)
    total = float(values.sum())
    return vectors[:, -1], float(values[-1] / total) if total > 0 else float("nan")


def _residuals_and_jacobian(x: FloatArray, g1: FloatArray, g2: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Residuals e_i = ‖g1_i × j1‖ − ‖g2_i × j2‖ and their Jacobian with respect to (φ1, θ1, φ2, θ2)."""
    phi1, theta1, phi2, theta2 = x
    e = np.zeros(g1.shape[0])
    J = np.zeros((g1.shape[0], 4))
    for k, (phi, theta, g, sign) in enumerate(((phi1, theta1, g1, 1.0), (phi2, theta2, g2, -1.0))):
        j = _axis(phi, theta)
        c = np.cross(g, j)
        norm = np.maximum(np.linalg.norm(c, axis=1), 1e-9)
        e += sign * norm
        # d‖g × j‖/dj = (c × g)ᵀ / ‖c‖ with c = g × j
        grad_j = np.cross(c, g) / norm[:, None]
        dj_dphi = np.array([-np.sin(phi) * np.cos(theta), -np.sin(phi) * np.sin(theta), np.cos(phi)])
        dj_dtheta = np.array([-np.cos(phi) * np.sin(theta), np.cos(phi) * np.cos(theta), 0.0])
        J[:, 2 * k] = sign * grad_j @ dj_dphi
        J[:, 2 * k + 1] = sign * grad_j @ dj_dtheta
    return e, J


def _gauss_newton(x0: FloatArray, g1: FloatArray, g2: FloatArray, n_iterations: int) -> tuple[FloatArray, float]:
    """Damped Gauss–Newton (Levenberg–Marquardt steps) from ``x0``; returns the angles and the cost Σe²."""
    x = np.array(x0, dtype=float)
    e, J = _residuals_and_jacobian(x, g1, g2)
    cost = float(e @ e)
    damping = 1e-3
    for _ in range(n_iterations):
        A = J.T @ J
        step = np.linalg.solve(A + damping * np.diag(np.diag(A) + 1e-12), -J.T @ e)
        x_new = x + step
        e_new, J_new = _residuals_and_jacobian(x_new, g1, g2)
        cost_new = float(e_new @ e_new)
        if cost_new < cost:
            converged = cost - cost_new < 1e-10 * max(cost, 1e-12)
            x, e, J, cost = x_new, e_new, J_new, cost_new
            damping = max(damping / 3.0, 1e-9)
            if converged or np.max(np.abs(step)) < 1e-9:
                break
        else:
            damping *= 10.0
            if damping > 1e6:
                break
    return x, cost


def _plane_basis(normal: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Two orthonormal vectors spanning the plane normal to ``normal``."""
    n = normal / np.linalg.norm(normal)
    helper = np.array([1.0, 0.0, 0.0]) if abs(n[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = np.cross(n, helper)
    e1 /= np.linalg.norm(e1)
    return e1, np.cross(n, e1)


def _in_plane_cost(alphas: FloatArray, g1: FloatArray, g2: FloatArray, bases) -> float:
    (a1, b1), (a2, b2) = bases
    j1 = np.cos(alphas[0]) * a1 + np.sin(alphas[0]) * b1
    j2 = np.cos(alphas[1]) * a2 + np.sin(alphas[1]) * b2
    e = np.linalg.norm(np.cross(g1, j1), axis=1) - np.linalg.norm(np.cross(g2, j2), axis=1)
    return float(e @ e)


def hinge_axes(gyr_1_rad_s: FloatArray, gyr_2_rad_s: FloatArray, max_samples: int = 3000,
               n_iterations: int = 50, normal_1: FloatArray | None = None,
               normal_2: FloatArray | None = None) -> HingeAxes:
    """The hinge axis shared by two segments from their simultaneous angular rates (N, 3) each, in each sensor's
    frame (Seel et al. 2014, Section 3.1). Rows with NaN are ignored; at most ``max_samples`` evenly spaced rows
    are used.

    With ``normal_1`` and ``normal_2`` (each segment's vertical in the standing pose, sensor frame) the axes are
    constrained to the planes normal to them: the knee axis is horizontal when standing upright, and the
    calibration uses only that part of it anyway. The constraint keeps a fit on a knee that is not a clean hinge
    (soft tissue, real knees' rotation and ab/adduction) from tilting the axis towards the limb; the unconstrained
    optimum is refined within the planes (a 2-parameter search)."""
    ok = np.all(np.isfinite(gyr_1_rad_s), axis=1) & np.all(np.isfinite(gyr_2_rad_s), axis=1)
    g1, g2 = gyr_1_rad_s[ok], gyr_2_rad_s[ok]
    if g1.shape[0] > max_samples:
        pick = np.linspace(0, g1.shape[0] - 1, max_samples).astype(int)
        g1, g2 = g1[pick], g2[pick]
    n = g1.shape[0]
    if n < 10:
        nan = np.full(3, np.nan)
        return HingeAxes(nan, nan, float("nan"), float("nan"), n)
    p1, _ = principal_axis(g1)
    p2, _ = principal_axis(g2)
    starts = []
    for a2 in (p2, -p2):
        phi1, theta1 = _angles(p1)
        phi2, theta2 = _angles(a2)
        starts.append(np.array([phi1, theta1, phi2, theta2]))
        starts.append(np.array([phi1, theta1, phi2, theta2 + np.pi]))
    best_x, best_cost = None, np.inf
    for x0 in starts:
        x, cost = _gauss_newton(x0, g1, g2, n_iterations)
        if cost < best_cost:
            best_x, best_cost = x, cost
    free_1, free_2 = _axis(best_x[0], best_x[1]), _axis(best_x[2], best_x[3])
    j1, j2 = free_1, free_2
    if normal_1 is not None and normal_2 is not None:
        j1, j2, best_cost = _refine_in_planes(free_1, free_2, g1, g2, normal_1, normal_2)
    rms = float(np.sqrt(best_cost / n))
    rate_rms = float(np.sqrt(np.mean(np.sum(g1 * g1, axis=1) + np.sum(g2 * g2, axis=1)) / 2.0))
    return HingeAxes(j1, j2, rms, rms / rate_rms if rate_rms > 0 else np.nan, n, free_1, free_2)


def _refine_in_planes(j1, j2, g1, g2, normal_1, normal_2) -> tuple[FloatArray, FloatArray, float]:
    """The best pair of axes within the planes normal to the two normals, started from the projections of the
    free solution and from a coarse grid (the in-plane cost has few, broad minima)."""
    from scipy.optimize import minimize

    bases = (_plane_basis(normal_1), _plane_basis(normal_2))
    starts = [np.array([np.arctan2(j @ b, j @ a) for j, (a, b) in zip((j1, j2), bases, strict=True)])]
    grid = np.radians(np.arange(0.0, 180.0, 30.0))
    starts += [np.array([a, b]) for a in grid for b in grid]
    costs = [_in_plane_cost(x, g1, g2, bases) for x in starts]
    order = np.argsort(costs)[:3]
    best = min((minimize(_in_plane_cost, starts[i], args=(g1, g2, bases), method="Nelder-Mead",
                         options={"xatol": 1e-5, "fatol": 1e-9}) for i in order), key=lambda r: r.fun)
    (a1, b1), (a2, b2) = bases
    alpha = best.x
    return (np.cos(alpha[0]) * a1 + np.sin(alpha[0]) * b1, np.cos(alpha[1]) * a2 + np.sin(alpha[1]) * b2,
            float(best.fun))


@dataclass(frozen=True)
class JointCentre:
    """Result of :func:`joint_centre`: each sensor's position relative to the joint centre, in its own frame, m, and
    the fit quality."""

    position_1_m: FloatArray
    position_2_m: FloatArray
    #: RMS of the residuals ‖a1 − Γ1 o1‖ − ‖a2 − Γ2 o2‖, m/s².
    residual_rms_m_s2: float
    n_samples: int


def angular_acceleration_rad_s2(gyr_rad_s: FloatArray, rate_hz: float) -> FloatArray:
    """Central-difference derivative of angular rates (N, 3), rad/s² (NaN next to NaN)."""
    g = np.asarray(gyr_rad_s, dtype=float)
    out = np.full_like(g, np.nan)
    out[1:-1] = (g[2:] - g[:-2]) * (rate_hz / 2.0)
    return out


def point_acceleration(acc: FloatArray, gyr: FloatArray, gyr_dot: FloatArray, position_m: FloatArray) -> FloatArray:
    """Specific force, in the sensor frame, at the point of the sensor's rigid body from which the sensor lies at
    ``position_m`` (o, sensor frame): ``a − Γ(o)`` with ``Γ(o) = ω̇ × o + ω × (ω × o)`` (Seel et al. 2014,
    Section 3.2)."""
    return acc - (np.cross(gyr_dot, position_m) + np.cross(gyr, np.cross(gyr, position_m)))


def joint_centre(
    acc_1: FloatArray, gyr_1: FloatArray, gyr_dot_1: FloatArray,
    acc_2: FloatArray, gyr_2: FloatArray, gyr_dot_2: FloatArray,
    initial_1_m: FloatArray, initial_2_m: FloatArray, max_samples: int = 3000, n_iterations: int = 30,
) -> JointCentre:
    """Where two segments' sensors sit relative to the joint connecting them, each in its own frame (Seel et al.
    2014, Section 3.2): the joint centre has one acceleration, so the norms of the specific force there, computed
    from either sensor, agree at every instant: ``‖a1 − Γ1 o1‖ − ‖a2 − Γ2 o2‖ = 0``; the six coordinates minimise
    the sum of squares by damped Gauss–Newton from the given starting points. Rows with NaN are ignored.
    Directions the walk hardly rotates about (along the hip's flexion axis) are weakly determined; they also
    hardly change the joint-centre acceleration."""
    arrays = [np.asarray(a, dtype=float) for a in (acc_1, gyr_1, gyr_dot_1, acc_2, gyr_2, gyr_dot_2)]
    ok = np.all(np.isfinite(np.concatenate(arrays, axis=1)), axis=1)
    a1, g1, d1, a2, g2, d2 = (a[ok] for a in arrays)
    if a1.shape[0] > max_samples:
        pick = np.linspace(0, a1.shape[0] - 1, max_samples).astype(int)
        a1, g1, d1, a2, g2, d2 = (a[pick] for a in (a1, g1, d1, a2, g2, d2))
    n = a1.shape[0]
    x = np.concatenate([initial_1_m, initial_2_m]).astype(float)
    if n < 20:
        return JointCentre(np.full(3, np.nan), np.full(3, np.nan), float("nan"), n)

    def residuals(x: FloatArray) -> tuple[FloatArray, FloatArray]:
        e = np.zeros(n)
        J = np.zeros((n, 6))
        for k, (a, g, d, sign) in enumerate(((a1, g1, d1, 1.0), (a2, g2, d2, -1.0))):
            o = x[3 * k: 3 * k + 3]
            p = point_acceleration(a, g, d, o)
            norm = np.maximum(np.linalg.norm(p, axis=1), 1e-9)
            e += sign * norm
            u = p / norm[:, None]
            # ∂p/∂o = −([ω̇]× + [ω]×[ω]×); ∂‖p‖/∂o = uᵀ ∂p/∂o
            for axis in range(3):
                basis = np.zeros(3)
                basis[axis] = 1.0
                dp = -(np.cross(d, basis) + np.cross(g, np.cross(g, basis)))
                J[:, 3 * k + axis] = sign * np.sum(u * dp, axis=1)
        return e, J

    e, J = residuals(x)
    cost = float(e @ e)
    damping = 1e-3
    for _ in range(n_iterations):
        A = J.T @ J
        step = np.linalg.solve(A + damping * np.diag(np.diag(A) + 1e-12), -J.T @ e)
        e_new, J_new = residuals(x + step)
        cost_new = float(e_new @ e_new)
        if cost_new < cost:
            done = cost - cost_new < 1e-9 * cost
            x, e, J, cost = x + step, e_new, J_new, cost_new
            damping = max(damping / 3.0, 1e-9)
            if done:
                break
        else:
            damping *= 10.0
            if damping > 1e6:
                break
    return JointCentre(x[:3], x[3:], float(np.sqrt(cost / n)), n)
