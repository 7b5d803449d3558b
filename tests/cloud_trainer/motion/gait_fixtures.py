"""A synthetic healthy gait with known period, for tests that need walking with known truth.

Joint angles are smooth periodic functions of the gait phase (0 = right heel strike), shaped after normative
sagittal curves (Perry & Burnfield, *Gait Analysis*, 2nd ed., 2010): hip flexion about +30° at heel strike and −10° at
terminal stance, a 15° knee flexion wave in loading response and 60° in swing, ankle plantarflexion at loading and
push-off. The left side is the right side half a cycle later.
"""

from __future__ import annotations

import numpy as np

from cloud_trainer.motion.joints import JOINT_INDEX, N_JOINTS, SIDES
from cloud_trainer.motion.rotations import axis_angle_matrix, wxyz_from_matrix
from cloud_trainer.motion.trajectory import JointTrajectory


def _bump(phase: np.ndarray, centre: float, width: float) -> np.ndarray:
    d = np.mod(phase - centre + 0.5, 1.0) - 0.5
    return np.exp(-0.5 * (d / width) ** 2)


def leg_angles_deg(phase: np.ndarray) -> dict[str, np.ndarray]:
    """One leg's hinge angles (deg) at gait phases (0 = this leg's heel strike)."""
    return {
        "hip_flexion": 10.0 + 20.0 * np.cos(2 * np.pi * (phase - 0.02)) + 3.0 * _bump(phase, 0.85, 0.08),
        "hip_adduction": 4.0 * np.sin(2 * np.pi * phase),
        "hip_rotation": np.zeros_like(phase),
        "knee_flexion": 3.0 + 15.0 * _bump(phase, 0.15, 0.06) + 57.0 * _bump(phase, 0.72, 0.1),
        "ankle_dorsiflexion": 8.0 * _bump(phase, 0.45, 0.12)
        - 8.0 * _bump(phase, 0.06, 0.03)
        - 18.0 * _bump(phase, 0.63, 0.05),
        "ankle_inversion": np.zeros_like(phase),
    }


def synthetic_gait(
    period_s: float = 1.1,
    n_cycles: float = 5.0,
    sampling_rate_hz: float = 60.0,
    *,
    speed_m_s: float | None = 1.2,
    turn_rate_deg_s: float = 0.0,
    phase_offset: float = 0.0,
) -> JointTrajectory:
    """``n_cycles`` strides of the synthetic gait; root along the heading at ``speed_m_s`` (None: unmeasured)."""
    t = np.arange(round(n_cycles * period_s * sampling_rate_hz) + 1) / sampling_rate_hz
    phase = np.mod(t / period_s + phase_offset, 1.0)
    angles = np.zeros((len(t), N_JOINTS))
    for side, shift in zip(SIDES, (0.0, 0.5), strict=True):
        for name, values in leg_angles_deg(np.mod(phase - shift, 1.0)).items():
            angles[:, JOINT_INDEX[f"{name}_{side}"]] = np.radians(values)
    angles[:, JOINT_INDEX["lumbar_rotation"]] = np.radians(4.0) * np.cos(2 * np.pi * phase)
    heading = np.radians(turn_rate_deg_s) * t
    pelvis_yaw = heading + np.radians(4.0) * np.cos(2 * np.pi * phase)
    quat = wxyz_from_matrix(axis_angle_matrix([0.0, 0.0, 1.0], pelvis_yaw))
    if speed_m_s is None:
        pos = None
    else:
        if turn_rate_deg_s:
            rate = np.radians(turn_rate_deg_s)
            x = speed_m_s * np.sin(heading) / rate
            y = speed_m_s * (1.0 - np.cos(heading)) / rate
        else:
            x, y = speed_m_s * t, np.zeros_like(t)
        pos = np.stack([x, y, np.full_like(t, 0.92)], axis=1)
    return JointTrajectory.create(t, angles, pos, quat, source="synthetic gait")
