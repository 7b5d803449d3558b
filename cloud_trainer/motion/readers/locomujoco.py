"""LocoMuJoCo trajectory files (``.npz``: ``q_<joint>`` and ``dq_<joint>`` arrays, radians and metres).

The humanoids of robfiras/loco-mujoco carry OpenSim coordinate names inside a MuJoCo model whose pelvis body is
turned +90° about x (its y is up) and sits ``pelvis_height_offset_m`` above its slide joints (0.95 m in
``full_humanoid.xml``); the coordinates therefore map as in
:mod:`cloud_trainer.motion.readers.opensim_coordinates`. The full humanoid's knee is positive in flexion, the
torque humanoid's negative; ``knee_convention='auto'`` tells them apart from the data.

The files carry no time: give ``sampling_rate_hz``, or leave it ``None`` to estimate it from the ``dq`` arrays
(least squares of ``Δq ≈ dq·Δt`` over every joint), snapped to a common capture rate within 2 %.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from cloud_trainer.motion.errors import MotionFileError
from cloud_trainer.motion.readers.opensim_coordinates import (
    KNOWN_COORDINATES,
    KneeConvention,
    from_opensim_coordinates,
)
from cloud_trainer.motion.trajectory import JointTrajectory

#: Height of the full humanoid's pelvis body above its slide joints (``full_humanoid.xml``: pos="0 0 0.95").
FULL_HUMANOID_PELVIS_HEIGHT_M = 0.95
#: Largest relative residual of ``Δq ≈ dq·Δt`` accepted when the rate is estimated (the files' velocities are
#: filtered derivatives: 1–12 % per joint in the MIT sample).
_RATE_RESIDUAL_LIMIT = 0.25
#: Capture rates an estimate snaps to when within 2 %.
COMMON_RATES_HZ = (30.0, 50.0, 60.0, 100.0, 120.0, 200.0, 240.0, 250.0, 500.0, 1000.0)


def estimate_sampling_rate_hz(q: dict[str, np.ndarray], dq: dict[str, np.ndarray]) -> tuple[float, float]:
    """Sampling rate from positions and velocities: ``Δq[k] ≈ ½(dq[k] + dq[k+1]) Δt`` by least squares.

    Returns ``(rate_hz, relative_residual)``.
    """
    num = 0.0
    den = 0.0
    pairs = [(np.diff(q[n]), 0.5 * (dq[n][1:] + dq[n][:-1])) for n in q if n in dq]
    for dq_pos, vel in pairs:
        num += float(np.dot(dq_pos, vel))
        den += float(np.dot(vel, vel))
    if den <= 0.0 or num <= 0.0:
        raise MotionFileError("velocities are zero or disagree with positions; cannot estimate the sampling rate")
    dt = num / den
    residual = sum(float(np.sum((d - v * dt) ** 2)) for d, v in pairs)
    scale = sum(float(np.sum(d**2)) for d, _ in pairs)
    return 1.0 / dt, float(np.sqrt(residual / scale)) if scale > 0 else 0.0


def read_locomujoco(
    path: str | Path,
    *,
    sampling_rate_hz: float | None = None,
    knee_convention: KneeConvention = "auto",
    pelvis_height_offset_m: float = FULL_HUMANOID_PELVIS_HEIGHT_M,
) -> JointTrajectory:
    """A LocoMuJoCo ``.npz`` trajectory as a :class:`JointTrajectory`."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: np.asarray(data[k]) for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise MotionFileError(f"{path}: not a readable .npz archive ({exc})") from exc
    q = {k[2:]: v.astype(float) for k, v in arrays.items() if k.startswith("q_")}
    dq = {k[3:]: v.astype(float) for k, v in arrays.items() if k.startswith("dq_")}
    known = {k: v for k, v in q.items() if k in KNOWN_COORDINATES}
    if not known:
        raise MotionFileError(
            f"{path}: no 'q_<coordinate>' arrays with OpenSim names (q_hip_flexion_r, q_knee_angle_r, …); "
            f"found {', '.join(sorted(arrays)[:6])}"
        )
    shapes = {v.shape for v in known.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) != 1:
        raise MotionFileError(f"{path}: q_ arrays must all be 1-D of one length; got shapes {sorted(shapes)}")
    notes: dict[str, object] = {}
    if sampling_rate_hz is None:
        if not dq:
            raise MotionFileError(f"{path}: no dq_ arrays to estimate the sampling rate from; pass sampling_rate_hz")
        rate, residual = estimate_sampling_rate_hz(known, dq)
        if residual > _RATE_RESIDUAL_LIMIT:
            raise MotionFileError(
                f"{path}: positions and velocities disagree (relative residual {residual:.3f} > "
                f"{_RATE_RESIDUAL_LIMIT}); pass sampling_rate_hz"
            )
        nearest = min(COMMON_RATES_HZ, key=lambda r: abs(r - rate))
        sampling_rate_hz = nearest if abs(nearest - rate) < 0.02 * nearest else rate
        notes = {"sampling_rate_estimated_hz": rate, "sampling_rate_residual": residual}
    elif not sampling_rate_hz > 0.0:
        raise MotionFileError(f"{path}: sampling_rate_hz must be positive, got {sampling_rate_hz}")
    angles, root_pos, quat, measured, root_measured, coord_notes = from_opensim_coordinates(
        known, knee_convention=knee_convention, pelvis_height_offset_m=pelvis_height_offset_m, source=str(path)
    )
    n = len(next(iter(known.values())))
    return JointTrajectory.create(
        np.arange(n) / sampling_rate_hz,
        angles,
        root_pos,
        quat,
        joints_measured=measured,
        root_pos_measured=root_measured,
        source=str(path),
        meta={
            "format": "locomujoco_npz",
            "sampling_rate_hz": sampling_rate_hz,
            **notes,
            **coord_notes,
            "ignored_arrays": sorted(k for k in q if k not in KNOWN_COORDINATES),
        },
    )
