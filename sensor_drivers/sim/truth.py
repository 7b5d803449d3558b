"""Ground truth of a simulated walk, and its file format (an ``.npz`` of arrays beside a ``.json`` of the rest).

Conventions (see ``docs/virtual-patient.md``):

- Time is the true (host-independent) time of the recording, s, starting at 0; sensor tracks map their device times
  to it.
- Segment frames as in :mod:`sensor_drivers.frames`; ``quat_wxyz_world_segment`` maps segment vectors into the world
  (x along the walkway, y left, z up). Segment origins: pelvis = midpoint of the hip joint centres, thigh = hip joint
  centre, shank = knee joint centre, foot = ankle joint centre.
- Joint angles in degrees, ISB-style joint coordinate systems (Wu et al. 2002) expressed in our axes (x anterior,
  y left, z superior) as Cardan angles of the distal segment relative to the proximal one:
  hip and knee: flexion about the proximal y axis, then ab/adduction about the floating x axis, then rotation about
  the distal z axis. ``hip_flexion`` + = flexion, ``hip_adduction`` + = adduction (towards the midline),
  ``hip_rotation`` + = internal rotation, ``knee_flexion`` + = flexion, ``ankle_dorsiflexion`` + = dorsiflexion
  (toes up). Signs are mirrored between sides so that they mean the same thing on both.
  Pelvis relative to the world (walkway) frame in the rotation–obliquity–tilt order of Baker (2001):
  ``pelvis_rotation`` + = turning left (right side forward), ``pelvis_obliquity`` + = left side up,
  ``pelvis_tilt`` + = anterior tilt.
- Events: initial contact (``ic``) when the heel lands; final contact (``fc``) when the toe leaves the floor.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from sensor_drivers.errors import RecordingFormatError
from sensor_drivers.sim.mounting import Mounting
from sensor_drivers.sites import Site

FloatArray = NDArray[np.float64]
TRUTH_FORMAT = "stridetwin.sim.truth/1"

JOINT_ANGLE_NAMES: tuple[str, ...] = (
    "pelvis_tilt_deg", "pelvis_obliquity_deg", "pelvis_rotation_deg",
    "hip_flexion_l_deg", "hip_adduction_l_deg", "hip_rotation_l_deg",
    "hip_flexion_r_deg", "hip_adduction_r_deg", "hip_rotation_r_deg",
    "knee_flexion_l_deg", "knee_flexion_r_deg",
    "ankle_dorsiflexion_l_deg", "ankle_dorsiflexion_r_deg",
)  # fmt: skip


def cardan_yxz(R: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Angles (a, b, c) with R = R_y(a) R_x(b) R_z(c) (intrinsic y, then x, then z), rad."""
    b = np.arcsin(np.clip(-R[..., 1, 2], -1.0, 1.0))
    a = np.arctan2(R[..., 0, 2], R[..., 2, 2])
    c = np.arctan2(R[..., 1, 0], R[..., 1, 1])
    return a, b, c


def cardan_zxy(R: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Angles (a, b, c) with R = R_z(a) R_x(b) R_y(c) (intrinsic z, then x, then y), rad."""
    b = np.arcsin(np.clip(R[..., 2, 1], -1.0, 1.0))
    a = np.arctan2(-R[..., 0, 1], R[..., 1, 1])
    c = np.arctan2(-R[..., 2, 0], R[..., 2, 2])
    return a, b, c


def joint_angles_deg(rotation: dict[str, FloatArray]) -> dict[str, FloatArray]:
    """The named joint angles (degrees) from world ← segment rotations of all segments."""
    out: dict[str, FloatArray] = {}
    rot, obl, tilt = cardan_zxy(rotation["pelvis"])
    out["pelvis_tilt_deg"], out["pelvis_obliquity_deg"], out["pelvis_rotation_deg"] = (
        np.degrees(tilt), np.degrees(obl), np.degrees(rot))
    for side in ("l", "r"):
        mirror = 1.0 if side == "r" else -1.0
        hip = np.swapaxes(rotation["pelvis"], -1, -2) @ rotation[f"thigh_{side}"]
        a, b, c = cardan_yxz(hip)
        out[f"hip_flexion_{side}_deg"] = np.degrees(-a)
        out[f"hip_adduction_{side}_deg"] = np.degrees(mirror * b)
        out[f"hip_rotation_{side}_deg"] = np.degrees(mirror * c)
        knee = np.swapaxes(rotation[f"thigh_{side}"], -1, -2) @ rotation[f"shank_{side}"]
        out[f"knee_flexion_{side}_deg"] = np.degrees(cardan_yxz(knee)[0])
        ankle = np.swapaxes(rotation[f"shank_{side}"], -1, -2) @ rotation[f"foot_{side}"]
        out[f"ankle_dorsiflexion_{side}_deg"] = np.degrees(-cardan_yxz(ankle)[0])
    return {name: out[name] for name in JOINT_ANGLE_NAMES}


@dataclass(frozen=True)
class GaitEvent:
    """A foot contact event."""

    side: str  # "left" / "right"
    kind: str  # "ic" / "fc"
    time_s: float


@dataclass(frozen=True)
class Stride:
    """One stride: from an initial contact to the next of the same foot."""

    side: str
    ic_s: float
    next_ic_s: float
    #: Distance between the heel's two footprints, m.
    length_m: float
    #: Whether the stride lies entirely in steady walking.
    steady: bool

    @property
    def duration_s(self) -> float:
        """Stride time, s."""
        return self.next_ic_s - self.ic_s


@dataclass
class SensorTruth:
    """What a sensor really did: where it was mounted, and its orientation and position over ``GroundTruth.time_s``."""

    sensor_id: str
    site: Site
    mounting: Mounting
    faults: tuple[str, ...]
    quat_wxyz_world_sensor: FloatArray
    position_world_m: FloatArray


@dataclass
class GroundTruth:
    """Everything a later stage can be scored against."""

    time_s: FloatArray
    quat_wxyz_world_segment: dict[str, FloatArray]
    position_world_m: dict[str, FloatArray]
    joint_angles_deg: dict[str, FloatArray]
    sensors: dict[Site, SensorTruth]
    events: list[GaitEvent]
    strides: list[Stride]
    #: When the walker starts and stops moving, and the steady-walking section (cadence and amplitude constant), s.
    walk_start_s: float
    walk_end_s: float
    steady_start_s: float
    steady_end_s: float
    #: Pelvis displacement from the start to the end stance, m (equals the walkway length).
    distance_m: float
    #: Pelvis speed over whole strides of steady walking, and distance / (walk end − walk start), m/s.
    steady_speed_m_s: float
    mean_speed_m_s: float
    #: Steady-state averages.
    cadence_steps_per_min: float
    stride_length_m: float
    stride_time_s: float
    stance_pct: dict[str, float]
    double_support_pct: float
    #: Profile and fitted parameters (speed, cycle, hemiparetic parameters, leg yaw, …), JSON-friendly.
    parameters: dict[str, object] = field(default_factory=dict)

    def events_of(self, side: str, kind: str) -> list[float]:
        """Times of one side's events of one kind."""
        return [e.time_s for e in self.events if e.side == side and e.kind == kind]

    # -- files ----------------------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> tuple[Path, Path]:
        """Write ``<path>`` (``.npz``: arrays) and the same name with ``.json`` (everything else)."""
        npz_path = Path(path).with_suffix(".npz")
        json_path = npz_path.with_suffix(".json")
        arrays: dict[str, np.ndarray] = {"time_s": self.time_s}
        for seg, q in self.quat_wxyz_world_segment.items():
            arrays[f"segment/{seg}/quat_wxyz_world_segment"] = q
            arrays[f"segment/{seg}/position_world_m"] = self.position_world_m[seg]
        for name, values in self.joint_angles_deg.items():
            arrays[f"angle/{name}"] = values
        for site, s in self.sensors.items():
            arrays[f"sensor/{site.value}/quat_wxyz_world_sensor"] = s.quat_wxyz_world_sensor
            arrays[f"sensor/{site.value}/position_world_m"] = s.position_world_m
        np.savez_compressed(npz_path, **arrays)
        meta = {
            "format": TRUTH_FORMAT,
            "arrays": npz_path.name,
            "segments": list(self.quat_wxyz_world_segment),
            "joint_angles": list(self.joint_angles_deg),
            "sensors": {
                site.value: {"sensor_id": s.sensor_id, "mounting": s.mounting.to_dict(), "faults": list(s.faults)}
                for site, s in self.sensors.items()
            },
            "events": [asdict(e) for e in self.events],
            "strides": [asdict(s) for s in self.strides],
            **{k: getattr(self, k) for k in (
                "walk_start_s", "walk_end_s", "steady_start_s", "steady_end_s", "distance_m", "steady_speed_m_s",
                "mean_speed_m_s", "cadence_steps_per_min", "stride_length_m", "stride_time_s", "stance_pct",
                "double_support_pct", "parameters")},
        }
        json_path.write_text(json.dumps(meta, indent=1, default=_json_default))
        return npz_path, json_path

    @classmethod
    def load(cls, path: str | Path) -> GroundTruth:
        """Read a truth written by :meth:`save` (either file's path)."""
        npz_path = Path(path).with_suffix(".npz")
        json_path = npz_path.with_suffix(".json")
        try:
            meta = json.loads(json_path.read_text())
            if meta.get("format") != TRUTH_FORMAT:
                raise RecordingFormatError(f"{json_path}: format {meta.get('format')!r}, expected {TRUTH_FORMAT!r}")
            with np.load(npz_path) as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError, KeyError) as exc:
            raise RecordingFormatError(f"cannot read ground truth {npz_path} / {json_path}: {exc}") from exc
        sensors = {}
        for name, s in meta["sensors"].items():
            site = Site(name)
            sensors[site] = SensorTruth(
                sensor_id=s["sensor_id"], site=site, mounting=Mounting.from_dict(s["mounting"]),
                faults=tuple(s["faults"]),
                quat_wxyz_world_sensor=arrays[f"sensor/{name}/quat_wxyz_world_sensor"],
                position_world_m=arrays[f"sensor/{name}/position_world_m"],
            )
        return cls(
            time_s=arrays["time_s"],
            quat_wxyz_world_segment={s: arrays[f"segment/{s}/quat_wxyz_world_segment"] for s in meta["segments"]},
            position_world_m={s: arrays[f"segment/{s}/position_world_m"] for s in meta["segments"]},
            joint_angles_deg={a: arrays[f"angle/{a}"] for a in meta["joint_angles"]},
            sensors=sensors,
            events=[GaitEvent(**e) for e in meta["events"]],
            strides=[Stride(**s) for s in meta["strides"]],
            **{k: meta[k] for k in (
                "walk_start_s", "walk_end_s", "steady_start_s", "steady_end_s", "distance_m", "steady_speed_m_s",
                "mean_speed_m_s", "cadence_steps_per_min", "stride_length_m", "stride_time_s", "stance_pct",
                "double_support_pct", "parameters")},
        )


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
