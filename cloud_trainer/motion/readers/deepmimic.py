"""DeepMimic motion files (JSON, ``humanoid3d`` character) → :class:`JointTrajectory`.

Format (xbpeng/DeepMimic ``data/motions``): ``{"Loop": "wrap"|"none", "Frames": [[…], …]}``; each frame of the
``humanoid3d`` character has 44 numbers, checked against ``data/characters/character_humanoid3d.txt``:

==============  =====  ======================================================================================
field           width  meaning
==============  =====  ======================================================================================
dt              1      seconds from this frame to the next (0 on the last frame)
root position   3      world, metres, y up
root rotation   4      quaternion w, x, y, z (world ← root)
chest           4      quaternion (root ← chest)            → lumbar_extension/bending/rotation
neck            4      quaternion                              (not in our model)
right hip       4      quaternion (root ← right thigh)      → hip_flexion/adduction/rotation_r
right knee      1      angle about z, rad, ≤ 0 in flexion   → knee_flexion_r = −angle
right ankle     4      quaternion (shank ← foot)            → ankle_dorsiflexion/inversion_r
right shoulder  4      quaternion                              (not in our model)
right elbow     1      angle                                   (not in our model)
left …          14     the same for the left side
==============  =====  ======================================================================================

DeepMimic's frames are x forward, y up, z right (the right hip sits at +z); we change every rotation into ours
(x forward, y left, z up) as ``C R Cᵀ`` and split ball joints along our y-x-z sequence
(:func:`cloud_trainer.motion.rotations.decompose`). The ankle's third rotation (about the shank's long axis) has no
hinge in our model; its largest magnitude is recorded in ``meta['dropped_rad']``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cloud_trainer.motion.errors import MotionFileError
from cloud_trainer.motion.joints import BALL_JOINT_BY_NAME, JOINT_INDEX, N_JOINTS
from cloud_trainer.motion.readers.uniform import to_uniform_trajectory
from cloud_trainer.motion.rotations import (
    C_OURS_FROM_YUP_ZRIGHT,
    change_frame,
    decompose,
    matrix_from_wxyz,
    wxyz_from_matrix,
)
from cloud_trainer.motion.trajectory import JointTrajectory

#: Offsets of each field in a humanoid3d frame: name → (start, width).
HUMANOID3D_LAYOUT: dict[str, tuple[int, int]] = {}
_offset = 0
for _name, _width in (
    ("dt", 1),
    ("root_pos", 3),
    ("root_rot", 4),
    ("chest", 4),
    ("neck", 4),
    ("right_hip", 4),
    ("right_knee", 1),
    ("right_ankle", 4),
    ("right_shoulder", 4),
    ("right_elbow", 1),
    ("left_hip", 4),
    ("left_knee", 1),
    ("left_ankle", 4),
    ("left_shoulder", 4),
    ("left_elbow", 1),
):
    HUMANOID3D_LAYOUT[_name] = (_offset, _width)
    _offset += _width
HUMANOID3D_FRAME_WIDTH = _offset  # 44


def _field(frames: np.ndarray, name: str) -> np.ndarray:
    start, width = HUMANOID3D_LAYOUT[name]
    return frames[:, start : start + width]


def load_deepmimic_frames(path: str | Path) -> tuple[np.ndarray, dict[str, object]]:
    """The frame table (T, 44) and the other top-level keys of a DeepMimic motion file, validated."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise MotionFileError(f"{path}: cannot read ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise MotionFileError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from exc
    if not isinstance(data, dict) or "Frames" not in data:
        keys = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise MotionFileError(f"{path}: a DeepMimic motion is a JSON object with 'Frames'; got {keys}")
    frames = data["Frames"]
    if not isinstance(frames, list) or len(frames) < 2:
        raise MotionFileError(f"{path}: 'Frames' must be a list of at least 2 frames")
    for k, frame in enumerate(frames):
        if not isinstance(frame, list) or len(frame) != HUMANOID3D_FRAME_WIDTH:
            width = len(frame) if isinstance(frame, list) else type(frame).__name__
            raise MotionFileError(
                f"{path}: frame {k} has {width} values; the humanoid3d character needs {HUMANOID3D_FRAME_WIDTH}"
            )
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in frame):
            raise MotionFileError(f"{path}: frame {k} holds a value that is not a number")
    table = np.array(frames, dtype=float)
    return table, {k: v for k, v in data.items() if k != "Frames"}


def read_deepmimic(path: str | Path) -> JointTrajectory:
    """A DeepMimic ``humanoid3d`` motion as a :class:`JointTrajectory` (meta: ``loop``, ``dropped_rad``)."""
    path = Path(path)
    frames, extra = load_deepmimic_frames(path)
    dt = _field(frames, "dt")[:, 0]
    if np.any(dt[:-1] <= 0.0) or not np.all(np.isfinite(dt)):
        raise MotionFileError(f"{path}: frame durations (first value of each frame) must be positive")
    time_s = np.concatenate([[0.0], np.cumsum(dt[:-1])])
    C = C_OURS_FROM_YUP_ZRIGHT
    root_pos = _field(frames, "root_pos") @ C.T
    root_R = change_frame(matrix_from_wxyz(_field(frames, "root_rot")), C)
    angles = np.zeros((len(frames), N_JOINTS))
    dropped: dict[str, float] = {}
    for ball_name, field in (("lumbar", "chest"), ("hip_r", "right_hip"), ("hip_l", "left_hip"),
                             ("ankle_r", "right_ankle"), ("ankle_l", "left_ankle")):  # fmt: skip
        ball = BALL_JOINT_BY_NAME[ball_name]
        values, rest = decompose(ball, change_frame(matrix_from_wxyz(_field(frames, field)), C))
        angles[:, [JOINT_INDEX[j] for j in ball.joints]] = values
        if rest.size:
            dropped[ball_name] = float(np.abs(rest).max())
    # DeepMimic's knee turns about its z (right) axis, which is our −y; knee_flexion turns about +y.
    angles[:, JOINT_INDEX["knee_flexion_r"]] = -_field(frames, "right_knee")[:, 0]
    angles[:, JOINT_INDEX["knee_flexion_l"]] = -_field(frames, "left_knee")[:, 0]
    return to_uniform_trajectory(
        time_s,
        angles,
        root_pos,
        wxyz_from_matrix(root_R),
        source=str(path),
        meta={
            "format": "deepmimic",
            "loop": str(extra.get("Loop", "none")),
            "dropped_rad": dropped,
            "skeleton": "DeepMimic humanoid3d",
        },
    )
