"""The orientation pipeline: fusion → standing pose → sensor-to-segment calibration → joint angles, batch and live.

Batch (after the walk)::

    result = OrientationPipeline().estimate(kit)
    result.angles_deg_["knee_flexion_l_deg"]        # (N,) on kit.time_s, NaN where unknown
    result.quat_wxyz_world_segment_["thigh_l"]      # (N, 4), walkway world
    result.verdicts_                                 # why anything is missing or uncertain

Live (during the walk; blocks of consecutive grid rows)::

    live = OrientationPipeline().reset()
    for block in blocks:
        live.update(block)                           # angles_deg_ etc. for this block's rows
        live.calibrated_                             # False until enough walking was seen

Live and batch run the same fusion (identical numbers, see fusion.py) and the same calibration functions; the live
calibration runs once, on a bounded buffer holding the standing period and the first ``live_calibration_walk_s``
of walking, where the batch one sees the whole walk. Before it has run, live angles are NaN and a verdict says
that the calibration is waiting for walking.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from capture_app.core.orientation.calibration import SegmentCalibration, StandingPose, standing_interval_s
from capture_app.core.orientation.fusion import OrientationFusion
from capture_app.core.orientation.joint_angles import joint_angles_deg
from capture_app.core.orientation.rotations import matrix_from_quat
from capture_app.core.signals import KitSignals, SiteSignals
from capture_app.core.verdict import Level, Verdict
from sensor_drivers.sites import Site

FloatArray = NDArray[np.float64]


class OrientationPipeline:
    """Joint angles of a kit (see the module docstring).

    Parameters: ``fusion`` and ``calibration`` (sub-algorithms, swappable), ``live_calibration_walk_s`` (walking
    the live form waits for before calibrating), ``live_buffer_s`` (how much recent signal the live form keeps
    for that: bounded memory, about 44 kB per second of buffer for five sensors at 100 Hz).

    Results (for the rows of the last :meth:`update`, or the whole recording after :meth:`estimate`):
    ``time_s_``; ``quat_wxyz_world_sensor_`` (site → (N, 4), each sensor's fusion world);
    ``quat_wxyz_world_segment_`` (segment name → (N, 4), walkway world); ``angles_deg_`` (angle name → (N,));
    and, over the stream so far, ``calibration_`` (the :class:`SegmentCalibration`, None before it has run),
    ``calibrated_``, ``verdicts_`` (fusion, calibration and angle verdicts).
    """

    def __init__(
        self,
        fusion: OrientationFusion | None = None,
        calibration: SegmentCalibration | None = None,
        live_calibration_walk_s: float = 8.0,
        live_buffer_s: float = 30.0,
    ) -> None:
        self.fusion = fusion
        self.calibration = calibration
        self.live_calibration_walk_s = live_calibration_walk_s
        self.live_buffer_s = live_buffer_s
        self.reset()

    # -- batch -------------------------------------------------------------------------------------------------
    def estimate(self, kit: KitSignals) -> OrientationPipeline:
        """Angles over a whole recording: fusion over all rows (smoothed where the fusion does), calibration from
        the whole walk."""
        self.reset()
        fusion = self._fusion.estimate(kit)
        quats = fusion.quat_wxyz_world_sensor_
        self._calibrate(_with_gyro(kit, fusion.gyr_rad_s_), quats)
        self._output(kit.time_s, quats)
        return self

    # -- live --------------------------------------------------------------------------------------------------
    def reset(self) -> OrientationPipeline:
        """Forget the stream; the next :meth:`update` starts afresh."""
        self._fusion = (self.fusion or OrientationFusion()).reset()
        self._calibrator = self.calibration or SegmentCalibration()
        self.calibration_: SegmentCalibration | None = None
        self.calibrated_ = False
        self._ring: _Ring | None = None
        self._rows_since_check = 0
        self._calibration_verdicts: list[Verdict] = []
        self.verdicts_: list[Verdict] = []
        return self

    def update(self, block: KitSignals) -> OrientationPipeline:
        """Consume the next rows; results are for these rows."""
        fusion = self._fusion.update(block)
        quats = fusion.quat_wxyz_world_sensor_
        if not self.calibrated_:
            if self._ring is None:
                self._ring = _Ring(round(self.live_buffer_s * block.rate_hz), block.rate_hz)
            self._ring.append(_with_gyro(block, fusion.gyr_rad_s_), quats)
            self._rows_since_check += block.n_samples
            if self._rows_since_check >= block.rate_hz:  # look for enough walking once per second of signal
                self._rows_since_check = 0
                kit, buffered = self._ring.contents()
                if self._calibrator.walking_s(kit) >= self.live_calibration_walk_s:
                    self._calibrate(kit, buffered)
                    if self.calibrated_:
                        self._ring = None
        self._output(block.time_s, quats)
        return self

    # -- shared ------------------------------------------------------------------------------------------------
    def _calibrate(self, kit: KitSignals, quats: dict[Site, FloatArray]) -> None:
        fusion = self._fusion
        window_s = getattr(fusion, "still_window_s_", 1.0)
        interval = standing_interval_s(
            {s: fusion.still_period_s_.get(s) for s in kit.sites}, window_s,
            float(kit.time_s[-1]) if kit.n_samples else 0.0,
        )
        standing = None if interval is None else StandingPose.from_rows(kit, quats, *interval)
        self.calibration_ = self._calibrator.calibrate(
            kit, quats, standing, fusion.gyr_bias_rad_s_, getattr(fusion, "final_still_s_", None)
        )
        self.calibrated_ = bool(self.calibration_.sites_)
        self._calibration_verdicts = list(self.calibration_.verdicts_)

    def _output(self, time_s: FloatArray, quats: dict[Site, FloatArray]) -> None:
        self.time_s_ = time_s
        self.quat_wxyz_world_sensor_ = quats
        self.quat_wxyz_world_segment_: dict[str, FloatArray] = {}
        if self.calibration_ is not None:
            for site in self.calibration_.sites_:
                if site in quats:
                    self.quat_wxyz_world_segment_[site.value] = self.calibration_.world_segment_quat(site, quats[site])
        segments = {name: matrix_from_quat(q) for name, q in self.quat_wxyz_world_segment_.items()}
        angles, angle_verdicts = joint_angles_deg(segments)
        verdicts = list(self._fusion.verdicts_) + self._calibration_verdicts
        if self.calibration_ is None:
            verdicts.append(Verdict(
                Level.WARNING, "calibration.waiting",
                "Joint angles appear after a few strides: the sensors' placement on the legs is measured from the "
                "walking itself.",
                "Keep walking.",
                details={"walk_needed_s": self.live_calibration_walk_s},
            ))
            angles = {}
        else:
            verdicts += angle_verdicts
        self.angles_deg_ = angles
        self.verdicts_ = verdicts


def _with_gyro(kit: KitSignals, gyr_rad_s: dict[Site, FloatArray]) -> KitSignals:
    """``kit`` with each site's gyroscope replaced by the fusion's (derived from the device orientation where that
    was used)."""
    sites = {
        site: SiteSignals(s.sensor_id, s.valid, s.acc_m_s2, gyr_rad_s.get(site, s.gyr_rad_s), s.mag_ut, s.quat_wxyz)
        for site, s in kit.sites.items()
    }
    return KitSignals(kit.rate_hz, kit.time_s, sites)


class _Ring:
    """The last ``capacity`` rows of time, per-site validity, acc, gyr and fused quaternion (fixed memory)."""

    def __init__(self, capacity: int, rate_hz: float) -> None:
        self.capacity = max(1, capacity)
        self.rate_hz = rate_hz
        self.time_s = np.full(self.capacity, np.nan)
        self.sites: dict[Site, tuple[str, FloatArray]] = {}  # site → (sensor id, rows of valid|acc|gyr|quat)
        self.n_written = 0

    def append(self, block: KitSignals, quats: dict[Site, FloatArray]) -> None:
        n = block.n_samples
        if n == 0:
            return
        start = self.n_written % self.capacity
        positions = (start + np.arange(n)) % self.capacity
        self.time_s[positions] = block.time_s
        for site, s in block.sites.items():
            if site not in self.sites:
                rows = np.full((self.capacity, 11), np.nan)
                rows[:, 0] = 0.0
                self.sites[site] = (s.sensor_id, rows)
            rows = self.sites[site][1]
            q = quats.get(site, np.full((n, 4), np.nan))
            rows[positions] = np.column_stack([s.valid, s.acc_m_s2, s.gyr_rad_s, q])
        for site, (_, rows) in self.sites.items():
            if site not in block.sites:
                rows[positions] = np.nan
                rows[positions, 0] = 0.0
        self.n_written += n

    def contents(self) -> tuple[KitSignals, dict[Site, FloatArray]]:
        """The buffered rows in time order, as a kit and its quaternions."""
        n = min(self.n_written, self.capacity)
        order = (self.n_written - n + np.arange(n)) % self.capacity
        sites, quats = {}, {}
        for site, (sensor_id, rows) in self.sites.items():
            r = rows[order]
            sites[site] = SiteSignals(sensor_id, r[:, 0] > 0.5, r[:, 1:4], r[:, 4:7])
            quats[site] = r[:, 7:11]
        return KitSignals(self.rate_hz, self.time_s[order], sites), quats
