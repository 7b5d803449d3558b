"""Per-sensor clock model: device time → host time, from one-way timestamps.

Model (one *epoch*, i.e. a stretch of stream over which the device clock runs without a reset):

    host_time_s = offset_s + (1 + drift_ppm·1e-6) · device_time_s + latency_s,      latency_s ≥ floor ≥ 0

``latency_s`` is the transport delay (BLE connection intervals, USB-serial buffering, OS scheduling): one-sided,
heavy-tailed, with bursts of delayed packets. The line ``offset + (1 + drift)·device`` is the *lower envelope* of the
(device, host) points, found as in Moon, Skelly & Towsley (IEEE INFOCOM 1999) from the lower convex hull of
per-segment minimum-latency points (see :mod:`sensor_drivers.timing.envelope`). A mapped time is therefore "the host
time at which the sample would have arrived with the least latency seen"; the constant floor itself cannot be seen
from one-way timestamps and is subtracted only if known (``fixed_latency_s``).

One class, two uses that share the maths (segment minima, hull line, outlier and step rules):

- streaming: :meth:`ClockSync.update` maps one sample as it arrives, O(1) amortised plain float arithmetic, and keeps
  its mapped times strictly increasing (slew-limited, like an NTP clock discipline);
- batch: :meth:`ClockSync.fit` runs the same detector over a whole recording, then fits each epoch with all of its
  points (non-causal, so more accurate) and sets ``mapped_s_`` and the ``*_`` estimates.

Clock resets (device time going back, a forward jump, or a lasting step of the envelope) start a new epoch: the
offset is re-anchored, the drift is carried over, and every reset is counted and reported, never silent.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from sensor_drivers.timing.envelope import Line, LowerHull, dip_outliers, envelope_line, lowest_line

FloatArray = NDArray[np.float64]

# Why a reset happened (the ``reason`` of :class:`ClockReset`).
RESET_BACKWARD = "device time went back"
RESET_FORWARD = "device time jumped ahead"
RESET_STEP_UP = "lasting step up of the latency envelope"
RESET_STEP_DOWN = "lasting step down of the latency envelope"
RESET_REQUESTED = "re-anchor requested"


@dataclass(frozen=True, slots=True)
class ClockEstimate:
    """One epoch's clock line and how well the data pins it down."""

    #: Host time at device time 0, s (includes the unobservable latency floor minus ``fixed_latency_s``).
    offset_s: float
    #: Device clock rate error: host seconds per device second − 1, in parts per million.
    drift_ppm: float
    #: RMS height of the segment minima above the line, s: how tightly the fastest samples hug the envelope.
    envelope_rms_s: float
    #: Largest change of the line over the epoch when either support point is left out (a jackknife), s.
    #: ``nan`` where it was not computed (streaming estimates, or too few points).
    uncertainty_s: float
    #: Segment minima the line was fitted to, and the device-time span they cover, s.
    n_segments: int
    span_s: float
    epoch: int


@dataclass(frozen=True, slots=True)
class ClockReset:
    """A new epoch began at a sample."""

    #: Index of the first sample of the new epoch (in the order samples were given).
    sample_index: int
    host_time_s: float
    reason: str


@dataclass(frozen=True, slots=True)
class LostSamples:
    """Samples found lost by a lasting step of whole sample periods (only with ``step_quantum_s``)."""

    #: Index of the sample at which the loss was confirmed (the batch fit places it where it happened).
    sample_index: int
    host_time_s: float
    n_lost: int


class ClockSync:
    """Maps one sensor's device clock to host time with a lower-envelope drift model (Moon et al. 1999).

    Parameters
    ----------
    segment_s
        Device-time length of the segments whose minimum-latency sample enters the envelope. Shorter follows the
        envelope more closely, longer costs less.
    window_s
        Streaming: how much device time of segment minima the line is fitted to (memory is ``window_s / segment_s``
        points). Batch: epochs longer than this are fitted piecewise with this window and blended linearly, so that
        a drift that wanders with temperature is followed.
    min_slope_span_s
        Until the first epoch's minima span this much device time the slope is not estimated: the prior
        (``prior_drift_ppm``) is used, the line stays below every sample, and no step or jump is detected. Later
        epochs start from the previous epoch's slope.
    max_drift_ppm
        Slopes are kept within ±this of 1 (a sanity bound, loose enough for a nominal rate that is off by 2 %).
    prior_drift_ppm
        Drift assumed before one has been estimated.
    step_tolerance_s
        A segment minimum this far above (or below) the line, for ``confirm_segments`` segments in a row, is a lasting
        step of the envelope (the device clock paused or skipped, or samples were lost while counting indices): a new
        epoch begins. It must exceed the envelope's own ripple: over BLE the fastest sample of each connection event
        is up to one sample period or connection interval late, and that phase slides slowly with the drift.
    jump_tolerance_s
        A sample this far *below* the line is impossible with non-negative latency: the device clock jumped ahead;
        a new epoch begins at once.
    outlier_s
        A segment minimum more than this below both neighbours is a glitch and is dropped.
    confirm_segments
        Segments in a row needed to confirm a step.
    step_quantum_s
        For a device time that counts samples (``index / rate``: no device clock), the sample period: a lasting step
        up by about a whole number of periods is then read as lost samples and the index is shifted (the epoch and
        its offset are kept) instead of re-anchoring. ``None`` for a real device clock.
    max_slew
        Streaming only: mapped time advances by the device interval times the slope, ±this fraction, while it catches
        up with a changed estimate. Keeps mapped times strictly increasing and continuous.
    fixed_latency_s
        A known constant transport delay (e.g. the serial transmission time of one frame) subtracted from every
        mapped time. The floor of the latency is invisible to one-way timestamps; with 0 a mapped time is the host
        time of fastest arrival.
    """

    def __init__(
        self,
        segment_s: float = 0.5,
        window_s: float = 300.0,
        min_slope_span_s: float = 2.0,
        max_drift_ppm: float = 20_000.0,
        prior_drift_ppm: float = 0.0,
        step_tolerance_s: float = 0.02,
        jump_tolerance_s: float = 0.05,
        outlier_s: float = 0.002,
        confirm_segments: int = 4,
        step_quantum_s: float | None = None,
        max_slew: float = 0.05,
        fixed_latency_s: float = 0.0,
    ) -> None:
        self.segment_s = segment_s
        self.window_s = window_s
        self.min_slope_span_s = min_slope_span_s
        self.max_drift_ppm = max_drift_ppm
        self.prior_drift_ppm = prior_drift_ppm
        self.step_tolerance_s = step_tolerance_s
        self.jump_tolerance_s = jump_tolerance_s
        self.outlier_s = outlier_s
        self.confirm_segments = confirm_segments
        self.step_quantum_s = step_quantum_s
        self.max_slew = max_slew
        self.fixed_latency_s = fixed_latency_s
        self._check_params()
        self._clear()

    def _check_params(self) -> None:
        positive = {
            "segment_s": self.segment_s,
            "window_s": self.window_s,
            "step_tolerance_s": self.step_tolerance_s,
            "jump_tolerance_s": self.jump_tolerance_s,
            "outlier_s": self.outlier_s,
        }
        for name, value in positive.items():
            if not value > 0.0:
                raise ValueError(f"ClockSync: {name} must be > 0, got {value}")
        if self.window_s < 4 * self.segment_s:
            raise ValueError(f"ClockSync: window_s ({self.window_s}) must hold at least 4 segments of {self.segment_s}")
        if not 0.0 < self.max_drift_ppm < 500_000.0:
            raise ValueError(f"ClockSync: max_drift_ppm must be in (0, 500000), got {self.max_drift_ppm}")
        if abs(self.prior_drift_ppm) > self.max_drift_ppm:
            raise ValueError("ClockSync: |prior_drift_ppm| must not exceed max_drift_ppm")
        if not 0.0 < self.max_slew < 1.0 - self.max_drift_ppm * 1e-6:
            raise ValueError(f"ClockSync: max_slew must be in (0, 1 − max drift), got {self.max_slew}")
        if self.step_quantum_s is not None and not self.step_quantum_s > 0.0:
            raise ValueError(f"ClockSync: step_quantum_s must be > 0 or None, got {self.step_quantum_s}")
        if self.confirm_segments < 1:
            raise ValueError(f"ClockSync: confirm_segments must be ≥ 1, got {self.confirm_segments}")

    # ------------------------------------------------------------------------------------------------------------
    # Streaming: O(1) amortised plain float arithmetic per sample
    # ------------------------------------------------------------------------------------------------------------

    def _clear(self) -> None:
        """Forget everything: the next sample starts a fresh stream."""
        self._min_slope = 1.0 - self.max_drift_ppm * 1e-6
        self._max_slope = 1.0 + self.max_drift_ppm * 1e-6
        self._slope = 1.0 + self.prior_drift_ppm * 1e-6
        self._slope_known = False
        self._active = False
        self._pending_reason = RESET_REQUESTED
        self._expect_break = False
        self._epoch = -1
        self._n_seen = 0
        self._last_mapped = -math.inf
        self._free_next = False
        # Device time added for samples lost while counting (re-indexing), over the whole stream.
        self._dev_shift = 0.0
        self._suspect: tuple[float, float, str, int] | None = None
        self._n_in_epoch = 0
        self._warm = True
        self._carried_span = 0.0
        self._refresh_fast()
        self._epoch_slopes: list[float] = []
        self._steps: list[_StepRecord] = []
        #: Counters and event lists, updated while streaming (and by :meth:`fit`).
        self.n_resets_ = 0
        self.n_outliers_ = 0
        #: Samples whose mapped time had to be pushed past the previous one (possible only at a re-anchor).
        self.n_clamped_ = 0
        self.resets_: list[ClockReset] = []
        self.lost_: list[LostSamples] = []
        #: Indices of lone samples whose device time disagreed with both neighbours (timestamp glitches).
        self.glitches_: list[int] = []

    def reset(self) -> None:
        """Start a new epoch at the next sample (e.g. after a reconnect of a device whose index cannot be trusted)."""
        if self._active:
            self._active = False
            self._pending_reason = RESET_REQUESTED
            self._fast = False

    def expect_break(self) -> None:
        """The link was broken (reconnect): if the next sample does not fit the line, re-anchor at once instead of
        first suspecting a glitch. A device clock that kept running across the break keeps its epoch."""
        self._expect_break = True
        self._fast = False

    def _start_epoch(self, d: float, host_time_s: float, reason: str, index: int) -> None:
        if self._epoch >= 0:
            self.n_resets_ += 1
            self.resets_.append(ClockReset(index, host_time_s, reason))
            self._epoch_slopes.append(self._slope)
            # The slope carried over was fitted over this span: a new epoch keeps it until its own span is half
            # as long (a fresh slope from a few seconds is worse than one from a minute).
            self._carried_span = (self._mu[-1] - self._mu[0]) if self._slope_known and self._mu else 0.0
        self._epoch += 1
        self._active = True
        self._x_ref = d
        self._y_ref = host_time_s
        self._n_in_epoch = 0
        self._last_u = 0.0
        self._last_du = 0.0
        # Until the first segment is finished the line goes through the fastest sample so far.
        self._a = 0.0
        self._warm = True
        self._seg_end = self.segment_s
        self._seg_key = math.inf
        self._seg_u = 0.0
        self._seg_v = 0.0
        self._seg_index = index
        self._mu: list[float] = []
        self._mv: list[float] = []
        self._sum_u = 0.0
        self._hull = LowerHull()
        # Step detector: minima in a row above (+1) or below (−1) the line, held back until the run is decided.
        self._run_sign = 0
        self._run: list[tuple[float, float]] = []
        self._last_ok_index = index

    def update(self, device_time_s: float, host_time_s: float) -> float:
        """Feed one sample (device time and host receive time, s); returns its mapped host time, s.

        Mapped times are strictly increasing over the whole stream, across resets too.
        """
        if self._fast:
            # The common case, inlined: a sample inside the current segment, in order, not far below the line.
            u = device_time_s + self._dev_shift - self._x_ref
            last_u = self._last_u
            if last_u < u < self._seg_end:
                b = self._slope
                v = host_time_s - self._y_ref
                key = v - b * u
                if key - self._a >= self._jump_floor:
                    if key < self._seg_key:
                        self._seg_key = key
                        self._seg_u = u
                        self._seg_v = v
                        self._seg_index = self._n_seen
                        if self._lowering and key < self._a:
                            self._a = key
                    self._last_du = du = u - last_u
                    self._last_u = u
                    self._n_in_epoch += 1
                    self._n_seen += 1
                    target = self._y_off + self._a + b * u
                    last = self._last_mapped
                    step = b * du
                    lo = last + (1.0 - self.max_slew) * step
                    if lo <= last:  # a device interval below the resolution of the host time
                        lo = math.nextafter(last, math.inf)
                    if target < lo:
                        target = lo
                    else:
                        hi = last + (1.0 + self.max_slew) * step
                        if target > hi:
                            target = hi
                    self._last_mapped = target
                    return target
        mapped = self._update_slow(device_time_s, host_time_s)
        self._refresh_fast()
        return mapped

    def update_many(self, device_time_s: Sequence[float], host_time_s: Sequence[float]) -> list[float]:
        """:meth:`update` for each sample of a block in turn; returns their mapped host times, s.

        The same arithmetic in the same order, so the results equal those of :meth:`update` bit for bit; the common
        case (a sample inside the current segment, in order, not far below the line) runs with the state held in
        local variables for the whole block, everything else through :meth:`update`.
        """
        out: list[float] = []
        append = out.append
        n = len(device_time_s)
        i = 0
        lo_factor = 1.0 - self.max_slew
        hi_factor = 1.0 + self.max_slew
        while i < n:
            if self._fast:
                dev_shift, x_ref, y_ref = self._dev_shift, self._x_ref, self._y_ref
                seg_end, b, a = self._seg_end, self._slope, self._a
                jump_floor, lowering, y_off = self._jump_floor, self._lowering, self._y_off
                seg_key, seg_u, seg_v, seg_index = self._seg_key, self._seg_u, self._seg_v, self._seg_index
                last_u, last_du, last = self._last_u, self._last_du, self._last_mapped
                n_seen, n_in_epoch = self._n_seen, self._n_in_epoch
                while i < n:
                    # The inlined path of update(), statement for statement.
                    u = device_time_s[i] + dev_shift - x_ref
                    if not last_u < u < seg_end:
                        break
                    v = host_time_s[i] - y_ref
                    key = v - b * u
                    if not key - a >= jump_floor:
                        break
                    if key < seg_key:
                        seg_key, seg_u, seg_v, seg_index = key, u, v, n_seen
                        if lowering and key < a:
                            a = key
                    last_du = du = u - last_u
                    last_u = u
                    n_in_epoch += 1
                    n_seen += 1
                    target = y_off + a + b * u
                    step = b * du
                    lo = last + lo_factor * step
                    if lo <= last:
                        lo = math.nextafter(last, math.inf)
                    if target < lo:
                        target = lo
                    else:
                        hi = last + hi_factor * step
                        if target > hi:
                            target = hi
                    last = target
                    append(target)
                    i += 1
                self._a = a
                self._seg_key, self._seg_u, self._seg_v, self._seg_index = seg_key, seg_u, seg_v, seg_index
                self._last_u, self._last_du, self._last_mapped = last_u, last_du, last
                self._n_seen, self._n_in_epoch = n_seen, n_in_epoch
                if i == n:
                    break
            append(self.update(device_time_s[i], host_time_s[i]))
            i += 1
        return out

    def _refresh_fast(self) -> None:
        """Whether the next sample may take the inlined path, and the thresholds it uses."""
        self._fast = (
            self._active
            and self._suspect is None
            and not self._expect_break
            and not self._free_next
            and self._n_in_epoch > 0
        )
        established = self._slope_known and not self._warm
        self._jump_floor = -self.jump_tolerance_s if established else -math.inf
        self._lowering = self._warm or not self._slope_known
        self._y_off = self._y_ref - self.fixed_latency_s if self._active else 0.0

    def _update_slow(self, device_time_s: float, host_time_s: float) -> float:
        """Everything else: epoch starts, suspect samples and resets, segment ends."""
        if not (math.isfinite(device_time_s) and math.isfinite(host_time_s)):
            raise ValueError(
                f"ClockSync.update: device and host times must be finite, got {device_time_s!r} and {host_time_s!r}"
            )
        d = device_time_s + self._dev_shift
        if not self._active:
            self._start_epoch(d, host_time_s, self._pending_reason, self._n_seen)
            self._expect_break = False
            return self._ingest(0.0, 0.0)
        u = d - self._x_ref
        v = host_time_s - self._y_ref
        reason = None
        if u <= self._last_u and self._forward_glitch_before(u, v):
            pass  # the previous sample was the bad one; this one carries on from the one before it
        elif u <= self._last_u:
            reason = RESET_BACKWARD
        elif self._slope_known and not self._warm and v - (self._a + self._slope * u) < -self.jump_tolerance_s:
            reason = RESET_FORWARD
        if reason is not None:
            suspect = self._suspect
            if suspect is None and not self._expect_break:
                # One bad sample may be a glitch: map it as the next sample in line and wait for the next one.
                self._suspect = (d, host_time_s, reason, self._n_seen)
                return self._provisional()
            self._expect_break = False
            if suspect is None or d - suspect[0] <= 0.0:
                # Re-anchor here (after a break, or the suspect fits neither this sample nor the old line).
                if suspect is not None:
                    self.glitches_.append(suspect[3])
                self._suspect = None
                self._start_epoch(d, host_time_s, reason, self._n_seen)
                self._free_next = True
                return self._ingest(0.0, 0.0)
            # Two in a row that agree: the clock really was reset, at the suspect sample.
            self._suspect = None
            self._start_epoch(suspect[0], suspect[1], suspect[2], suspect[3])
            self._ingest_quietly(0.0, 0.0, suspect[3])
            self._free_next = True
            u = d - self._x_ref
            v = host_time_s - self._y_ref
        elif self._suspect is not None:
            self.glitches_.append(self._suspect[3])
            self._suspect = None
        self._expect_break = False
        if u >= self._seg_end:
            reason = self._close_segment(u)
            if reason is not None:
                self._start_epoch(d, host_time_s, reason, self._n_seen)
                self._free_next = True
                return self._ingest(0.0, 0.0)
            d = device_time_s + self._dev_shift  # a re-index moves this sample too
            u = d - self._x_ref
        return self._ingest(u, v)

    def _forward_glitch_before(self, u: float, v: float) -> bool:
        """A sample behind the previous one but after the one before, and on the line: the previous sample's time
        was a glitch too small to look like a jump. Forget it (it keeps the mapped time it was given)."""
        before = self._last_u - self._last_du
        # 1 µs: a sample that repeats the time of the one before the previous is no clean continuation.
        if self._suspect is not None or self._n_in_epoch < 2 or not before + 1e-6 < u:
            return False
        if self._slope_known and not self._warm and v - (self._a + self._slope * u) < -self.jump_tolerance_s:
            return False
        self.glitches_.append(self._n_seen - 1)
        if self._seg_index == self._n_seen - 1:
            self._seg_key = math.inf  # it may have been taken as the segment's fastest sample
        self._last_u = before
        return True

    def _ingest_quietly(self, u: float, v: float, index: int) -> None:
        """Take a sample into the envelope without mapping it (it was mapped when it arrived)."""
        key = v - self._slope * u
        if key < self._seg_key:
            self._seg_key = key
            self._seg_u = u
            self._seg_v = v
            self._seg_index = index
            if self._n_in_epoch == 0 or (key < self._a and (self._warm or not self._slope_known)):
                # Before the slope is known the line stays below every sample (lowest line at the prior slope).
                self._a = key
        self._last_du = u - self._last_u
        self._last_u = u
        self._n_in_epoch += 1

    def _ingest(self, u: float, v: float) -> float:
        """Take the sample into the envelope and map it."""
        first = self._n_in_epoch == 0
        du = u - self._last_u
        self._ingest_quietly(u, v, self._n_seen)
        self._n_seen += 1
        target = self._y_ref + self._a + self._slope * u - self.fixed_latency_s
        last = self._last_mapped
        if first or self._free_next:
            # A new epoch or a re-index: take the line as it is, but never step back.
            self._free_next = False
            mapped = target if target > last else last + 1e-6
            if target <= last and last != -math.inf:
                self.n_clamped_ += 1
        else:
            # Slew toward the target: the mapped interval is the device interval ± max_slew (an NTP-style
            # clock discipline), so mapped times stay increasing and sample intervals stay plausible.
            step = self._slope * du
            lo = last + (1.0 - self.max_slew) * step
            if lo <= last:  # a device interval below the resolution of the host time
                lo = math.nextafter(last, math.inf)
            hi = max(lo, last + (1.0 + self.max_slew) * step)
            mapped = lo if target < lo else hi if target > hi else target
        self._last_mapped = mapped
        return mapped

    def _provisional(self) -> float:
        """Mapped time of a suspect sample: one device interval after the previous sample."""
        self._n_seen += 1
        last = self._last_mapped
        self._last_mapped = last + max(self._slope * self._last_du, 1e-6)
        return self._last_mapped

    def _close_segment(self, u_now: float) -> str | None:
        """Take the finished segment's fastest sample into the envelope and refit; a reset reason on a step."""
        n_past = math.floor((u_now - self._seg_end) / self.segment_s) + 1
        self._seg_end += n_past * self.segment_s
        mu, mv, m_index = self._seg_u, self._seg_v, self._seg_index
        self._seg_key = math.inf
        was_warm = self._warm
        self._warm = False
        sign = 0
        if self._slope_known and not was_warm:
            residual = mv - (self._a + self._slope * mu)
            tol = self.step_tolerance_s
            sign = 1 if residual > tol else -1 if residual < -tol else 0
        if sign != self._run_sign:
            for held_u, held_v in self._run:  # the run ended undecided: its minima are ordinary after all
                self._accept_minimum(held_u, held_v)
            self._run = []
            self._run_sign = sign
        if sign == 0:
            self._last_ok_index = m_index
            self._accept_minimum(mu, mv)
        else:
            self._run.append((mu, mv))
            if len(self._run) >= self.confirm_segments:
                reason = self._confirm_step(u_now)
                if reason is not None:
                    return reason
        if self._mu and self._mu[0] < u_now - 1.1 * self.window_s:
            self._expire(u_now - self.window_s)
        if self._mu:
            self._refit()
        return None

    def _confirm_step(self, u_now: float) -> str | None:
        """A full run of minima off the line: lost samples (re-index) or a clock step (new epoch, returned)."""
        a, b = self._a, self._slope
        residuals = [mv - (a + b * mu) for mu, mv in self._run]
        step_s = min(residuals) if self._run_sign > 0 else max(residuals)
        line = Line(self._x_ref, self._y_ref + a, b)
        q = self.step_quantum_s
        n_lost = round(step_s / (b * q)) if q is not None and step_s > 0.0 else 0
        if n_lost >= 1 and abs(step_s - n_lost * b * q) < 0.35 * b * q:
            # Samples were lost while counting arrivals: every later index is n_lost too small.
            shift = n_lost * q
            self._steps.append(_StepRecord(self._n_seen, self._last_ok_index + 1, line, step_s, shift))
            self.lost_.append(LostSamples(self._n_seen, self._y_ref + a + b * u_now, n_lost))
            self._dev_shift += shift
            self._seg_u += shift
            self._seg_key = self._seg_v - b * self._seg_u if self._seg_key != math.inf else math.inf
            self._seg_end += shift
            self._last_u += shift
            self._free_next = True
            run, self._run, self._run_sign = self._run, [], 0
            for mu, mv in run:
                self._accept_minimum(mu + shift, mv)
            return None
        self._steps.append(_StepRecord(self._n_seen, self._last_ok_index + 1, line, step_s, 0.0))
        return RESET_STEP_UP if self._run_sign > 0 else RESET_STEP_DOWN

    def _accept_minimum(self, mu: float, mv: float) -> None:
        if self._mu and mu <= self._mu[-1]:
            return  # cannot happen with increasing device time; guards the hull's precondition
        self._mu.append(mu)
        self._mv.append(mv)
        self._sum_u += mu
        self._hull.append(mu, mv)
        if len(self._mu) >= 3:
            # Is the previous minimum a lone dip below both neighbours (a timestamp glitch)?
            a, b = self._a, self._slope
            r = [self._mv[j] - (a + b * self._mu[j]) for j in (-3, -2, -1)]
            if r[1] < min(r[0], r[2]) - self.outlier_s:
                self._sum_u -= self._mu.pop(-2)
                self._mv.pop(-2)
                self._hull.rebuild(self._mu, self._mv)
                self.n_outliers_ += 1

    def _expire(self, u_from: float) -> None:
        """Drop minima older than the window (in batches, so the hull is rebuilt rarely)."""
        cut = bisect.bisect_left(self._mu, u_from)
        del self._mu[:cut]
        del self._mv[:cut]
        self._sum_u = math.fsum(self._mu)
        self._hull.rebuild(self._mu, self._mv)

    def _refit(self) -> None:
        mu, mv = self._mu, self._mv
        n = len(mu)
        if n >= 2 and mu[-1] - mu[0] >= max(self.min_slope_span_s, 0.5 * self._carried_span):
            line = self._hull.support_line(self._sum_u / n)
            assert line is not None  # two or more points with distinct x
            if not self._min_slope <= line.slope <= self._max_slope:
                line = lowest_line(mu, mv, min(max(line.slope, self._min_slope), self._max_slope))
            self._slope_known = True
        else:
            line = lowest_line(mu, mv, self._slope)
        self._slope = line.slope
        self._a = line.y0 - line.slope * line.x0

    def estimate(self) -> ClockEstimate:
        """The current epoch's line (streaming). Raises ``RuntimeError`` before the first sample."""
        if self._epoch < 0:
            raise RuntimeError("ClockSync.estimate(): no sample has been fed yet")
        a, b = self._a, self._slope
        mu, mv = self._mu, self._mv
        rms = math.sqrt(sum((y - a - b * x) ** 2 for x, y in zip(mu, mv, strict=True)) / len(mu)) if mu else math.nan
        return ClockEstimate(
            offset_s=self._y_ref + a - b * (self._x_ref - self._dev_shift),
            drift_ppm=(b - 1.0) * 1e6,
            envelope_rms_s=rms,
            uncertainty_s=math.nan,
            n_segments=len(mu),
            span_s=(mu[-1] - mu[0]) if mu else 0.0,
            epoch=self._epoch,
        )

    # ------------------------------------------------------------------------------------------------------------
    # Batch: the same detector over the whole recording, then each epoch fitted with all of its points
    # ------------------------------------------------------------------------------------------------------------

    def fit(self, device_time_s: ArrayLike, host_time_s: ArrayLike) -> ClockSync:
        """Fit a whole recording (samples in arrival order). Sets ``mapped_s_``, ``epoch_``, ``estimates_`` and
        ``offset_s_``, ``drift_ppm_``, ``envelope_rms_s_``, ``uncertainty_s_`` (of the epoch with most samples).

        Resets, re-indexes and glitches come from the streaming detector run over the data; a step's position is
        then moved back to the last sample that still fits the old line (the detector had to wait
        ``confirm_segments`` to be sure), each epoch is fitted with all of its points, and glitch samples get the
        time between their neighbours.
        """
        dev = np.asarray(device_time_s, dtype=float)
        host = np.asarray(host_time_s, dtype=float)
        if dev.ndim != 1 or dev.shape != host.shape or dev.size == 0:
            raise ValueError(
                f"ClockSync.fit: need two 1-D arrays of equal, non-zero length; got {dev.shape} and {host.shape}"
            )
        if not (np.isfinite(dev).all() and np.isfinite(host).all()):
            raise ValueError("ClockSync.fit: device and host times must be finite (drop samples without a time)")
        self._clear()
        update = self.update
        for d, h in zip(dev.tolist(), host.tolist(), strict=True):
            update(d, h)
        if self._suspect is not None:  # a bad last sample: nothing followed to confirm a reset
            self.glitches_.append(self._suspect[3])
        self._epoch_slopes.append(self._slope)

        starts = [0, *(r.sample_index for r in self.resets_)]
        dev_c = dev.copy()
        # Samples fitted: not glitches, and not between the last minimum before a step and its confirmation (where
        # the step is, is not certain, and a sample on the wrong side would pull the envelope off).
        good = np.ones(dev.size, dtype=bool)
        good[self.glitches_] = False
        for step in self._steps:
            good[step.from_index : step.reset_index] = False
        lost_at = []
        for step in self._steps:
            k = max(j for j, s in enumerate(starts) if s <= step.reset_index)
            if step.shift_s > 0.0:  # re-index: shift device time from where the samples were lost
                lo = max(step.from_index, starts[k] + 1)
                b = self._step_boundary(dev_c, host, step, lo)
                dev_c[b:] += step.shift_s
                lost_at.append(b)
            else:  # a step that began an epoch
                lo = max(step.from_index, starts[k - 1] + 1)
                starts[k] = self._step_boundary(dev_c, host, step, lo)
        ends = [*starts[1:], dev.size]
        # Report where the fit put the steps, not where the detector confirmed them.
        self.resets_ = [ClockReset(b, float(host[b]), r.reason) for b, r in zip(starts[1:], self.resets_, strict=True)]
        self.lost_ = [LostSamples(b, float(host[b]), x.n_lost) for b, x in zip(lost_at, self.lost_, strict=True)]

        mapped = np.empty_like(dev)
        epoch = np.empty(dev.size, dtype=np.int64)
        self.estimates_: list[ClockEstimate] = []
        self.n_outliers_ = 0
        self._models: list[_EpochModel] = []
        for k, (s, e) in enumerate(zip(starts, ends, strict=True)):
            keep = good[s:e]
            if not keep.any():  # an epoch made only of uncertain samples: fit them rather than nothing
                keep = np.ones(e - s, dtype=bool)
            model, estimate = self._fit_epoch(dev_c[s:e][keep], host[s:e][keep], self._epoch_slopes[k], k)
            mapped[s:e] = model.map(dev_c[s:e]) - self.fixed_latency_s
            epoch[s:e] = k
            self.estimates_.append(estimate)
            self._models.append(model)
        if self.glitches_:
            index = np.arange(dev.size)
            ok = np.ones(dev.size, dtype=bool)
            ok[self.glitches_] = False
            mapped[~ok] = np.interp(index[~ok], index[ok], mapped[ok])
        # Across an epoch boundary the new line may start before the old one ended: never step back.
        idx_us = np.arange(dev.size) * 1e-6
        increasing = np.maximum.accumulate(mapped - idx_us) + idx_us
        self.n_clamped_ = int(np.count_nonzero(increasing != mapped))
        self.mapped_s_ = increasing
        self.epoch_ = epoch
        main = self.estimates_[int(np.argmax(np.bincount(epoch)))]
        self.offset_s_ = main.offset_s
        self.drift_ppm_ = main.drift_ppm
        self.envelope_rms_s_ = main.envelope_rms_s
        self.uncertainty_s_ = main.uncertainty_s
        return self

    def map(self, device_time_s: ArrayLike, epoch: int = -1) -> FloatArray:
        """Map device times with a fitted epoch's model (default: the last), e.g. for packets not given to ``fit``."""
        if not hasattr(self, "_models"):
            raise RuntimeError("ClockSync.map(): call fit() first")
        return self._models[epoch].map(np.asarray(device_time_s, dtype=float) + self._dev_shift) - self.fixed_latency_s

    def _step_boundary(self, dev: FloatArray, host: FloatArray, step: _StepRecord, lo: int) -> int:
        """First sample after a step, searched from ``lo`` up to where the step was confirmed.

        After a step up by ``s`` every sample sits at least ``s`` above the old line; before it, latency alone puts
        samples anywhere above 0. The boundary goes after the last sample clearly below ``s`` (by ``eps``), so no
        sample before the step is moved to the new side, where it would sit below the envelope and pull it down;
        samples just after the step that are assigned to the old side sit above it and do no harm to the fit.
        A step down is the mirror image.
        """
        hi = max(step.reset_index, lo)
        r = host[lo:hi] - (step.line.y0 + step.line.slope * (dev[lo:hi] - step.line.x0))
        eps = min(0.25 * abs(step.step_s), self.outlier_s)
        if step.step_s > 0:
            below = np.flatnonzero(r < step.step_s - eps)
            return lo + int(below[-1]) + 1 if below.size else lo
        past = np.flatnonzero(r < -eps)
        return lo + int(past[0]) if past.size else hi

    def _segment_minima(self, u: FloatArray, v: FloatArray, slope: float) -> tuple[FloatArray, FloatArray]:
        """Fastest sample (least ``v − slope·u``) of each ``segment_s`` slice of device time."""
        seg = np.floor(u / self.segment_s).astype(np.int64)
        key = v - slope * u
        order = np.lexsort((key, seg))
        first = np.ones(order.size, dtype=bool)
        first[1:] = seg[order][1:] != seg[order][:-1]
        pick = order[first]
        return u[pick], v[pick]

    def _envelope(
        self, mu: FloatArray, mv: FloatArray, slope: float, free: bool
    ) -> tuple[Line, FloatArray, FloatArray]:
        """The envelope line of minima with lone dips removed (repeated while dips are found)."""
        lo, hi = (self._min_slope, self._max_slope) if free else (slope, slope)
        while True:
            line = envelope_line(mu.tolist(), mv.tolist(), lo, hi)
            assert line is not None
            dips = dip_outliers((mv - (line.y0 + line.slope * (mu - line.x0))).tolist(), self.outlier_s)
            if not dips:
                return line, mu, mv
            self.n_outliers_ += len(dips)
            keep = np.ones(mu.size, dtype=bool)
            keep[dips] = False
            mu, mv = mu[keep], mv[keep]

    def _fit_epoch(
        self, dev: FloatArray, host: FloatArray, slope: float, epoch: int
    ) -> tuple[_EpochModel, ClockEstimate]:
        x_ref, y_ref = float(dev[0]), float(host[0])
        u = dev - x_ref
        v = host - y_ref
        span = float(u[-1] - u[0])
        free = span >= self.min_slope_span_s
        # The slope decides which sample of a segment is fastest; two rounds settle it.
        n_outliers_before = self.n_outliers_
        for _ in range(2):
            self.n_outliers_ = n_outliers_before
            mu, mv = self._segment_minima(u, v, slope)
            line, mu, mv = self._envelope(mu, mv, slope, free)
            slope = line.slope
        pieces = [line]
        centres = [0.5 * (u[0] + u[-1])]
        if span > self.window_s:
            half = 0.5 * self.window_s
            n_pieces = math.ceil((span - self.window_s) / half) + 1
            centres = [half + k * (span - self.window_s) / (n_pieces - 1) for k in range(n_pieces)]
            pieces = []
            for c in centres:
                inside = (mu >= c - half) & (mu <= c + half)
                piece, _, _ = self._envelope(mu[inside], mv[inside], slope, True)
                pieces.append(piece)
        residual = mv - (line.y0 + line.slope * (mu - line.x0))
        estimate = ClockEstimate(
            offset_s=y_ref + line.at(-x_ref),
            drift_ppm=(line.slope - 1.0) * 1e6,
            envelope_rms_s=float(np.sqrt(np.mean(residual**2))),
            uncertainty_s=self._jackknife(mu, mv, line, free, span),
            n_segments=int(mu.size),
            span_s=span,
            epoch=epoch,
        )
        return _EpochModel(x_ref, y_ref, centres, pieces), estimate

    def _jackknife(self, mu: FloatArray, mv: FloatArray, line: Line, free: bool, span_s: float) -> float:
        """How far the line moves (at either end of the epoch) when one of its two support points is left out."""
        if mu.size < 3:
            return math.nan
        residual = mv - (line.y0 + line.slope * (mu - line.x0))
        support = np.argsort(residual)[:2]
        lo, hi = (self._min_slope, self._max_slope) if free else (line.slope, line.slope)
        worst = 0.0
        for j in support.tolist():
            keep = np.ones(mu.size, dtype=bool)
            keep[j] = False
            other = envelope_line(mu[keep].tolist(), mv[keep].tolist(), lo, hi)
            assert other is not None
            for x in (0.0, span_s):
                worst = max(worst, abs(other.at(x) - line.at(x)))
        return worst


@dataclass(frozen=True, slots=True)
class _StepRecord:
    """A confirmed step, kept so that :meth:`ClockSync.fit` can place the boundary where the step really was."""

    reset_index: int
    from_index: int
    line: Line
    step_s: float
    #: Device time added from the step on (samples lost while counting); 0 for a step that began an epoch.
    shift_s: float


@dataclass(frozen=True, slots=True)
class _EpochModel:
    """One epoch's fitted mapping: one line, or lines centred on ``centres_u`` blended linearly between centres."""

    x_ref: float
    y_ref: float
    centres_u: Sequence[float]
    lines: Sequence[Line]

    def map(self, device_time_s: FloatArray) -> FloatArray:
        u = device_time_s - self.x_ref
        lines, centres = self.lines, self.centres_u
        if len(lines) == 1:
            return self.y_ref + (lines[0].y0 + lines[0].slope * (u - lines[0].x0))
        c = np.asarray(centres)
        x0 = np.array([ln.x0 for ln in lines])
        y0 = np.array([ln.y0 for ln in lines])
        slope = np.array([ln.slope for ln in lines])
        j = np.clip(np.searchsorted(c, u, side="right") - 1, 0, c.size - 2)
        w = np.clip((u - c[j]) / (c[j + 1] - c[j]), 0.0, 1.0)
        left = y0[j] + slope[j] * (u - x0[j])
        right = y0[j + 1] + slope[j + 1] * (u - x0[j + 1])
        return self.y_ref + (left + w * (right - left))
