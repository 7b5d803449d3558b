"""The healthy motion library: cleaned, phase-aligned healthy gait cycles indexed by (speed, stride length).

Each clip is one cyclic gait cycle (right heel strike to right heel strike) on the library body (the twin's default
patient, :data:`LIBRARY_BODY_HEIGHT_M`, as :func:`library_kinematics`), contact-cleaned, stored as
``N_CYCLE_FRAMES + 1`` frames evenly spaced over its period (the last frame closes the loop). The shipped file
``cloud_trainer/motion/data/healthy_library.npz`` is built by ``python -m cloud_trainer.motion.build_library`` from
MIT-licensed sources (see ``data/ATTRIBUTION.md``).

Query (Dai et al. 2025, Methods, Stage I: "A reference clip is then selected from the healthy gait dataset as the
one whose (speed, step length) pair is closest to the sampled target in Euclidean distance. The reference clip is then
time-resampled so that its walking speed and total number of frames match the sampled target."):

1. If a body height is given, every clip's speed and stride are first scaled by ``height / LIBRARY_BODY_HEIGHT_M``
   (geometric similarity at equal cadence: the same joint angles on a body k times larger cover k times the ground;
   the twin scales every length with height, so this is exact for patients of the library body's sex).
2. The nearest clip minimises ``√(((v − vᵢ)/Δv)² + ((L − Lᵢ)/ΔL)²)`` with ``Δv`` = 1.0 m/s and ``ΔL`` = 1.2 m, the
   widths of the atlas goal ranges (0.4–1.4 m/s, 0.5–1.7 m), so that both axes count alike.
3. The clip is time-resampled: its poses and root path are kept (stride length ``Lᵢ`` preserved) and its period set to
   ``Lᵢ / v``, so the speed equals the target exactly and the cadence changes by ``v / vᵢ``.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cloud_trainer.motion.errors import LibraryError, MotionQualityError
from cloud_trainer.motion.joints import JOINT_NAMES, N_JOINTS
from cloud_trainer.motion.kinematics import LightKinematics
from cloud_trainer.motion.segmentation import N_PHASE_SAMPLES, time_normalised
from cloud_trainer.motion.trajectory import JointTrajectory
from cloud_trainer.motion.twin_adapter import twin_skeleton
from cloud_trainer.twin.anthropometry import Anthropometry

FloatArray = NDArray[np.float64]

#: The shipped library.
LIBRARY_PATH = Path(__file__).resolve().parent / "data" / "healthy_library.npz"
#: Version of the npz layout written by :meth:`HealthyMotionLibrary.save`.
FORMAT_VERSION = 1
#: Frames per stored cycle (one more closes the loop).
N_CYCLE_FRAMES = 128
#: Height of the body the clips are cleaned on (the twin's default patient: 1.75 m, 70 kg, male), m.
LIBRARY_BODY_HEIGHT_M = 1.75
#: The atlas goal ranges (Dai et al. 2025, Methods, Stage I) and the normalisation of the query distance.
GOAL_SPEED_RANGE_M_S = (0.4, 1.4)
GOAL_STRIDE_RANGE_M = (0.5, 1.7)
SPEED_SCALE_M_S = GOAL_SPEED_RANGE_M_S[1] - GOAL_SPEED_RANGE_M_S[0]
STRIDE_SCALE_M = GOAL_STRIDE_RANGE_M[1] - GOAL_STRIDE_RANGE_M[0]
#: Targets a query accepts: any walking a human body does.
QUERY_SPEED_RANGE_M_S = (0.1, 2.5)
QUERY_STRIDE_RANGE_M = (0.2, 2.2)


def library_kinematics() -> LightKinematics:
    """The body the library's clips are cleaned on: the twin's default patient, as a light chain."""
    return LightKinematics(twin_skeleton(Anthropometry(height_m=LIBRARY_BODY_HEIGHT_M, mass_kg=70.0, sex="male")))


@dataclass(frozen=True)
class LibraryClip:
    """One healthy cycle of the library.

    Attributes:
        clip_id: unique name (source stem, start time, ``-mirror`` for mirrored copies).
        source: the file it came from (relative to ``../shared/data``).
        license: the source's license.
        speed_m_s, stride_length_m, period_s: gait parameters of the cleaned cycle on the library body.
        trajectory: the cycle (``N_CYCLE_FRAMES + 1`` frames, cyclic, phase 0 = right heel strike).
        flags: ``mirrored``, ``symmetrised`` (built from one step), ``atypical`` (stylised walks, excluded from
            queries unless asked for), and clean-up figures.
    """

    clip_id: str
    source: str
    license: str
    speed_m_s: float
    stride_length_m: float
    period_s: float
    trajectory: JointTrajectory
    flags: dict[str, Any] = field(default_factory=dict)


class HealthyMotionLibrary:
    """Healthy cycles indexed by (speed, stride length); see the module docstring for the query rule."""

    def __init__(self, clips: list[LibraryClip], body_height_m: float = LIBRARY_BODY_HEIGHT_M) -> None:
        if not clips:
            raise LibraryError("a healthy motion library needs at least one clip")
        self.clips = list(clips)
        self.body_height_m = body_height_m

    # --- queries --------------------------------------------------------------------------------------------------

    def _usable(self, include_atypical: bool) -> list[LibraryClip]:
        usable = [c for c in self.clips if include_atypical or not c.flags.get("atypical", False)]
        if not usable:
            raise LibraryError("the library has no typical clips; pass include_atypical=True")
        return usable

    def nearest(
        self,
        speed_m_s: float,
        stride_length_m: float,
        *,
        body_height_m: float | None = None,
        include_atypical: bool = False,
    ) -> tuple[LibraryClip, float]:
        """The clip nearest to (speed, stride) in normalised units, and that distance."""
        _check_target(speed_m_s, stride_length_m)
        k = self._scale(body_height_m)
        usable = self._usable(include_atypical)
        v = np.array([c.speed_m_s for c in usable]) * k
        L = np.array([c.stride_length_m for c in usable]) * k
        distance = np.hypot((speed_m_s - v) / SPEED_SCALE_M_S, (stride_length_m - L) / STRIDE_SCALE_M)
        best = int(np.argmin(distance))
        return usable[best], float(distance[best])

    def query(
        self,
        speed_m_s: float,
        stride_length_m: float,
        *,
        body_height_m: float | None = None,
        include_atypical: bool = False,
    ) -> JointTrajectory:
        """The nearest clip, time-resampled to ``speed_m_s`` with its own stride length (cyclic cycle trajectory).

        ``meta`` records the clip, the distance, the time scale and the cadence ratio.
        """
        clip, distance = self.nearest(
            speed_m_s, stride_length_m, body_height_m=body_height_m, include_atypical=include_atypical
        )
        k = self._scale(body_height_m)
        stride = clip.stride_length_m * k
        period = stride / speed_m_s
        time_scale = period / clip.period_s
        return clip.trajectory.time_scaled(time_scale).with_values(
            root_pos_m=clip.trajectory.root_pos_m * k,
            source=f"healthy library: {clip.clip_id}",
            meta={
                "cyclic": True,
                "period_s": period,
                "speed_m_s": speed_m_s,
                "stride_length_m": stride,
                "library_clip": clip.clip_id,
                "library_distance": distance,
                "time_scale": time_scale,
                "cadence_ratio": 1.0 / time_scale,
                "body_scale": k,
                "target_stride_length_m": stride_length_m,
            },
        )

    def mean_cycle_rad(self, n_phase: int = N_PHASE_SAMPLES, include_atypical: bool = False) -> FloatArray:
        """(n_phase, 15) mean joint angles over the typical clips at phases 0…1 (0 = right heel strike)."""
        cycles = [
            time_normalised(c.trajectory, 0, c.trajectory.n_frames - 1, n_phase) for c in self._usable(include_atypical)
        ]
        return np.mean(cycles, axis=0)

    def coverage(self, include_atypical: bool = False) -> dict[str, Any]:
        """Speed and stride ranges of the usable clips, and the share of the atlas goal box within
        ``radius`` = 0.1 (normalised units) of some clip."""
        usable = self._usable(include_atypical)
        v = np.array([c.speed_m_s for c in usable])
        L = np.array([c.stride_length_m for c in usable])
        gv, gL = np.meshgrid(np.linspace(*GOAL_SPEED_RANGE_M_S, 51), np.linspace(*GOAL_STRIDE_RANGE_M, 61))
        d = np.hypot((gv[..., None] - v) / SPEED_SCALE_M_S, (gL[..., None] - L) / STRIDE_SCALE_M).min(axis=-1)
        return {
            "n_clips": len(usable),
            "speed_m_s": (float(v.min()), float(v.max())),
            "stride_length_m": (float(L.min()), float(L.max())),
            "goal_box_within_0.1": float(np.mean(d <= 0.1)),
            "goal_box_within_0.2": float(np.mean(d <= 0.2)),
        }

    def table(self) -> list[dict[str, Any]]:
        """One row per clip: id, speed, stride, period, source, license, flags."""
        return [
            {
                "clip_id": c.clip_id,
                "speed_m_s": round(c.speed_m_s, 3),
                "stride_length_m": round(c.stride_length_m, 3),
                "period_s": round(c.period_s, 3),
                "source": c.source,
                "license": c.license,
                **{k: v for k, v in c.flags.items() if isinstance(v, bool | int | float | str)},
            }
            for c in self.clips
        ]

    def _scale(self, body_height_m: float | None) -> float:
        if body_height_m is None:
            return 1.0
        if not 1.0 <= body_height_m <= 2.3:
            raise LibraryError(f"body height {body_height_m} m outside the accepted 1.0–2.3 m")
        return body_height_m / self.body_height_m

    # --- files ----------------------------------------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        """Write the library as a compressed npz (float32 poses; see :meth:`load`)."""
        clips = self.clips
        flag_names = sorted({k for c in clips for k, v in c.flags.items() if isinstance(v, bool)})
        number_names = sorted(
            {k for c in clips for k, v in c.flags.items() if isinstance(v, int | float) and not isinstance(v, bool)}
        )
        np.savez_compressed(
            path,
            format_version=np.array(FORMAT_VERSION),
            body_height_m=np.array(self.body_height_m),
            joint_names=np.array(JOINT_NAMES),
            clip_id=np.array([c.clip_id for c in clips]),
            source=np.array([c.source for c in clips]),
            license=np.array([c.license for c in clips]),
            speed_m_s=np.array([c.speed_m_s for c in clips]),
            stride_length_m=np.array([c.stride_length_m for c in clips]),
            period_s=np.array([c.period_s for c in clips]),
            joint_angles_rad=np.stack([c.trajectory.joint_angles_rad for c in clips]).astype(np.float32),
            root_pos_m=np.stack([c.trajectory.root_pos_m for c in clips]).astype(np.float32),
            root_quat_wxyz=np.stack([c.trajectory.root_quat_wxyz for c in clips]).astype(np.float32),
            joints_measured=np.stack([c.trajectory.joints_measured for c in clips]),
            flag_names=np.array(flag_names, dtype=str),
            flags=np.array([[bool(c.flags.get(f, False)) for f in flag_names] for c in clips]).reshape(
                len(clips), len(flag_names)
            ),
            number_names=np.array(number_names, dtype=str),
            numbers=np.array([[float(c.flags.get(f, np.nan)) for f in number_names] for c in clips]).reshape(
                len(clips), len(number_names)
            ),
        )

    @classmethod
    def load(cls, path: str | Path = LIBRARY_PATH) -> HealthyMotionLibrary:
        """Read a library file, with a clear :class:`LibraryError` for a missing, corrupt or incompatible one."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except FileNotFoundError:
            raise LibraryError(
                f"{path}: no healthy library; build it with 'python -m cloud_trainer.motion.build_library'"
            ) from None
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise LibraryError(f"{path}: not a readable healthy-library npz ({exc})") from exc
        required = ("format_version", "clip_id", "speed_m_s", "stride_length_m", "period_s", "joint_angles_rad",
                    "root_pos_m", "root_quat_wxyz", "joints_measured", "joint_names", "body_height_m")  # fmt: skip
        missing = [k for k in required if k not in arrays]
        if missing:
            raise LibraryError(f"{path}: missing arrays {missing}; rebuild the library")
        if int(arrays["format_version"]) != FORMAT_VERSION:
            raise LibraryError(
                f"{path}: format version {int(arrays['format_version'])}, this code reads {FORMAT_VERSION}"
            )
        if tuple(str(n) for n in arrays["joint_names"]) != JOINT_NAMES:
            raise LibraryError(f"{path}: joint order differs from the model's; rebuild the library")
        n = len(arrays["clip_id"])
        angles = arrays["joint_angles_rad"].astype(float)
        if angles.ndim != 3 or angles.shape[0] != n or angles.shape[2] != N_JOINTS:
            raise LibraryError(f"{path}: joint_angles_rad has shape {angles.shape}, expected ({n}, frames, {N_JOINTS})")
        flag_names = [str(f) for f in arrays.get("flag_names", [])]
        number_names = [str(f) for f in arrays.get("number_names", [])]
        clips = []
        for i in range(n):
            period = float(arrays["period_s"][i])
            frames = angles.shape[1]
            flags: dict[str, Any] = {f: bool(arrays["flags"][i, j]) for j, f in enumerate(flag_names)}
            flags.update({f: float(arrays["numbers"][i, j]) for j, f in enumerate(number_names)})
            try:
                trajectory = JointTrajectory.create(
                    np.linspace(0.0, period, frames),
                    angles[i],
                    arrays["root_pos_m"][i].astype(float),
                    arrays["root_quat_wxyz"][i].astype(float),
                    joints_measured=arrays["joints_measured"][i],
                    source=f"healthy library: {arrays['clip_id'][i]}",
                    meta={
                        "cyclic": True,
                        "period_s": period,
                        "speed_m_s": float(arrays["speed_m_s"][i]),
                        "stride_length_m": float(arrays["stride_length_m"][i]),
                    },
                )
            except MotionQualityError as exc:
                raise LibraryError(f"{path}: clip {arrays['clip_id'][i]} is corrupt ({exc})") from exc
            clips.append(
                LibraryClip(
                    clip_id=str(arrays["clip_id"][i]),
                    source=str(arrays["source"][i]) if "source" in arrays else "",
                    license=str(arrays["license"][i]) if "license" in arrays else "",
                    speed_m_s=float(arrays["speed_m_s"][i]),
                    stride_length_m=float(arrays["stride_length_m"][i]),
                    period_s=period,
                    trajectory=trajectory,
                    flags=flags,
                )
            )
        return cls(clips, float(arrays["body_height_m"]))


def _check_target(speed_m_s: float, stride_length_m: float) -> None:
    lo, hi = QUERY_SPEED_RANGE_M_S
    if not (np.isfinite(speed_m_s) and lo <= speed_m_s <= hi):
        raise LibraryError(f"target speed {speed_m_s} m/s outside the accepted {lo}–{hi} m/s")
    lo, hi = QUERY_STRIDE_RANGE_M
    if not (np.isfinite(stride_length_m) and lo <= stride_length_m <= hi):
        raise LibraryError(f"target stride length {stride_length_m} m outside the accepted {lo}–{hi} m")
