"""A level-walking reference turned into one that climbs a staircase with the same gait.

On stairs the imitated motion is the patient's level walk at the stairs' stride (:mod:`cloud_trainer.motion.stride`),
and its feet move as over level ground. A climbing foot does not: it stands still on its tread while the body rises
and then swings up to a tread ``rise_per_stride_m`` higher (two risers for step-over-step climbing). Imitated as
recorded, the reference pulls every swing foot down at the riser it has to clear and asks the landing leg to reach a
tread that is not there; the policy's actions are residuals around the reference, so a lifting foot has to fight the
reference the whole way up (docs/pipeline.md, "Stairs above 3.75 cm").

:func:`climbing` keeps the recorded gait and changes only where each foot is relative to the pelvis, which rises at
an even ``rise_per_stride_m`` per cycle. Each foot's world height rises by ``rise_per_stride_m`` while the foot is
raised in the recorded swing (higher than ``RAISED_FRACTION`` of its swing height: from just after toe-off to just
before landing), along a minimum-jerk curve, and stays still otherwise. Seen from the pelvis the foot is therefore
higher than recorded by ``(1 − raised share of the cycle) × rise`` at landing and by about nothing at toe-off. Each
leg's hip and knee flexion are solved to put the foot there (a planar two-link estimate, then damped Gauss-Newton
steps on forward kinematics, in the sagittal plane of the heading frame), and the root is lowered frame by frame so
that the soles' lowest point stays as high above the ground as recorded: the pelvis sits lower over a bent stance
leg, and an episode that starts from a frame of the reference starts with a foot on the ground. The other joints
are as recorded.

On the healthy virtual patient's stairs reference (0.6 m strides), 15 cm risers (30 cm a stride) give 65° of hip
flexion at landing and 108° of knee flexion in swing, against 25° and 70° on level ground; gait-lab studies of healthy
stair ascent report about 60° and 90-100° (e.g. Riener, Rabuffetti & Frigo, Gait Posture 2002).
"""

from __future__ import annotations

import mujoco
import numpy as np

from cloud_trainer.errors import ReferenceMotionError
from cloud_trainer.motion.leg_ik import in_sagittal_plane, with_feet_at
from cloud_trainer.motion.reference import ReferenceMotion
from cloud_trainer.twin.kinematics import forward_kinematics

#: A foot is raised (and rises onto its next tread) while it is higher than this fraction of its recorded swing
#: height above its lowest: on the virtual patients about the middle 60-70 % of the swing, so that it has risen
#: before it lands. A foot's highest frame alone does not say when it lands: the hemiparetic patient's paretic foot
#: peaks early in a swing that lasts half the cycle.
RAISED_FRACTION = 0.25
#: Farthest a solved foot may stay from its target, m.
IK_TOLERANCE_M = 0.005


def minimum_jerk(s: np.ndarray) -> np.ndarray:
    """The minimum-jerk rise from 0 to 1 over ``s`` in [0, 1] (clipped outside): zero speed and acceleration at
    both ends."""
    s = np.clip(s, 0.0, 1.0)
    return s**3 * (10.0 - 15.0 * s + 6.0 * s**2)


def raised_frames(height_m: np.ndarray) -> tuple[int, int]:
    """The first and last frame of the stretch of a cycle around a foot's highest frame in which it is higher than
    ``RAISED_FRACTION`` of its swing above its lowest (cyclic: the first may come after the last)."""
    n = len(height_m)
    raised = height_m - height_m.min() > RAISED_FRACTION * np.ptp(height_m)
    top = int(np.argmax(height_m))
    first = last = top
    while raised[(first - 1) % n] and (first - 1) % n != top:
        first -= 1
    while raised[(last + 1) % n] and (last + 1) % n != top:
        last += 1
    return first % n, last % n


def foot_lift_m(n_frames: int, rise_start: int, rise_end: int, rise_per_stride_m: float) -> np.ndarray:
    """How much higher than recorded a foot is, seen from a pelvis rising evenly by ``rise_per_stride_m`` per cycle,
    per frame of a cycle of ``n_frames`` whose foot rises onto its next tread from frame ``rise_start`` to
    ``rise_end`` (module docstring): 0 at the start of the rise, briefly a little below (the minimum-jerk rise starts
    slower than the pelvis: at most 2 % of the rise)."""
    window = ((rise_end - rise_start) % n_frames or n_frames) / n_frames
    # cycle phase from the start of the foot's rise, in [0, 1)
    phase = ((np.arange(n_frames) - rise_start) / n_frames) % 1.0
    world_rise = rise_per_stride_m * minimum_jerk(phase / window)
    return world_rise - rise_per_stride_m * phase


def climbing(reference: ReferenceMotion, model: mujoco.MjModel, rise_per_stride_m: float) -> ReferenceMotion:
    """``reference`` (one level gait cycle) climbing ``rise_per_stride_m`` per stride; module docstring.

    ``model`` is the twin the reference is played on. A rise of 0 returns ``reference`` itself.

    Raises:
        ReferenceMotionError: ``reference`` is not one gait cycle, the rise is negative, or a foot cannot be put where
            the climb needs it (the leg would have to reach beyond its joint ranges).
    """
    if rise_per_stride_m < 0:
        raise ReferenceMotionError(f"rise_per_stride_m must be ≥ 0, got {rise_per_stride_m}")
    if rise_per_stride_m == 0:
        return reference
    if not reference.cyclic:
        raise ReferenceMotionError(f"{reference.name or 'the reference'} is not one gait cycle: it cannot climb")
    qpos = reference.qpos
    recorded = forward_kinematics(model, qpos)
    n = len(qpos)
    lift = np.stack(
        [foot_lift_m(n, *raised_frames(recorded.end_pos_m[:, leg, 2]), rise_per_stride_m) for leg in range(2)], axis=1
    )
    target = in_sagittal_plane(recorded, recorded.end_pos_m[:, :2])  # (T, 2 legs, [x, z])
    target[..., 1] += lift
    climb, miss_m = with_feet_at(reference, model, target, f"climbing {rise_per_stride_m * 100:.1f} cm a stride")
    if miss_m.max() > IK_TOLERANCE_M:
        raise ReferenceMotionError(
            f"a foot of the climbing reference stays {miss_m.max() * 100:.1f} cm from where the climb needs it: the "
            "rise is beyond what the legs' joint ranges reach"
        )
    return climb
