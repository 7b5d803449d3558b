"""Predicted joint angles in the bedside analysis's names and conventions, and their CSV file.

The twin's hinges (docs/twin-model.md) and the capture core's ISB joint coordinate system angles
(docs/joint-angles.md) share axes and signs, so a prediction can be compared column by column with what
``stridetwin analyze --angles-csv`` writes for a measured walk:

- **Hips**: the capture core decomposes ``R_pelvis_thigh = R_y(α) R_x(β) R_z(γ)`` and reports flexion −α, adduction
  +β right / −β left, internal rotation +γ right / −γ left. The twin's hip is ``R(−y, flexion) R(±x, adduction)
  R(±z, rotation)`` (+ right, − left) = ``R_y(−flexion) R_x(±adduction) R_z(±rotation)``: α = −flexion,
  β = ±adduction, γ = ±rotation, so each ISB angle is the hinge angle itself.
- **Knees**: ISB flexion is α of ``R_thigh_shank = R_y(α)…``; the twin's knee turns about +y: equal.
- **Ankles** (extra columns, the virtual patient's truth names): ISB dorsiflexion is −α of ``R_shank_foot``; the
  twin's ``R(−y, dorsiflexion) R(±x, inversion)`` gives α = −dorsiflexion: equal.
- **Pelvis**: relative to the walkway (world: x along the course, y left, z up), Baker's (2001) rotation-obliquity-
  tilt order, ``R_world_pelvis = R_z(rotation) R_x(obliquity) R_y(tilt)``: tilt + anterior, obliquity + left side up,
  rotation + turning left. The twin's pelvis frame is aligned with the world at the neutral pose, as the capture
  core's standing calibration makes the pelvis segment frame.

A test runs random poses through MuJoCo's forward kinematics and both the capture core's and the virtual patient's
joint-angle code and compares with :func:`angles_deg_from_qpos` (1e-9 °).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from cloud_trainer.twin.constants import JOINT_NAMES, N_ROOT_QPOS, NQ

#: Columns of ``stridetwin analyze --angles-csv`` (docs/cli-json.md, "Angle CSV"), in its order.
ANALYZE_ANGLE_COLUMNS: tuple[str, ...] = (
    "pelvis_tilt_deg", "pelvis_obliquity_deg", "pelvis_rotation_deg",
    "hip_flexion_l_deg", "hip_adduction_l_deg", "hip_rotation_l_deg",
    "hip_flexion_r_deg", "hip_adduction_r_deg", "hip_rotation_r_deg",
    "knee_flexion_l_deg", "knee_flexion_r_deg",
)  # fmt: skip
#: Further columns a prediction has (five IMUs do not measure the ankles; the virtual patient's truth names them so).
EXTRA_ANGLE_COLUMNS: tuple[str, ...] = ("ankle_dorsiflexion_l_deg", "ankle_dorsiflexion_r_deg")
ANGLE_COLUMNS: tuple[str, ...] = ANALYZE_ANGLE_COLUMNS + EXTRA_ANGLE_COLUMNS
#: Column → twin hinge whose angle it equals (see the module docstring for the derivation).
HINGE_OF_COLUMN: dict[str, str] = {
    f"{name}_{side}_deg": f"{name}_{side}"
    for side in ("l", "r")
    for name in ("hip_flexion", "hip_adduction", "hip_rotation", "knee_flexion", "ankle_dorsiflexion")
}


def pelvis_angles_rad(quat_wxyz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tilt, obliquity, rotation) of ``R_world_pelvis = R_z(rotation) R_x(obliquity) R_y(tilt)`` (Baker 2001), rad,
    for quaternions (..., 4)."""
    w, x, y, z = np.moveaxis(np.asarray(quat_wxyz, dtype=float), -1, 0)
    n = np.sqrt(w * w + x * x + y * y + z * z)
    w, x, y, z = w / n, x / n, y / n, z / n
    # rotation-matrix entries used by the Z-X-Y Cardan decomposition
    r01 = 2 * (x * y - w * z)
    r11 = 1 - 2 * (x * x + z * z)
    r20 = 2 * (x * z - w * y)
    r21 = 2 * (y * z + w * x)
    r22 = 1 - 2 * (x * x + y * y)
    obliquity = np.arcsin(np.clip(r21, -1.0, 1.0))
    rotation = np.arctan2(-r01, r11)
    tilt = np.arctan2(-r20, r22)
    return tilt, obliquity, rotation


def angles_deg_from_qpos(qpos: np.ndarray) -> dict[str, np.ndarray]:
    """The :data:`ANGLE_COLUMNS` angles (degrees, (T,)) of twin poses ``qpos`` (T, 22).

    Raises:
        ValueError: ``qpos`` is not (T, 22).
    """
    q = np.atleast_2d(np.asarray(qpos, dtype=float))
    if q.ndim != 2 or q.shape[1] != NQ:
        raise ValueError(f"qpos must be (n_frames, {NQ}), got shape {np.shape(qpos)}")
    tilt, obliquity, rotation = pelvis_angles_rad(q[:, 3:7])
    out = {
        "pelvis_tilt_deg": np.degrees(tilt),
        "pelvis_obliquity_deg": np.degrees(obliquity),
        "pelvis_rotation_deg": np.degrees(rotation),
    }
    for column, hinge in HINGE_OF_COLUMN.items():
        out[column] = np.degrees(q[:, N_ROOT_QPOS + JOINT_NAMES.index(hinge)])
    return {name: out[name] for name in ANGLE_COLUMNS}


def write_angles_csv(path: Path, time_s: np.ndarray, angles_deg: Mapping[str, np.ndarray]) -> int:
    """Write predicted angles as ``stridetwin analyze --angles-csv`` does (``time_s`` 4 decimals, angles 3, empty
    cell for an unknown value), columns in :data:`ANGLE_COLUMNS` order; returns the number of rows.

    Raises:
        ValueError: a column is missing or has another length than ``time_s``.
    """
    time_s = np.asarray(time_s, dtype=float)
    missing = [c for c in ANGLE_COLUMNS if c not in angles_deg]
    if missing:
        raise ValueError(f"angles lack the columns {missing}; expected {list(ANGLE_COLUMNS)}")
    table = np.column_stack([time_s] + [np.asarray(angles_deg[c], dtype=float) for c in ANGLE_COLUMNS])
    if table.shape[0] != len(time_s):
        raise ValueError("every angle column must have one value per time_s row")
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["time_s", *ANGLE_COLUMNS])
        for row in table:
            writer.writerow([f"{row[0]:.4f}"] + ["" if not np.isfinite(x) else f"{x:.3f}" for x in row[1:]])
    tmp.replace(path)
    return int(table.shape[0])


def read_angles_csv(path: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``time_s`` and the angle columns (NaN for empty cells) of an angle CSV, predicted or measured."""
    with Path(path).open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    if not rows or rows[0][:1] != ["time_s"]:
        raise ValueError(f"{path}: not an angle CSV (first column must be time_s)")
    header, body = rows[0], rows[1:]
    values = np.array([[float(x) if x != "" else np.nan for x in row] for row in body], dtype=float)
    values = values.reshape(len(body), len(header))
    return values[:, 0], {name: values[:, i] for i, name in enumerate(header) if i > 0}
