"""The model's joints: names, order, hinge axes and signs, and the Euler sequences of the ball joints.

Frames follow ``docs/conventions.md``: world x forward (walking direction), y left, z up; every segment frame
coincides with the world frame at the neutral standing pose (facing +x, legs straight, feet flat).

Each joint is a hinge about a fixed axis of its parent segment frame; a positive angle is a right-handed rotation
about that axis. The axes are chosen so that positive means, for both sides:

==========================  ===========  ===========  =============================================
joint                       axis (right)  axis (left)  positive
==========================  ===========  ===========  =============================================
lumbar_extension            -y                         trunk leans backward (extension)
lumbar_bending              -x                         trunk bends to the left
lumbar_rotation             +z                         trunk turns to the left
hip_flexion_{r,l}           -y           -y           thigh swings forward (flexion)
hip_adduction_{r,l}         +x           -x           thigh moves toward the midline (adduction)
hip_rotation_{r,l}          +z           -z           internal rotation
knee_flexion_{r,l}          +y           +y           shank swings backward (flexion)
ankle_dorsiflexion_{r,l}    -y           -y           toes up (dorsiflexion)
ankle_inversion_{r,l}       +x           -x           sole turns toward the midline (inversion)
==========================  ===========  ===========  =============================================

Several hinges in a row form one anatomical joint; they are applied in the order listed (parent to child), so a
segment's orientation relative to its parent is, e.g. for the right hip,
``R_pelvis_thigh = R(-y, flexion) · R(+x, adduction) · R(+z, rotation)``: an intrinsic y-x-z Euler sequence with
per-axis signs. This is the OpenSim gait2392 / Rajagopal hip and lumbar convention (Z-X-Y there, whose X forward,
Y up, Z right frame maps to ours as x = X, y = -Z, z = Y).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

# Re-exported: the motion package speaks of joints by these names.
from cloud_trainer.twin.constants import JOINT_NAMES as JOINT_NAMES
from cloud_trainer.twin.constants import N_JOINTS as N_JOINTS

FloatArray = NDArray[np.float64]

# The fifteen hinge joints after the free root, in the model's qpos order: one definition, the twin's.
JOINT_INDEX: dict[str, int] = {name: i for i, name in enumerate(JOINT_NAMES)}

#: Sides, as they end joint names.
SIDES: tuple[str, str] = ("r", "l")

_X = np.array([1.0, 0.0, 0.0])
_Y = np.array([0.0, 1.0, 0.0])
_Z = np.array([0.0, 0.0, 1.0])

#: Hinge axis of every joint in its parent segment frame (see the module docstring).
JOINT_AXES: dict[str, FloatArray] = {
    "lumbar_extension": -_Y,
    "lumbar_bending": -_X,
    "lumbar_rotation": _Z,
    "hip_flexion_r": -_Y,
    "hip_adduction_r": _X,
    "hip_rotation_r": _Z,
    "knee_flexion_r": _Y,
    "ankle_dorsiflexion_r": -_Y,
    "ankle_inversion_r": _X,
    "hip_flexion_l": -_Y,
    "hip_adduction_l": -_X,
    "hip_rotation_l": -_Z,
    "knee_flexion_l": _Y,
    "ankle_dorsiflexion_l": -_Y,
    "ankle_inversion_l": -_X,
}


@dataclass(frozen=True)
class BallJoint:
    """Hinges in a row that together rotate one segment relative to its parent (hip, lumbar, ankle, knee).

    ``joints`` are the hinge names in chain order; their axes are ± the frame axes named by ``sequence`` (intrinsic,
    upper-case as scipy writes intrinsic sequences). A joint with fewer hinges than three (knee, ankle) drops the
    remaining rotations of the y-x-z sequence; :func:`cloud_trainer.motion.rotations.decompose` reports what it dropped.
    """

    name: str
    parent: str
    child: str
    joints: tuple[str, ...]

    @property
    def signs(self) -> FloatArray:
        """+1 where a hinge turns about +x/+y/+z, -1 where about the negative axis, in chain order."""
        return np.array([float(JOINT_AXES[j].sum()) for j in self.joints])


#: The y-x-z sequence every ball joint uses (flexion/extension, then ab/adduction or bending, then axial rotation).
EULER_SEQUENCE = "YXZ"

#: Anatomical joints from the pelvis outward. Segment names: pelvis, trunk, thigh_{r,l}, shank_{r,l}, foot_{r,l}.
BALL_JOINTS: tuple[BallJoint, ...] = (
    BallJoint("lumbar", "pelvis", "trunk", ("lumbar_extension", "lumbar_bending", "lumbar_rotation")),
    *(
        ball
        for side in SIDES
        for ball in (
            BallJoint(
                f"hip_{side}",
                "pelvis",
                f"thigh_{side}",
                tuple(f"hip_{d}_{side}" for d in ("flexion", "adduction", "rotation")),
            ),
            BallJoint(f"knee_{side}", f"thigh_{side}", f"shank_{side}", (f"knee_flexion_{side}",)),
            BallJoint(
                f"ankle_{side}",
                f"shank_{side}",
                f"foot_{side}",
                (f"ankle_dorsiflexion_{side}", f"ankle_inversion_{side}"),
            ),
        )
    ),
)
BALL_JOINT_BY_NAME: dict[str, BallJoint] = {b.name: b for b in BALL_JOINTS}

#: Joints five IMUs (pelvis, thighs, shanks) measure; the rest (trunk, ankles) are filled from healthy patterns.
IMU_MEASURED_JOINTS: tuple[str, ...] = tuple(
    f"{d}_{side}" for side in SIDES for d in ("hip_flexion", "hip_adduction", "hip_rotation", "knee_flexion")
)


def joint_indices(names: tuple[str, ...] | list[str]) -> list[int]:
    """Column indices of ``names`` in :data:`JOINT_NAMES`, with a clear error for an unknown name."""
    try:
        return [JOINT_INDEX[n] for n in names]
    except KeyError as exc:
        raise KeyError(f"unknown joint {exc.args[0]!r}; accepted: {', '.join(JOINT_NAMES)}") from None


def mirror_joint_name(name: str) -> str:
    """``hip_flexion_r`` ↔ ``hip_flexion_l``; lumbar joints map to themselves."""
    if name.endswith("_r"):
        return name[:-2] + "_l"
    if name.endswith("_l"):
        return name[:-2] + "_r"
    return name
