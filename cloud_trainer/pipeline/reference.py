"""Stage 1 of the patient pipeline: the patient's clip (or a motion file) → a reference motion on a twin scaled to the
patient.

From a clip (``.stclip``, analysed: sections ``joint_angles``, ``events``, ``metrics``; docs/session.md):

1. **Patient**: height, mass and affected side from the clip's ``patient`` metadata; sex where the metadata has it,
   else ``DEFAULT_SEX`` (the twin's default, male: a clip does not record sex). Missing height or mass take the twin's
   defaults (1.75 m, 70 kg); every assumption is listed in :attr:`PatientReferenceBuilder.notes_`.
2. **Walking window**: the steady strides of the ``events`` section (first steady initial contact to the last steady
   stride's end), else every stride, else the whole ``joint_angles`` section; inside it, the longest stretch where hip
   and knee flexion of both sides are finite (NaNs mark a lost sensor or an uncalibrated segment).
3. **Angles → model joints** (:func:`clip_angles_to_model`, mapping in :data:`CLIP_TO_MODEL`): the capture core's
   ISB joint coordinate system angles (hip y-x-z Cardan of thigh relative to pelvis, knee flexion of shank relative
   to thigh; docs/joint-angles.md) and the model's hinges (docs/twin-model.md) share axes and signs: hip flexion,
   adduction and internal rotation, knee flexion are the same numbers on both sides (proof in the mapping's comment;
   a test runs model angles through the capture core's own JCS code and back). The pelvis becomes the root
   orientation ``R_world_pelvis = R_z(rotation) R_x(obliquity) R_y(tilt)`` (Baker 2001, the capture core's order).
4. **Cycles** (the motion package, not rewritten here): :class:`~cloud_trainer.motion.segmentation.GaitCycleSegmenter`
   (dominant gait frequency, right heel strikes on the patient's own body), then
   :class:`~cloud_trainer.motion.pipeline.ReferenceCycleBuilder` closes each straight, consistent stride into a loop,
   fills what five IMUs do not measure (trunk, ankles) from healthy phase-locked patterns at low imitation weight
   (:class:`~cloud_trainer.motion.filling.PhaseLockedFiller`), plants the feet on the patient's twin
   (:class:`~cloud_trainer.motion.cleanup.FootContactCleaner`), and picks the stride nearest the mean of all. The
   cycle is the patient's own, right heel strike to right heel strike: its asymmetry is kept (never mirrored or
   averaged with its mirror image).
5. **Gait parameters**: speed and stride length as the capture analysis measured them (``metrics``: gait speed, mean
   of left and right stride length); the root path of the reference comes from the planted feet and the environment
   resamples it to these goals (speed and stride exactly; Dai et al. 2025, Stage II fixes the goals to the patient's
   observed values). Without metrics, the cleaned cycle's own stride and period are used (noted).

A motion file (BVH, OpenSim .mot/.sto, DeepMimic JSON, LocoMuJoCo .npz) goes through the readers of
:mod:`cloud_trainer.motion.readers` and the same steps 4-5, on the twin's default body.

Refused with :class:`~cloud_trainer.pipeline.errors.PatientDataError` naming the problem and the accepted minimum: an
unreadable or unfinished clip, a clip without a ``joint_angles`` section (and no way to compute them here: the
capture analysis belongs to the bedside side; ``stridetwin train`` runs it first), missing hip or knee flexion
columns, NaNs leaving fewer than ``MIN_STRIDES`` strides, fewer than ``MIN_STRIDES`` usable strides.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cloud_trainer.errors import AnthropometryError, TrainerError
from cloud_trainer.hashing import file_sha256
from cloud_trainer.motion.cleanup import FootContactCleaner
from cloud_trainer.motion.errors import MotionError
from cloud_trainer.motion.filling import PhaseLockedFiller
from cloud_trainer.motion.joints import JOINT_INDEX, JOINT_NAMES, N_JOINTS
from cloud_trainer.motion.kinematics import LightKinematics
from cloud_trainer.motion.pipeline import MIN_STRIDES, ReferenceCycleBuilder
from cloud_trainer.motion.reference import ReferenceMotion
from cloud_trainer.motion.rotations import matrix_from_wxyz, wxyz_from_matrix
from cloud_trainer.motion.segmentation import GaitCycleSegmenter
from cloud_trainer.motion.trajectory import JointTrajectory
from cloud_trainer.pipeline.errors import PatientDataError
from cloud_trainer.twin.anthropometry import Anthropometry

#: Sex assumed where a clip does not record one (clips hold height, mass and affected side only): the twin's default.
DEFAULT_SEX = "male"
#: Suffixes read as a clip; anything else goes to the motion-file readers.
CLIP_SUFFIXES = (".stclip",)
#: Clip columns without which no reference can be built (hips and knees drive segmentation and imitation).
REQUIRED_COLUMNS = ("hip_flexion_r_deg", "hip_flexion_l_deg", "knee_flexion_r_deg", "knee_flexion_l_deg")
#: Clip angle column → (model joint, sign). Derivation: the capture core computes hip angles from
#: ``R_pelvis_thigh = R_y(α) R_x(β) R_z(γ)`` in our axes (x anterior, y left, z up) and reports flexion −α, adduction
#: +β right / −β left, internal rotation +γ right / −γ left; the model's hip is ``R(−y, flexion) R(±x, adduction)
#: R(±z, rotation)`` = ``R_y(−flexion) R_x(±adduction) R_z(±rotation)`` (+ right, − left), so α = −flexion,
#: β = ±adduction, γ = ±rotation: each clip angle equals the model's. Knee: clip flexion = α of
#: ``R_thigh_shank = R_y(α)…``, the model's knee turns about +y: equal. Tested by a round trip through both codes.
CLIP_TO_MODEL: dict[str, tuple[str, float]] = {
    f"{name}_{side}_deg": (f"{name}_{side}", 1.0)
    for side in ("r", "l")
    for name in ("hip_flexion", "hip_adduction", "hip_rotation", "knee_flexion")
}
#: Pelvis columns of a clip (Baker 2001 order: rotation, obliquity, tilt).
PELVIS_COLUMNS = ("pelvis_tilt_deg", "pelvis_obliquity_deg", "pelvis_rotation_deg")
#: NaN gaps up to this long inside the walk are bridged linearly (a few lost packets); longer ones split it, s.
MAX_BRIDGED_GAP_S = 0.1
#: Affected sides a clip may record.
AFFECTED_SIDES = ("left", "right", "both", "none")


@dataclass(frozen=True)
class PatientInfo:
    """Who the reference is for: pseudonym, body, affected side."""

    pseudonym: str | None
    anthropometry: Anthropometry
    #: ``left``, ``right``, ``both``, ``none``, or None where the clip does not say.
    affected_side: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "pseudonym": self.pseudonym,
            "height_m": self.anthropometry.height_m,
            "mass_kg": self.anthropometry.mass_kg,
            "sex": self.anthropometry.sex,
            "affected_side": self.affected_side,
        }


@dataclass(frozen=True)
class ObservedGait:
    """The patient's level-ground gait parameters, the goals of adaptation."""

    speed_m_s: float
    stride_length_m: float
    #: Where they come from: ``clip metrics`` or ``reference cycle``.
    source: str
    cadence_steps_min: float | None = None

    @property
    def stride_frequency_hz(self) -> float:
        return self.speed_m_s / self.stride_length_m


@dataclass
class ClipWalk:
    """What a clip gives the reference stage: patient, the walking stretch as a trajectory, measured gait."""

    patient: PatientInfo
    trajectory: JointTrajectory
    gait: ObservedGait | None
    window_s: tuple[float, float]
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------ angle conventions


def clip_angles_to_model(columns_deg: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Model hinge angles (T, 15) rad, root ``quat_wxyz_world_pelvis`` (T, 4) and a measured mask (15,) from clip angle
    columns in degrees (any subset of the capture core's names; see :data:`CLIP_TO_MODEL`).

    Joints without a column are zero and unmeasured; without pelvis columns the root orientation is the identity.
    """
    n = len(next(iter(columns_deg.values())))
    angles = np.zeros((n, N_JOINTS))
    measured = np.zeros(N_JOINTS, dtype=bool)
    for column, (joint, sign) in CLIP_TO_MODEL.items():
        if column in columns_deg:
            angles[:, JOINT_INDEX[joint]] = sign * np.radians(np.asarray(columns_deg[column], dtype=float))
            measured[JOINT_INDEX[joint]] = True
    if all(c in columns_deg for c in PELVIS_COLUMNS):
        tilt, obliquity, rotation = (np.radians(np.asarray(columns_deg[c], dtype=float)) for c in PELVIS_COLUMNS)
        R = _rot_z(rotation) @ _rot_x(obliquity) @ _rot_y(tilt)
        quat = wxyz_from_matrix(R)
    else:
        quat = np.tile([1.0, 0.0, 0.0, 0.0], (n, 1))
    return angles, quat, measured


def model_to_clip_angles(joint_angles_rad: np.ndarray, root_quat_wxyz: np.ndarray) -> dict[str, np.ndarray]:
    """The inverse of :func:`clip_angles_to_model`: clip angle columns (degrees, the ``--angles-csv`` names) from model
    poses, e.g. to write predicted angles in the same columns as measured ones. Pelvis angles are relative to the
    world x axis (the course direction)."""
    angles = np.asarray(joint_angles_rad, dtype=float)
    out: dict[str, np.ndarray] = {}
    R = matrix_from_wxyz(np.asarray(root_quat_wxyz, dtype=float))
    # R = R_z(rotation) R_x(obliquity) R_y(tilt): the capture core's Cardan z-x-y
    out["pelvis_tilt_deg"] = np.degrees(np.arctan2(-R[..., 2, 0], R[..., 2, 2]))
    out["pelvis_obliquity_deg"] = np.degrees(np.arcsin(np.clip(R[..., 2, 1], -1.0, 1.0)))
    out["pelvis_rotation_deg"] = np.degrees(np.arctan2(-R[..., 0, 1], R[..., 1, 1]))
    for column, (joint, sign) in CLIP_TO_MODEL.items():
        out[column] = sign * np.degrees(angles[..., JOINT_INDEX[joint]])
    return out


def _rot_x(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2)


def _rot_y(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def _rot_z(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


# ------------------------------------------------------------------------------------------------ reading a clip


def read_clip_walk(path: Path) -> ClipWalk:
    """The patient, the walking stretch and the measured gait parameters of an analysed clip.

    Raises:
        PatientDataError: unreadable or unfinished clip, no ``joint_angles`` section, hip or knee flexion missing,
            or no stretch of finite angles in the walk.
    """
    from sensor_drivers.errors import RecordingFormatError
    from sensor_drivers.recording.clipfile import read_clip

    path = Path(path)
    try:
        clip = read_clip(path)
    except FileNotFoundError:
        raise PatientDataError(f"{path}: no such file") from None
    except RecordingFormatError as exc:
        raise PatientDataError(str(exc)) from None
    notes: list[str] = []
    patient = _patient(clip.metadata.get("patient") or {}, notes, str(path))
    angles = clip.sections.get("joint_angles")
    if not isinstance(angles, dict) or "time_s" not in angles:
        raise PatientDataError(
            f"{path}: the clip has no joint_angles section (the capture analysis has not run on it); a reference "
            "needs hip and knee angles over at least "
            f"{MIN_STRIDES} strides: analyse the clip first (`stridetwin train` and the bedside app do it)"
        )
    missing = [c for c in REQUIRED_COLUMNS if c not in angles]
    if missing:
        raise PatientDataError(
            f"{path}: the joint_angles section lacks {', '.join(missing)}; a reference needs hip and knee flexion of "
            "both legs (sensors on pelvis, both thighs and both shanks)"
        )
    time_s = np.asarray(angles["time_s"], dtype=float)
    window = _walking_window(clip.sections.get("events"), time_s)
    inside = (time_s >= window[0]) & (time_s <= window[1])
    max_gap = max(1, round(MAX_BRIDGED_GAP_S / float(np.median(np.diff(time_s)))))
    raw = angles
    angles = {k: (v if k == "time_s" else _bridge_gaps(np.asarray(v, float), inside, max_gap)) for k, v in raw.items()}
    n_bridged = sum(
        int(np.sum(inside & ~np.isfinite(np.asarray(raw[c], float)) & np.isfinite(angles[c]))) for c in REQUIRED_COLUMNS
    )
    if n_bridged:
        notes.append(
            f"{n_bridged} hip/knee samples of the walk were NaN in gaps of at most {MAX_BRIDGED_GAP_S} s (lost "
            "packets) and were interpolated linearly"
        )
    finite = inside & np.all([np.isfinite(angles[c]) for c in REQUIRED_COLUMNS], axis=0)
    start, end = _longest_run(finite)
    n_nan = int(np.sum(inside & ~finite))
    if end - start < 2:
        raise PatientDataError(
            f"{path}: hip and knee angles are NaN throughout the walk ({window[0]:.2f}-{window[1]:.2f} s); a reference "
            f"needs finite angles over at least {MIN_STRIDES} strides"
        )
    if n_nan:
        notes.append(
            f"{n_nan} samples of the walk have NaN hip or knee angles (lost sensor or calibration); the longest "
            f"finite stretch {time_s[start]:.2f}-{time_s[end - 1]:.2f} s is used"
        )
    columns = {}
    for name, values in angles.items():
        if name == "time_s":
            continue
        values = np.asarray(values[start:end], dtype=float)
        if np.all(np.isfinite(values)):
            columns[name] = values
        elif name in CLIP_TO_MODEL or name in PELVIS_COLUMNS:
            notes.append(f"{name} has NaNs in the walk: treated as unmeasured (filled from healthy patterns)")
    if not all(c in columns for c in PELVIS_COLUMNS):
        columns = {k: v for k, v in columns.items() if k not in PELVIS_COLUMNS}
        notes.append("pelvis angles missing: the pelvis is kept level and facing the walkway")
    joint_angles, quat, measured = clip_angles_to_model(columns)
    t = time_s[start:end]
    t = t[0] + np.arange(len(t)) * float(np.median(np.diff(t)))  # the 100 Hz grid, exactly uniform
    trajectory = JointTrajectory.create(
        t, joint_angles, None, quat, joints_measured=measured, source=str(path),
        meta={"format": "stclip joint_angles", "window_s": [float(t[0]), float(t[-1])]},
    )  # fmt: skip
    gait = _measured_gait(clip.sections.get("metrics"), notes)
    return ClipWalk(patient, trajectory, gait, (float(t[0]), float(t[-1])), notes)


def _patient(meta: dict[str, Any], notes: list[str], where: str) -> PatientInfo:
    defaults = Anthropometry()
    height = meta.get("height_m")
    mass = meta.get("mass_kg")
    sex = meta.get("sex")
    if height is None:
        notes.append(f"the clip gives no height: the twin's default {defaults.height_m} m is used")
        height = defaults.height_m
    if mass is None:
        notes.append(f"the clip gives no mass: the twin's default {defaults.mass_kg} kg is used")
        mass = defaults.mass_kg
    if sex is None:
        notes.append(f"the clip does not record sex: de Leva's {DEFAULT_SEX} segment tables are used")
        sex = DEFAULT_SEX
    try:
        anthropometry = Anthropometry(height_m=float(height), mass_kg=float(mass), sex=str(sex))
    except (AnthropometryError, TypeError, ValueError) as exc:
        raise PatientDataError(f"{where}: patient metadata: {exc}") from None
    side = meta.get("affected_side")
    if side not in (*AFFECTED_SIDES, None):
        notes.append(f"affected side {side!r} not understood (accepted: {', '.join(AFFECTED_SIDES)}); ignored")
        side = None
    return PatientInfo(meta.get("pseudonym"), anthropometry, side)


def _walking_window(events: Any, time_s: np.ndarray) -> tuple[float, float]:
    """First to last steady stride of the capture analysis (else every stride, else the whole section)."""
    strides = events.get("strides") if isinstance(events, dict) else None
    for selection in ("steady", "all"):
        chosen = [
            s for s in strides or []
            if s.get("ic_s") is not None and s.get("next_ic_s") is not None and (selection == "all" or s.get("steady"))
        ]  # fmt: skip
        if len(chosen) >= 2:
            return min(s["ic_s"] for s in chosen), max(s["next_ic_s"] for s in chosen)
    return float(time_s[0]), float(time_s[-1])


def _bridge_gaps(values: np.ndarray, inside: np.ndarray, max_gap: int) -> np.ndarray:
    """``values`` with NaN runs of at most ``max_gap`` samples between finite ones (within ``inside``) interpolated."""
    out = values.copy()
    bad = ~np.isfinite(values) & inside
    for start, end in _runs(bad):
        if end - start <= max_gap and start > 0 and end < len(values) and np.isfinite(values[[start - 1, end]]).all():
            out[start:end] = np.interp(np.arange(start, end), [start - 1, end], values[[start - 1, end]])
    return out


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def _longest_run(mask: np.ndarray) -> tuple[int, int]:
    runs = _runs(mask)
    return max(runs, key=lambda r: r[1] - r[0]) if runs else (0, 0)


def _measured_gait(metrics: Any, notes: list[str]) -> ObservedGait | None:
    values = metrics.get("metrics") if isinstance(metrics, dict) else None
    values = values or {}
    speed = values.get("gait_speed_m_s") or values.get("mean_speed_m_s")
    strides = [values.get(k) for k in ("stride_length_l_m", "stride_length_r_m") if values.get(k)]
    if not speed or not strides:
        notes.append("the clip's metrics give no gait speed or stride length: the reference cycle's own are used")
        return None
    return ObservedGait(float(speed), float(np.mean(strides)), "clip metrics", values.get("cadence_steps_min"))


# ------------------------------------------------------------------------------------------------ the builder


class PatientReferenceBuilder:
    """The patient's reference motion on a twin scaled to the patient (see the module docstring).

    Parameters:
        min_strides: fewest usable strides accepted (a 20 m walk holds 8-15).
        n_cycle_frames: frames per reference cycle (None: the clip's own rate, 100 Hz).
        max_walk_s: only the first ``max_walk_s`` of the walking stretch are segmented (clean-up costs time per
            frame; 30 s hold 15 strides even of a slow walk).

    Results (after :meth:`build`): ``patient_`` (:class:`PatientInfo`), ``gait_`` (:class:`ObservedGait`),
    ``trajectory_`` (the walking stretch on the model's joints), ``cycle_`` (the cleaned reference cycle),
    ``reference_`` (:class:`~cloud_trainer.motion.reference.ReferenceMotion` on the patient's twin, re-grounded on its
    soles), ``summary_`` (JSON-able: strides found, used, dropped and why, filled joints, stride check, notes),
    ``notes_`` (every assumption made).
    """

    def __init__(self, min_strides: int = MIN_STRIDES, n_cycle_frames: int | None = None, max_walk_s: float = 30.0):
        self.min_strides = min_strides
        self.n_cycle_frames = n_cycle_frames
        self.max_walk_s = max_walk_s

    def build(self, input_path: Path) -> PatientReferenceBuilder:
        """Read ``input_path`` (a clip or a motion file) and build the reference; raises :class:`PatientDataError`."""
        from cloud_trainer.motion.readers import read_motion
        from cloud_trainer.motion.twin_adapter import twin_skeleton

        input_path = Path(input_path)
        if input_path.suffix.lower() in CLIP_SUFFIXES:
            walk = read_clip_walk(input_path)
            patient, trajectory, gait, notes = walk.patient, walk.trajectory, walk.gait, list(walk.notes)
        else:
            try:
                trajectory = read_motion(input_path)
            except MotionError as exc:
                raise PatientDataError(str(exc)) from None
            patient = PatientInfo(None, Anthropometry(), None)
            notes = [f"a motion file carries no patient data: the twin's default body ({_body(patient)}) is used"]
            gait = None
        # Outputs name the input by its content, never by its path: a file name may hold the patient's name.
        input_sha256 = file_sha256(input_path)
        label = f"{input_path.suffix.lstrip('.').lower()} sha256:{input_sha256[:16]}"
        trajectory = trajectory.with_values(source=label)
        if trajectory.duration_s > self.max_walk_s:
            trajectory = trajectory.slice(0, round(self.max_walk_s * trajectory.sampling_rate_hz))
        kinematics = LightKinematics(twin_skeleton(patient.anthropometry))
        builder = ReferenceCycleBuilder(
            segmenter=GaitCycleSegmenter(kinematics=kinematics),
            cleaner=FootContactCleaner(kinematics=kinematics),
            filler=PhaseLockedFiller(),
            min_strides=self.min_strides,
            n_cycle_frames=self.n_cycle_frames,
        )
        try:
            builder.build(trajectory)
        except MotionError as exc:
            raise PatientDataError(
                f"{exc} (walking stretch of {trajectory.duration_s:.1f} s; a reference needs at least "
                f"{self.min_strides} straight, consistent strides)"
            ) from None
        cycle = builder.reference_
        if gait is None:
            gait = ObservedGait(float(cycle.meta["speed_m_s"]), float(cycle.meta["stride_length_m"]), "reference cycle")
        self.patient_, self.gait_, self.trajectory_, self.cycle_ = patient, gait, trajectory, cycle
        self.reference_ = reference_on_twin(cycle, patient.anthropometry, name=patient.pseudonym or label)
        self.notes_ = notes
        segmenter = builder.segmenter_
        self.summary_ = {
            "input_sha256": input_sha256,
            "patient": patient.to_json(),
            "gait": dataclasses.asdict(gait),
            "walking_window_s": [float(trajectory.time_s[0]), float(trajectory.time_s[-1])],
            "dominant_stride_frequency_hz": float(segmenter.dominant_frequency_hz_),
            "strides_found": len(segmenter.cycles_),
            "strides_accepted": len(segmenter.accepted_cycles_),
            "strides_used": len(builder.cycles_),
            "strides_rejected": sorted({c.reason for c in segmenter.cycles_ if not c.accepted}),
            "strides_dropped": list(builder.dropped_),
            "cycle_period_s": float(cycle.meta["period_s"]),
            "kinematic_stride_length_m": float(cycle.meta["stride_length_m"]),
            "stride_ratio_kinematic_to_measured": float(cycle.meta["stride_length_m"]) / gait.stride_length_m,
            "joints_measured": [j for j, m in zip(JOINT_NAMES, cycle.joints_measured, strict=True) if m],
            "joints_filled": list(cycle.meta.get("filled_joints", [])),
            "asymmetry": cycle_asymmetry(cycle),
            "notes": notes,
        }
        return self


def _body(patient: PatientInfo) -> str:
    a = patient.anthropometry
    return f"{a.height_m} m, {a.mass_kg} kg, {a.sex}"


def reference_on_twin(cycle: JointTrajectory, anthropometry: Anthropometry, *, name: str = "") -> ReferenceMotion:
    """A cleaned cyclic cycle as a :class:`ReferenceMotion` on the patient's twin, re-grounded on its soles (as the
    atlas's references: the lowest sole point over the cycle touches z = 0)."""
    from cloud_trainer.motion.twin_adapter import to_reference_motion
    from cloud_trainer.twin.kinematics import lowest_sole_m
    from cloud_trainer.twin.model import build_twin

    model = build_twin(anthropometry).model
    motion = to_reference_motion(cycle, model, name=name)
    qpos = motion.qpos.copy()
    qpos[:, 2] -= lowest_sole_m(model, qpos).min()
    return dataclasses.replace(motion, qpos=qpos, source=f"patient clip {cycle.source}")


def cycle_asymmetry(cycle: JointTrajectory) -> dict[str, float]:
    """Left-right differences of the reference cycle (degrees of range of motion; what the patient's reference keeps
    and a symmetrised one would lose): hip and knee flexion ranges per side."""
    out = {}
    for joint in ("hip_flexion", "knee_flexion"):
        r = np.degrees(np.ptp(cycle.angle(f"{joint}_r")))
        l_ = np.degrees(np.ptp(cycle.angle(f"{joint}_l")))
        out[f"{joint}_range_r_deg"] = round(float(r), 2)
        out[f"{joint}_range_l_deg"] = round(float(l_), 2)
    return out


# ------------------------------------------------------------------------------------------------ saving, loading

#: Fields of a ReferenceMotion stored as arrays / as JSON.
_ARRAY_FIELDS = ("qpos", "qvel", "cycle_offset_m", "joint_weights", "com_rel_m", "ends_rel_m")
_SCALAR_FIELDS = ("dt_s", "cyclic", "cycle_period_s", "speed_m_s", "stride_length_m", "name", "source")


def save_reference(motion: ReferenceMotion, path: Path) -> None:
    """Write a reference motion to ``path`` (``.npz``: arrays, and its scalars and notes as a JSON string)."""
    scalars = {k: getattr(motion, k) for k in _SCALAR_FIELDS} | {"notes": dict(motion.notes)}
    arrays = {k: np.asarray(getattr(motion, k)) for k in _ARRAY_FIELDS}
    tmp = Path(path).with_name(f".{Path(path).name}.tmp.npz")
    np.savez(tmp, scalars=np.array(json.dumps(scalars)), **arrays)
    tmp.replace(path)


def load_reference(path: Path) -> ReferenceMotion:
    """Read a reference motion written by :func:`save_reference`.

    Raises:
        TrainerError: the file is missing or damaged.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            scalars = json.loads(str(data["scalars"]))
            arrays = {k: data[k] for k in _ARRAY_FIELDS}
        return ReferenceMotion(**arrays, **scalars)
    except (OSError, KeyError, ValueError) as exc:
        raise TrainerError(f"{path}: not a readable reference motion ({exc})") from None
