"""One sensor's sample times on the host clock, whatever the device sends: a clock, a counter, or nothing.

- A device clock (``device_time_s``) is mapped with :class:`~sensor_drivers.timing.clock.ClockSync` directly.
- A sequence counter without a clock gives a sample index; ``index / sampling_rate_hz`` is a device clock whose
  rate error (the nominal rate is never exact) the same envelope fit estimates as drift. Lost samples keep their
  index, so the times after a loss stay right. Counters that wrap are unwrapped; across a long gap the host clock
  says how many wraps passed.
- Neither: the arrival order is the index. A lost sample is then invisible except as a lasting step of the latency
  envelope (it makes every later index one period early), which ClockSync detects only when larger than its
  ``step_tolerance_s``; below that, times after the loss are up to one period early until the step has been fitted
  (see ``docs/timing.md``).

Across a disconnect an index can no longer be trusted (a driver-side counter does not count what was missed), so
the clock is re-anchored and the index continues from the host time elapsed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from sensor_drivers.sample import LinkEvent, LinkState
from sensor_drivers.timing.clock import ClockSync

#: Where a :class:`SampleTimer` takes its sample times from (``source_``).
SOURCE_DEVICE_TIME = "device_time"
SOURCE_SEQUENCE = "sequence"
SOURCE_ARRIVAL = "arrival"


class SequenceUnwrapper:
    """Turns a (possibly wrapping) packet counter into a non-decreasing sample index.

    Parameters
    ----------
    seq_modulus
        Where the counter wraps (``2**16`` for a 16-bit counter), or ``None`` if it does not wrap.
    sampling_rate_hz
        Nominal rate, used with the host clock to count whole wraps across a gap longer than half a wrap.
    """

    def __init__(self, seq_modulus: int | None, sampling_rate_hz: float) -> None:
        if seq_modulus is not None and seq_modulus < 2:
            raise ValueError(f"SequenceUnwrapper: seq_modulus must be ≥ 2 or None, got {seq_modulus}")
        if not sampling_rate_hz > 0.0:
            raise ValueError(f"SequenceUnwrapper: sampling_rate_hz must be > 0, got {sampling_rate_hz}")
        self.seq_modulus = seq_modulus
        self.sampling_rate_hz = sampling_rate_hz
        self.index_ = -1
        #: Samples skipped by forward jumps (lost), repeats dropped, and restarts (counter went back).
        self.n_missing_ = 0
        self.n_repeats_ = 0
        self.n_restarts_ = 0
        #: Whether the last :meth:`update` found the counter gone back.
        self.restarted_ = False
        self._last_seq: int | None = None
        self._last_host_s = 0.0

    def restart(self, seq: int, host_time_s: float) -> int:
        """Continue the index from the host time elapsed (after a disconnect or a counter restart)."""
        if self._last_seq is None:
            self.index_ = 0
        else:
            self.index_ += max(1, round((host_time_s - self._last_host_s) * self.sampling_rate_hz))
        self._last_seq = seq
        self._last_host_s = host_time_s
        return self.index_

    def update(self, seq: int, host_time_s: float) -> int | None:
        """The sample index of ``seq``; ``None`` for a repeated counter value (the sample is a duplicate).

        A counter that goes back starts over: :attr:`restarted_` is set and the index continues from the host time.
        """
        self.restarted_ = False
        last = self._last_seq
        if last is None:
            return self.restart(seq, host_time_s)
        m = self.seq_modulus
        step = seq - last if m is None else (seq - last) % m
        if step == 0:
            self.n_repeats_ += 1
            return None
        if m is not None:
            expected = (host_time_s - self._last_host_s) * self.sampling_rate_hz
            if expected > 0.5 * m:
                step += m * max(0, round((expected - step) / m))
            elif step > m // 2:
                step = -1  # went back: a restart (or reordering, which these transports do not do)
        if step < 0:
            self.n_restarts_ += 1
            self.restarted_ = True
            return self.restart(seq, host_time_s)
        self.n_missing_ += step - 1
        self.index_ += step
        self._last_seq = seq
        self._last_host_s = host_time_s
        return self.index_


class SampleTimer:
    """Host-clock time of each sample of one sensor, from its device clock, its counter, or its arrival order.

    Parameters
    ----------
    sampling_rate_hz
        The sensor's nominal output rate (for counters and arrival order; with a device clock only for gaps).
    seq_modulus
        Where the sequence counter wraps, or ``None``.
    device_seq
        Whether ``seq`` is the device's own counter. ``False`` for protocols without one, whose samples carry a
        driver-side count of what was decoded (``Stamper``): that count does not know about lost samples, so it is
        ignored and the arrival order is used, with loss detection from the envelope.
    transport
        ``"serial"``, ``"ble"`` or ``"sim"``; chooses the default clock for arrival-order timing (below).
    clock
        The clock model to use. Default: ``ClockSync()``; for arrival-order timing with ``step_quantum_s`` one
        period, and over serial (or sim, which is served over a pseudo-terminal) a ``step_tolerance_s`` of 0.6
        period so that single lost samples are found. Over BLE the tolerance stays at its default: the fastest
        sample of each connection event slides slowly through one period with the drift, which a small tolerance
        would mistake for losses.

    The first sample fixes :attr:`source_`: its device time if it has one, else its counter, else arrival order.
    """

    def __init__(
        self,
        sampling_rate_hz: float,
        seq_modulus: int | None = None,
        transport: str = "serial",
        clock: ClockSync | None = None,
        device_seq: bool = True,
    ) -> None:
        if not sampling_rate_hz > 0.0:
            raise ValueError(f"SampleTimer: sampling_rate_hz must be > 0, got {sampling_rate_hz}")
        if transport not in ("serial", "ble", "sim"):
            raise ValueError(f"SampleTimer: transport must be 'serial', 'ble' or 'sim', got {transport!r}")
        self.transport = transport
        self.device_seq = device_seq
        self.sampling_rate_hz = sampling_rate_hz
        self.seq_modulus = seq_modulus
        #: The clock model (built at the first sample when none was given).
        self.clock: ClockSync | None = clock
        self._unwrap = SequenceUnwrapper(seq_modulus, sampling_rate_hz)
        self._period_s = 1.0 / sampling_rate_hz
        self.source_: str | None = None
        self.n_samples_ = 0
        #: Samples dropped as duplicates (a repeated counter value).
        self.n_dropped_ = 0
        #: Samples that lacked the time or counter their sensor otherwise sends (placed one period after the last).
        self.n_untimed_ = 0
        self._link_broken = False
        # Device-clock sensors take a short path once started (the host time of the last sample is not needed).
        self._fast_device = False
        self._index = -1
        self._last_device_s = 0.0
        self._last_host_s = 0.0

    def _default_clock(self) -> ClockSync:
        if self.source_ != SOURCE_ARRIVAL:
            return ClockSync()
        if self.transport == "ble":
            return ClockSync(step_quantum_s=self._period_s)
        return ClockSync(step_quantum_s=self._period_s, step_tolerance_s=0.6 * self._period_s)

    def link_event(self, event: LinkEvent) -> None:
        """Take note of a link event of this sensor: after a disconnect, or a gap of unknown size, a counter or the
        arrival order no longer gives the index, so the clock is re-anchored at the next sample."""
        if event.state is LinkState.DISCONNECTED or (event.state is LinkState.GAP and event.n_missing is None):
            self._link_broken = True

    def stamp(self, device_time_s: float | None, seq: int | None, host_time_s: float) -> float | None:
        """The sample's host-clock time, s (strictly increasing), or ``None`` if the sample is a duplicate.

        A device time that is not finite counts as missing (``n_untimed_``)."""
        if device_time_s is not None and not math.isfinite(device_time_s):
            device_time_s = None
        if not self.device_seq:
            seq = None
        if self._fast_device and device_time_s is not None and not self._link_broken:
            self._last_device_s = device_time_s
            self.n_samples_ += 1
            return self._clock_update(device_time_s, host_time_s)
        clock = self.clock
        if clock is None:
            if device_time_s is not None:
                self.source_ = SOURCE_DEVICE_TIME
            else:
                self.source_ = SOURCE_SEQUENCE if seq is not None else SOURCE_ARRIVAL
            clock = self.clock = self._default_clock()
        elif self.source_ is None:
            self.source_ = (
                SOURCE_DEVICE_TIME
                if device_time_s is not None
                else SOURCE_SEQUENCE
                if seq is not None
                else SOURCE_ARRIVAL
            )
        broken = self._link_broken and self.n_samples_ > 0
        self._link_broken = False
        if self.source_ == SOURCE_DEVICE_TIME:
            if device_time_s is None:
                self.n_untimed_ += 1
                device_time_s = self._last_device_s + self._period_s
            if broken:
                clock.expect_break()  # the device clock may or may not have kept running
            device_s = device_time_s
        else:
            if self.source_ == SOURCE_SEQUENCE and seq is not None:
                index = self._unwrap.restart(seq, host_time_s) if broken else self._unwrap.update(seq, host_time_s)
                if index is None:
                    self.n_dropped_ += 1
                    return None
                if broken or self._unwrap.restarted_:
                    clock.reset()
                index = max(index, self._index + 1)
            elif broken:
                index = self._index + max(1, round((host_time_s - self._last_host_s) * self.sampling_rate_hz))
                clock.reset()
            else:
                if self.source_ == SOURCE_SEQUENCE:
                    self.n_untimed_ += 1
                index = self._index + 1
            self._index = index
            device_s = index * self._period_s
        self._last_device_s = device_s
        self._last_host_s = host_time_s
        self.n_samples_ += 1
        if self.source_ == SOURCE_DEVICE_TIME:
            self._fast_device = True
            self._clock_update = clock.update
            self._clock_update_many = clock.update_many
        return clock.update(device_s, host_time_s)

    def stamp_block(
        self, device_time_s: Sequence[float] | None, seq: Sequence[int] | None, host_time_s: Sequence[float]
    ) -> list[float | None]:
        """:meth:`stamp` for each sample of a block in turn (``None`` for ``device_time_s`` or ``seq`` where the
        block has none); the same results. A block of a running device-clock sensor is mapped in one call
        (:meth:`ClockSync.update_many`)."""
        n = len(host_time_s)
        if (
            n
            and self._fast_device
            and device_time_s is not None
            and not self._link_broken
            # All finite (a sum of finite values is finite, or overflows: then sample by sample).
            and math.isfinite(sum(device_time_s))
            and math.isfinite(sum(host_time_s))
        ):
            self._last_device_s = device_time_s[-1]
            self.n_samples_ += n
            return self._clock_update_many(device_time_s, host_time_s)  # type: ignore[return-value]
        stamp = self.stamp
        devices = device_time_s if device_time_s is not None else [None] * n
        seqs = seq if seq is not None else [None] * n
        return [stamp(d, s, h) for d, s, h in zip(devices, seqs, host_time_s, strict=True)]
