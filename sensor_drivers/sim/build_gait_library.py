"""Derive the shipped healthy gait-cycle library from the DeepMimic reference motions (development data).

Run from the repository root (it reads ``../shared/data/motions/deepmimic``)::

    python -m sensor_drivers.sim.build_gait_library            # writes sensor_drivers/sim/data/healthy_gait_cycles.npz
    python -m sensor_drivers.sim.build_gait_library --check    # rebuild in memory and compare with the shipped file

What it does, per motion file:

1. Forward kinematics of the DeepMimic humanoid (``character_humanoid3d.txt``: y up, x forward, z right; a frame is
   ``[dt, root pos(3), root quat(4, w first), chest(4), neck(4), right hip(4), right knee(1), right ankle(4),
   right shoulder(4), right elbow(1), left hip(4), left knee(1), left ankle(4), left shoulder(4), left elbow(1)]``),
   converted to the project's frames (x forward, y left, z up; :mod:`sensor_drivers.frames`).
2. Foot contact per foot from the heel and toe points of the foot (height above the local floor and horizontal speed),
   giving initial contact (IC) and final contact (FC) frames.
3. Gait cycles from one right IC to the next, kept only when they are clean straight walking: exactly one FC-left,
   IC-left and FC-right inside and in that order, each double support at least 5 % of the cycle, heading change of the
   walking direction at most 10° over the cycle.
4. Each kept cycle is resampled onto a uniform phase grid (phase 0 = right IC), made exactly periodic by removing
   the small linear drift between its start and end, and low-passed at 6 Hz (zero phase). Joint rotations are stored
   as rotation vectors in the project's frames: the pelvis relative to the cycle's walking direction, hips relative to
   the pelvis, knees as a flexion angle, ankles relative to the shank.
5. Cycles whose footprints, in the simulator, would need more than 5° of leg yaw to run straight are left out (they
   come from a walker who was turning).

The runtime (:mod:`sensor_drivers.sim.gait_library`) uses only the shipped file.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.interpolate import CubicSpline
from scipy.ndimage import binary_closing, binary_opening, percentile_filter
from scipy.spatial.transform import Rotation, Slerp

from sensor_drivers.quaternion import rotation_from_wxyz

#: Files the library is derived from. ``humanoid3d_long_walk3.txt`` is left out: its straight sections show foot
#: penetration of up to 2 cm and stance phases broken up by the contact detector (a poorer retargeting);
#: ``humanoid3d_walk.txt`` (one looped cycle) is tried but has double supports of about 2 % and is refused by the
#: plausibility check below.
SOURCE_FILES: tuple[str, ...] = (
    "humanoid3d_walk.txt",
    "humanoid3d_long_walk1.txt",
    "humanoid3d_long_walk2.txt",
)
N_PHASE = 160
#: Low-pass cutoff for the joint rotations, Hz (at the recorded cadence).
CUTOFF_HZ = 6.0
MAX_HEADING_CHANGE_DEG = 10.0
#: A cycle from a slightly turning walker, made periodic, puts its footprints on a diagonal; the simulator yaws both
#: legs at the hips to straighten them. Cycles that need more than this are left out (their hip rotations would
#: carry a large artificial offset).
MAX_LEG_YAW_DEG = 5.0
MIN_DOUBLE_SUPPORT_FRACTION = 0.05
#: Foot contact: a heel or toe point within this height of the local floor and slower than this horizontally.
CONTACT_HEIGHT_M = 0.012
CONTACT_SPEED_M_S = 0.25

PROVISIONAL_TOE_X_M = 0.165
#: Candidates for the fitted toe pivot, m ahead of the ankle joint.
TOE_X_CANDIDATES_M = np.arange(0.150, 0.2501, 0.0025)

#: Column layout of a DeepMimic humanoid3d frame.
COL_ROOT_POS = slice(1, 4)
COL_ROOT_QUAT = slice(4, 8)
COL_HIP = {"r": slice(16, 20), "l": slice(30, 34)}
COL_KNEE = {"r": 20, "l": 34}
COL_ANKLE = {"r": slice(21, 25), "l": slice(35, 39)}
N_COLUMNS = 44

#: Channels of the shipped ``joint_rad`` array, in order.
CHANNELS: tuple[str, ...] = (
    "pelvis_rx", "pelvis_ry", "pelvis_rz",
    "hip_r_rx", "hip_r_ry", "hip_r_rz", "knee_r_flexion", "ankle_r_rx", "ankle_r_ry", "ankle_r_rz",
    "hip_l_rx", "hip_l_ry", "hip_l_rz", "knee_l_flexion", "ankle_l_rx", "ankle_l_ry", "ankle_l_rz",
)  # fmt: skip


@dataclass(frozen=True)
class SourceSkeleton:
    """Lower-limb dimensions of the DeepMimic humanoid, m, in the project's frames."""

    hip_half_width_m: float
    thigh_m: float
    shank_m: float
    #: Foot contact points relative to the ankle joint, in the foot frame (x forward, z up).
    heel_x_m: float
    toe_x_m: float
    sole_z_m: float


def dm_vec_to_ours(v: np.ndarray) -> np.ndarray:
    """DeepMimic (x forward, y up, z right) → project (x forward, y left, z up)."""
    v = np.asarray(v, dtype=float)
    return np.stack([v[..., 0], -v[..., 2], v[..., 1]], axis=-1)


def dm_quat_to_ours(quat_wxyz: np.ndarray) -> np.ndarray:
    """A DeepMimic rotation (w first) expressed in the project's axes (same rotation, vector part re-axed)."""
    q = np.asarray(quat_wxyz, dtype=float)
    return np.concatenate([q[..., :1], dm_vec_to_ours(q[..., 1:])], axis=-1)


def load_skeleton(path: Path) -> SourceSkeleton:
    """Read the lower-limb dimensions from ``character_humanoid3d.txt``."""
    doc = json.loads(path.read_text())
    joints = {j["Name"]: j for j in doc["Skeleton"]["Joints"]}
    bodies = {b["Name"]: b for b in doc["BodyDefs"]}
    foot = bodies["right_ankle"]
    foot_centre_x = float(foot["AttachX"])
    foot_len = float(foot["Param0"])
    sole = float(foot["AttachY"]) - float(foot["Param1"]) / 2.0
    # The toe pivot lies ahead of the front edge of DeepMimic's box foot (real toes bend, the box does not); it is
    # fitted to the data by fit_toe_pivot(). PROVISIONAL_TOE_X_M (the sole point that moves least during heel-off in
    # humanoid3d_long_walk1) is only used to find the cycles the fit runs on.
    return SourceSkeleton(
        hip_half_width_m=abs(float(joints["right_hip"]["AttachZ"])),
        thigh_m=abs(float(joints["right_knee"]["AttachY"])),
        shank_m=abs(float(joints["right_ankle"]["AttachY"])),
        heel_x_m=foot_centre_x - foot_len / 2.0,
        toe_x_m=PROVISIONAL_TOE_X_M,
        sole_z_m=sole,
    )


LOOP_TILES = 4


def is_looped(path: Path) -> bool:
    """Whether a motion file is one cycle meant to be played in a loop (``"Loop": "wrap"``)."""
    return json.loads(path.read_text()).get("Loop") == "wrap"


def load_frames(path: Path) -> np.ndarray:
    """Frames of a DeepMimic motion file as an (n, 44) array; a looped clip is tiled ``LOOP_TILES`` times."""
    doc = json.loads(path.read_text())
    frames = np.asarray(doc["Frames"], dtype=float)
    if frames.ndim != 2 or frames.shape[1] != N_COLUMNS:
        raise ValueError(f"{path.name}: expected frames of {N_COLUMNS} columns, got shape {frames.shape}")
    if doc.get("Loop") == "wrap":
        # The last frame repeats the first one, advanced by one cycle: tile the cycle with the root moved on.
        step = frames[-1, COL_ROOT_POS] - frames[0, COL_ROOT_POS]
        step[1] = 0.0
        body = frames[:-1]
        tiles = []
        for k in range(LOOP_TILES):
            tile = body.copy()
            tile[:, COL_ROOT_POS] += k * step
            tiles.append(tile)
        frames = np.vstack(tiles)
    return frames


@dataclass
class Kinematics:
    """Forward kinematics of a clip in the project's frames."""

    dt_s: float
    root_m: np.ndarray  # (n, 3)
    root_rot: Rotation
    hip_rot: dict[str, Rotation]  # joint rotations (relative to parent), per side
    knee_flexion_rad: dict[str, np.ndarray]
    ankle_rot: dict[str, Rotation]
    heel_m: dict[str, np.ndarray]  # world positions
    toe_m: dict[str, np.ndarray]


def forward_kinematics(frames: np.ndarray, skel: SourceSkeleton) -> Kinematics:
    """Joint rotations and heel/toe positions for every frame."""
    root = dm_vec_to_ours(frames[:, COL_ROOT_POS])
    root_rot = rotation_from_wxyz(dm_quat_to_ours(frames[:, COL_ROOT_QUAT]))
    hip_rot, knee, ankle_rot, heel, toe = {}, {}, {}, {}, {}
    for side, hip_y in (("r", -skel.hip_half_width_m), ("l", skel.hip_half_width_m)):
        hip_rot[side] = rotation_from_wxyz(dm_quat_to_ours(frames[:, COL_HIP[side]]))
        # The DeepMimic knee is revolute about its z (right) axis, negative = flexion; in our axes that is a rotation
        # about +y (left) by the flexion angle.
        knee[side] = -frames[:, COL_KNEE[side]]
        ankle_rot[side] = rotation_from_wxyz(dm_quat_to_ours(frames[:, COL_ANKLE[side]]))
        r_thigh = root_rot * hip_rot[side]
        r_shank = r_thigh * Rotation.from_rotvec(np.outer(knee[side], [0.0, 1.0, 0.0]))
        r_foot = r_shank * ankle_rot[side]
        hip = root + root_rot.apply([0.0, hip_y, 0.0])
        ankle = hip + r_thigh.apply([0.0, 0.0, -skel.thigh_m]) + r_shank.apply([0.0, 0.0, -skel.shank_m])
        heel[side] = ankle + r_foot.apply([skel.heel_x_m, 0.0, skel.sole_z_m])
        toe[side] = ankle + r_foot.apply([skel.toe_x_m, 0.0, skel.sole_z_m])
    return Kinematics(frames[0, 0], root, root_rot, hip_rot, knee, ankle_rot, heel, toe)


def contact_events(kin: Kinematics) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(IC frames, FC frames) per side from heel/toe height above the local floor and their horizontal speed."""
    dt = kin.dt_s
    lowest = np.minimum.reduce([kin.heel_m[s][:, 2] for s in "rl"] + [kin.toe_m[s][:, 2] for s in "rl"])
    # The mocap floor is not exactly at 0: use a running low percentile of the lowest foot point as the floor.
    floor = percentile_filter(lowest, 20, size=round(2.0 / dt) | 1, mode="nearest")
    close = max(1, round(0.04 / dt))
    events = {}
    for side in "rl":
        in_contact = np.zeros(len(lowest), dtype=bool)
        for point in (kin.heel_m[side], kin.toe_m[side]):
            speed = np.linalg.norm(np.gradient(point[:, :2], dt, axis=0), axis=1)
            in_contact |= (point[:, 2] - floor < CONTACT_HEIGHT_M) & (speed < CONTACT_SPEED_M_S)
        in_contact = binary_opening(binary_closing(in_contact, np.ones(close)), np.ones(close))
        change = np.diff(in_contact.astype(int))
        events[side] = (np.flatnonzero(change == 1) + 1, np.flatnonzero(change == -1) + 1)
    return events


@dataclass
class Cycle:
    """One extracted cycle (arrays on the phase grid)."""

    source: str
    frames: tuple[int, int]
    joint_rad: np.ndarray  # (N_PHASE, len(CHANNELS))
    events_phase: tuple[float, float, float]  # fc_l, ic_l, fc_r
    speed_m_s: float
    stride_length_m: float
    cycle_time_s: float
    heading_change_deg: float


def _heading_deg(rot: Rotation) -> np.ndarray:
    forward = rot.apply([1.0, 0.0, 0.0])
    return np.degrees(np.unwrap(np.arctan2(forward[:, 1], forward[:, 0])))


def extract_cycles(name: str, kin: Kinematics, events: dict[str, tuple[np.ndarray, np.ndarray]]) -> list[Cycle]:
    """Clean straight cycles from right IC to right IC."""
    ic_r, fc_r = events["r"]
    ic_l, fc_l = events["l"]
    dt = kin.dt_s
    cycles = []
    for a, b in itertools.pairwise(ic_r):
        inside = [x[(x > a) & (x < b)] for x in (fc_l, ic_l, fc_r)]
        if any(len(x) != 1 for x in inside):
            continue
        e_fc_l, e_ic_l, e_fc_r = (int(x[0]) for x in inside)
        if not e_fc_l < e_ic_l < e_fc_r:
            continue
        n = b - a
        ds1, ds2 = (e_fc_l - a) / n, (e_fc_r - e_ic_l) / n
        if min(ds1, ds2) < MIN_DOUBLE_SUPPORT_FRACTION:
            continue
        disp = kin.root_m[b, :2] - kin.root_m[a, :2]
        half = kin.root_m[(a + b) // 2, :2]
        dir1 = np.degrees(np.arctan2(*(half - kin.root_m[a, :2])[::-1]))
        dir2 = np.degrees(np.arctan2(*(kin.root_m[b, :2] - half)[::-1]))
        yaw = _heading_deg(kin.root_rot[a : b + 1])
        turn = max(abs((dir2 - dir1 + 180.0) % 360.0 - 180.0), abs(yaw[-1] - yaw[0]))
        if turn > MAX_HEADING_CHANGE_DEG:
            continue
        heading = np.arctan2(disp[1], disp[0])
        cycles.append(
            Cycle(
                source=name,
                frames=(int(a), int(b)),
                joint_rad=_resample_cycle(kin, a, b, heading),
                events_phase=(ds1, (e_ic_l - a) / n, (e_fc_r - a) / n),
                speed_m_s=float(np.linalg.norm(disp) / (n * dt)),
                stride_length_m=float(np.linalg.norm(disp)),
                cycle_time_s=float(n * dt),
                heading_change_deg=float(turn),
            )
        )
    return cycles


def _resample_cycle(kin: Kinematics, a: int, b: int, heading_rad: float) -> np.ndarray:
    """Joint channels of frames [a, b] on the phase grid, made periodic."""
    t = np.arange(a, b + 1, dtype=float)
    phase_t = a + (b - a) * np.arange(N_PHASE + 1) / N_PHASE
    heading = Rotation.from_rotvec([0.0, 0.0, heading_rad])

    def rotvec(rot: Rotation) -> np.ndarray:
        return Slerp(t, rot[a : b + 1])(phase_t).as_rotvec()

    columns = [rotvec(heading.inv() * kin.root_rot)]
    for side in "rl":
        columns.append(rotvec(kin.hip_rot[side]))
        columns.append(CubicSpline(t, kin.knee_flexion_rad[side][a : b + 1])(phase_t)[:, None])
        columns.append(rotvec(kin.ankle_rot[side]))
    values = np.hstack(columns)
    # Remove the start/end mismatch linearly over the cycle, so the cycle loops without a jump.
    drift = values[-1] - values[0]
    values = values - np.outer(np.arange(N_PHASE + 1) / N_PHASE, drift)
    return lowpass_periodic(values[:-1], cycle_time_s=(b - a) * kin.dt_s)


def lowpass_periodic(values: np.ndarray, cycle_time_s: float) -> np.ndarray:
    """Zero-phase low-pass of one periodic cycle (rows = phase samples): harmonics weighted by a 4th-order
    Butterworth magnitude at ``CUTOFF_HZ``. Marker-based gait kinematics are usually low-passed at about 6 Hz
    (Winter 2009, ch. 3); without it the mocap noise, amplified by the leg's levers, would give pelvis accelerations
    of tens of m/s²."""
    spectrum = np.fft.rfft(values, axis=0)
    freq_hz = np.arange(spectrum.shape[0]) / cycle_time_s
    gain = 1.0 / np.sqrt(1.0 + (freq_hz / CUTOFF_HZ) ** 8)
    return np.fft.irfft(spectrum * gain[:, None], n=values.shape[0], axis=0)


def fit_toe_pivot(frames: dict[str, np.ndarray], skel: SourceSkeleton, cycles: list[Cycle]) -> float:
    """The toe pivot (m ahead of the ankle along the sole) that best keeps both feet on the floor in double support.

    In double support the trailing foot stands on its toe pivot and the leading foot on its heel (or flat), both on
    the floor: the height difference between the trailing toe and the leading foot's lowest point, over the double
    supports of the given cycles, is minimised in the least-squares sense.
    """
    best = (np.inf, PROVISIONAL_TOE_X_M)
    for toe_x in TOE_X_CANDIDATES_M:
        trial = SourceSkeleton(**{**skel.__dict__, "toe_x_m": float(toe_x)})
        squares = []
        for name in {c.source for c in cycles}:
            kin = forward_kinematics(frames[name], trial)
            for c in (c for c in cycles if c.source == name):
                a, b = c.frames
                n = b - a
                fc_l, ic_l, fc_r = (a + round(p * n) for p in c.events_phase)
                for lead, trail, start, end in (("r", "l", a, fc_l), ("l", "r", ic_l, fc_r)):
                    lead_low = np.minimum(kin.heel_m[lead][start:end, 2], kin.toe_m[lead][start:end, 2])
                    squares.append((kin.toe_m[trail][start:end, 2] - lead_low) ** 2)
        cost = float(np.mean(np.concatenate(squares)))
        if cost < best[0]:
            best = (cost, float(toe_x))
    print(f"toe pivot fitted at {best[1]:.4f} m (rms double-support mismatch {np.sqrt(best[0]) * 1000:.1f} mm)",
          file=sys.stderr)
    return best[1]


def straightening_leg_yaw_deg(cycles: list[Cycle], skel: SourceSkeleton) -> list[float]:
    """For each cycle, the hip yaw of both legs that makes the simulator's footprints run straight (1.75 m body)."""
    from sensor_drivers.sim.body import BodyModel
    from sensor_drivers.sim.gait_library import GaitCycle, SourceDimensions
    from sensor_drivers.sim.gait_pattern import GaitPattern
    from sensor_drivers.sim.walk_plan import _fit_pattern

    source = SourceDimensions(skel.hip_half_width_m, skel.thigh_m, skel.shank_m, skel.heel_x_m, skel.toe_x_m,
                              skel.sole_z_m)
    body = BodyModel.from_height(1.75, 75.0, source)
    out = []
    for i, c in enumerate(cycles):
        cycle = GaitCycle(i, c.source, c.frames, c.joint_rad.astype(np.float32).astype(np.float64), CHANNELS,
                          *c.events_phase, c.speed_m_s, c.stride_length_m, c.cycle_time_s)
        pattern, _, _ = _fit_pattern(body, GaitPattern(cycle))
        out.append(float(np.degrees(pattern.leg_yaw_rad)))
    return out


def find_cycles(frames: dict[str, np.ndarray], skel: SourceSkeleton, looped: set[str]) -> list[Cycle]:
    """Clean straight cycles of every source file."""
    cycles: list[Cycle] = []
    for name in SOURCE_FILES:
        kin = forward_kinematics(frames[name], skel)
        found = extract_cycles(name, kin, contact_events(kin))
        if name in looped:
            found = found[:1]  # a tiled loop repeats one cycle: keep one copy
        print(f"{name}: {len(found)} clean straight cycle(s)", file=sys.stderr)
        cycles.extend(found)
    if not cycles:
        raise RuntimeError("no clean straight gait cycle found")
    return cycles


def build(shared_dir: Path) -> dict[str, np.ndarray]:
    """The library arrays, ready for ``np.savez_compressed``."""
    skel = load_skeleton(shared_dir / "character_humanoid3d.txt")
    frames = {name: load_frames(shared_dir / name) for name in SOURCE_FILES}
    looped = {name for name in SOURCE_FILES if is_looped(shared_dir / name)}
    provisional = find_cycles(frames, skel, looped)
    skel = SourceSkeleton(**{**skel.__dict__, "toe_x_m": fit_toe_pivot(frames, skel, provisional)})
    cycles = find_cycles(frames, skel, looped)
    yaws = straightening_leg_yaw_deg(cycles, skel)
    for c, yaw in zip(cycles, yaws, strict=True):
        print(f"{c.source} frames {c.frames}: legs need {yaw:+.1f}° of yaw to walk straight", file=sys.stderr)
    kept = [(c, yaw) for c, yaw in zip(cycles, yaws, strict=True) if abs(yaw) <= MAX_LEG_YAW_DEG]
    cycles, yaws = [c for c, _ in kept], [yaw for _, yaw in kept]
    if not cycles:
        raise RuntimeError("no cycle walks straight enough")
    return {
        "format_version": np.array(1),
        "channels": np.array(CHANNELS),
        "joint_rad": np.stack([c.joint_rad for c in cycles]).astype(np.float32),
        "events_phase": np.array([c.events_phase for c in cycles], dtype=np.float32),
        "speed_m_s": np.array([c.speed_m_s for c in cycles], dtype=np.float32),
        "stride_length_m": np.array([c.stride_length_m for c in cycles], dtype=np.float32),
        "cycle_time_s": np.array([c.cycle_time_s for c in cycles], dtype=np.float32),
        "heading_change_deg": np.array([c.heading_change_deg for c in cycles], dtype=np.float32),
        "leg_yaw_deg": np.array(yaws, dtype=np.float32),
        "source_file": np.array([c.source for c in cycles]),
        "source_frames": np.array([c.frames for c in cycles], dtype=np.int32),
        "source_hip_half_width_m": np.float32(skel.hip_half_width_m),
        "source_thigh_m": np.float32(skel.thigh_m),
        "source_shank_m": np.float32(skel.shank_m),
        "source_heel_x_m": np.float32(skel.heel_x_m),
        "source_toe_x_m": np.float32(skel.toe_x_m),
        "source_sole_z_m": np.float32(skel.sole_z_m),
    }


def matches(shipped: dict[str, np.ndarray], fresh: dict[str, np.ndarray]) -> bool:
    """Whether a fresh build equals the shipped file: the data exactly, the leg yaw (which depends on the
    simulator's kinematics, used to judge straightness) within 0.5°."""
    if set(shipped) != set(fresh):
        return False
    exact = all(np.array_equal(shipped[k], fresh[k]) for k in fresh if k != "leg_yaw_deg")
    return exact and np.allclose(shipped["leg_yaw_deg"], fresh["leg_yaw_deg"], atol=0.5)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    here = Path(__file__).resolve().parent
    default_shared = here.parents[2].parent / "shared" / "data" / "motions" / "deepmimic"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=default_shared, help="the DeepMimic motions folder")
    parser.add_argument("--out", type=Path, default=here / "data" / "healthy_gait_cycles.npz")
    parser.add_argument("--check", action="store_true", help="compare with the existing file instead of writing")
    args = parser.parse_args(argv)
    arrays = build(args.shared)
    if args.check:
        with np.load(args.out) as shipped:
            same = matches(dict(shipped), arrays)
        print("shipped library is up to date" if same else "shipped library differs from a fresh build")
        return 0 if same else 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    speeds = ", ".join(f"{v:.2f}" for v in arrays["speed_m_s"])
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes): {len(arrays['speed_m_s'])} cycles at {speeds} m/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
