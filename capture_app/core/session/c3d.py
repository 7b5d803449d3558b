"""Export of a walk test to C3D (with ``ezc3d``), the interchange format of clinical gait labs.

What goes where (docs/import-export.md, "C3D"):

- **Time**: frame 1 is the clip clock's zero (C3D times count from the first frame, c3d.org "EVENT:TIMES"), so every
  frame and event time in the file is on the clip's clock. Point rate = the analysis grid (100 Hz).
- **Joint angles** as POINT data in the Vicon Plug-in Gait layout that Mokka, Visual3D and Nexus read as angles:
  points ``LPelvisAngles``, ``RPelvisAngles``, ``LHipAngles``, ``RHipAngles``, ``LKneeAngles``, ``RKneeAngles``,
  listed in ``POINT:ANGLES``, unit ``POINT:ANGLE_UNITS = deg``; components (x, y, z) = (sagittal, frontal,
  transverse) with Plug-in Gait's signs: flexion, adduction/varus, internal rotation positive on both sides; pelvis
  anterior tilt, upward obliquity and internal rotation (forward rotation) of that side positive. The knee's frontal
  and transverse components are not measured and are written as 0 (``STRIDETWIN:ANGLE_COMPONENTS`` says which are
  measured). Frames without an angle are invalid points (residual −1).
- **Raw IMU channels** as ANALOG data, resampled onto a grid at the sensors' rate (an integer multiple of the point
  rate): ``<site>_acc_x`` … (m/s²), ``<site>_gyr_x`` … (rad/s), ``<site>_mag_x`` … (µT, where present) in the
  sensor's own axes, and ``<site>_valid`` (1 where the sensor delivered, 0 in gaps, where the other channels hold 0).
- **Events** in the EVENT group: ``Foot Strike`` (initial contact) and ``Foot Off`` (final contact), context ``Left``
  / ``Right``, as gait labs label them; the refined events of the offline analysis.
- **Subject**: ``PROCESSING:Bodymass`` (kg) and ``PROCESSING:Height`` (mm) as Plug-in Gait stores them, the
  pseudonym in ``SUBJECTS:NAMES`` (never a name), and a ``STRIDETWIN`` group with the schema and provenance.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from capture_app.core.session.analysis import WalkAnalysis
from capture_app.core.signals import KitSignals, signals_from_clip
from sensor_drivers.recording.clipfile import Clip
from sensor_drivers.sites import KIT_SITES

FloatArray = NDArray[np.float64]

#: Version of the file layout described in the module docstring.
C3D_SCHEMA = "stridetwin.c3d/1"

#: Plug-in Gait angle points → (our angle name, sign) per component (x sagittal, y frontal, z transverse); ``None``:
#: not measured (written as 0). Our pelvis: obliquity + left side up, rotation + right side forward (turning left).
ANGLE_POINTS: dict[str, tuple[tuple[str, float] | None, ...]] = {
    "LPelvisAngles": (("pelvis_tilt_deg", 1.0), ("pelvis_obliquity_deg", 1.0), ("pelvis_rotation_deg", -1.0)),
    "RPelvisAngles": (("pelvis_tilt_deg", 1.0), ("pelvis_obliquity_deg", -1.0), ("pelvis_rotation_deg", 1.0)),
    "LHipAngles": (("hip_flexion_l_deg", 1.0), ("hip_adduction_l_deg", 1.0), ("hip_rotation_l_deg", 1.0)),
    "RHipAngles": (("hip_flexion_r_deg", 1.0), ("hip_adduction_r_deg", 1.0), ("hip_rotation_r_deg", 1.0)),
    "LKneeAngles": (("knee_flexion_l_deg", 1.0), None, None),
    "RKneeAngles": (("knee_flexion_r_deg", 1.0), None, None),
}
#: Gait-lab event labels.
EVENT_LABELS = {"ic": ("Foot Strike", "Initial contact"), "fc": ("Foot Off", "Final contact")}


def export_c3d(
    analysis: WalkAnalysis, clip: Clip, path: str | os.PathLike[str], *, overwrite: bool = False
) -> dict[str, Any]:
    """Write ``clip`` and its ``analysis`` as a C3D file (module docstring); returns a summary (frames, rates,
    points, analog channels, events)."""
    import ezc3d

    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists")
    kit = analysis.kit_
    point_rate = float(analysis.rate_hz)
    nominal = [float(s.nominal_rate_hz) for s in clip.sensors.values() if s.nominal_rate_hz]
    ratio = max(1, round(max(nominal, default=point_rate) / point_rate))
    analog_rate = point_rate * ratio
    end_s = float(kit.time_s[-1]) if kit.n_samples else 0.0
    n_frames = max(1, round(end_s * point_rate) + 1)

    c3d = ezc3d.c3d()
    # -- points: joint angles
    labels, points, measured = _angle_points(kit, analysis.angles_deg_, point_rate, n_frames)
    c3d["parameters"]["POINT"]["RATE"]["value"] = [point_rate]
    c3d["parameters"]["POINT"]["LABELS"]["value"] = labels
    c3d["parameters"]["POINT"]["DESCRIPTIONS"]["value"] = ["joint angles (Plug-in Gait layout), deg"] * len(labels)
    c3d["parameters"]["POINT"]["UNITS"]["value"] = ["mm"]
    c3d["data"]["points"] = points
    if labels:
        c3d.add_parameter("POINT", "ANGLES", labels)
        c3d.add_parameter("POINT", "ANGLE_UNITS", ["deg"])
    # -- analogs: raw IMU channels on the analog grid
    analog_labels, units, analogs = _analogs(clip, analog_rate, n_frames * ratio)
    c3d["parameters"]["ANALOG"]["RATE"]["value"] = [analog_rate]
    c3d["parameters"]["ANALOG"]["LABELS"]["value"] = analog_labels
    c3d["parameters"]["ANALOG"]["DESCRIPTIONS"]["value"] = ["IMU channel, sensor axes"] * len(analog_labels)
    c3d["parameters"]["ANALOG"]["UNITS"]["value"] = units
    c3d["data"]["analogs"] = analogs
    # -- events
    n_events = 0
    for event in analysis.events_:
        if event.kind not in EVENT_LABELS or not np.isfinite(event.time_s) or event.time_s < 0:
            continue
        label, description = EVENT_LABELS[event.kind]
        minutes = int(event.time_s // 60)
        c3d.add_event([minutes, float(event.time_s - 60 * minutes)], "Left" if event.side == "left" else "Right",
                      label, description)  # fmt: skip
        n_events += 1
    # -- subject and provenance
    summary = analysis.clip_
    if summary is not None:
        if summary.mass_kg is not None:
            c3d.add_parameter("PROCESSING", "Bodymass", [float(summary.mass_kg)])
        if summary.height_m is not None:
            c3d.add_parameter("PROCESSING", "Height", [float(summary.height_m) * 1000.0])
        if summary.pseudonym:
            c3d.add_parameter("SUBJECTS", "NAMES", [summary.pseudonym])
            c3d.add_parameter("SUBJECTS", "USED", [1])
    c3d.add_parameter("MANUFACTURER", "COMPANY", ["StrideTwin"])
    c3d.add_parameter("MANUFACTURER", "SOFTWARE", ["stridetwin analyze"])
    c3d.add_parameter("STRIDETWIN", "SCHEMA", [C3D_SCHEMA])
    c3d.add_parameter("STRIDETWIN", "CLOCK", ["clip clock: frame 1 = 0 s"])
    c3d.add_parameter("STRIDETWIN", "ANGLE_COMPONENTS", measured or [""])
    c3d.add_parameter("STRIDETWIN", "SOURCE", [clip.path.name])
    c3d.write(str(path))
    return {"path": str(path), "n_frames": n_frames, "point_rate_hz": point_rate, "analog_rate_hz": analog_rate,
            "points": labels, "n_analog_channels": len(analog_labels), "n_events": n_events}  # fmt: skip


def _angle_points(
    kit: KitSignals, angles_deg: dict[str, FloatArray], rate_hz: float, n_frames: int
) -> tuple[list[str], FloatArray, list[str]]:
    """Point labels, the (4, n_points, n_frames) array (NaN: invalid) and the measured components
    (``LKneeAngles.x`` …)."""
    frame = np.round(kit.time_s * rate_hz).astype(int) if kit.n_samples else np.empty(0, int)
    inside = (frame >= 0) & (frame < n_frames)
    labels, columns, measured = [], [], []
    for label, components in ANGLE_POINTS.items():
        if not any(c is not None and c[0] in angles_deg for c in components):
            continue
        xyz = np.zeros((3, n_frames))
        valid = np.zeros(n_frames, dtype=bool)
        valid[frame[inside]] = True
        for axis, component in enumerate(components):
            if component is None:
                continue
            name, sign = component
            values = angles_deg.get(name)
            if values is None:
                continue
            measured.append(f"{label}.{'xyz'[axis]}")
            column = np.full(n_frames, np.nan)
            column[frame[inside]] = sign * np.asarray(values, dtype=float)[inside]
            xyz[axis] = column
            valid &= np.isfinite(column)
        xyz[:, ~valid] = np.nan
        labels.append(label)
        columns.append(xyz)
    points = np.full((4, len(labels), n_frames), np.nan)
    for k, xyz in enumerate(columns):
        points[:3, k] = xyz
        points[3, k] = np.where(np.isfinite(xyz[0]), 1.0, np.nan)
    return labels, points, measured


def _analogs(clip: Clip, rate_hz: float, n_samples: int) -> tuple[list[str], list[str], FloatArray]:
    """Analog labels, units and the (1, n_channels, n_samples) array of every sensor's raw channels."""
    grid = signals_from_clip(clip, rate_hz) if any(s.n_samples for s in clip.sensors.values()) else None
    labels: list[str] = []
    units: list[str] = []
    channels: list[FloatArray] = []
    if grid is not None:
        index = np.round(grid.time_s * rate_hz).astype(int)
        inside = (index >= 0) & (index < n_samples)
        for site in KIT_SITES:
            s = grid.sites.get(site)
            if s is None:
                continue
            valid = np.zeros(n_samples)
            valid[index[inside]] = s.valid[inside]
            parts = [("acc", s.acc_m_s2, "m/s^2"), ("gyr", s.gyr_rad_s, "rad/s")]
            if s.mag_ut is not None:
                parts.append(("mag", s.mag_ut, "uT"))
            for kind, values, unit in parts:
                for axis in range(3):
                    column = np.zeros(n_samples)
                    v = np.asarray(values[:, axis], dtype=float)[inside]
                    column[index[inside]] = np.where(np.isfinite(v), v, 0.0)
                    labels.append(f"{site.value}_{kind}_{'xyz'[axis]}")
                    units.append(unit)
                    channels.append(column)
            labels.append(f"{site.value}_valid")
            units.append("")
            channels.append(valid)
    analogs = np.zeros((1, len(channels), n_samples))
    for k, column in enumerate(channels):
        analogs[0, k] = column
    return labels, units, analogs
