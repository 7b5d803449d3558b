"""Per-sensor orientation from gyroscope and accelerometer (and optionally magnetometer), live and batch.

:class:`OrientationFusion` runs one filter of :mod:`~capture_app.core.orientation.filters` (Mahony by default,
Madgwick or EKF selectable) per sensor of a kit, block by block:

1. **Still period and gyroscope bias.** The walk test begins standing. The first still window
   (:class:`~capture_app.core.orientation.still.StillDetector`, or a given interval) initialises the sensor: its
   mean accelerometer gives the attitude (tilt; zero yaw as ``ahrs.common.orientation.acc2q``; with a magnetometer
   the TRIAD attitude in ENU), its mean gyroscope the bias. While the sensor stays still the bias is the running
   mean of the still stretch; when it moves, the bias is frozen at its value one detection window earlier (that
   window already held the first motion) and subtracted from then on. Rows before the initialisation have no
   orientation (NaN). No still period within ``max_still_search_s``: start from the accelerometer, no bias, and a
   warning verdict.
2. **Filter.** Bias-corrected gyroscope, the accelerometer (optionally zeroed, i.e. not used for the correction,
   where its norm is further than ``acc_gate_m_s2`` from gravity; off by default: on the virtual patient gating
   made every filter worse, because it removes the heel-strike samples unevenly and biases the mean), the
   magnetometer with ``use_mag``.
3. **Integration and gaps.** Each step turns the attitude by the mean of the gyroscope rows at its two ends
   (trapezoidal rule; the filters' own rectangle rule lags half a sample). A short gap (≤ ``max_bridge_s``) is
   bridged the same way: the first sample after it integrates the mean of the rates before and after the gap over
   the whole gap, so the rotation during it is not lost. After a longer gap the attitude is re-initialised from
   the accelerometer (heading kept) and the filter runs with ``reinit_boost``× its correction gain for
   ``reinit_boost_s`` to converge; a warning verdict says so.
4. **Batch smoothing** (:meth:`estimate` with ``smooth``): the walk test also *ends* standing still, so the same
   filter is run a second time backwards in time (rows reversed, rates negated), initialised and bias-corrected in
   the final still period, its heading turned onto the forward pass's there, and the two are blended with weights
   linear in time between the initial and the final still period. A gyroscope drift (bias change, scale and
   misalignment errors rectified by the motion) grows from each pass's anchor, so the blend cancels its linear
   part: on the virtual patient this took the tilt drift of a 60-s walk from 4-5° to under 1°. Without a final
   still period a sensor keeps the forward estimate. Live (:meth:`update`) cannot look ahead and has none of this.

Frames: the output ``quat_wxyz_world_sensor`` maps sensor vectors into the sensor's *fusion world*, z up. Without
a magnetometer its heading is arbitrary and differs between sensors (the calibration aligns them); with one it is
ENU (x magnetic east). The filters' own worlds (:data:`~capture_app.core.orientation.filters.WORLD_FRAME_MARG`)
are converted here, at this one boundary. Sensors that send their own orientation but no gyroscope (the OpenSense
Xsens export) pass it through (``device_orientation``), with the gyroscope derived from it.

Live and batch share the forward pass: :meth:`update` consumes consecutive grid rows and keeps bounded state (one
still window per sensor); :meth:`estimate` with ``smooth=False`` is ``reset`` plus one ``update`` over the whole
recording and gives the same numbers as any split into blocks (every decision for a row depends only on rows
before it).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from capture_app.core.orientation.filters import FILTERS, WORLD_FRAME_MARG, Ekf, FilterState, Madgwick, Mahony
from capture_app.core.orientation.rotations import (
    frame_from_z_and_y,
    gyr_from_quat_rad_s,
    matrix_from_quat,
    quat_from_matrix,
)
from capture_app.core.orientation.still import StillDetector
from capture_app.core.signals import KitSignals, SiteSignals
from capture_app.core.verdict import Level, Verdict
from sensor_drivers.frames import EARTH_FIELD_WORLD_UT, G_M_S2
from sensor_drivers.quaternion import multiply
from sensor_drivers.sites import Site

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
OrientationFilter = Madgwick | Mahony | Ekf

#: Gains for walking, chosen on the virtual patient (bench ``accuracy-angles``; docs/joint-angles.md). ahrs's defaults
#: (Madgwick β 0.033-0.041, Mahony k_P 1, k_I 0.3) suit a slowly moving hand-held IMU; the limb sensors of a
#: walking patient feel several g, and with the bias taken from the still period the gyroscope drifts by a fraction
#: of a degree per second, so the accelerometer is trusted far less. Mahony is the default: its correction is
#: proportional to the error, so over a gait cycle it settles on the mean gravity direction, where Madgwick's
#: normalised gradient step (a fixed-size step towards each sample) settles on a median-like direction that the
#: skewed accelerations of walking bias by about a degree.
DEFAULT_MAHONY_K_P = 0.04
DEFAULT_MADGWICK_GAIN = 0.005
DEFAULT_FILTER = "mahony"


def make_filter(name: str = DEFAULT_FILTER) -> OrientationFilter:
    """The filter called ``name`` (``madgwick``, ``mahony``, ``ekf``) with the defaults used for walking."""
    key = name.strip().lower()
    if key not in FILTERS:
        raise ValueError(f"unknown orientation filter {name!r}; accepted: {', '.join(FILTERS)}")
    if key == "madgwick":
        return Madgwick(gain=DEFAULT_MADGWICK_GAIN)
    if key == "mahony":
        return Mahony(k_p=DEFAULT_MAHONY_K_P, k_i=0.0)
    m_ref = EARTH_FIELD_WORLD_UT / np.linalg.norm(EARTH_FIELD_WORLD_UT)
    return Ekf(var_gyr=0.02**2, var_acc=0.8**2, m_ref=tuple(float(v) for v in m_ref))


def quat_from_gravity(acc: FloatArray) -> FloatArray:
    """The attitude whose world z is the measured specific force, with zero yaw (``ahrs`` ``acc2q``, w-first)."""
    ax, ay, az = np.asarray(acc, dtype=float) / np.linalg.norm(acc)
    roll = np.arctan2(ay, az)
    pitch = np.arctan2(-ax, np.hypot(ay, az))
    cr, sr, cp, sp = np.cos(roll / 2), np.sin(roll / 2), np.cos(pitch / 2), np.sin(pitch / 2)
    q = np.array([cr * cp, sr * cp, cr * sp, -sr * sp])
    return q / np.linalg.norm(q)


def quat_from_gravity_and_field(acc: FloatArray, mag: FloatArray) -> FloatArray:
    """TRIAD attitude in ENU: z along the specific force, y along the horizontal field (magnetic north)."""
    up = np.asarray(acc, dtype=float) / np.linalg.norm(acc)
    east = np.cross(mag, up)
    east /= np.linalg.norm(east)
    north = np.cross(up, east)
    return quat_from_matrix(np.vstack([east, north, up]))


def _with_tilt_from(acc: FloatArray, quat_wxyz: FloatArray) -> FloatArray:
    """``quat_wxyz``'s heading with the tilt the accelerometer says (re-initialisation after a gap)."""
    R_old = matrix_from_quat(quat_wxyz)
    up_sensor = acc / np.linalg.norm(acc)
    # Keep the old world-y direction (as seen from the sensor) as far as the new tilt allows.
    R_sensor_world = frame_from_z_and_y(up_sensor, R_old.T[:, 1])
    return quat_from_matrix(R_sensor_world.T)


#: ``never``: always fuse; ``fallback``: use the device's own orientation for sensors that send one but no gyroscope
#: (e.g. the OpenSense Xsens export); ``always``: use it wherever the sensor sends one.
DEVICE_ORIENTATION_MODES = ("never", "fallback", "always")

#: Left-multiplying a filter-world quaternion by this gives the ENU one (Madgwick MARG: NWU → ENU, 90° about z).
_TO_ENU = {"NWU": np.array([np.cos(np.pi / 4), 0.0, 0.0, np.sin(np.pi / 4)]), "ENU": np.array([1.0, 0.0, 0.0, 0.0])}


@dataclass
class _Track:
    """One sensor's live state."""

    still: StillDetector
    phase: str = "search"  # search → still → run
    state: FilterState | None = None
    bias: FloatArray = field(default_factory=lambda: np.zeros(3))
    still_sum_gyr: FloatArray = field(default_factory=lambda: np.zeros(3))
    still_count: int = 0
    #: (sum of gyroscope rows, count) after each of the last window's still rows.
    still_history: FloatArray = field(default_factory=lambda: np.zeros((0, 4)))
    still_start_s: float | None = None
    still_end_s: float | None = None
    first_valid_s: float | None = None
    last_valid_s: float | None = None
    last_gyr: FloatArray | None = None
    boost_until_s: float = -np.inf
    recent: FloatArray = field(default_factory=lambda: np.zeros((0, 10)))  # time, gyr, acc, mag of valid rows
    reinit_times_s: list[float] = field(default_factory=list)
    no_still: bool = False
    #: None until decided; True: the device's own orientation is passed through (gyroscope derived from it).
    device: bool | None = None
    last_device_quat: FloatArray | None = None


class OrientationFusion:
    """Orientation of every sensor of a kit (see the module docstring).

    Parameters: ``filter`` (a filter object, or its name), ``use_mag`` (9-axis; default off indoors, where steel
    and electronics bend the field), ``acc_gate_m_s2`` (None: never gate), ``still`` (the still detector),
    ``still_period_s`` (``(start, end)`` on the clip clock: take the still period as given instead of detecting it),
    ``max_still_search_s`` (give up waiting for stillness and start without a bias estimate), ``max_bridge_s``,
    ``reinit_boost``, ``reinit_boost_s``, ``device_orientation`` (:data:`DEVICE_ORIENTATION_MODES`).

    Results (for the rows of the last :meth:`update`, or the whole recording after :meth:`estimate`):
    ``quat_wxyz_world_sensor_`` (dict site → (N, 4), NaN where unknown), ``gyr_rad_s_`` (site → (N, 3): the
    gyroscope as measured, or derived from the device orientation where that is used), and over the whole stream so far
    ``gyr_bias_rad_s_`` (site → (3,)), ``still_period_s_`` (site → (start, end) or None; end None while still),
    ``reinit_times_s_`` (site → list), ``verdicts_``.
    """

    def __init__(
        self,
        filter: OrientationFilter | str = DEFAULT_FILTER,
        use_mag: bool = False,
        acc_gate_m_s2: float | None = None,
        still: StillDetector | None = None,
        still_period_s: tuple[float, float] | None = None,
        max_still_search_s: float = 10.0,
        max_bridge_s: float = 0.1,
        reinit_boost: float = 10.0,
        reinit_boost_s: float = 2.0,
        device_orientation: str = "fallback",
        smooth: bool = True,
    ) -> None:
        self.filter = filter
        self.use_mag = use_mag
        self.acc_gate_m_s2 = acc_gate_m_s2
        self.still = still
        self.still_period_s = still_period_s
        self.max_still_search_s = max_still_search_s
        self.max_bridge_s = max_bridge_s
        self.reinit_boost = reinit_boost
        self.reinit_boost_s = reinit_boost_s
        if device_orientation not in DEVICE_ORIENTATION_MODES:
            raise ValueError(
                f"device_orientation {device_orientation!r} is not known; "
                f"accepted: {', '.join(DEVICE_ORIENTATION_MODES)}"
            )
        self.device_orientation = device_orientation
        self.smooth = smooth
        self._tracks: dict[Site, _Track] = {}
        self._rate_hz: float | None = None

    # -- public verbs ------------------------------------------------------------------------------------------
    def reset(self) -> OrientationFusion:
        """Forget everything; the next :meth:`update` starts a new stream."""
        self._tracks = {}
        self._rate_hz = None
        return self

    def estimate(self, kit: KitSignals) -> OrientationFusion:
        """Orientation over a whole recording: ``reset`` + ``update`` (exactly the live numbers), then, with
        ``smooth``, the backward pass blended in (see the module docstring)."""
        self.reset().update(kit)
        self.smoothed_sites_, self.final_still_s_ = [], {}
        if self.smooth:
            self._smooth(kit)
        return self

    def _smooth(self, kit: KitSignals) -> None:
        """Blend in the same filter run backwards in time from the final still period (batch only)."""
        params = {k: getattr(self, k) for k in (
            "filter", "use_mag", "acc_gate_m_s2", "still", "max_still_search_s", "max_bridge_s", "reinit_boost",
            "reinit_boost_s", "device_orientation")}
        backward = OrientationFusion(**params, smooth=False).update(_reversed(kit))
        self.smoothed_sites_: list[Site] = []
        self.final_still_s_: dict[Site, float] = {}
        for site, q_forward in self.quat_wxyz_world_sensor_.items():
            track, back = self._tracks[site], backward._tracks.get(site)
            if track.device or back is None or back.no_still or back.still_start_s is None:
                continue  # no anchor at the end: keep the forward estimate
            # Backward still stretch [start, end) in reversed time is the final still period (-end, -start].
            final_still_start_s = -(back.still_end_s if back.still_end_s is not None else -kit.time_s[0])
            final_still_end_s = -back.still_start_s
            self.final_still_s_[site] = float(final_still_start_s)
            q_back = backward.quat_wxyz_world_sensor_[site][::-1].copy()
            # Rows after the backward pass's initialisation window (the end of the final still period) stood still:
            # they share its first orientation.
            finite = np.nonzero(np.all(np.isfinite(q_back), axis=1))[0]
            if finite.size:
                tail = (np.arange(kit.n_samples) > finite[-1]) & np.all(np.isfinite(q_forward), axis=1)
                q_back[tail] = q_back[finite[-1]]
            overlap = (kit.time_s >= final_still_start_s) & (kit.time_s <= final_still_end_s)
            overlap &= np.all(np.isfinite(q_forward), axis=1) & np.all(np.isfinite(q_back), axis=1)
            if not overlap.any():
                continue
            # The backward pass starts with its own arbitrary heading: turn it onto the forward one where both
            # stand still at the end.
            M = matrix_from_quat(q_forward[overlap]) @ np.swapaxes(matrix_from_quat(q_back[overlap]), 1, 2)
            offset = np.arctan2(np.mean(M[:, 1, 0] - M[:, 0, 1]), np.mean(M[:, 0, 0] + M[:, 1, 1]))
            q_back = multiply(np.array([np.cos(offset / 2), 0.0, 0.0, np.sin(offset / 2)]), q_back)
            q_back = np.where(np.sum(q_back * q_forward, axis=1, keepdims=True) < 0, -q_back, q_back)
            start_s = track.still_end_s  # None: the forward pass found no still period before the final one
            if start_s is not None and final_still_start_s > start_s:
                weight = np.clip((kit.time_s - start_s) / (final_still_start_s - start_s), 0.0, 1.0)[:, None]
            else:
                weight = np.zeros((kit.n_samples, 1))
            has_forward = np.all(np.isfinite(q_forward), axis=1, keepdims=True)
            has_back = np.all(np.isfinite(q_back), axis=1, keepdims=True)
            # Where only one pass has an orientation (before the forward pass's initialisation), take that one.
            weight = np.where(has_forward, np.where(has_back, weight, 0.0), 1.0)
            blended = (1.0 - weight) * np.where(has_forward, q_forward, 0.0) + weight * np.where(has_back, q_back, 0.0)
            norm = np.linalg.norm(blended, axis=1, keepdims=True)
            self.quat_wxyz_world_sensor_[site] = np.where(norm > 0, blended / np.where(norm > 0, norm, 1.0), np.nan)
            self.smoothed_sites_.append(site)

    def update(self, block: KitSignals) -> OrientationFusion:
        """Consume the next rows of the stream (any number); results are for these rows."""
        if self._rate_hz is None:
            self._rate_hz = float(block.rate_hz)
            self.still_window_s_ = (self.still or StillDetector()).window_s
            self._filter = make_filter(self.filter) if isinstance(self.filter, str) else self.filter
            self._boosted = _boosted(self._filter, self.reinit_boost)
            marg_frame = WORLD_FRAME_MARG[self._filter.name]
            self._to_enu = _TO_ENU[marg_frame] if self.use_mag else _TO_ENU["ENU"]
        elif abs(block.rate_hz - self._rate_hz) > 1e-9:
            raise ValueError(f"block rate {block.rate_hz} Hz differs from the stream's {self._rate_hz} Hz; reset first")
        self.quat_wxyz_world_sensor_: dict[Site, FloatArray] = {}
        self.gyr_rad_s_: dict[Site, FloatArray] = {}
        for site, signals in block.sites.items():
            track = self._tracks.get(site)
            if track is None:
                detector = self.still or StillDetector()
                track = self._tracks[site] = _Track(still=_copy_detector(detector).reset(self._rate_hz))
            self._current_site = site
            quat = self._update_site(track, block.time_s, signals)
            self.quat_wxyz_world_sensor_[site] = quat
        self._collect()
        return self

    # -- per sensor ----------------------------------------------------------------------------------------------
    def _update_site(self, track: _Track, time_s: FloatArray, s: SiteSignals) -> FloatArray:
        m = time_s.size
        if track.device is None and s.valid.any():
            has_quat = s.quat_wxyz is not None and np.isfinite(s.quat_wxyz[s.valid]).all(axis=1).any()
            has_gyr = np.isfinite(s.gyr_rad_s[s.valid]).all(axis=1).any()
            track.device = has_quat and (self.device_orientation == "always" or (
                self.device_orientation == "fallback" and not has_gyr))
        if track.device:
            quat = s.quat_wxyz / np.linalg.norm(s.quat_wxyz, axis=1, keepdims=True)
            quat = np.where(s.valid[:, None], quat, np.nan)
            gyr = gyr_from_quat_rad_s(quat, self._rate_hz, track.last_device_quat)
            finite = np.nonzero(np.all(np.isfinite(quat), axis=1))[0]
            if finite.size:
                track.last_device_quat = quat[finite[-1]] if finite[-1] == m - 1 else None
            else:
                track.last_device_quat = None
            s = SiteSignals(s.sensor_id, s.valid, s.acc_m_s2, gyr, s.mag_ut, s.quat_wxyz)
            self.gyr_rad_s_[self._current_site] = gyr
            self._device_update(track, time_s, s)
            return quat
        self.gyr_rad_s_[self._current_site] = s.gyr_rad_s
        mag = s.mag_ut if (self.use_mag and s.mag_ut is not None) else None
        valid = s.valid & np.isfinite(s.acc_m_s2).all(axis=1) & np.isfinite(s.gyr_rad_s).all(axis=1)
        if mag is not None:
            mag = np.where(np.isfinite(mag).all(axis=1)[:, None], mag, 0.0)  # zero row: gravity-only update
        out = np.full((m, 4), np.nan)
        if track.phase == "run":  # the common case, kept lean: no still detection, no history
            self._filter_rows(track, time_s, valid, s, mag, 0, m, out, track.bias)
            return self._to_output(out)
        if self.still_period_s is None:
            still = track.still.update(s.gyr_rad_s, s.acc_m_s2, valid).still_
        else:
            start_s, end_s = self.still_period_s
            inside = valid & (time_s >= start_s) & (time_s < end_s)
            still = track.still.update(np.zeros((m, 3)), np.tile([0.0, 0.0, G_M_S2], (m, 1)), inside).still_
        mag_rows = np.zeros((m, 3)) if mag is None else mag
        rows = np.column_stack([time_s, s.gyr_rad_s, s.acc_m_s2, mag_rows])
        recent = np.concatenate([track.recent, rows[valid]])
        n_window = track.still.n_window_
        if track.first_valid_s is None and valid.any():
            track.first_valid_s = float(time_s[np.argmax(valid)])
        k = 0
        while k < m:
            if track.phase == "search":
                k = self._search(track, time_s, valid, still, rows, k, out, n_window)
            elif track.phase == "still":
                k = self._still_stretch(track, time_s, valid, still, s, mag, k, out)
            else:
                self._filter_rows(track, time_s, valid, s, mag, k, m, out, track.bias)
                k = m
        track.recent = recent[-n_window:]
        return self._to_output(out)

    def _to_output(self, out: FloatArray) -> FloatArray:
        """Filter-world quaternions into the fusion world (ENU where the heading is magnetic)."""
        if self._to_enu[0] == 1.0:
            return out
        return np.where(np.isfinite(out[:, :1]), multiply(self._to_enu, out), np.nan)

    def _device_update(self, track: _Track, time_s: FloatArray, s: SiteSignals) -> None:
        """Still-period bookkeeping for a sensor whose own orientation is used (no filter, no bias)."""
        valid = s.valid & np.all(np.isfinite(s.acc_m_s2), axis=1) & np.all(np.isfinite(s.gyr_rad_s), axis=1)
        still = track.still.update(s.gyr_rad_s, s.acc_m_s2, valid).still_
        for i in range(time_s.size):
            if track.phase == "search" and still[i]:
                track.phase = "still"
                track.still_start_s = float(time_s[i]) - self.still_window_s_
            elif track.phase == "still" and not still[i]:
                track.phase = "run"
                track.still_end_s = float(time_s[i])

    def _search(self, track: _Track, time_s, valid, still, rows, k, out, n_window) -> int:
        """Find the first still row from ``k``; initialise there. Returns the next row to process."""
        hits = np.nonzero(still[k:])[0]
        timeout = np.nonzero(
            valid[k:] & (time_s[k:] - (track.first_valid_s if track.first_valid_s is not None else np.inf)
                         >= self.max_still_search_s)
        )[0]
        if hits.size and (not timeout.size or hits[0] <= timeout[0]):
            i = k + int(hits[0])
            window = np.concatenate([track.recent, rows[: i + 1][valid[: i + 1]]])[-n_window:]
            track.bias = window[:, 1:4].mean(axis=0)
            track.still_sum_gyr = window[:, 1:4].sum(axis=0)
            track.still_count = len(window)
            track.still_history = np.concatenate([track.still_sum_gyr, [track.still_count]])[None]
            track.still_start_s = float(window[0, 0])
            track.phase = "still"
        elif timeout.size:
            i = k + int(timeout[0])
            window = np.concatenate([track.recent, rows[: i + 1][valid[: i + 1]]])[-n_window:]
            track.no_still = True
            track.phase = "run"
        else:
            return len(time_s)
        acc_mean = window[:, 4:7].mean(axis=0)
        if self.use_mag and np.any(window[:, 7:10]):
            q_enu = quat_from_gravity_and_field(acc_mean, window[:, 7:10].mean(axis=0))
            q0 = multiply(_conjugate(self._to_enu), q_enu)
        else:
            q0 = quat_from_gravity(acc_mean)
        track.state = FilterState.at(q0)
        track.last_valid_s = float(time_s[i])
        track.last_gyr = rows[i, 1:4] - track.bias
        out[i] = track.state.quat_wxyz
        return i + 1

    def _still_stretch(self, track: _Track, time_s, valid, still, s: SiteSignals, mag, k, out) -> int:
        """Rows of the initial still stretch: running-mean bias, filter on. Returns the next row to process."""
        stops = np.nonzero(~still[k:])[0]
        j = k + int(stops[0]) if stops.size else len(time_s)
        if j > k:
            in_stretch = valid[k:j]
            gyr = np.where(in_stretch[:, None], s.gyr_rad_s[k:j], 0.0)
            sums = track.still_sum_gyr + np.cumsum(gyr, axis=0)
            counts = track.still_count + np.cumsum(in_stretch)
            bias = sums / np.maximum(counts, 1)[:, None]
            self._filter_rows(track, time_s, valid, s, mag, k, j, out, bias)
            track.bias = bias[-1]
            track.still_sum_gyr, track.still_count = sums[-1], int(counts[-1])
            history = np.column_stack([sums, counts])
            track.still_history = np.concatenate([track.still_history, history])[-track.still.n_window_:]
        if j < len(time_s):
            # The window that ended the stretch already held the first motion: freeze the bias as it was one
            # window earlier.
            track.phase = "run"
            track.still_end_s = float(time_s[j])
            sums_then, count_then = track.still_history[0, :3], track.still_history[0, 3]
            if count_then > 0 and track.still_history.shape[0] == track.still.n_window_:
                track.bias = sums_then / count_then
        return j

    def _filter_rows(self, track: _Track, time_s, valid, s: SiteSignals, mag, lo, hi, out, bias) -> None:
        """Filter the valid rows of ``[lo, hi)`` (bias (3,) or one per row), bridging short gaps, re-initialising
        after long ones."""
        sel = np.flatnonzero(valid[lo:hi])
        if not sel.size:
            return
        idx = lo + sel
        t = time_s[idx]
        gyr = s.gyr_rad_s[idx] - (bias if bias.ndim == 1 else bias[sel])
        acc = s.acc_m_s2[idx]
        mg = None if mag is None else mag[idx]
        dt = np.diff(t, prepend=track.last_valid_s)
        # Trapezoidal rule: the step from the previous valid row to this one turns at the mean of their rates.
        # (The rectangle rule of the filters' own papers lags half a sample: 1.7° on a shank swinging at 6 rad/s
        # sampled at 100 Hz.) Over a bridged gap the same mean, over the whole gap.
        gyr_eff = np.empty_like(gyr)
        gyr_eff[0] = 0.5 * (track.last_gyr + gyr[0])
        gyr_eff[1:] = 0.5 * (gyr[:-1] + gyr[1:])
        acc = self._gated(acc)
        track.last_valid_s = float(t[-1])
        track.last_gyr = gyr[-1]
        long_gap = dt > self.max_bridge_s + 0.5 / self._rate_hz
        if not long_gap.any() and t[0] >= track.boost_until_s:
            track.state, out[idx] = self._filter.run(track.state, gyr_eff, acc, mg, dt)
            return
        reinit = set(np.flatnonzero(long_gap).tolist())
        bounds = [0, *sorted(reinit), len(idx)]
        for a, b in itertools.pairwise(bounds):
            if a in reinit:
                q0 = _with_tilt_from(acc[a] if np.any(acc[a]) else s.acc_m_s2[idx[a]],
                                     np.asarray(track.state.quat_wxyz))
                track.state = FilterState.at(q0)
                out[idx[a]] = track.state.quat_wxyz
                track.reinit_times_s.append(float(t[a]))
                track.boost_until_s = float(t[a]) + self.reinit_boost_s
                a += 1
            split = a + int(np.searchsorted(t[a:b], track.boost_until_s))
            for lo_, hi_, flt in ((a, min(split, b), self._boosted), (max(split, a), b, self._filter)):
                if hi_ > lo_:
                    track.state, out[idx[lo_:hi_]] = flt.run(
                        track.state, gyr_eff[lo_:hi_], acc[lo_:hi_], None if mg is None else mg[lo_:hi_], dt[lo_:hi_]
                    )

    def _gated(self, acc: FloatArray) -> FloatArray:
        """Accelerometer rows, zeroed where their norm is too far from gravity to be used for the tilt."""
        if self.acc_gate_m_s2 is None:
            return acc
        off = np.abs(np.linalg.norm(acc, axis=1) - G_M_S2) > self.acc_gate_m_s2
        return np.where(off[:, None], 0.0, acc)

    # -- results -------------------------------------------------------------------------------------------------
    def _collect(self) -> None:
        self.gyr_bias_rad_s_ = {site: t.bias.copy() for site, t in self._tracks.items()}
        self.still_period_s_ = {
            site: None if t.still_start_s is None else (t.still_start_s, t.still_end_s)
            for site, t in self._tracks.items()
        }
        self.reinit_times_s_ = {site: list(t.reinit_times_s) for site, t in self._tracks.items()}
        verdicts: list[Verdict] = []
        for site, t in self._tracks.items():
            if t.no_still:
                verdicts.append(Verdict(
                    Level.WARNING, "orientation.no_still_period",
                    f"The {_site_words(site)} sensor was never still at the start, so its gyroscope offset could not "
                    "be measured; its angles may drift.",
                    "Ask the patient to stand still for a few seconds before walking.",
                    subject=site.value, details={"max_still_search_s": self.max_still_search_s},
                ))
            if t.reinit_times_s:
                verdicts.append(Verdict(
                    Level.WARNING, "orientation.reinitialised",
                    f"The {_site_words(site)} sensor's signal was lost for a while; its orientation was estimated "
                    "again afterwards and its angles are less accurate for a few seconds after each loss.",
                    "Check the sensor's battery and that it stays within range of the receiver.",
                    subject=site.value, details={"times_s": [round(x, 3) for x in t.reinit_times_s]},
                ))
        self.verdicts_ = verdicts


def _reversed(kit: KitSignals) -> KitSignals:
    """The recording played backwards: rows reversed, time negated (so it increases), rotation rates negated."""
    sites = {
        site: SiteSignals(
            s.sensor_id, s.valid[::-1], s.acc_m_s2[::-1], -s.gyr_rad_s[::-1],
            None if s.mag_ut is None else s.mag_ut[::-1], None if s.quat_wxyz is None else s.quat_wxyz[::-1],
        )
        for site, s in kit.sites.items()
    }
    return KitSignals(kit.rate_hz, -kit.time_s[::-1], sites)


def _site_words(site: Site) -> str:
    """``thigh_l`` → ``left thigh``."""
    return site.segment if site.side is None else f"{site.side} {site.segment}"


def _conjugate(q: FloatArray) -> FloatArray:
    return np.asarray(q, dtype=float) * np.array([1.0, -1.0, -1.0, -1.0])


def _boosted(flt: OrientationFilter, factor: float) -> OrientationFilter:
    """The same filter with its correction ``factor`` times stronger (fast convergence after a re-initialisation)."""
    if isinstance(flt, Madgwick):
        return Madgwick(gain=flt.gain * factor)
    if isinstance(flt, Mahony):
        return Mahony(k_p=flt.k_p * factor, k_i=flt.k_i)
    return Ekf(var_gyr=flt.var_gyr, var_acc=flt.var_acc / factor**2, var_mag=flt.var_mag / factor**2, m_ref=flt.m_ref)


def _copy_detector(detector: StillDetector) -> StillDetector:
    return StillDetector(detector.window_s, detector.gyr_std_rad_s, detector.acc_std_m_s2, detector.acc_norm_tol_m_s2)
