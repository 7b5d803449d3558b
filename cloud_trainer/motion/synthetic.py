"""Analytic reference motions for tests, benchmarks and smoke runs: quiet standing and a sinusoidal gait.

These have no clinical meaning. The gait is a smooth, exactly periodic joint pattern with the shapes of healthy
sagittal-plane kinematics (hip 30° flexion at heel strike to 10° extension, a 60° knee swing peak, a few degrees of
ankle motion; cf. Winter 2009, ch. 5), the root moving at constant speed along +x at the height where the lower sole
just touches flat ground. The healthy motion library from recorded clips replaces it for training.
"""

from __future__ import annotations

import mujoco
import numpy as np

from cloud_trainer.motion.reference import ReferenceMotion
from cloud_trainer.twin.constants import JOINT_NAMES, N_ROOT_QPOS, STAND_KEYFRAME

#: Capsule geoms of the soles, by side.
SOLE_GEOMS = ("heel_r", "forefoot_r", "heel_l", "forefoot_l")


def standing_reference(model: mujoco.MjModel, duration_s: float = 1.0, dt_s: float = 1.0 / 30.0) -> ReferenceMotion:
    """Quiet standing in the model's standing keyframe, as a cyclic motion that does not travel."""
    n = max(2, round(duration_s / dt_s))
    qpos = np.tile(model.key(STAND_KEYFRAME).qpos, (n, 1))
    return ReferenceMotion.from_qpos(model, qpos, dt_s, cyclic=True, name="standing", source="synthetic")


def sinusoidal_gait_reference(
    model: mujoco.MjModel, speed_m_s: float = 1.0, stride_length_m: float = 1.2, dt_s: float = 1.0 / 30.0
) -> ReferenceMotion:
    """One cycle of a smooth symmetric gait at ``speed_m_s`` with ``stride_length_m`` (cyclic)."""
    period_s = stride_length_m / speed_m_s
    n = max(4, round(period_s / dt_s))
    dt = period_s / n
    phase = np.arange(n) / n
    qpos = np.tile(model.key(STAND_KEYFRAME).qpos, (n, 1))
    index = {name: N_ROOT_QPOS + i for i, name in enumerate(JOINT_NAMES)}
    for side, offset in (("r", 0.0), ("l", 0.5)):
        p = np.mod(phase + offset, 1.0)
        angle = 2 * np.pi * p
        qpos[:, index[f"hip_flexion_{side}"]] = np.deg2rad(10.0 + 20.0 * np.cos(angle))
        swing = np.exp(-(_wrapped(p - 0.72) / 0.12) ** 2)
        loading = np.exp(-(_wrapped(p - 0.12) / 0.06) ** 2)
        qpos[:, index[f"knee_flexion_{side}"]] = np.deg2rad(5.0 + 55.0 * swing + 12.0 * loading)
        qpos[:, index[f"ankle_dorsiflexion_{side}"]] = np.deg2rad(
            5.0 * np.sin(angle) - 12.0 * np.exp(-(_wrapped(p - 0.6) / 0.07) ** 2)
        )
        qpos[:, index[f"hip_adduction_{side}"]] = np.deg2rad(4.0 * np.sin(angle + 0.5))
    qpos[:, index["lumbar_rotation"]] = np.deg2rad(3.0 * np.cos(2 * np.pi * phase))
    qpos[:, 0] = speed_m_s * phase * period_s
    qpos[:, 2] -= _lowest_sole_m(model, qpos)
    return ReferenceMotion.from_qpos(
        model, qpos, dt, cyclic=True, name=f"sinusoidal {speed_m_s:.2f} m/s {stride_length_m:.2f} m",
        source="synthetic",
    )


def _wrapped(phase: np.ndarray) -> np.ndarray:
    """Phase difference wrapped into [-0.5, 0.5)."""
    return np.mod(phase + 0.5, 1.0) - 0.5


def _lowest_sole_m(model: mujoco.MjModel, qpos: np.ndarray) -> np.ndarray:
    """Height of the lowest point of the sole capsules above z = 0, per pose."""
    data = mujoco.MjData(model)
    geoms = [model.geom(name) for name in SOLE_GEOMS]
    lowest = np.empty(len(qpos))
    for i, q in enumerate(qpos):
        data.qpos[:] = q
        mujoco.mj_kinematics(model, data)
        points = []
        for geom in geoms:
            axis = data.geom_xmat[geom.id].reshape(3, 3)[:, 2]
            centre = data.geom_xpos[geom.id]
            radius, half_length = model.geom_size[geom.id, :2]
            points += [centre[2] + half_length * axis[2] - radius, centre[2] - half_length * axis[2] - radius]
        lowest[i] = min(points)
    return lowest
