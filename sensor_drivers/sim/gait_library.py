"""The shipped library of healthy gait cycles (derived from DeepMimic motions by ``build_gait_library.py``).

A cycle holds lower-limb joint rotations on a uniform phase grid (phase 0 = right initial contact), in the project's
frames (x forward, y left, z up): the pelvis relative to the walking direction, hips relative to the pelvis, knee
flexion, ankles relative to the shank; plus the cycle's events, speed, stride length and duration in the source.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy.interpolate import BSpline, make_interp_spline

from sensor_drivers.errors import SensorDriverError

LIBRARY_PATH = Path(__file__).resolve().parent / "data" / "healthy_gait_cycles.npz"
SUPPORTED_FORMAT = 1
_SPLINES: dict[tuple[str, tuple[int, int], bytes], BSpline] = {}


@dataclass(frozen=True)
class SourceDimensions:
    """Lower-limb dimensions of the skeleton the cycles were recorded on (DeepMimic humanoid), m."""

    hip_half_width_m: float
    thigh_m: float
    shank_m: float
    heel_x_m: float
    toe_x_m: float
    sole_z_m: float

    @property
    def leg_m(self) -> float:
        """Hip joint centre to ankle joint centre with a straight knee."""
        return self.thigh_m + self.shank_m


@dataclass(frozen=True)
class GaitCycle:
    """One healthy gait cycle of the library."""

    index: int
    source_file: str
    source_frames: tuple[int, int]
    #: (n_phase, n_channels) joint rotations, rad (rotation vectors and knee flexion), see :attr:`channels`.
    joint_rad: NDArray[np.float64]
    channels: tuple[str, ...]
    #: Phase of left final contact, left initial contact and right final contact (right IC is phase 0).
    fc_l_phase: float
    ic_l_phase: float
    fc_r_phase: float
    speed_m_s: float
    stride_length_m: float
    cycle_time_s: float
    #: Hip yaw of both legs that straightens the footprints (for a 1.75 m body): 0 for a perfectly straight walker.
    leg_yaw_deg: float = 0.0

    def spline(self) -> BSpline:
        """A periodic quintic spline of all channels over phase [0, 1) (C4: smooth accelerations); built once."""
        key = (self.source_file, self.source_frames, self.joint_rad.tobytes())
        if key not in _SPLINES:
            _SPLINES[key] = self._build_spline()
        return _SPLINES[key]

    def _build_spline(self) -> BSpline:
        n = self.joint_rad.shape[0]
        phase = np.arange(n + 1) / n
        values = np.vstack([self.joint_rad, self.joint_rad[:1]])
        return make_interp_spline(phase, values, k=5, bc_type="periodic")

    def channel(self, name: str) -> int:
        """Column index of a named channel."""
        return self.channels.index(name)


@dataclass(frozen=True)
class GaitLibrary:
    """All cycles plus the source skeleton they were measured on."""

    cycles: tuple[GaitCycle, ...]
    source: SourceDimensions

    def most_symmetric(self) -> GaitCycle:
        """The cycle whose footprints run straightest without correction (the least left/right asymmetry)."""
        return min(self.cycles, key=lambda c: abs(c.leg_yaw_deg))

    @classmethod
    def load(cls, path: Path = LIBRARY_PATH) -> GaitLibrary:
        """Read the library file (the shipped one by default)."""
        return _load_cached(Path(path))

    def nearest(self, speed_m_s: float, leg_scale: float = 1.0) -> GaitCycle:
        """The cycle whose speed, scaled to a body ``leg_scale`` times the source's leg, is nearest ``speed_m_s``;
        among cycles within 0.05 m/s of that, the one with the longest double supports (closest to the ≈ 10 % of
        the cycle typical at 1 m/s).

        Geometric scaling at the same cadence scales speed with leg length.
        """
        gaps = np.abs(np.array([c.speed_m_s for c in self.cycles]) * leg_scale - speed_m_s)
        close = [c for c, gap in zip(self.cycles, gaps, strict=True) if gap <= gaps.min() + 0.05]
        return max(close, key=lambda c: min(c.fc_l_phase, c.fc_r_phase - c.ic_l_phase))


@cache
def _load_cached(path: Path) -> GaitLibrary:
    try:
        with np.load(path) as data:
            version = int(data["format_version"])
            if version != SUPPORTED_FORMAT:
                raise SensorDriverError(f"{path}: gait library format {version}, this code reads {SUPPORTED_FORMAT}")
            channels = tuple(str(c) for c in data["channels"])
            cycles = tuple(
                GaitCycle(
                    index=i,
                    source_file=str(data["source_file"][i]),
                    source_frames=(int(data["source_frames"][i, 0]), int(data["source_frames"][i, 1])),
                    joint_rad=data["joint_rad"][i].astype(np.float64),
                    channels=channels,
                    fc_l_phase=float(data["events_phase"][i, 0]),
                    ic_l_phase=float(data["events_phase"][i, 1]),
                    fc_r_phase=float(data["events_phase"][i, 2]),
                    speed_m_s=float(data["speed_m_s"][i]),
                    stride_length_m=float(data["stride_length_m"][i]),
                    cycle_time_s=float(data["cycle_time_s"][i]),
                    leg_yaw_deg=float(data["leg_yaw_deg"][i]),
                )
                for i in range(len(data["speed_m_s"]))
            )
            source = SourceDimensions(
                hip_half_width_m=float(data["source_hip_half_width_m"]),
                thigh_m=float(data["source_thigh_m"]),
                shank_m=float(data["source_shank_m"]),
                heel_x_m=float(data["source_heel_x_m"]),
                toe_x_m=float(data["source_toe_x_m"]),
                sole_z_m=float(data["source_sole_z_m"]),
            )
    except (OSError, KeyError, ValueError) as exc:
        raise SensorDriverError(f"cannot read the gait library {path}: {exc}") from exc
    return GaitLibrary(cycles=cycles, source=source)
