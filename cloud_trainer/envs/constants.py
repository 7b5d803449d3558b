"""Timing, observation layout and action layout of the locomotion environments, named once.

Timing: the physics runs at ``PHYSICS_TIMESTEP_S`` = 1/180 s and the policy at ``CONTROL_RATE_HZ`` = 30 Hz (the
paper's control rate), ``N_SUBSTEPS`` = 6 physics steps per control step.

Observation (one frame, ``FRAME_LAYOUT``; the policy sees ``N_STACKED_FRAMES`` = 3 frames, oldest first, as the paper
stacks t-2, t-1, t). Positions and velocities "in heading" are expressed in the frame turned by the pelvis's yaw
(:mod:`cloud_trainer.twin.kinematics`); the world frame is x forward along the course, y left, z up.

| name | width | content |
|---|---|---|
| ``phase`` | 2 | sin and cos of 2π·phase of the reference cycle (phase in [0, 1)) |
| ``goal`` | 2 | target speed (m/s), target stride length (m) |
| ``goal_error`` | 2 | measured minus target, over the goal window: speed (m/s), stride length (m) |
| ``torque_limit`` | 7 | current torque limit per joint group (``GROUP_NAMES``) as a fraction of its ceiling |
| ``root_height`` | 1 | pelvis origin above the surface under it (on stairs the pitch line), m |
| ``root_quat`` | 4 | pelvis orientation, quat_wxyz, world frame, w ≥ 0 |
| ``joint_angle`` | 15 | hinge angles, rad (``JOINT_NAMES``) |
| ``root_linvel`` | 3 | pelvis linear velocity in heading, m/s |
| ``root_angvel`` | 3 | pelvis angular velocity in the pelvis frame, rad/s |
| ``joint_velocity`` | 15 | hinge rates, rad/s |
| ``com`` | 3 | whole-body centre of mass relative to the pelvis, in heading, m |
| ``limb_ends`` | 9 | soles (right, left) and spine top relative to the pelvis, in heading, m |
| ``foot_contact`` | 2 | right, left foot touching the terrain (0/1) |
| ``hip_ground`` | 2 | right, left hip joint centre above the ground under it, m |
| ``terrain_rays`` | 13 | distance from the pelvis to the terrain along 13 rays, m, clipped at ``RAY_MAX_M`` |

The terrain rays lie in the pelvis's sagittal plane (heading frame), at angles from −90° to +90° in 15° steps measured
from straight down: −90° points horizontally backwards, 0° straight down, +90° horizontally forwards.

Action (22 values in [−1, 1], ``ACTION_LAYOUT``): 15 target-angle residuals on the reference pose (scaled by the
task's ``residual_scale_rad``), then 7 torque limits, one per anatomical joint, mapped linearly onto the task's
``torque_fraction_range`` of the joint's ceiling. The paper's 14-dimensional activation is the same pair — one target
angle and one torque upper limit per joint for a 7-joint model — with our 3-DoF hips and lumbar and 2-DoF ankles
giving 15 target angles; the torque limits stay one per anatomical joint (7).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from cloud_trainer.twin.constants import END_EFFECTOR_SITES, N_GROUPS, N_JOINTS
from cloud_trainer.twin.model import PHYSICS_TIMESTEP_S

CONTROL_RATE_HZ = 30.0
N_SUBSTEPS = 6
CONTROL_PERIOD_S = N_SUBSTEPS * PHYSICS_TIMESTEP_S
assert abs(CONTROL_PERIOD_S - 1.0 / CONTROL_RATE_HZ) < 1e-12

N_TERRAIN_RAYS = 13
RAY_ANGLES_RAD = np.deg2rad(np.linspace(-90.0, 90.0, N_TERRAIN_RAYS))
RAY_MAX_M = 3.0
N_STACKED_FRAMES = 3

FRAME_LAYOUT: tuple[tuple[str, int], ...] = (
    ("phase", 2),
    ("goal", 2),
    ("goal_error", 2),
    ("torque_limit", N_GROUPS),
    ("root_height", 1),
    ("root_quat", 4),
    ("joint_angle", N_JOINTS),
    ("root_linvel", 3),
    ("root_angvel", 3),
    ("joint_velocity", N_JOINTS),
    ("com", 3),
    ("limb_ends", 3 * len(END_EFFECTOR_SITES)),
    ("foot_contact", 2),
    ("hip_ground", 2),
    ("terrain_rays", N_TERRAIN_RAYS),
)
FRAME_WIDTH = sum(width for _, width in FRAME_LAYOUT)
OBSERVATION_WIDTH = N_STACKED_FRAMES * FRAME_WIDTH


def frame_slices() -> dict[str, slice]:
    """Where each named block sits in one observation frame."""
    slices, start = {}, 0
    for name, width in FRAME_LAYOUT:
        slices[name] = slice(start, start + width)
        start += width
    return slices


def stacked_columns(blocks: Sequence[str], frames: Iterable[int] = range(N_STACKED_FRAMES)) -> np.ndarray:
    """Indices in the stacked observation (oldest frame first) of the named blocks of ``frames``, frame by frame."""
    slices = frame_slices()
    per_frame = np.concatenate([np.arange(slices[b].start, slices[b].stop) for b in blocks])
    return np.concatenate([f * FRAME_WIDTH + per_frame for f in frames])


ACTION_LAYOUT: tuple[tuple[str, int], ...] = (("target_residual", N_JOINTS), ("torque_limit", N_GROUPS))
ACTION_WIDTH = sum(width for _, width in ACTION_LAYOUT)
