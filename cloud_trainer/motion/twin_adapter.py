"""The one place the reference-motion pipeline meets the MuJoCo twin: its body as a light chain, and conversion of a
:class:`JointTrajectory` into the twin's :class:`~cloud_trainer.motion.reference.ReferenceMotion`.

Joint names, order and signs are the same on both sides (``cloud_trainer.twin.constants.JOINT_AXES`` equals
:data:`cloud_trainer.motion.joints.JOINT_AXES`; a test checks it), so ``qpos`` carries over unchanged.
"""

from __future__ import annotations

import dataclasses

import mujoco
import numpy as np

from cloud_trainer.motion.joints import JOINT_NAMES
from cloud_trainer.motion.kinematics import Skeleton
from cloud_trainer.motion.reference import ReferenceMotion
from cloud_trainer.motion.trajectory import JointTrajectory
from cloud_trainer.twin.anthropometry import Anthropometry, body_dimensions
from cloud_trainer.twin.model import MTP_PER_FOOT_LENGTH, RADIUS_M


def twin_skeleton(anthropometry: Anthropometry | None = None) -> Skeleton:
    """The twin's body (``cloud_trainer.twin.model``) as a :class:`Skeleton` for the light FK chain.

    Same joint centres (de Leva 1996 lengths, hip spacing, ankle height) and the same contact points: the heel point is
    the bottom of the heel capsule's axis midpoint, the toe point the bottom of the forefoot (MTP) capsule's, both at
    the sole (``ankle_height_m`` below the ankle). ``None`` is the twin's default patient (1.75 m, 70 kg, male).
    """
    anthropometry = anthropometry or Anthropometry()
    dims = body_dimensions(anthropometry)
    scale = anthropometry.height_m / 1.75  # the twin scales its capsule radii with height
    heel_x = -dims.ankle_from_heel_m + RADIUS_M["heel"] * scale
    mtp_x = -dims.ankle_from_heel_m + MTP_PER_FOOT_LENGTH * dims.foot_length_m
    return Skeleton(
        hip_offset_m=(0.0, -0.5 * dims.hip_spacing_m, 0.0),
        thigh_length_m=dims.thigh_length_m,
        shank_length_m=dims.shank_length_m,
        ankle_height_m=dims.ankle_height_m,
        heel_back_m=-heel_x,
        toe_forward_m=mtp_x,
        lumbar_offset_m=(0.0, 0.0, dims.lower_trunk_length_m),
        trunk_length_m=dims.upper_body_length_m,
        name=f"StrideTwin twin, {anthropometry.height_m:.2f} m {anthropometry.sex}",
    )


def to_reference_motion(trajectory: JointTrajectory, model: mujoco.MjModel, *, name: str = "") -> ReferenceMotion:
    """The twin's reference motion for ``trajectory`` (forward-kinematics targets from ``model``).

    A cyclic cycle trajectory (N + 1 frames, the last closing the loop) becomes a cyclic motion of its first N frames;
    the exact stride from the closing frame replaces ``from_qpos``'s estimate from the mean root velocity. Anything
    else becomes a non-cyclic motion with the period and stride recorded in ``meta`` (or its duration and travel).
    """
    if trajectory.meta.get("cyclic"):
        qpos = trajectory.qpos()
        offset = qpos[-1, :3] - qpos[0, :3]
        offset[2] = 0.0
        motion = ReferenceMotion.from_qpos(
            model,
            qpos[:-1],
            trajectory.dt_s,
            cyclic=True,
            joint_weights=trajectory.joint_weights,
            name=name,
            source=trajectory.source,
        )
        stride = float(np.linalg.norm(offset[:2]))
        # from_qpos estimates the loop offset from the mean root velocity of the N frames; the closing frame gives it
        # exactly (they differ where the pelvis speeds up and slows down within the stride).
        return dataclasses.replace(
            motion,
            speed_m_s=stride / motion.cycle_period_s,
            stride_length_m=stride,
            cycle_offset_m=offset,
            notes=_notes(trajectory),
        )
    travel = float(np.linalg.norm(trajectory.root_pos_m[-1, :2] - trajectory.root_pos_m[0, :2]))
    motion = ReferenceMotion.from_qpos(
        model,
        trajectory.qpos(),
        trajectory.dt_s,
        cyclic=False,
        cycle_period_s=float(trajectory.meta.get("period_s", trajectory.duration_s)),
        stride_length_m=float(trajectory.meta.get("stride_length_m", travel)),
        joint_weights=trajectory.joint_weights,
        name=name,
        source=trajectory.source,
    )
    return dataclasses.replace(motion, notes=_notes(trajectory))


def _notes(trajectory: JointTrajectory) -> dict[str, str]:
    return {
        name: "measured" if measured else "filled from healthy pattern"
        for name, measured in zip(JOINT_NAMES, trajectory.joints_measured, strict=True)
    }
