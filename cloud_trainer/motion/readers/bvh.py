"""Biovision hierarchy files (``.bvh``, optical or inertial mocap) → :class:`JointTrajectory`, and a writer.

A BVH file has a ``HIERARCHY`` (joints with an ``OFFSET`` from their parent and ``CHANNELS``) and a ``MOTION`` table.
A joint's local rotation is the product of its rotation channels in the order listed, each about the parent's
fixed axes as they stand at the rest pose: ``Zrotation Xrotation Yrotation`` gives ``R = Rz·Rx·Ry`` (angles in
degrees). A segment's world rotation is the product along the chain from the root.

Mapping onto our model (:data:`SEGMENT_ALIASES`, case-insensitive, a ``prefix:`` namespace is ignored):

=========  =======================================================================================================
segment    BVH joint whose rotation moves it
=========  =======================================================================================================
pelvis     the ROOT joint (Hips)
thigh_r/l  RightUpLeg / LeftUpLeg (also RightHip, RightThigh, RThigh, RightUpperLeg …)
shank_r/l  RightLeg / LeftLeg (also RightKnee, RightShin, RightLowerLeg …)
foot_r/l   RightFoot / LeftFoot (also RightAnkle …)
trunk      the spine joint farthest from the root among Spine, Spine1…3, Chest, UpperChest, LowerBack, Torso
=========  =======================================================================================================

Intermediate joints (CMU's ``LHipJoint``) are included in the chain product. The rest pose must be our neutral
pose (standing, legs straight, feet flat) since BVH stores no rest orientations: a joint with zero rotation is at
our zero angle. Frames are found from the rest pose: up is from the feet to the hips, left from the right to the
left hip (each snapped to the nearest file axis), forward = left × up. Lengths are in ``length_unit_m`` metres per
file unit; ``None`` picks metres, centimetres, millimetres or inches, whichever makes thigh + shank 0.4–1.2 m long.
Joint angles then follow :func:`cloud_trainer.motion.kinematics.angles_from_segment_rotations` (our y-x-z sequence);
the rotations our hinges cannot express (knee ab/adduction and axial rotation, ankle axial rotation) are dropped
and their largest magnitude reported in ``meta['dropped_rad']``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy.spatial.transform import Rotation

from cloud_trainer.motion.errors import MotionFileError
from cloud_trainer.motion.kinematics import LightKinematics, Skeleton, angles_from_segment_rotations
from cloud_trainer.motion.rotations import axis_angle_matrix, change_frame, wxyz_from_matrix
from cloud_trainer.motion.trajectory import JointTrajectory

FloatArray = NDArray[np.float64]

#: Our segment → accepted BVH joint names (lower case, first match wins), except the trunk (deepest match wins).
SEGMENT_ALIASES: dict[str, tuple[str, ...]] = {
    "thigh_r": ("rightupleg", "rightthigh", "rightupperleg", "righthip", "rthigh", "r_hip", "rhip"),
    "shank_r": ("rightleg", "rightshin", "rightlowerleg", "rightknee", "rshin", "r_knee", "rknee"),
    "foot_r": ("rightfoot", "rightankle", "rfoot", "r_ankle", "rankle"),
    "thigh_l": ("leftupleg", "leftthigh", "leftupperleg", "lefthip", "lthigh", "l_hip", "lhip"),
    "shank_l": ("leftleg", "leftshin", "leftlowerleg", "leftknee", "lshin", "l_knee", "lknee"),
    "foot_l": ("leftfoot", "leftankle", "lfoot", "l_ankle", "lankle"),
    "trunk": ("spine", "spine1", "spine2", "spine3", "chest", "chest2", "upperchest", "lowerback", "torso", "abdomen"),
}
#: Length units tried when ``length_unit_m`` is None, metres per file unit.
LENGTH_UNITS_M: dict[str, float] = {"m": 1.0, "cm": 0.01, "mm": 0.001, "inch": 0.0254}
#: Thigh + shank length that makes a unit plausible, m.
PLAUSIBLE_LEG_M = (0.4, 1.2)

_AXES = {"X": np.array([1.0, 0.0, 0.0]), "Y": np.array([0.0, 1.0, 0.0]), "Z": np.array([0.0, 0.0, 1.0])}


@dataclass
class BvhJoint:
    """One joint of a BVH hierarchy; ``end_offset`` is its End Site, if any."""

    name: str
    parent: int
    offset: FloatArray
    channels: list[str] = field(default_factory=list)
    end_offset: FloatArray | None = None


@dataclass
class BvhFile:
    """A parsed BVH file: joints (parents before children), frame time, and the motion table (F, n_channels)."""

    joints: list[BvhJoint]
    frame_time_s: float
    motion: FloatArray

    def channel_columns(self) -> list[tuple[int, str, int]]:
        """``(joint index, channel name, column)`` for every channel, in file order."""
        cols = []
        k = 0
        for j, joint in enumerate(self.joints):
            for ch in joint.channels:
                cols.append((j, ch, k))
                k += 1
        return cols


def _key(name: str) -> str:
    return name.rsplit(":", 1)[-1].lower()


def parse_bvh(path: str | Path) -> BvhFile:
    """Parse a BVH file, with errors naming the file, the place and what was expected."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MotionFileError(f"{path}: cannot read as a text BVH file ({exc})") from exc
    head, sep, tail = text.partition("MOTION")
    if not sep:
        raise MotionFileError(f"{path}: no MOTION section; a BVH file has HIERARCHY then MOTION")
    tokens = head.split()
    if not tokens or tokens[0] != "HIERARCHY":
        raise MotionFileError(f"{path}: must start with HIERARCHY")
    joints: list[BvhJoint] = []
    pos = 1

    def expect(word: str) -> None:
        nonlocal pos
        if pos >= len(tokens) or tokens[pos] != word:
            got = tokens[pos] if pos < len(tokens) else "end of hierarchy"
            raise MotionFileError(f"{path}: expected {word!r} in the hierarchy, got {got!r}")
        pos += 1

    def numbers(n: int, what: str) -> FloatArray:
        nonlocal pos
        try:
            values = np.array([float(v) for v in tokens[pos : pos + n]])
        except ValueError:
            raise MotionFileError(f"{path}: {what} needs {n} numbers, got {tokens[pos : pos + n]}") from None
        if len(values) != n:
            raise MotionFileError(f"{path}: {what} needs {n} numbers, file ends early")
        pos += n
        return values

    def parse_joint(parent: int) -> None:
        nonlocal pos
        if pos >= len(tokens):
            raise MotionFileError(f"{path}: hierarchy ends inside a joint")
        name = tokens[pos]
        pos += 1
        expect("{")
        expect("OFFSET")
        joint = BvhJoint(name, parent, numbers(3, f"OFFSET of {name}"))
        index = len(joints)
        joints.append(joint)
        if pos < len(tokens) and tokens[pos] == "CHANNELS":
            pos += 1
            try:
                n = int(tokens[pos])
            except (ValueError, IndexError):
                raise MotionFileError(f"{path}: CHANNELS of {name} must give a count") from None
            pos += 1
            channels = tokens[pos : pos + n]
            pos += n
            for ch in channels:
                if ch not in {f"{a}{kind}" for a in "XYZ" for kind in ("rotation", "position")}:
                    raise MotionFileError(
                        f"{path}: channel {ch!r} of {name}; accepted: Xposition…Zposition, Xrotation…Zrotation"
                    )
            joint.channels = channels
        while pos < len(tokens) and tokens[pos] != "}":
            word = tokens[pos]
            pos += 1
            if word == "JOINT":
                parse_joint(index)
            elif word == "End":
                expect("Site")
                expect("{")
                expect("OFFSET")
                joint.end_offset = numbers(3, f"End Site OFFSET of {name}")
                expect("}")
            else:
                raise MotionFileError(f"{path}: unexpected {word!r} inside joint {name}")
        expect("}")

    expect("ROOT")
    parse_joint(-1)
    if pos != len(tokens):
        raise MotionFileError(f"{path}: unexpected {tokens[pos]!r} after the root joint")

    lines = [line for line in tail.splitlines() if line.strip()]
    if len(lines) < 2 or not lines[0].strip().startswith("Frames:") or not lines[1].strip().startswith("Frame Time:"):
        raise MotionFileError(f"{path}: MOTION must begin with 'Frames: N' and 'Frame Time: dt'")
    try:
        n_frames = int(lines[0].split(":", 1)[1])
        frame_time = float(lines[1].split(":", 1)[1])
    except ValueError:
        raise MotionFileError(f"{path}: 'Frames:' needs an integer and 'Frame Time:' a number") from None
    if not frame_time > 0.0:
        raise MotionFileError(f"{path}: Frame Time must be positive, got {frame_time}")
    n_channels = sum(len(j.channels) for j in joints)
    rows = lines[2:]
    if len(rows) != n_frames:
        raise MotionFileError(f"{path}: 'Frames: {n_frames}' but {len(rows)} motion lines follow")
    motion = np.empty((n_frames, n_channels))
    for k, row in enumerate(rows):
        values = row.split()
        if len(values) != n_channels:
            raise MotionFileError(
                f"{path}: motion line {k + 1} has {len(values)} values; the hierarchy has {n_channels} channels"
            )
        try:
            motion[k] = [float(v) for v in values]
        except ValueError:
            raise MotionFileError(f"{path}: motion line {k + 1} holds a value that is not a number") from None
    return BvhFile(joints, frame_time, motion)


def _find_segments(bvh: BvhFile, path: Path) -> dict[str, int]:
    keys = [_key(j.name) for j in bvh.joints]
    found = {"pelvis": 0}
    for segment, aliases in SEGMENT_ALIASES.items():
        if segment == "trunk":
            candidates = [i for i, k in enumerate(keys) if k in aliases]
            if candidates:
                found[segment] = max(candidates, key=lambda i: _depth(bvh, i))
            continue
        index = next((keys.index(a) for a in aliases if a in keys), None)
        if index is not None:
            found[segment] = index
    missing = [s for s in ("thigh_r", "shank_r", "thigh_l", "shank_l") if s not in found]
    if missing:
        raise MotionFileError(
            f"{path}: no joint for {', '.join(missing)}; accepted names: "
            + "; ".join(f"{s}: {'/'.join(SEGMENT_ALIASES[s][:3])}" for s in missing)
        )
    return found


def _depth(bvh: BvhFile, index: int) -> int:
    depth = 0
    while bvh.joints[index].parent >= 0:
        index = bvh.joints[index].parent
        depth += 1
    return depth


def _rest_positions(bvh: BvhFile) -> FloatArray:
    positions = np.zeros((len(bvh.joints), 3))
    for i, joint in enumerate(bvh.joints):
        positions[i] = joint.offset + (positions[joint.parent] if joint.parent >= 0 else 0.0)
    return positions


def _snap(vector: FloatArray, exclude: FloatArray | None = None) -> FloatArray:
    v = vector.copy()
    if exclude is not None:
        v[np.abs(exclude) > 0.5] = 0.0
    axis = int(np.argmax(np.abs(v)))
    out = np.zeros(3)
    out[axis] = np.sign(v[axis])
    return out


def read_bvh(path: str | Path, *, length_unit_m: float | None = None) -> JointTrajectory:
    """A BVH file as a :class:`JointTrajectory` (see the module docstring for the mapping and conventions)."""
    path = Path(path)
    bvh = parse_bvh(path)
    seg = _find_segments(bvh, path)
    rest = _rest_positions(bvh)
    feet = [seg.get(f"foot_{s}", seg[f"shank_{s}"]) for s in ("r", "l")]
    up = _snap(rest[0] - rest[feet].mean(axis=0))
    left = _snap(rest[seg["thigh_l"]] - rest[seg["thigh_r"]], exclude=up)
    forward = np.cross(left, up)
    C = np.stack([forward, left, up])  # rows: our axes in file coordinates
    leg_units = float(
        np.mean([np.linalg.norm(rest[seg.get(f"foot_{s}", seg[f"shank_{s}"])] - rest[seg[f"thigh_{s}"]]) for s in "rl"])
    )
    notes: dict[str, object] = {}
    if length_unit_m is None:
        lo, hi = PLAUSIBLE_LEG_M
        fits = [(name, m) for name, m in LENGTH_UNITS_M.items() if lo <= leg_units * m <= hi]
        if len(fits) != 1:
            raise MotionFileError(
                f"{path}: thigh + shank are {leg_units:.4g} file units long; cannot tell the length unit "
                f"({'several fit' if fits else 'none of m, cm, mm, inch gives 0.4–1.2 m'}); pass length_unit_m"
            )
        notes["length_unit"] = fits[0][0]
        length_unit_m = fits[0][1]
    elif not length_unit_m > 0.0:
        raise MotionFileError(f"{path}: length_unit_m must be positive, got {length_unit_m}")

    n = bvh.motion.shape[0]
    local = np.broadcast_to(np.eye(3), (len(bvh.joints), n, 3, 3)).copy()
    root_pos_file = np.broadcast_to(bvh.joints[0].offset, (n, 3)).copy()
    has_position = np.zeros(3, dtype=bool)
    for j, ch, col in bvh.channel_columns():
        axis = _AXES[ch[0]]
        if ch.endswith("rotation"):
            local[j] = local[j] @ axis_angle_matrix(axis, np.radians(bvh.motion[:, col]))
        elif j == 0:
            root_pos_file[:, "XYZ".index(ch[0])] = bvh.motion[:, col]
            has_position["XYZ".index(ch[0])] = True
    world = np.empty_like(local)
    for j, joint in enumerate(bvh.joints):
        world[j] = local[j] if joint.parent < 0 else world[joint.parent] @ local[j]
    rotations = {name: change_frame(world[index], C) for name, index in seg.items()}
    angles, solved, dropped = angles_from_segment_rotations(rotations)
    root_pos = (root_pos_file * length_unit_m) @ C.T
    root_measured = (np.abs(C) @ has_position.astype(float)) > 0.5
    return JointTrajectory.create(
        np.arange(n) * bvh.frame_time_s,
        angles,
        root_pos,
        wxyz_from_matrix(rotations["pelvis"]),
        joints_measured=solved,
        root_pos_measured=root_measured,
        source=str(path),
        meta={
            "format": "bvh",
            **notes,
            "length_unit_m": length_unit_m,
            "segments": {s: bvh.joints[i].name for s, i in seg.items()},
            "axes_in_file": {"forward": forward.tolist(), "left": left.tolist(), "up": up.tolist()},
            "dropped_rad": dropped,
        },
    )


#: Our axes in the written file's coordinates: Y up, the character facing +Z, X to its left (as CMU, Mixamo).
_WRITE_C = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def write_bvh(
    path: str | Path,
    trajectory: JointTrajectory,
    skeleton: Skeleton | None = None,
    *,
    channel_order: str = "ZXY",
    length_unit_m: float = 0.01,
) -> None:
    """Write a trajectory as a lower-body BVH (Hips, Spine, Right/Left UpLeg, Leg, Foot), Y up, facing +Z.

    Rotation channels use ``channel_order`` (any permutation of XYZ); lengths are in ``length_unit_m`` per unit.
    """
    if sorted(channel_order) != ["X", "Y", "Z"]:
        raise ValueError(f"channel_order {channel_order!r}; accepted: a permutation of 'XYZ'")
    sk = skeleton if skeleton is not None else Skeleton.from_height(1.75)
    pose = LightKinematics(sk).pose(trajectory.root_pos_m, trajectory.root_quat_wxyz, trajectory.joint_angles_rad)
    C = _WRITE_C
    G = {s: change_frame(R, C.T) for s, R in pose.rotations.items()}  # rotations in file coordinates

    def vec(v: np.ndarray) -> str:
        return " ".join(f"{x:.6f}" for x in (C.T @ np.asarray(v)) / length_unit_m)

    rot_channels = " ".join(f"{a}rotation" for a in channel_order)
    #: (segment, BVH name, parent segment, offset in our frame, end-site offset or None)
    chain = [
        ("trunk", "Spine", "pelvis", np.asarray(sk.lumbar_offset_m), np.array([0.0, 0.0, sk.trunk_length_m])),
    ]
    for side, prefix in (("r", "Right"), ("l", "Left")):
        chain += [
            (f"thigh_{side}", f"{prefix}UpLeg", "pelvis", sk.hip_offset(side), None),
            (f"shank_{side}", f"{prefix}Leg", f"thigh_{side}", np.array([0.0, 0.0, -sk.thigh_length_m]), None),
            (f"foot_{side}", f"{prefix}Foot", f"shank_{side}", np.array([0.0, 0.0, -sk.shank_length_m]),
             np.array([sk.toe_forward_m, 0.0, -sk.ankle_height_m])),
        ]  # fmt: skip
    lines = ["HIERARCHY", "ROOT Hips", "{", "  OFFSET 0.000000 0.000000 0.000000",
             f"  CHANNELS 6 Xposition Yposition Zposition {rot_channels}"]  # fmt: skip
    order = ["pelvis"]

    def emit(segment: str, depth: int) -> None:
        for child, name, parent, offset, end in chain:
            if parent != segment:
                continue
            pad = "  " * depth
            lines.extend([f"{pad}JOINT {name}", f"{pad}{{", f"{pad}  OFFSET {vec(offset)}",
                          f"{pad}  CHANNELS 3 {rot_channels}"])  # fmt: skip
            order.append(child)
            emit(child, depth + 1)
            if end is not None:
                lines.extend([f"{pad}  End Site", f"{pad}  {{", f"{pad}    OFFSET {vec(end)}", f"{pad}  }}"])
            lines.append(f"{pad}}}")

    emit("pelvis", 1)
    lines.append("}")
    parents = {child: parent for child, _, parent, _, _ in chain}
    columns = [(trajectory.root_pos_m @ C) / length_unit_m]
    for segment in order:
        local = G[segment] if segment == "pelvis" else np.einsum("tji,tjk->tik", G[parents[segment]], G[segment])
        columns.append(np.degrees(Rotation.from_matrix(local).as_euler(channel_order)))
    table = np.concatenate(columns, axis=1)
    lines += ["MOTION", f"Frames: {trajectory.n_frames}", f"Frame Time: {trajectory.dt_s:.9f}"]
    lines += [" ".join(f"{v:.9f}" for v in row) for row in table]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
