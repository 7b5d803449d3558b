"""What a therapist reads off a predicted walk: outcome, trunk sway, posture similarity, compensations, activation.

Pure functions of a :class:`~cloud_trainer.pipeline.rollout.RolloutRecord` (and the patient's reference motion);
definitions in docs/patient-outputs.md, "Metrics". In short:

- **Walking window** of an episode: from ``SETTLE_S`` after the start to its end, less the last ``FALL_MARGIN_S``
  before a fall (the fall itself is counted as a fall, not as sway).
- **Gait events**: a swing is a run of control instants without foot contact lasting at least ``MIN_SWING_S`` (the
  environment's touchdown rule); its first instant is the foot's toe-off, the instant after its end the foot's
  initial contact. A gait cycle runs from one initial contact of the cycle foot (the paretic side, else the right) to
  its next; cycles shorter than 0.6 or longer than 1.6 times the median are left out.
- **Trunk lateral sway**: the trunk's frontal-plane angle, the line from the pelvis origin (mid-point of the hip
  joint centres) to the spine top (cervicale) in the pelvis's heading frame, ``atan2(lateral, vertical)``, + leaning
  to the left; sway is its peak-to-peak range over an episode's walking window (also its RMS about the episode's
  mean), in degrees.
- **Posture similarity** to the patient's own level-ground gait: over the time-normalised mean gait cycle
  (``N_CYCLE_POINTS`` points), ``100 · max(0, 1 − RMSE / ROM)`` % where RMSE pools the errors of
  ``SIMILARITY_COLUMNS`` (hip flexion, hip adduction, knee flexion of both sides, pelvic tilt and obliquity: the
  angles five IMUs measure best) against the reference motion's cycle, and ROM is the mean range of those angles in
  the reference cycle.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from cloud_trainer.envs.constants import CONTROL_PERIOD_S
from cloud_trainer.motion.reference import ReferenceMotion
from cloud_trainer.pipeline.angles import angles_deg_from_qpos
from cloud_trainer.pipeline.rollout import RolloutRecord
from cloud_trainer.twin.constants import GROUP_NAMES, JOINT_GROUP_INDEX, N_GROUPS
from cloud_trainer.twin.kinematics import forward_kinematics, quat_yaw_rad, rotate_into_heading
from cloud_trainer.twin.model import build_twin
from cloud_trainer.twin.terrain import STAIR_TREAD_M, get_terrain

SETTLE_S = 1.0
FALL_MARGIN_S = 0.5
MIN_SWING_S = 0.2
N_CYCLE_POINTS = 51
SIMILARITY_COLUMNS: tuple[str, ...] = (
    "hip_flexion_l_deg", "hip_flexion_r_deg", "hip_adduction_l_deg", "hip_adduction_r_deg",
    "knee_flexion_l_deg", "knee_flexion_r_deg", "pelvis_tilt_deg", "pelvis_obliquity_deg",
)  # fmt: skip
#: Foot index in the record's contact and sole arrays (right first, the environment's order).
FOOT = {"right": 0, "left": 1}
SUFFIX = {"right": "r", "left": "l"}


@dataclass(frozen=True)
class Swing:
    """One swing of a foot: rows [toe_off, contact) of an episode."""

    episode: int
    side: str
    toe_off: int
    contact: int


def walking_rows(rec: RolloutRecord, i: int) -> np.ndarray:
    """Row indices of episode ``i``'s walking window (see the module docstring)."""
    first = round(SETTLE_S / CONTROL_PERIOD_S)
    last = int(rec.last_row[i])
    if rec.outcome[i] == "fell":
        last -= round(FALL_MARGIN_S / CONTROL_PERIOD_S)
    return np.arange(first, last + 1) if last >= first else np.arange(0)


def swings(rec: RolloutRecord, i: int, side: str) -> list[Swing]:
    """Complete swings of ``side`` in episode ``i`` (both ends inside the episode)."""
    contact = rec.contact[: rec.last_row[i] + 1, i, FOOT[side]]
    min_rows = int(np.ceil(MIN_SWING_S / CONTROL_PERIOD_S - 1e-9))
    out, start = [], None
    for t in range(1, len(contact)):
        if contact[t - 1] and not contact[t]:
            start = t
        elif not contact[t - 1] and contact[t] and start is not None:
            if t - start >= min_rows:
                out.append(Swing(i, side, start, t))
            start = None
    return out


def cycles(rec: RolloutRecord, side: str) -> list[tuple[int, int, int]]:
    """Gait cycles (episode, first row, next initial contact row) of ``side`` inside the walking windows."""
    found = []
    for i in range(rec.n_episodes):
        window = walking_rows(rec, i)
        if len(window) == 0:
            continue
        contacts = [s.contact for s in swings(rec, i, side) if window[0] <= s.contact <= window[-1]]
        found += [(i, a, b) for a, b in itertools.pairwise(contacts)]
    if not found:
        return []
    duration = np.array([b - a for _, a, b in found], dtype=float)
    median = np.median(duration)
    return [c for c, d in zip(found, duration, strict=True) if 0.6 * median <= d <= 1.6 * median]


def cycle_mean(values: np.ndarray, found: list[tuple[int, int, int]]) -> np.ndarray | None:
    """Mean over ``found`` cycles of ``values`` (T, n, ...) time-normalised to ``N_CYCLE_POINTS`` points."""
    if not found:
        return None
    curves = []
    for i, a, b in found:
        rows = np.linspace(a, b, N_CYCLE_POINTS)
        lo = np.floor(rows).astype(int)
        hi = np.minimum(lo + 1, b)
        w = (rows - lo).reshape(-1, *([1] * (values.ndim - 2)))
        curves.append((1 - w) * values[lo, i] + w * values[hi, i])
    return np.mean(curves, axis=0)


def trunk_lateral_angle_deg(rec: RolloutRecord) -> np.ndarray:
    """Trunk frontal-plane angle (T, n), degrees, + leaning left (see the module docstring)."""
    trunk = rec.spine_top_m - rec.qpos[..., :3]
    local = rotate_into_heading(trunk, quat_yaw_rad(rec.qpos[..., 3:7]))
    return np.degrees(np.arctan2(local[..., 1], local[..., 2]))


def trunk_sway(rec: RolloutRecord) -> dict[str, float | None]:
    """Peak-to-peak (mean and largest over episodes) and RMS of the trunk's lateral angle over walking windows."""
    angle = trunk_lateral_angle_deg(rec)
    p2p, rms = [], []
    for i in range(rec.n_episodes):
        rows = walking_rows(rec, i)
        if len(rows) < 2:
            continue
        a = angle[rows, i]
        p2p.append(float(a.max() - a.min()))
        rms.append(float(np.sqrt(np.mean((a - a.mean()) ** 2))))
    return {
        "peak_to_peak_deg": _mean(p2p),
        "peak_to_peak_max_deg": max(p2p) if p2p else None,
        "rms_deg": _mean(rms),
    }


def outcome(rec: RolloutRecord) -> dict:
    """Reached, falls (when and where), speed and distance walked."""
    terrain = get_terrain(rec.setting.terrain)
    reached = [i for i, o in enumerate(rec.outcome) if o == "reached"]
    falls = []
    for i, o in enumerate(rec.outcome):
        if o == "fell":
            x = float(rec.qpos[rec.last_row[i], i, 0])
            falls.append({
                "episode": i, "time_s": round(float(rec.time_s[rec.last_row[i]]), 3), "x_m": round(x, 3),
                "where": course_location(terrain.name, x),
            })  # fmt: skip
    speeds, distances = [], []
    settle = round(SETTLE_S / CONTROL_PERIOD_S)
    for i in range(rec.n_episodes):
        last = int(rec.last_row[i])
        distances.append(float(rec.qpos[last, i, 0] - rec.qpos[0, i, 0]))
        if last > settle + 10:
            speeds.append(float((rec.qpos[last, i, 0] - rec.qpos[settle, i, 0]) / ((last - settle) * CONTROL_PERIOD_S)))
    n = rec.n_episodes
    return {
        "n_episodes": n,
        "reached": {
            "n": len(reached),
            "rate": len(reached) / n,
            "time_s_mean": _mean([float(rec.time_s[rec.last_row[i]]) for i in reached]),
        },
        "falls": {
            "n": len(falls),
            "rate": len(falls) / n,
            "events": falls,
            "summary": falls_summary(terrain.name, [e["x_m"] for e in falls]),
        },
        "speed_m_s": _mean(speeds),
        "distance_m_mean": _mean(distances),
    }


def course_location(terrain_name: str, x_m: float) -> str:
    """Where on the course a pelvis position lies, in words ("on the level run-in", "on the ramp, 4.2 m in",
    "over step 3", "on the landing", "4.3 m along level ground")."""
    zone, value = _course_zone(terrain_name, x_m)
    if zone == "level":
        return f"{value:.1f} m along level ground"
    if zone == "run-in":
        return "on the level run-in"
    if zone == "landing":
        return "on the landing"
    return f"on the ramp, {value:.1f} m in" if get_terrain(terrain_name).kind == "slope" else f"over step {value:.0f}"


def falls_summary(terrain_name: str, xs_m: list[float]) -> str:
    """Where falls happened, grouped ("3 on the ramp 2.8-8.4 m in, 1 on the landing"); empty without falls."""
    groups: dict[str, list[float]] = {}
    for x in xs_m:
        zone, value = _course_zone(terrain_name, x)
        groups.setdefault(zone, []).append(value)
    kind = get_terrain(terrain_name).kind
    parts = []
    for zone in ("level", "run-in", "feature", "landing"):
        values = groups.get(zone)
        if not values:
            continue
        lo, hi = min(values), max(values)
        if zone == "level":
            where = f"after {lo:.1f} m" if len(values) == 1 else f"after {lo:.1f}-{hi:.1f} m"
        elif zone == "run-in":
            where = "on the level run-in"
        elif zone == "landing":
            where = "on the landing"
        elif kind == "slope":
            where = f"on the ramp {lo:.1f} m in" if len(values) == 1 else f"on the ramp {lo:.1f}-{hi:.1f} m in"
        else:
            where = f"over step {lo:.0f}" if lo == hi else f"over steps {lo:.0f}-{hi:.0f}"
        parts.append(f"{len(values)} {where}")
    return ", ".join(parts)


def _course_zone(terrain_name: str, x_m: float) -> tuple[str, float]:
    """("level", metres walked) on flat courses; ("run-in" | "landing", 0) or ("feature", metres up the ramp or step
    number 1-9 of the stairs)."""
    terrain = get_terrain(terrain_name)
    x0, x1 = terrain.feature_start_x_m, terrain.feature_end_x_m
    if terrain.rise_m == 0.0:
        return "level", x_m
    if x_m < x0:
        return "run-in", 0.0
    if x_m >= x1:
        return "landing", 0.0
    if terrain.kind == "slope":
        return "feature", x_m - x0
    return "feature", float((x_m - x0) // STAIR_TREAD_M + 1)


def compensation(rec: RolloutRecord, angles: Mapping[str, np.ndarray] | None = None) -> dict:
    """Compensation indicators per side and left/right asymmetry (docs/patient-outputs.md, "Compensations")."""
    angles = angles if angles is not None else angles_for_record(rec)
    per_side: dict[str, dict[str, float | None]] = {}
    swing_times = {}
    for side in ("left", "right"):
        s = SUFFIX[side]
        knee = angles[f"knee_flexion_{s}_deg"]
        abduction = -angles[f"hip_adduction_{s}_deg"]
        # obliquity + = left side up: the swing side is hiked when its side goes up
        hike = angles["pelvis_obliquity_deg"] * (1.0 if side == "left" else -1.0)
        outward = -1.0 if side == "right" else 1.0
        knee_ranges = [float(np.ptp(knee[a : b + 1, i])) for i, a, b in cycles(rec, side)]
        peak_knee, peak_abd, peak_hike, lateral, durations = [], [], [], [], []
        for i in range(rec.n_episodes):
            window = walking_rows(rec, i)
            if len(window) == 0:
                continue
            for sw in swings(rec, i, side):
                if sw.toe_off < window[0] or sw.contact > window[-1]:
                    continue
                rows = slice(sw.toe_off, sw.contact)
                peak_knee.append(float(knee[rows, i].max()))
                peak_abd.append(float(abduction[rows, i].max()))
                peak_hike.append(float(hike[rows, i].max()))
                y = rec.sole_m[sw.toe_off : sw.contact + 1, i, FOOT[side], 1]
                line = np.linspace(y[0], y[-1], len(y))
                lateral.append(100.0 * float(np.max(outward * (y - line))))
                durations.append((sw.contact - sw.toe_off) * CONTROL_PERIOD_S)
        swing_times[side] = _mean(durations)
        per_side[side] = {
            "knee_flexion_range_deg": _mean(knee_ranges),
            "peak_swing_knee_flexion_deg": _mean(peak_knee),
            "swing_hip_abduction_deg": _mean(peak_abd),
            "swing_lateral_foot_excursion_cm": _mean(lateral),
            "pelvic_hike_deg": _mean(peak_hike),
            "swing_time_s": swing_times[side],
        }
    out = {"paretic_side": rec.setting.affected_side, "sides": per_side}
    out["swing_time_ratio"] = _ratio(swing_times["left"], swing_times["right"])
    out["knee_range_symmetry_index_pct"] = _symmetry_index(
        per_side["left"]["knee_flexion_range_deg"], per_side["right"]["knee_flexion_range_deg"]
    )
    return out


def activation(rec: RolloutRecord) -> dict:
    """The policy's torque limits (fraction of each joint group's ceiling) over the gait cycle of the cycle foot, and
    time means of the limits and of the torque actually used."""
    side = rec.setting.affected_side or "right"
    found = cycles(rec, side)
    curve = cycle_mean(rec.torque_fraction, found)
    used = _group_mean(rec.torque_used_fraction)
    mask = np.zeros(rec.alive.shape, bool)
    for i in range(rec.n_episodes):
        mask[walking_rows(rec, i), i] = True
    have = mask.any()
    return {
        "cycle_side": side,
        "n_cycles": len(found),
        "cycle_pct": [round(100.0 * k / (N_CYCLE_POINTS - 1), 1) for k in range(N_CYCLE_POINTS)],
        "torque_limit_fraction": (
            {g: _round_list(curve[:, k]) for k, g in enumerate(GROUP_NAMES)} if curve is not None else None
        ),
        "mean_torque_limit_fraction": {
            g: (round(float(rec.torque_fraction[mask][:, k].mean()), 4) if have else None)
            for k, g in enumerate(GROUP_NAMES)
        },
        "mean_torque_used_fraction": {
            g: (round(float(used[mask][:, k].mean()), 4) if have else None) for k, g in enumerate(GROUP_NAMES)
        },
    }


def angles_for_record(rec: RolloutRecord) -> dict[str, np.ndarray]:
    """Joint angles (degrees) of every row and episode, (T, n) per column."""
    t, n = rec.qpos.shape[:2]
    flat = angles_deg_from_qpos(rec.qpos.reshape(t * n, -1))
    return {name: values.reshape(t, n) for name, values in flat.items()}


def predicted_cycle_angles(rec: RolloutRecord, angles: Mapping[str, np.ndarray] | None = None) -> dict | None:
    """Mean gait cycle of every angle (cycle foot: the paretic side, else the right), or None without cycles."""
    angles = angles if angles is not None else angles_for_record(rec)
    side = rec.setting.affected_side or "right"
    found = cycles(rec, side)
    if not found:
        return None
    return {name: cycle_mean(values, found) for name, values in angles.items()}


def reference_cycle_angles(reference: ReferenceMotion, side: str, anthropometry=None) -> dict[str, np.ndarray]:
    """The reference motion's angles over one gait cycle starting at the initial contact of ``side``, at
    ``N_CYCLE_POINTS`` points. Initial contact: the first frame of the longest run of frames in which the sole's
    forward speed is below a quarter of its peak (the foot planted); frame 0 for a motion that does not travel."""
    qpos = np.asarray(reference.qpos)
    start = 0
    if reference.cyclic and reference.speed_m_s > 0:
        model = build_twin(anthropometry).model
        sole_x = forward_kinematics(model, qpos).end_pos_m[:, FOOT[side], 0]
        ahead = np.append(sole_x[1:], sole_x[0] + reference.cycle_offset_m[0])
        speed = (ahead - sole_x) / reference.dt_s
        planted = speed < 0.25 * speed.max()
        start = _longest_run_start(planted)
    n = len(qpos)
    period = n if reference.cyclic else n - 1
    rows = start + np.linspace(0.0, period, N_CYCLE_POINTS)
    angles = angles_deg_from_qpos(qpos)
    out = {}
    for name, values in angles.items():
        if reference.cyclic:
            extended = np.append(values, values[0])  # angles close the loop (the root moves, the joints repeat)
            k = np.mod(rows, n)
            lo = np.floor(k).astype(int)
            out[name] = (1 - (k - lo)) * extended[lo] + (k - lo) * extended[lo + 1]
        else:
            out[name] = np.interp(rows, np.arange(n), values)
    return out


def posture_similarity(
    predicted: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray], columns=SIMILARITY_COLUMNS
) -> dict:
    """``similarity_pct`` = 100·max(0, 1 − RMSE/ROM) over ``columns`` of two mean cycles (see the module docstring),
    with the RMSE per column, degrees."""
    errors = np.stack([np.asarray(predicted[c]) - np.asarray(reference[c]) for c in columns])
    rom = float(np.mean([np.ptp(reference[c]) for c in columns]))
    rmse = float(np.sqrt(np.mean(errors**2)))
    return {
        "similarity_pct": round(100.0 * max(0.0, 1.0 - rmse / max(rom, 1e-9)), 2),
        "rmse_deg": round(rmse, 3),
        "reference_rom_deg": round(rom, 3),
        "rmse_per_angle_deg": {
            c: round(float(np.sqrt(np.mean(e**2))), 3) for c, e in zip(columns, errors, strict=True)
        },
    }


def _group_mean(values: np.ndarray) -> np.ndarray:
    out = np.zeros((*values.shape[:-1], N_GROUPS))
    for g in range(N_GROUPS):
        out[..., g] = values[..., g == JOINT_GROUP_INDEX].mean(axis=-1)
    return out


def _longest_run_start(mask: np.ndarray) -> int:
    """Start index of the longest circular run of True in ``mask`` (0 if none)."""
    n = len(mask)
    if not mask.any() or mask.all():
        return 0
    best, best_len = 0, 0
    for i in range(n):
        if mask[i] and not mask[i - 1]:
            length = 0
            while mask[(i + length) % n] and length < n:
                length += 1
            if length > best_len:
                best, best_len = i, length
    return best


def _mean(values) -> float | None:
    values = [v for v in values if v is not None and np.isfinite(v)]
    return round(float(np.mean(values)), 4) if values else None


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or min(a, b) <= 0:
        return None
    return round(max(a, b) / min(a, b), 4)


def _symmetry_index(a: float | None, b: float | None) -> float | None:
    """Robinson et al. 1987: 2·|L − R| / (L + R) · 100."""
    if a is None or b is None or a + b <= 0:
        return None
    return round(200.0 * abs(a - b) / (a + b), 2)


def _round_list(values: np.ndarray, digits: int = 4) -> list[float]:
    return [round(float(v), digits) for v in values]
