"""A reference walked with another stride length at its own cadence, legs and body consistent.

Time resampling (:meth:`ReferenceMotion.resampled`) scales the root's path to a new stride but keeps the joint
trajectories: the legs still swing through the recorded stride's angles. Near the recorded stride that is harmless;
far from it the reference contradicts itself. The stair task asks for two 30 cm treads per stride at the patient's own
cadence, 0.6 m against a recorded 1.3 m: the reference body then advances 0.6 m a stride while its legs reach as for
1.3 m, so its stance foot slides backwards under it at about the walking speed and every swing foot lands a tread
too far. Imitating such a reference rewards what the stairs forbid.

:func:`with_stride` makes the reference consistent again with the smallest change that does it: the sagittal hip
swing (each hip's flexion about its cycle mean) is scaled by the factor that makes the stance foot stand still (the
least mean horizontal speed of the stance sole in mid-stance, :func:`stance_slip_m_s`), and the root is raised or
lowered frame by frame so that the soles' lowest point stays as high above the ground as recorded (straighter legs
would otherwise sink into the floor). Knees, ankles, trunk and frontal-plane angles keep the patient's own
trajectories. On a healthy walk at 0.6 m instead of 1.3-1.4 m the factor is about 0.6, and the stance sole's
slide falls from more than the walking speed to under a third of it (the recorded walk: 0.01-0.03 m/s).
"""

from __future__ import annotations

import mujoco
import numpy as np

from cloud_trainer.errors import ReferenceMotionError
from cloud_trainer.motion.reference import ReferenceMotion
from cloud_trainer.twin.constants import JOINT_NAMES, N_ROOT_QPOS
from cloud_trainer.twin.kinematics import forward_kinematics, lowest_sole_m

#: Hip-swing factors searched, relative to the recorded swing (finer than the slip's sensitivity to it).
HIP_SWING_FACTORS = np.round(np.arange(0.2, 1.5001, 0.025), 3)
_HIP_COLUMNS = [N_ROOT_QPOS + JOINT_NAMES.index(name) for name in ("hip_flexion_r", "hip_flexion_l")]


def stance_slip_m_s(model: mujoco.MjModel, motion: ReferenceMotion) -> float:
    """Mean horizontal speed of the stance foot's sole in mid-stance over one cycle of a cyclic ``motion``, m/s:
    about 0 for a reference whose stance foot stands still (0.01-0.03 for a recorded walk), about the walking speed for
    one whose feet slide with the body.

    Mid-stance: frames where the same sole has been and stays the lower one for a tenth of the cycle either side
    (away from the weight transfer, where the lower sole switches, and from heel and toe roll, which move the sole's
    mid-point with no slide)."""
    return _stance_slip_m_s(model, motion.qpos, motion.cycle_offset_m, motion.dt_s)


def _stance_slip_m_s(model: mujoco.MjModel, qpos: np.ndarray, cycle_offset_m: np.ndarray, dt_s: float) -> float:
    """:func:`stance_slip_m_s` of one cycle of poses ``qpos`` (frame ``n`` is frame 0 moved by ``cycle_offset_m``)."""
    soles = _soles_m(model, qpos)
    n = len(soles)
    following = np.concatenate([soles[1:], soles[:1] + cycle_offset_m], axis=0)
    lower = np.argmin(soles[:, :, 2], axis=1)
    half_window = max(1, n // 10)
    around = (np.arange(n)[:, None] + np.arange(-half_window, half_window + 1)[None, :]) % n
    mid_stance = (lower[around] == lower[:, None]).all(axis=1)
    if not mid_stance.any():
        return float("inf")  # no foot stands for a fifth of the cycle: not a walk to compare
    rows = np.flatnonzero(mid_stance)
    step_m = np.linalg.norm(following[rows, lower[rows], :2] - soles[rows, lower[rows], :2], axis=1)
    return float(step_m.mean() / dt_s)


def with_stride(
    reference: ReferenceMotion, model: mujoco.MjModel, speed_m_s: float, stride_length_m: float
) -> ReferenceMotion:
    """``reference`` walked at ``speed_m_s`` with strides of ``stride_length_m``, its hip swing scaled to keep the
    stance foot still (module docstring); its ``source`` names the hip-swing factor used.

    ``model`` is the twin the reference is played on (its segment lengths set how far a hip angle reaches).

    Raises:
        ReferenceMotionError: ``reference`` does not travel or is not cyclic, or a target is not positive (from
            :meth:`ReferenceMotion.resampled`).
    """
    resampled = reference.resampled(speed_m_s, stride_length_m)
    if not resampled.cyclic:
        raise ReferenceMotionError(f"{reference.name or 'the reference'} is not one gait cycle: no stride to rescale")
    qpos = resampled.qpos
    hips = qpos[:, _HIP_COLUMNS]
    mean = hips.mean(axis=0)

    def scaled(factor: float) -> np.ndarray:
        frames = qpos.copy()
        frames[:, _HIP_COLUMNS] = mean + factor * (hips - mean)
        return frames

    # the hips do not move the root: every candidate keeps the resampled cycle's offset and frame step
    slips = [_stance_slip_m_s(model, scaled(f), resampled.cycle_offset_m, resampled.dt_s) for f in HIP_SWING_FACTORS]
    factor = float(HIP_SWING_FACTORS[int(np.argmin(slips))])
    frames = scaled(factor)
    # keep the soles' lowest point as high above the ground as recorded: straighter legs reach lower
    frames[:, 2] += lowest_sole_m(model, qpos) - lowest_sole_m(model, frames)
    return ReferenceMotion.from_qpos(
        model,
        frames,
        resampled.dt_s,
        cyclic=True,
        joint_weights=reference.joint_weights,
        name=reference.name,
        source=f"{resampled.source}, hip swing × {factor:.3f}",
    )


def _soles_m(model: mujoco.MjModel, qpos: np.ndarray) -> np.ndarray:
    """World positions of the two soles (right, left) for poses ``qpos``, (T, 2, 3)."""
    return forward_kinematics(model, qpos).end_pos_m[:, :2]
