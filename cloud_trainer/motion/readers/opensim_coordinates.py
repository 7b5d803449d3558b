"""OpenSim generalised coordinates (gait2392, gait10dof, Rajagopal, LocoMuJoCo's humanoids) → our joints.

OpenSim's ground frame is X forward, Y up, Z right; ours is x forward, y left, z up (x = X, y = −Z, z = Y).

==========================  ======================================================================================
OpenSim coordinate          our joint
==========================  ======================================================================================
pelvis_tx, _ty, _tz         root position: (tx, −tz, ty)
pelvis_tilt, _list, _rot.   root orientation: body-fixed rotations about Z, X, Y (``ground_pelvis``), changed frame
hip_flexion/adduction/rot.  hip_flexion/adduction/rotation (same axes and signs)
knee_angle                  knee_flexion = −knee_angle (gait2392, gait10dof: negative = flexion); models whose knee
                            is positive in flexion (Rajagopal 2015, LocoMuJoCo's full humanoid) are detected or named
ankle_angle                 ankle_dorsiflexion (positive = dorsiflexion)
subtalar_angle              ankle_inversion (positive = inversion)
lumbar_extension            lumbar_extension (about Z: positive = extension)
lumbar_bending              lumbar_bending = −lumbar_bending (OpenSim turns about +X: positive bends to the right)
lumbar_rotation             lumbar_rotation (about Y: positive turns the trunk to the left)
==========================  ======================================================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from cloud_trainer.motion.errors import MotionFileError
from cloud_trainer.motion.joints import JOINT_INDEX, N_JOINTS, SIDES
from cloud_trainer.motion.rotations import C_OURS_FROM_YUP_ZRIGHT, axis_angle_matrix, change_frame, wxyz_from_matrix

FloatArray = NDArray[np.float64]

KneeConvention = Literal["auto", "negative_flexion", "positive_flexion"]

#: OpenSim coordinate → (our joint, sign).
_DIRECT: dict[str, tuple[str, float]] = {
    "lumbar_extension": ("lumbar_extension", 1.0),
    "lumbar_bending": ("lumbar_bending", -1.0),
    "lumbar_rotation": ("lumbar_rotation", 1.0),
    **{
        f"{src}_{side}": (f"{dst}_{side}", 1.0)
        for side in SIDES
        for src, dst in (
            ("hip_flexion", "hip_flexion"),
            ("hip_adduction", "hip_adduction"),
            ("hip_rotation", "hip_rotation"),
            ("ankle_angle", "ankle_dorsiflexion"),
            ("subtalar_angle", "ankle_inversion"),
        )
    },
}
ROOT_COORDINATES = ("pelvis_tilt", "pelvis_list", "pelvis_rotation", "pelvis_tx", "pelvis_ty", "pelvis_tz")
KNEE_COORDINATES = tuple(f"knee_angle_{side}" for side in SIDES)
#: Every OpenSim coordinate this module reads.
KNOWN_COORDINATES: tuple[str, ...] = (*_DIRECT, *KNEE_COORDINATES, *ROOT_COORDINATES)


def detect_knee_convention(knee_angles_rad: list[FloatArray]) -> Literal["negative_flexion", "positive_flexion"]:
    """Which sign a model gives knee flexion, from walking data: the knee flexes far more than it hyperextends.

    The sign of the largest-magnitude values (the 95th percentile of |angle|) is the sign of flexion.
    """
    values = np.concatenate([np.asarray(k, float) for k in knee_angles_rad])
    if values.size == 0:
        return "negative_flexion"
    threshold = np.percentile(np.abs(values), 95)
    large = values[np.abs(values) >= threshold]
    return "positive_flexion" if np.sum(large) > 0.0 else "negative_flexion"


def from_opensim_coordinates(
    coordinates: Mapping[str, FloatArray],
    *,
    knee_convention: KneeConvention = "auto",
    pelvis_height_offset_m: float = 0.0,
    source: str = "",
) -> tuple[FloatArray, FloatArray | None, FloatArray, NDArray[np.bool_], NDArray[np.bool_], dict[str, object]]:
    """Map OpenSim coordinates (radians and metres, each (T,)) onto our joints and root.

    Returns ``(angles (T, 15), root_pos (T, 3) or None, root_quat_wxyz (T, 4), joints_measured (15,),
    root_pos_measured (3,), notes)``; ``pelvis_height_offset_m`` is added to ``pelvis_ty`` (models whose pelvis
    body sits above its slide joints, as LocoMuJoCo's).
    """
    lengths = {len(np.asarray(v)) for v in coordinates.values()}
    if len(lengths) != 1:
        raise MotionFileError(f"{source}: coordinate columns differ in length: {sorted(lengths)}")
    (n,) = lengths
    angles = np.zeros((n, N_JOINTS))
    measured = np.zeros(N_JOINTS, dtype=bool)
    # A coordinate that never moves was locked in the source model (LocoMuJoCo's subtalar, gait2392's subtalar at
    # a fixed angle): its value is kept but it counts as unmeasured, so healthy patterns may fill it.
    constant = sorted(c for c, v in coordinates.items() if len(v) > 1 and np.ptp(np.asarray(v, float)) < 1e-9)
    for name, (joint, sign) in _DIRECT.items():
        if name in coordinates:
            angles[:, JOINT_INDEX[joint]] = sign * np.asarray(coordinates[name], float)
            measured[JOINT_INDEX[joint]] = name not in constant
    knees = [np.asarray(coordinates[k], float) for k in KNEE_COORDINATES if k in coordinates]
    convention = detect_knee_convention(knees) if knee_convention == "auto" else knee_convention
    if convention not in ("negative_flexion", "positive_flexion"):
        raise ValueError(f"knee_convention {knee_convention!r}; accepted: auto, negative_flexion, positive_flexion")
    knee_sign = -1.0 if convention == "negative_flexion" else 1.0
    for side in SIDES:
        if f"knee_angle_{side}" in coordinates:
            angles[:, JOINT_INDEX[f"knee_flexion_{side}"]] = knee_sign * np.asarray(coordinates[f"knee_angle_{side}"])
            measured[JOINT_INDEX[f"knee_flexion_{side}"]] = f"knee_angle_{side}" not in constant

    zeros = np.zeros(n)
    tilt, lst, rot = (np.asarray(coordinates.get(c, zeros), float) for c in ROOT_COORDINATES[:3])
    # ground_pelvis: body-fixed Z (tilt), X (list), Y (rotation) in OpenSim's frame.
    R_opensim = (
        axis_angle_matrix([0.0, 0.0, 1.0], tilt)
        @ axis_angle_matrix([1.0, 0.0, 0.0], lst)
        @ axis_angle_matrix([0.0, 1.0, 0.0], rot)
    )
    quat = wxyz_from_matrix(change_frame(R_opensim, C_OURS_FROM_YUP_ZRIGHT))
    translation_names = ("pelvis_tx", "pelvis_ty", "pelvis_tz")
    present = [c in coordinates for c in translation_names]
    root_pos = None
    root_measured = np.zeros(3, dtype=bool)
    if any(present):
        tx, ty, tz = (np.asarray(coordinates.get(c, zeros), float) for c in translation_names)
        root_pos = np.stack([tx, -tz, ty + pelvis_height_offset_m], axis=1)
        root_measured = np.array([present[0], present[2], present[1]])
    notes: dict[str, object] = {
        "knee_convention": convention,
        "root_orientation_measured": [c for c in ROOT_COORDINATES[:3] if c in coordinates],
        "constant_columns": constant,
    }
    return angles, root_pos, quat, measured, root_measured, notes
