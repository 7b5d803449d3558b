"""Gait-cycle segmentation by the dominant gait frequency, straight-walking selection and a consistency check.

Dai et al. 2025 (Fig. 2c and Results): denoised joint trajectories are segmented into cycles "using each subject's
dominant gait frequency" by "spectral-peak and extremum detection", and cycles with "unstable intra-cycle
structure" are excluded. Here:

1. The dominant (stride) frequency is the spectral peak of ``hip_flexion_r − hip_flexion_l`` (both hips swing in
   anti-phase once per stride, so the difference carries the stride frequency and cancels common-mode drift) inside
   ``frequency_range_hz``, refined by parabolic interpolation of the zero-padded Hann-windowed spectrum.
2. Right heel strikes are the maxima of the right heel's forward distance from the pelvis in the walking direction
   (Zeni et al. 2008, Gait & Posture 27:710, "heel-strike = maximum heel–sacrum distance"), found with the light
   kinematic chain (any :class:`~cloud_trainer.motion.kinematics.KinematicModel` may be given) and at least 60 % of
   the dominant period apart. Without a kinematic model the right hip flexion maxima are used (late swing).
3. A cycle is right heel strike to the next, ``[start, end)`` in frames. It is accepted when its duration is within
   ``period_tolerance`` of the dominant period, the pelvis heading turns less than ``max_heading_change_deg`` over it
   (straight walking; turns excluded) and, among those, its joint angles (time-normalised to 101 samples) stay
   within ``max_rms_deviation_deg`` and 3 robust standard deviations (at least 3°) of the median cycle's deviation.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.signal import find_peaks

from cloud_trainer.motion.errors import MotionQualityError
from cloud_trainer.motion.joints import JOINT_INDEX
from cloud_trainer.motion.kinematics import FOOT_POINT_INDEX, KinematicModel, LightKinematics
from cloud_trainer.motion.trajectory import JointTrajectory

FloatArray = NDArray[np.float64]

#: Samples per time-normalised cycle (0 … 100 % of the cycle).
N_PHASE_SAMPLES = 101
#: A cycle is an outlier only if it deviates this much more than the median cycle does, at least (deg).
_MIN_OUTLIER_MARGIN_DEG = 3.0


@dataclass(frozen=True)
class GaitCycle:
    """One stride, right heel strike to right heel strike; frames ``[start, end)`` of the segmented trajectory.

    ``speed_m_s`` and ``stride_length_m`` come from the root's horizontal travel and are NaN where the clip has no
    measured root translation. ``reason`` says why a cycle was rejected (empty when accepted).
    """

    start: int
    end: int
    start_time_s: float
    period_s: float
    heading_change_deg: float
    speed_m_s: float
    stride_length_m: float
    rms_deviation_deg: float
    accepted: bool
    reason: str = ""


def dominant_frequency_hz(
    signal: FloatArray, sampling_rate_hz: float, frequency_range_hz: tuple[float, float]
) -> float:
    """The spectral peak of ``signal`` inside ``frequency_range_hz``.

    Linear trend removed, Hann window, zero-padded FFT, parabolic refinement of the peak on log magnitudes.
    """
    x = np.asarray(signal, dtype=float)
    x = x - np.polyval(np.polyfit(np.arange(len(x)), x, 1), np.arange(len(x)))
    n_fft = max(8192, 1 << int(np.ceil(np.log2(len(x) * 8))))
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)), n_fft))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sampling_rate_hz)
    lo, hi = frequency_range_hz
    band = np.flatnonzero((freqs >= lo) & (freqs <= hi))
    if band.size == 0:
        raise MotionQualityError(f"sampling rate {sampling_rate_hz} Hz cannot resolve {lo}–{hi} Hz")
    k = band[np.argmax(spectrum[band])]
    if 0 < k < len(spectrum) - 1:
        a, b, c = np.log(spectrum[k - 1 : k + 2] + 1e-300)
        shift = 0.5 * (a - c) / (a - 2 * b + c) if (a - 2 * b + c) != 0 else 0.0
        return float(freqs[k] + np.clip(shift, -0.5, 0.5) * (freqs[1] - freqs[0]))
    return float(freqs[k])


def time_normalised(trajectory: JointTrajectory, start: int, end: int, n_samples: int = N_PHASE_SAMPLES) -> FloatArray:
    """Joint angles of frames ``[start, end]`` (the closing frame included where it exists) on ``n_samples`` phases."""
    stop = min(end, trajectory.n_frames - 1)
    t = trajectory.time_s[start : stop + 1]
    phase = (t - t[0]) / (trajectory.time_s[start] + (end - start) * trajectory.dt_s - t[0])
    target = np.linspace(0.0, 1.0, n_samples)
    angles = trajectory.joint_angles_rad[start : stop + 1]
    return np.stack([np.interp(target, phase, a) for a in angles.T], axis=1)


class GaitCycleSegmenter:
    """Split a walking trajectory into gait cycles (see the module docstring).

    Parameters:
        frequency_range_hz: stride frequencies searched for the spectral peak (0.3–1.6 Hz: 36–192 steps/min).
        period_tolerance: accepted relative deviation of a cycle's duration from the dominant period.
        max_heading_change_deg: largest pelvis heading change over one cycle that still counts as straight walking.
        max_rms_deviation_deg: largest RMS joint-angle deviation of a cycle from the median cycle.
        min_cycles: fewest accepted cycles :meth:`segment` returns without raising.
        kinematics: body used to find heel strikes; ``None`` uses hip flexion maxima.

    Results (after :meth:`segment`): ``dominant_frequency_hz_``, ``events_`` (right heel-strike frames),
    ``cycles_`` (every candidate :class:`GaitCycle`), ``accepted_cycles_``, ``mean_cycle_rad_`` (101, 15) mean of
    the accepted cycles.
    """

    def __init__(
        self,
        frequency_range_hz: tuple[float, float] = (0.3, 1.6),
        period_tolerance: float = 0.3,
        max_heading_change_deg: float = 10.0,
        max_rms_deviation_deg: float = 10.0,
        min_cycles: int = 1,
        kinematics: KinematicModel | None = None,
    ) -> None:
        self.frequency_range_hz = frequency_range_hz
        self.period_tolerance = period_tolerance
        self.max_heading_change_deg = max_heading_change_deg
        self.max_rms_deviation_deg = max_rms_deviation_deg
        self.min_cycles = min_cycles
        self.kinematics = kinematics if kinematics is not None else LightKinematics()

    def segment(self, trajectory: JointTrajectory) -> GaitCycleSegmenter:
        """Find the cycles of ``trajectory``; raises :class:`MotionQualityError` below ``min_cycles`` accepted."""
        fs = trajectory.sampling_rate_hz
        hip_r = trajectory.angle("hip_flexion_r")
        hip_l = trajectory.angle("hip_flexion_l")
        measured = trajectory.joints_measured
        if not (measured[JOINT_INDEX["hip_flexion_r"]] or measured[JOINT_INDEX["hip_flexion_l"]]):
            raise MotionQualityError(f"{trajectory.source}: segmentation needs a measured hip flexion")
        shortest_s = 1.0 / self.frequency_range_hz[1]
        if trajectory.duration_s < shortest_s:
            raise MotionQualityError(
                f"{trajectory.source}: {trajectory.duration_s:.2f} s cannot hold one gait cycle (the shortest "
                f"accepted is {shortest_s:.2f} s); a clip needs at least {max(self.min_cycles, 1)} full strides"
            )
        f0 = dominant_frequency_hz(hip_r - hip_l, fs, self.frequency_range_hz)
        period_frames = fs / f0
        heading = trajectory.heading_rad()
        window = max(1, round(period_frames))
        smooth_heading = _moving_average(heading, window)
        if self.kinematics is not None:
            signal = heel_forward_distance(trajectory, self.kinematics, "r", smooth_heading)
        else:
            signal = hip_r
        spread = np.percentile(signal, 95) - np.percentile(signal, 5)
        events, _ = find_peaks(signal, distance=max(1, int(0.6 * period_frames)), prominence=0.25 * spread)
        self.dominant_frequency_hz_ = f0
        self.events_ = events
        self.cycles_ = self._judge(trajectory, events, 1.0 / f0, heading)
        self.accepted_cycles_ = [c for c in self.cycles_ if c.accepted]
        if len(self.accepted_cycles_) < self.min_cycles:
            reasons = sorted({c.reason for c in self.cycles_ if not c.accepted})
            raise MotionQualityError(
                f"{trajectory.source}: {len(self.accepted_cycles_)} usable gait cycles (of {len(self.cycles_)} found"
                f"{'; rejected: ' + '; '.join(reasons) if reasons else ''}); at least {self.min_cycles} needed"
            )
        self.mean_cycle_rad_ = (
            np.mean([time_normalised(trajectory, c.start, c.end) for c in self.accepted_cycles_], axis=0)
            if self.accepted_cycles_
            else np.full((N_PHASE_SAMPLES, trajectory.joint_angles_rad.shape[1]), np.nan)
        )
        return self

    def _judge(
        self, trajectory: JointTrajectory, events: NDArray[np.intp], period_s: float, heading: FloatArray
    ) -> list[GaitCycle]:
        dt = trajectory.dt_s
        root_xy = trajectory.root_pos_m[:, :2]
        has_root = bool(trajectory.root_pos_measured[:2].all())
        drafts = []
        for start, end in itertools.pairwise(events):
            duration = (end - start) * dt
            closing = min(end, trajectory.n_frames - 1)
            turn = float(np.degrees(abs(heading[closing] - heading[start])))
            stride = float(np.linalg.norm(root_xy[closing] - root_xy[start])) if has_root else float("nan")
            reason = ""
            if abs(duration / period_s - 1.0) > self.period_tolerance:
                reason = (
                    f"duration {duration:.2f} s outside ±{self.period_tolerance:.0%} of the dominant period "
                    f"{period_s:.2f} s"
                )
            elif turn > self.max_heading_change_deg:
                reason = f"turning (heading changes more than {self.max_heading_change_deg:g}° in a cycle)"
            drafts.append([int(start), int(end), duration, turn, stride, reason])
        candidates = [d for d in drafts if not d[5]]
        deviations: dict[int, float] = {}
        if candidates:
            measured = trajectory.joints_measured
            normalised = np.stack([time_normalised(trajectory, d[0], d[1])[:, measured] for d in candidates])
            median = np.median(normalised, axis=0)
            rms = np.degrees(np.sqrt(np.mean((normalised - median) ** 2, axis=(1, 2))))
            mad = 1.4826 * np.median(np.abs(rms - np.median(rms)))
            robust_limit = np.median(rms) + max(3.0 * mad, _MIN_OUTLIER_MARGIN_DEG)
            for d, value in zip(candidates, rms, strict=True):
                deviations[d[0]] = float(value)
                if value > self.max_rms_deviation_deg:
                    d[5] = f"inconsistent (RMS deviation from the median cycle above {self.max_rms_deviation_deg:g}°)"
                elif len(candidates) >= 4 and value > robust_limit:
                    d[5] = "inconsistent (RMS deviation from the median cycle is an outlier)"
        return [
            GaitCycle(
                start=start,
                end=end,
                start_time_s=float(trajectory.time_s[start]),
                period_s=duration,
                heading_change_deg=turn,
                speed_m_s=stride / duration,
                stride_length_m=stride,
                rms_deviation_deg=deviations.get(start, float("nan")),
                accepted=not reason,
                reason=reason,
            )
            for start, end, duration, turn, stride, reason in drafts
        ]


def heel_forward_distance(
    trajectory: JointTrajectory, kinematics: KinematicModel, side: str = "r", heading_rad: FloatArray | None = None
) -> FloatArray:
    """Zeni et al. (2008): the heel's distance ahead of the pelvis along the walking direction; maxima are heel strikes.

    ``heading_rad`` defaults to the pelvis heading smoothed over 0.5 s.
    """
    if heading_rad is None:
        heading_rad = _moving_average(trajectory.heading_rad(), max(1, round(0.5 * trajectory.sampling_rate_hz)))
    origin = np.zeros((trajectory.n_frames, 3))
    points = kinematics.foot_points(origin, trajectory.root_quat_wxyz, trajectory.joint_angles_rad)
    heel = points[:, FOOT_POINT_INDEX[f"heel_{side}"]]
    return heel[:, 0] * np.cos(heading_rad) + heel[:, 1] * np.sin(heading_rad)


def _moving_average(x: FloatArray, window: int) -> FloatArray:
    if window <= 1:
        return x.copy()
    pad = window // 2
    padded = np.pad(x, (pad, window - 1 - pad), mode="edge")
    return np.convolve(padded, np.ones(window) / window, mode="valid")
