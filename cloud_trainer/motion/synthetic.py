"""Analytic reference motions for tests, benchmarks and smoke runs: quiet standing and a sinusoidal gait.

These have no clinical meaning. The gait is a smooth, exactly periodic joint pattern with the shapes of healthy
sagittal-plane kinematics (hip 30° flexion in late swing to 10° extension, a 12° loading-response and a 60° swing
knee flexion, ankle foot-flat, stance dorsiflexion, push-off and swing dorsiflexion; cf. Winter 2009, ch. 5), the
root moving at constant speed along +x at the height where the lower sole just touches flat ground. Phase 0 is the
right foot's swing-to-stance transition; the left foot is half a cycle later.
The healthy motion library from recorded clips replaces it for training.
"""

from __future__ import annotations

import mujoco
import numpy as np

from cloud_trainer.motion.reference import ReferenceMotion
from cloud_trainer.twin.constants import JOINT_NAMES, N_ROOT_QPOS, STAND_KEYFRAME
from cloud_trainer.twin.kinematics import lowest_sole_m


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
        p = np.mod(phase + offset, 1.0)  # 0: this foot's heel strike
        # hip: most flexed late in swing (phase 0.95), most extended near 0.45
        qpos[:, index[f"hip_flexion_{side}"]] = np.deg2rad(10.0 + 20.0 * np.cos(2 * np.pi * (p - 0.95)))
        qpos[:, index[f"hip_adduction_{side}"]] = np.deg2rad(4.0 * np.sin(2 * np.pi * p + 0.5))
        # knee: loading response flexion, then the swing peak
        qpos[:, index[f"knee_flexion_{side}"]] = np.deg2rad(
            5.0 + 12.0 * _bump(p, 0.13, 0.06) + 55.0 * _bump(p, 0.72, 0.12)
        )
        # ankle: foot flat, dorsiflexion through stance, push-off, toes up in swing
        qpos[:, index[f"ankle_dorsiflexion_{side}"]] = np.deg2rad(
            -5.0 * _bump(p, 0.07, 0.05) + 10.0 * _bump(p, 0.42, 0.1) - 15.0 * _bump(p, 0.62, 0.05)
            + 5.0 * _bump(p, 0.85, 0.1)
        )
    qpos[:, index["lumbar_rotation"]] = np.deg2rad(3.0 * np.cos(2 * np.pi * phase))
    qpos[:, 0] = speed_m_s * phase * period_s
    qpos[:, 2] -= lowest_sole_m(model, qpos)
    return ReferenceMotion.from_qpos(
        model, qpos, dt, cyclic=True, name=f"sinusoidal {speed_m_s:.2f} m/s {stride_length_m:.2f} m",
        source="synthetic",
    )


def _bump(phase: np.ndarray, centre: float, width: float) -> np.ndarray:
    """A periodic Gaussian bump of the gait phase, 1 at ``centre``."""
    return np.exp(-((_wrapped(phase - centre) / width) ** 2))


def _wrapped(phase: np.ndarray) -> np.ndarray:
    """Phase difference wrapped into [-0.5, 0.5)."""
    return np.mod(phase + 0.5, 1.0) - 0.5
