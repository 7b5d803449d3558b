"""A reference whose stance feet stand still where they land, for terrain that gives a foot one place to stand.

:func:`~cloud_trainer.motion.stride.with_stride` fits a walk to the stairs' stride by scaling the hip swing; that is
the smallest change that brings the stance foot's mid-stance slide near zero, but the foot still drifts back between
landing and toe-off: on the virtual patients' stairs references by 27 cm (healthy) and 23 cm (hemiparetic) of a
0.6 m stride, so a foot that lands mid-tread would leave its tread, and a walker that keeps its foot on the tread is
pulled away from the reference's limb ends all through its stance.

:func:`planted` holds each foot at the place it lands, along the heading, from landing to toe-off, and lets its swing
carry the difference back to the recorded path along a minimum-jerk curve (the next landing is where it was: the
stride does not change). Only hip and knee flexion change (:func:`~cloud_trainer.motion.leg_ik.solve_legs`), and the
root is raised or lowered frame by frame so that the soles' lowest point stays as high above the ground as recorded.
Held ahead of where it was recorded, a stance foot can be out of the leg's reach from the recorded pelvis height (on
the library's healthy walk at the stairs' stride by up to 1.7 cm); it then stays where it landed and the pelvis sits
lower over it.

A landing is where the swing stops carrying the foot forward: the first sample after the swing's fastest that moves it
on by less than ``LANDING_STEP_FRACTION`` of that, the same rule by which the stairs start their episodes in step with
the treads (:meth:`~cloud_trainer.envs.stairs.StairsEnv._start_x_m`); toe-off, by the same rule, the last sample before
the fastest that moves it as little.
"""

from __future__ import annotations

import mujoco
import numpy as np

from cloud_trainer.errors import ReferenceMotionError
from cloud_trainer.motion.climb import minimum_jerk
from cloud_trainer.motion.leg_ik import in_sagittal_plane, with_feet_at
from cloud_trainer.motion.reference import ReferenceMotion
from cloud_trainer.twin.kinematics import forward_kinematics

#: A foot has landed (has not yet left) once a sample moves it on by less than this fraction of its swing's fastest.
LANDING_STEP_FRACTION = 0.1
#: A held foot further ahead of the pelvis than recorded can be beyond the leg's reach from the recorded pelvis
#: height; the solve then keeps it where it landed and lets it sit higher under the pelvis (an up miss counts this
#: little against a forward one), and the root is lowered to put it back on the ground: the pelvis sits lower.
PLANT_UP_WEIGHT = 0.01
#: Farthest a planted foot may stay from its place along the heading, m: a larger miss means a reference the legs
#: cannot follow at all.
PLANT_TOLERANCE_M = 0.02


def landing_samples(step_m: np.ndarray) -> np.ndarray:
    """The sample at which a foot lands in each cycle of ``step_m`` (..., samples): its forward move from each
    sample of a cycle to the next, cyclic (module docstring)."""
    return _first_slow_step(step_m, 1)


def toe_off_samples(step_m: np.ndarray) -> np.ndarray:
    """The last sample at which a foot stands before its swing, per cycle of ``step_m`` (as
    :func:`landing_samples`): the swing's first move starts there."""
    return (_first_slow_step(step_m, -1) + 1) % step_m.shape[-1]


def _first_slow_step(step_m: np.ndarray, direction: int) -> np.ndarray:
    """The first move of each cycle of ``step_m`` (..., samples), after (``direction`` 1) or before (-1) its fastest,
    shorter than ``LANDING_STEP_FRACTION`` of that."""
    n = step_m.shape[-1]
    fastest = np.argmax(step_m, axis=-1)
    order = (fastest[..., None] + direction * np.arange(1, n + 1)) % n
    slow = np.take_along_axis(step_m, order, axis=-1) <= LANDING_STEP_FRACTION * step_m.max(axis=-1, keepdims=True)
    return np.take_along_axis(order, np.argmax(slow, axis=-1)[..., None], axis=-1)[..., 0]


def planted(reference: ReferenceMotion, model: mujoco.MjModel) -> ReferenceMotion:
    """``reference`` (one gait cycle that travels) with each stance foot held where it lands (module docstring); its
    ``source`` says so. ``model`` is the twin the reference is played on.

    Raises:
        ReferenceMotionError: ``reference`` is not one travelling gait cycle, or a foot cannot be held within
            ``PLANT_TOLERANCE_M`` of its place.
    """
    name = reference.name or "the reference"
    if not reference.cyclic or reference.speed_m_s <= 0:
        raise ReferenceMotionError(f"{name} is not a travelling gait cycle: it has no stance to plant")
    kin = forward_kinematics(model, reference.qpos)
    stride_m = float(np.linalg.norm(reference.cycle_offset_m[:2]))
    travel = reference.cycle_offset_m[:2] / stride_m
    forward_m = (kin.end_pos_m[:, :2, :2] @ travel).T  # (2 legs, T) along the direction of travel
    step_m = np.diff(np.concatenate([forward_m, forward_m[:, :1] + stride_m], axis=1), axis=1)
    landing, toe_off = landing_samples(step_m), toe_off_samples(step_m)
    # a move along the direction of travel is one along the pelvis's heading: a walk's yaw sway is a few degrees
    target = in_sagittal_plane(kin, kin.end_pos_m[:, :2])  # (T, 2 legs, [forward, up])
    for leg in range(2):
        target[:, leg, 0] += _held_back_m(forward_m[leg], stride_m, landing[leg], toe_off[leg])
    plant, miss_m = with_feet_at(reference, model, target, "stance feet planted", up_weight=PLANT_UP_WEIGHT)
    if miss_m[0] > PLANT_TOLERANCE_M:
        raise ReferenceMotionError(
            f"a stance foot of {name} stays {miss_m[0] * 100:.1f} cm from where it landed: the legs cannot hold it "
            "there"
        )
    return plant


def _held_back_m(forward_m: np.ndarray, stride_m: float, landing: int, toe_off: int) -> np.ndarray:
    """How far forward of its recorded place a foot (its positions ``forward_m`` over one cycle) must be, per frame,
    to stand at its landing place until toe-off and rejoin its recorded path at the next landing."""
    n = len(forward_m)
    since_landing = (np.arange(n) - landing) % n
    stance_end = (toe_off - landing) % n  # frames from landing to toe-off
    # the recorded path unrolled from the landing: a frame before the landing in the cycle belongs to the next lap
    held_m = forward_m[landing] - (forward_m + np.where(np.arange(n) < landing, stride_m, 0.0))
    swing_progress = (since_landing - stance_end) / (n - stance_end)  # 0 at toe-off, 1 at the next landing
    return np.where(since_landing <= stance_end, held_m, held_m[toe_off] * (1.0 - minimum_jerk(swing_progress)))
