"""Gait events from one shank sensor: mid-swing (MS), final contact (FC, toe-off) and initial contact (IC).

Method (docs/gait-metrics.md, "Events"). The shank's sagittal angular velocity ω (swing positive, :mod:`.axis`) has
one large positive lobe per stride, the swing, and a long shallow negative stance. Following Aminian et al. (2002)
and Salarian et al. (2004):

- **MS** is the peak of a swing lobe. Lobes are found on ω smoothed over 0.25 s, merged across dips shorter than
  0.15 s (a stiff paretic knee can split a swing in two), and kept when their peak reaches 0.6 rad/s (34 °/s) and
  10 % of the side's typical swing peak: the thresholds adapt to slow, small swings instead of the fixed 50 °/s and
  100 °/s levels that fail in slow pathological gait (the reason Trojaniello et al. 2014 and Salarian et al. 2004
  adapt theirs).
- **FC** is the end of the pre-swing minimum: the last clear local minimum of ω before the lobe (Aminian 2002's
  toe-off minimum), moved to where ω has risen 3 % of the way from that minimum to the swing peak. The minimum is
  the knee's fastest flexion, which precedes the toe leaving the floor by 10–50 ms (most in slow gait); the rise
  marks the start of the swing rotation itself.
- **IC** is searched between the swing's downward zero crossing and the following minimum of ω (the heel-strike
  minimum of Aminian 2002, which lags contact by 10–50 ms while the shank decelerates). Within the 0.1 s before
  that minimum the instant is refined to the onset of the heel-strike impact in the same sensor's accelerometer:
  the first sample whose jerk |Δa|·rate exceeds 800 m/s³ and 4× the jerk of the terminal swing. Where no impact is
  seen (a soft or flat-foot landing) the gyroscope minimum is kept and the event says so (``method="gyro"``).

Events are only found inside runs of valid rows: a lobe, a pre-swing minimum or an impact window that touches a gap
or the end of the data gives no event, so no event is ever invented across a gap. Gaps of up to ``max_bridge_s``
(0.1 s) are bridged by linear interpolation so that a burst of lost packets does not cost a stride; an event whose
instant the bridged rows could have hidden is kept but marked as estimated (``estimated_across_gap_s``: the length of
that gap), and the metrics leave its timing out (:mod:`.metrics`). The live detector
(:class:`LiveShankEvents`) runs the same :class:`SwingDetector` on a bounded ring buffer and emits a swing's events
once the data needed to place them is in (IC about 0.5 s after contact, FC and MS with it), flagged provisional.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from capture_app.core.gait.axis import FixedAxis, SagittalAxis

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

SIDES = ("left", "right")
EVENT_KINDS = ("ic", "fc", "ms")


@dataclass(frozen=True)
class GaitEvent:
    """One gait event of one leg, on the clip clock."""

    side: str  # "left" / "right"
    kind: str  # "ic" (initial contact), "fc" (final contact, toe-off), "ms" (mid-swing)
    time_s: float
    #: True for events emitted live, before the whole recording was seen; the offline analysis replaces them.
    provisional: bool = False
    #: How the instant was placed: "impact" or "gyro" (IC), "rise" (FC), "peak" (MS).
    method: str = ""
    #: ``None`` where the instant was placed in received data; else it was placed in data bridged across a short
    #: gap (lost rows filled in by interpolation) that could have hidden the true instant, and this is that gap's
    #: length, s: the time is an estimate, off by up to about this much.
    estimated_across_gap_s: float | None = None

    @property
    def estimated(self) -> bool:
        """True where the instant is an estimate across a short gap in the data."""
        return self.estimated_across_gap_s is not None

    def to_json(self) -> dict[str, object]:
        """JSON-ready dict (``events`` items of ``stridetwin analyze --json``)."""
        return {"side": self.side, "kind": self.kind, "time_s": self.time_s, "provisional": self.provisional,
                "method": self.method, "estimated_across_gap_s": self.estimated_across_gap_s}  # fmt: skip


@dataclass(frozen=True)
class Swing:
    """One swing of one leg: toe-off, mid-swing, the next heel strike, and what the gyroscope saw in between."""

    side: str
    #: Final contact before the swing (``None`` where it could not be placed, e.g. data starts mid-swing), s.
    fc_s: float | None
    ms_s: float
    #: Initial contact ending the swing (``None`` where it could not be placed), s.
    ic_s: float | None
    #: Peak sagittal angular velocity of the swing, rad/s.
    peak_rad_s: float
    #: Shank rotation from FC to IC (∫ω dt), rad, the stride-length model's input; ``None`` without both events
    #: measured (one missing or estimated across a gap) or where too much of the swing lobe was not received.
    excursion_rad: float | None
    #: "impact" or "gyro": how the IC was placed (see the module docstring).
    ic_method: str
    #: The swing lobe (where ω is positive around the swing), s, and its forward rotation ∫max(ω, 0) dt, rad: a stand-in
    #: for the excursion where FC or IC is missing (``None`` where too much of the lobe was not received).
    lobe_start_s: float
    lobe_end_s: float
    lobe_rotation_rad: float | None
    #: Start of the run of valid rows this swing lies in (clip clock, s): two swings with the same run start have no
    #: gap between them.
    run_start_s: float
    provisional: bool = False
    #: Per event, the length of the bridged gap that could have hidden its true instant (s), ``None`` where it was
    #: placed in received data (:attr:`GaitEvent.estimated_across_gap_s`).
    fc_gap_s: float | None = None
    ms_gap_s: float | None = None
    ic_gap_s: float | None = None

    def events(self) -> list[GaitEvent]:
        """This swing's events in time order."""
        out = []
        if self.fc_s is not None:
            out.append(GaitEvent(self.side, "fc", self.fc_s, self.provisional, "rise", self.fc_gap_s))
        out.append(GaitEvent(self.side, "ms", self.ms_s, self.provisional, "peak", self.ms_gap_s))
        if self.ic_s is not None:
            out.append(GaitEvent(self.side, "ic", self.ic_s, self.provisional, self.ic_method, self.ic_gap_s))
        return out


def _hann_smooth(x: FloatArray, n_taps: int) -> FloatArray:
    """Zero-phase moving average with a Hann window of ``n_taps`` (odd) samples; edges padded with the edge value.

    A finite window (not an IIR filter) keeps live and offline results identical wherever the window lies inside the
    data, which is what lets the live detector agree with the offline one.
    """
    if n_taps <= 1 or x.size == 0:
        return x.copy()
    window = np.hanning(n_taps + 2)[1:-1]
    window /= window.sum()
    half = n_taps // 2
    return np.convolve(np.pad(x, half, mode="edge"), window, mode="valid")


def _odd(n: float) -> int:
    n = max(1, round(n))
    return n if n % 2 else n + 1


@dataclass(frozen=True)
class SwingDetector:
    """The event rules of the module docstring, applied to one run of valid rows. Parameters in seconds and SI units."""

    #: Hann window over which swings are found, s.
    swing_smoothing_s: float = 0.25
    #: Hann window on which MS and FC are placed (removes heel-strike ringing above ~20 Hz), s.
    event_smoothing_s: float = 0.05
    #: A swing peaks at least this high, rad/s (0.6 rad/s = 34 °/s).
    min_peak_rad_s: float = 0.6
    #: … and at least this share of the side's typical swing peak.
    min_peak_fraction: float = 0.1
    #: Shortest and longest swing lobe, s.
    min_swing_s: float = 0.15
    max_swing_s: float = 2.5
    #: Lobes separated by a dip shorter than this are one swing, s.
    merge_gap_s: float = 0.15
    #: How far before a swing the pre-swing minimum is searched, s.
    fc_search_s: float = 0.5
    #: FC lies where ω has risen this share of the way from the pre-swing minimum to the swing peak.
    fc_rise_fraction: float = 0.03
    #: How long after the swing's downward zero crossing the heel-strike minimum is searched, s.
    ic_search_s: float = 0.25
    #: How far before the heel-strike minimum the impact onset is searched, s.
    impact_window_s: float = 0.1
    #: Jerk that marks an impact, m/s³ …
    impact_jerk_m_s3: float = 800.0
    #: … and at least this multiple of the terminal-swing jerk.
    impact_jerk_ratio: float = 4.0

    def lookahead_s(self) -> float:
        """Data needed after a swing's lobe ends before its events are final (live delay bound), s."""
        return self.ic_search_s + self.swing_smoothing_s + self.event_smoothing_s

    def lobe_peaks(self, omega_rad_s: FloatArray, rate_hz: float) -> FloatArray:
        """Peaks (rad/s) of all complete positive lobes of one run; the side's typical peak is their median."""
        return np.array([peak for _, _, _, peak in self._lobes(omega_rad_s, rate_hz)], dtype=float)

    def _lobes(self, omega: FloatArray, rate_hz: float) -> list[tuple[int, int, int, float]]:
        """Complete swing lobes ``(start, end, ms_index, peak)`` of one run, ``[start, end)`` in samples."""
        n = omega.size
        if n < 3:
            return []
        swing = _hann_smooth(omega, _odd(self.swing_smoothing_s * rate_hz))
        fine = _hann_smooth(omega, _odd(self.event_smoothing_s * rate_hz))
        positive = np.concatenate(([False], swing > 0.0, [False]))
        change = np.flatnonzero(np.diff(positive.astype(np.int8)))
        starts, ends = change[0::2], change[1::2]
        merge_n = self.merge_gap_s * rate_hz
        lobes: list[list[int]] = []
        for a, b in zip(starts, ends, strict=True):
            if lobes and a - lobes[-1][1] < merge_n:
                lobes[-1][1] = int(b)
            else:
                lobes.append([int(a), int(b)])
        out = []
        for a, b in lobes:
            if a == 0 or b >= n:
                continue  # cut by the edge of the run: the swing is not whole
            duration_s = (b - a) / rate_hz
            if not self.min_swing_s <= duration_s <= self.max_swing_s:
                continue
            ms = a + int(np.argmax(fine[a:b]))
            peak = float(fine[ms])
            if peak >= self.min_peak_rad_s:
                out.append((a, b, ms, peak))
        return out

    def find(
        self,
        time_s: FloatArray,
        omega_rad_s: FloatArray,
        acc_m_s2: FloatArray | None,
        rate_hz: float,
        side: str,
        *,
        typical_peak_rad_s: float | None = None,
        open_end: bool = False,
        run_start_s: float | None = None,
    ) -> list[Swing]:
        """Swings of one run of valid rows (no NaN inside), in time order.

        ``typical_peak_rad_s``: the side's typical swing peak for the relative threshold (``None``: absolute only).
        ``open_end``: more data will follow (live); swings whose events still need unseen data are left out.
        """
        n = omega_rad_s.size
        lobes = self._lobes(omega_rad_s, rate_hz)
        if not lobes:
            return []
        fine = _hann_smooth(omega_rad_s, _odd(self.event_smoothing_s * rate_hz))
        jerk = None
        if acc_m_s2 is not None and acc_m_s2.shape[0] == n:
            jerk = np.concatenate(([0.0], np.linalg.norm(np.diff(acc_m_s2, axis=0), axis=1) * rate_hz))
        threshold = self.min_peak_rad_s
        if typical_peak_rad_s is not None:
            threshold = max(threshold, self.min_peak_fraction * typical_peak_rad_s)
        lookahead_n = int(np.ceil(self.lookahead_s() * rate_hz))
        dt = 1.0 / rate_hz
        run_start = float(time_s[0]) if run_start_s is None else run_start_s
        swings: list[Swing] = []
        previous_ic = 0
        half = _odd(self.swing_smoothing_s * rate_hz) // 2
        for k, (a, b, ms, peak) in enumerate(lobes):
            if open_end and b + lookahead_n >= n:
                break
            next_start = lobes[k + 1][0] if k + 1 < len(lobes) else n
            if peak < threshold:
                continue
            fc = self._final_contact(fine, a, ms, max(previous_ic, a - int(self.fc_search_s * rate_hz)), time_s, dt)
            ic_index, ic_t, method = self._initial_contact(fine, jerk, ms, b, next_start, time_s, rate_hz)
            if ic_index is not None:
                previous_ic = ic_index
            # the lobe (the raw positive lobe extends up to half a smoothing window beyond the smoothed one)
            lo = max(a - half, lobes[k - 1][1] if k else 0, 0)
            hi = min(b + half, next_start, n)
            excursion = None if fc is None or ic_t is None else _integral(time_s, omega_rad_s, fc, ic_t)
            forward = np.maximum(omega_rad_s[lo:hi], 0.0)
            lobe = float(np.sum(0.5 * (forward[1:] + forward[:-1]) * np.diff(time_s[lo:hi])))
            swings.append(Swing(side, fc, float(time_s[ms]), ic_t, peak, excursion, method, float(time_s[lo]),
                                float(time_s[hi - 1]), lobe, run_start))  # fmt: skip
        return swings

    def _final_contact(
        self, fine: FloatArray, a: int, ms: int, lo: int, time_s: FloatArray, dt: float
    ) -> float | None:
        """FC time: 3 % rise after the last clear pre-swing minimum in ``[lo, a]``; ``None`` if cut by the run start."""
        window = fine[lo : a + 1]
        if window.size < 3:
            return None
        deepest = float(window.min())
        if deepest >= 0.0:
            return None
        inner = window[1:-1]
        is_min = (inner <= window[:-2]) & (inner < window[2:]) & (inner < 0.5 * deepest)
        minima = np.flatnonzero(is_min) + 1
        if minima.size:
            m = lo + int(minima[-1])
        else:
            m = lo + int(np.argmin(window))
            if m == lo:
                return None  # still falling at the start of the run: the minimum is not in the data
        level = fine[m] + self.fc_rise_fraction * (fine[ms] - fine[m])
        above = np.flatnonzero(fine[m : ms + 1] >= level)
        if above.size == 0:
            return None
        j = m + int(above[0])
        if j == m:
            return float(time_s[m])
        frac = (level - fine[j - 1]) / (fine[j] - fine[j - 1])
        return float(time_s[j - 1] + frac * dt)

    def _initial_contact(
        self,
        fine: FloatArray,
        jerk: FloatArray | None,
        ms: int,
        b: int,
        next_start: int,
        time_s: FloatArray,
        rate_hz: float,
    ) -> tuple[int | None, float | None, str]:
        """IC ``(index, time, method)`` after the swing peaking at ``ms``; ``(None, None, "")`` past the run end."""
        n = fine.size
        below = np.flatnonzero(fine[ms:next_start] <= 0.0)
        if below.size == 0:
            return None, None, ""
        z = ms + int(below[0])
        stop = z + round(self.ic_search_s * rate_hz)
        if stop >= n:
            return None, None, ""  # the heel-strike minimum may lie beyond the data
        stop = min(stop, next_start)
        f1 = z + int(np.argmin(fine[z:stop]))
        if jerk is not None:
            lo = max(ms + 1, f1 - round(self.impact_window_s * rate_hz))
            swing_jerk = jerk[ms : z + 1]
            level = self.impact_jerk_m_s3
            if swing_jerk.size and np.all(np.isfinite(swing_jerk)):
                level = max(level, self.impact_jerk_ratio * float(np.median(swing_jerk)))
            hits = np.flatnonzero(jerk[lo : f1 + 1] > level)
            if hits.size:
                i = lo + int(hits[0])
                # the jump happened between samples i-1 and i: take the middle
                return i, float(time_s[i] - 0.5 / rate_hz), "impact"
        return f1, float(time_s[f1]), "gyro"


def _integral(time_s: FloatArray, omega: FloatArray, t0: float, t1: float) -> float:
    """∫ω dt from t0 to t1 (trapezoid on the samples, end pieces interpolated)."""
    inner = (time_s > t0) & (time_s < t1)
    t = np.concatenate(([t0], time_s[inner], [t1]))
    w = np.concatenate(([np.interp(t0, time_s, omega)], omega[inner], [np.interp(t1, time_s, omega)]))
    return float(np.sum(0.5 * (w[1:] + w[:-1]) * np.diff(t)))


def valid_runs(valid: BoolArray, min_samples: int = 3) -> list[tuple[int, int]]:
    """Runs ``[start, end)`` of consecutive True rows, at least ``min_samples`` long."""
    padded = np.concatenate(([False], np.asarray(valid, dtype=bool), [False]))
    change = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return [(int(a), int(b)) for a, b in zip(change[0::2], change[1::2], strict=True) if b - a >= min_samples]


def usable_rows(gyr_rad_s: FloatArray, acc_m_s2: FloatArray | None, valid: BoolArray) -> BoolArray:
    """Rows that are valid and finite in every channel used (NaNs in a 'valid' row are treated as a gap)."""
    ok = np.asarray(valid, dtype=bool) & np.all(np.isfinite(gyr_rad_s), axis=1)
    if acc_m_s2 is not None:
        ok &= np.all(np.isfinite(acc_m_s2), axis=1)
    return ok


def bridge_short_gaps(
    time_s: FloatArray, columns: list[FloatArray], ok: BoolArray, max_gap_n: int
) -> tuple[list[FloatArray], BoolArray, BoolArray]:
    """Fill gaps of at most ``max_gap_n`` rows between valid rows by linear interpolation.

    A burst of lost packets (up to 0.1 s by default) must not cost a stride; a longer gap stays a gap. Returns the
    filled columns, the new validity and the mask of filled rows: callers mark any event placed near a filled row as
    estimated (:func:`mark_estimated_events`), so that no event located in data that was not received passes for a
    measured one.
    """
    filled = np.zeros(ok.size, dtype=bool)
    for a, b in valid_runs(~ok, min_samples=1):
        if a > 0 and b < ok.size and b - a <= max_gap_n:
            filled[a:b] = True
    if not filled.any():
        return columns, ok, filled
    out = []
    good = np.flatnonzero(ok)
    for column in columns:
        column = column.copy()
        for k in range(column.shape[1]):
            column[filled, k] = np.interp(time_s[filled], time_s[good], column[good, k])
        out.append(column)
    return out, ok | filled, filled


#: Filled-in rows inside a swing beyond this much time make its FC-to-IC rotation unreliable, s …
MAX_FILLED_IN_SWING_S = 0.03
#: … and beyond this much its lobe rotation too (a linear bridge across a smooth swing lobe costs a few %), s.
MAX_FILLED_IN_LOBE_S = 0.1


def mark_estimated_events(swing: Swing, time_s: FloatArray, filled: BoolArray) -> Swing:
    """The swing with its events marked where their instant may have been hidden by filled-in (not received) rows.

    An event is estimated when it lies on a filled run of rows or within the run's own length (plus a row) before or
    after it: the true instant could have been inside the run, and the detector then finds the nearest feature it can
    see instead, after the run (an impact, a minimum seen when the data resumes) or before it (a pre-swing minimum
    seen just before the loss; measured up to 34 ms before a 90 ms run). It is kept, with the run's length as
    ``*_gap_s``. A swing with an estimated FC or IC, or with more than ``MAX_FILLED_IN_SWING_S`` filled in inside its
    lobe, loses its excursion (its integration limits or the rotation between them are not measured), and beyond
    ``MAX_FILLED_IN_LOBE_S`` its lobe rotation too.
    """
    if not filled.any():
        return swing
    dt = float(np.median(np.diff(time_s))) if time_s.size > 1 else 0.0
    margin = 0.01 * dt  # rounding of the grid times
    guards = [(time_s[a] - (b - a + 1) * dt - margin, time_s[b - 1] + (b - a + 1) * dt + margin, (b - a) * dt)
              for a, b in valid_runs(filled, min_samples=1)]  # fmt: skip

    def gap_s(t: float | None) -> float | None:
        if t is None:
            return None
        hiding = [length for lo, hi, length in guards if lo <= t <= hi]
        return round(max(hiding), 6) if hiding else None

    fc_gap, ms_gap, ic_gap = gap_s(swing.fc_s), gap_s(swing.ms_s), gap_s(swing.ic_s)
    excursion, lobe = swing.excursion_rad, swing.lobe_rotation_rad
    inside = (time_s >= swing.lobe_start_s) & (time_s <= swing.lobe_end_s)
    filled_s = np.sum(filled[inside]) * dt
    if filled_s == 0 and fc_gap is None and ms_gap is None and ic_gap is None:
        return swing  # the loss lies elsewhere (the live detector calls this for every swing in its window)
    if filled_s > MAX_FILLED_IN_SWING_S or fc_gap is not None or ic_gap is not None:
        excursion = None  # interpolated data inside the swing, or at its ends, would bias its rotation
    if filled_s > MAX_FILLED_IN_LOBE_S:
        lobe = None
    return replace(swing, excursion_rad=excursion, lobe_rotation_rad=lobe, fc_gap_s=fc_gap, ms_gap_s=ms_gap,
                   ic_gap_s=ic_gap)  # fmt: skip


class ShankEventDetector:
    """Offline (refined) events of one shank over a whole recording.

    Results: ``axis_`` (:class:`SagittalAxis` fitted on the whole recording), ``omega_sag_rad_s_`` (the projected
    angular velocity, NaN in gaps), ``swings_`` (list of :class:`Swing`), ``events_`` (list of :class:`GaitEvent`,
    time-ordered, ``provisional=False``) and ``typical_peak_rad_s_`` (median swing peak, or ``None``).
    """

    def __init__(
        self,
        swing_detector: SwingDetector | None = None,
        axis: SagittalAxis | FixedAxis | None = None,
        max_bridge_s: float = 0.1,
    ):
        #: The event rules (``SwingDetector()`` when ``None``).
        self.swing_detector = swing_detector
        #: Axis estimator (a fresh ``SagittalAxis()`` when ``None``; give one with a ``prior_axis`` to use a prior).
        self.axis = axis
        #: Gaps up to this long are bridged for detection (events they could hide are marked estimated), s.
        self.max_bridge_s = max_bridge_s

    def detect(
        self,
        time_s: FloatArray,
        gyr_rad_s: FloatArray,
        acc_m_s2: FloatArray | None,
        valid: BoolArray,
        rate_hz: float,
        side: str,
    ) -> ShankEventDetector:
        """Find the events of one side; see the class docstring for the results."""
        if side not in SIDES:
            raise ValueError(f"side must be one of {SIDES}, got {side!r}")
        detector = self.swing_detector or SwingDetector()
        gyr = np.asarray(gyr_rad_s, dtype=float)
        acc = None if acc_m_s2 is None else np.asarray(acc_m_s2, dtype=float)
        ok = usable_rows(gyr, acc, valid)
        self.axis_ = (self.axis or SagittalAxis()).fit(gyr, ok)
        self.omega_sag_rad_s_ = np.full(gyr.shape[0], np.nan)
        self.swings_: list[Swing] = []
        self.events_: list[GaitEvent] = []
        self.typical_peak_rad_s_: float | None = None
        if self.axis_.axis_ is None:
            return self
        self.omega_sag_rad_s_[ok] = gyr[ok] @ self.axis_.axis_
        columns = [gyr] if acc is None else [gyr, acc]
        columns, ok_bridged, filled = bridge_short_gaps(time_s, columns, ok, round(self.max_bridge_s * rate_hz))
        omega = columns[0] @ self.axis_.axis_
        acc = None if acc is None else columns[1]
        runs = valid_runs(ok_bridged)
        peaks = np.concatenate([detector.lobe_peaks(omega[a:b], rate_hz) for a, b in runs] or [np.zeros(0)])
        self.typical_peak_rad_s_ = float(np.median(peaks)) if peaks.size else None
        for a, b in runs:
            found = detector.find(
                time_s[a:b],
                omega[a:b],
                None if acc is None else acc[a:b],
                rate_hz,
                side,
                typical_peak_rad_s=self.typical_peak_rad_s_,
            )
            self.swings_ += [mark_estimated_events(swing, time_s[a:b], filled[a:b]) for swing in found]
        self.events_ = [event for swing in self.swings_ for event in swing.events()]
        return self


class LiveShankEvents:
    """Live events of one shank from consecutive blocks of grid rows, with bounded memory.

    Keeps a ring buffer of the last ``buffer_s`` of raw rows; each ``update`` re-projects the buffer on the current
    axis (:class:`SagittalAxis` accumulated live) and runs the same :class:`SwingDetector` as the offline detector,
    emitting each swing once, as soon as the data needed to place its events has arrived (at most
    ``SwingDetector.lookahead_s()`` after the swing lobe ends; IC about 0.5 s after contact). Events are provisional.

    Results: ``new_swings_`` and ``new_events_`` (what the last ``update`` found), ``swings_`` and ``events_``
    (the most recent ones, at most ``max_kept``), ``n_swings_`` (all swings so far) and ``axis_``.
    """

    def __init__(
        self,
        side: str = "left",
        rate_hz: float = 100.0,
        buffer_s: float = 8.0,
        max_kept: int = 256,
        swing_detector: SwingDetector | None = None,
        axis: SagittalAxis | FixedAxis | None = None,
        max_bridge_s: float = 0.1,
    ):
        #: "left" or "right".
        self.side = side
        #: Grid rate of the rows fed in, Hz.
        self.rate_hz = rate_hz
        #: Ring-buffer length, s (must hold a pre-swing minimum, the slowest swing and the IC lookahead).
        self.buffer_s = buffer_s
        #: How many recent swings and events are kept in ``swings_``/``events_``.
        self.max_kept = max_kept
        #: The event rules (``SwingDetector()`` when ``None``).
        self.swing_detector = swing_detector
        #: Axis estimator (a fresh ``SagittalAxis()`` when ``None``).
        self.axis = axis
        #: Gaps up to this long are bridged for detection (events they could hide are marked estimated), s.
        self.max_bridge_s = max_bridge_s
        self.reset()

    def reset(self) -> LiveShankEvents:
        """Forget all state."""
        if self.side not in SIDES:
            raise ValueError(f"side must be one of {SIDES}, got {self.side!r}")
        n = round(self.buffer_s * self.rate_hz)
        self._time = np.full(n, np.nan)
        self._gyr = np.full((n, 3), np.nan)
        self._acc = np.full((n, 3), np.nan)
        self._ok = np.zeros(n, dtype=bool)
        #: Clip-clock start of the run of valid rows each buffered row belongs to (NaN where not valid).
        self._run_start = np.full(n, np.nan)
        self._n_filled = 0
        self._peaks: deque[float] = deque(maxlen=16)
        self._last_ms_s = -np.inf
        self._current_run_start_s = np.nan
        self._n_invalid = 0
        self.axis_ = (self.axis or SagittalAxis()).reset()
        self.new_swings_: list[Swing] = []
        self.new_events_: list[GaitEvent] = []
        self.swings_: deque[Swing] = deque(maxlen=self.max_kept)
        self.events_: deque[GaitEvent] = deque(maxlen=3 * self.max_kept)
        self.n_swings_ = 0
        return self

    def update(
        self, time_s: FloatArray, gyr_rad_s: FloatArray, acc_m_s2: FloatArray | None, valid: BoolArray
    ) -> LiveShankEvents:
        """Consume consecutive rows; see the class docstring for the results."""
        time_s = np.asarray(time_s, dtype=float)
        gyr = np.asarray(gyr_rad_s, dtype=float).reshape(-1, 3)
        acc = np.full_like(gyr, 0.0) if acc_m_s2 is None else np.asarray(acc_m_s2, dtype=float).reshape(-1, 3)
        ok = usable_rows(gyr, acc, valid)
        self.new_swings_, self.new_events_ = [], []
        if time_s.size == 0:
            return self
        self.axis_.update(gyr, ok)
        self._append(time_s, gyr, acc, ok)
        if self.axis_.axis_ is None:
            return self
        detector = self.swing_detector or SwingDetector()
        size = self._time.size
        # only the tail that can hold a swing not yet emitted: the longest swing, its pre-swing search, the lookahead
        # and the smoothing margins (older swings were emitted at least a lookahead ago)
        window_s = (detector.max_swing_s + detector.fc_search_s + detector.lookahead_s()
                    + 2 * detector.swing_smoothing_s)  # fmt: skip
        filled = min(self._n_filled, size, int(np.ceil(window_s * self.rate_hz)))
        t = self._time[size - filled :]
        max_gap_n = round(self.max_bridge_s * self.rate_hz)
        (gyr_buf, acc_buf), rows_ok, bridged = bridge_short_gaps(
            t, [self._gyr[size - filled :], self._acc[size - filled :]], self._ok[size - filled :], max_gap_n
        )
        omega = gyr_buf @ self.axis_.axis_
        typical = float(np.median(self._peaks)) if self._peaks else None
        run_starts = self._run_start[size - filled :]
        for a, b in valid_runs(rows_ok):
            # a run followed only by a short gap may still be bridged when the data resumes: wait for it
            open_end = filled - b <= max_gap_n
            labels = run_starts[a:b][np.isfinite(run_starts[a:b])]
            start_s = labels[0] if labels.size else t[a]
            found = detector.find(
                t[a:b],
                omega[a:b],
                None if acc_m_s2 is None else acc_buf[a:b],
                self.rate_hz,
                self.side,
                typical_peak_rad_s=typical,
                open_end=open_end,
                run_start_s=float(start_s),
            )
            for swing in found:
                swing = mark_estimated_events(swing, t[a:b], bridged[a:b])
                if swing.ms_s <= self._last_ms_s + detector.min_swing_s:
                    continue  # already emitted (the axis moved the peak by a sample or two since)
                swing = replace(swing, provisional=True)
                self._last_ms_s = swing.ms_s
                self._peaks.append(swing.peak_rad_s)
                self.new_swings_.append(swing)
                self.new_events_ += swing.events()
        self.swings_.extend(self.new_swings_)
        self.events_.extend(self.new_events_)
        self.n_swings_ += len(self.new_swings_)
        return self

    def _append(self, time_s: FloatArray, gyr: FloatArray, acc: FloatArray, ok: BoolArray) -> None:
        """Shift the block into the ring buffer, labelling each row with the start of its run of valid rows.

        Runs are those of the bridged data: a gap of at most ``max_bridge_s`` does not start a new run.
        """
        max_gap_n = round(self.max_bridge_s * self.rate_hz)
        run_start = np.full(ok.size, np.nan)
        current, invalid = self._current_run_start_s, self._n_invalid
        # walk the block run by run (a handful of runs per block)
        position = 0
        for a, b in valid_runs(ok, min_samples=1):
            invalid += a - position
            if not np.isfinite(current) or invalid > max_gap_n:
                current = float(time_s[a])
            run_start[a:b] = current
            invalid, position = 0, b
        invalid += ok.size - position
        self._current_run_start_s, self._n_invalid = current, invalid
        size = self._time.size
        k = min(time_s.size, size)
        for arr, new in ((self._time, time_s), (self._gyr, gyr), (self._acc, acc), (self._ok, ok),
                         (self._run_start, run_start)):
            arr[: size - k] = arr[k:]
            arr[size - k :] = new[new.shape[0] - k :]
        self._n_filled += time_s.size
