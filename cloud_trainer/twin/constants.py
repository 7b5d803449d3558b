"""Names, orders and sign conventions of the digital twin, stated once.

World frame: x forward (walking direction), y to the walker's left, z up (as ``docs/conventions.md``). At the neutral
pose (all joint angles zero, standing upright, facing +x) every segment frame is aligned with the world frame.

Joint sign conventions (positive direction of each hinge):

| joint | positive | hinge axis (segment frame) |
|---|---|---|
| ``lumbar_extension`` | trunk leans back | −y |
| ``lumbar_bending`` | trunk bends to the left | −x |
| ``lumbar_rotation`` | chest turns to the left | +z |
| ``hip_flexion_*`` | thigh swings forward | −y |
| ``hip_adduction_r`` / ``_l`` | thigh towards the midline | +x / −x |
| ``hip_rotation_r`` / ``_l`` | internal rotation (toes turn medially) | +z / −z |
| ``knee_flexion_*`` | knee bends (shank back) | +y |
| ``ankle_dorsiflexion_*`` | toes up | −y |
| ``ankle_inversion_r`` / ``_l`` | sole turns medially | +x / −x |

The model's generalised coordinates are ``qpos = [pelvis position (3), pelvis quat_wxyz (4), JOINT_NAMES (15)]`` and
``qvel = [pelvis linear velocity, world frame (3), pelvis angular velocity, pelvis frame (3), joint rates (15)]``
(MuJoCo's free-joint convention).
"""

from __future__ import annotations

import numpy as np

#: Free root joint of the pelvis.
ROOT_JOINT = "root"

#: Actuated hinge joints in qpos order (after the 7 root coordinates).
JOINT_NAMES: tuple[str, ...] = (
    "lumbar_extension",
    "lumbar_bending",
    "lumbar_rotation",
    "hip_flexion_r",
    "hip_adduction_r",
    "hip_rotation_r",
    "knee_flexion_r",
    "ankle_dorsiflexion_r",
    "ankle_inversion_r",
    "hip_flexion_l",
    "hip_adduction_l",
    "hip_rotation_l",
    "knee_flexion_l",
    "ankle_dorsiflexion_l",
    "ankle_inversion_l",
)
N_JOINTS = len(JOINT_NAMES)
#: Number of root coordinates in qpos (position + quaternion) and in qvel (linear + angular velocity).
N_ROOT_QPOS = 7
N_ROOT_QVEL = 6
NQ = N_ROOT_QPOS + N_JOINTS
NV = N_ROOT_QVEL + N_JOINTS

#: Hinge axis of each joint in its (parent-aligned) segment frame, giving the signs in the module docstring.
JOINT_AXES: dict[str, tuple[float, float, float]] = {
    "lumbar_extension": (0.0, -1.0, 0.0),
    "lumbar_bending": (-1.0, 0.0, 0.0),
    "lumbar_rotation": (0.0, 0.0, 1.0),
    "hip_flexion_r": (0.0, -1.0, 0.0),
    "hip_adduction_r": (1.0, 0.0, 0.0),
    "hip_rotation_r": (0.0, 0.0, 1.0),
    "knee_flexion_r": (0.0, 1.0, 0.0),
    "ankle_dorsiflexion_r": (0.0, -1.0, 0.0),
    "ankle_inversion_r": (1.0, 0.0, 0.0),
    "hip_flexion_l": (0.0, -1.0, 0.0),
    "hip_adduction_l": (-1.0, 0.0, 0.0),
    "hip_rotation_l": (0.0, 0.0, -1.0),
    "knee_flexion_l": (0.0, 1.0, 0.0),
    "ankle_dorsiflexion_l": (0.0, -1.0, 0.0),
    "ankle_inversion_l": (-1.0, 0.0, 0.0),
}

#: Range of motion, degrees, [min, max] in the positive conventions above. Normal active ranges of the American
#: Academy of Orthopaedic Surgeons (Greene & Heckman 1994, "The Clinical Measurement of Joint Motion"): hip flexion
#: 120°, extension 30°, adduction 30°, abduction 45°, internal/external rotation 45°; knee flexion 135° (5° of
#: hyperextension allowed); ankle dorsiflexion 20°, plantarflexion 50°, inversion 35°, eversion 15°; thoracolumbar
#: flexion 80°, extension 25°, lateral bending 35°, rotation 45°.
JOINT_RANGES_DEG: dict[str, tuple[float, float]] = {
    "lumbar_extension": (-80.0, 25.0),
    "lumbar_bending": (-35.0, 35.0),
    "lumbar_rotation": (-45.0, 45.0),
    "hip_flexion": (-30.0, 120.0),
    "hip_adduction": (-45.0, 30.0),
    "hip_rotation": (-45.0, 45.0),
    "knee_flexion": (-5.0, 135.0),
    "ankle_dorsiflexion": (-50.0, 20.0),
    "ankle_inversion": (-15.0, 35.0),
}

#: Anatomical joints whose torque ceiling the policy scales with one action each (the paper's "upper limits of joint
#: torques"), and the hinge DoFs that belong to each.
JOINT_GROUPS: dict[str, tuple[str, ...]] = {
    "lumbar": ("lumbar_extension", "lumbar_bending", "lumbar_rotation"),
    "hip_r": ("hip_flexion_r", "hip_adduction_r", "hip_rotation_r"),
    "knee_r": ("knee_flexion_r",),
    "ankle_r": ("ankle_dorsiflexion_r", "ankle_inversion_r"),
    "hip_l": ("hip_flexion_l", "hip_adduction_l", "hip_rotation_l"),
    "knee_l": ("knee_flexion_l",),
    "ankle_l": ("ankle_dorsiflexion_l", "ankle_inversion_l"),
}
GROUP_NAMES: tuple[str, ...] = tuple(JOINT_GROUPS)
N_GROUPS = len(GROUP_NAMES)
#: For each joint in JOINT_NAMES order, the index of its group in GROUP_NAMES.
JOINT_GROUP_INDEX = np.array(
    [next(i for i, g in enumerate(GROUP_NAMES) if j in JOINT_GROUPS[g]) for j in JOINT_NAMES], dtype=np.intp
)

#: Bodies, parents first. The pelvis carries the free joint.
BODY_NAMES: tuple[str, ...] = (
    "pelvis",
    "torso",
    "thigh_r",
    "shank_r",
    "foot_r",
    "thigh_l",
    "shank_l",
    "foot_l",
)
FOOT_BODIES: tuple[str, str] = ("foot_r", "foot_l")
#: Bodies whose touching the ground ends an episode (everything but the feet).
NON_FOOT_BODIES: tuple[str, ...] = tuple(b for b in BODY_NAMES if b not in FOOT_BODIES)

#: Limb-end sites tracked by the imitation reward, in this order: the middle of each sole and the top of the spine
#: (cervicale, de Leva's CERV).
END_EFFECTOR_SITES: tuple[str, ...] = ("foot_end_r", "foot_end_l", "spine_top")
#: Hip joint centres (for the hip-ground distance), right then left.
HIP_SITES: tuple[str, str] = ("hip_r", "hip_l")
#: Top of the head (vertex), for the stature check and renderings.
HEAD_TOP_SITE = "head_top"

#: Name of the standing keyframe every model has.
STAND_KEYFRAME = "stand"
