"""Unwrapping of device counters that wrap around (a uint32 µs clock, a uint16 packet counter).

Decoders keep one :class:`CounterUnwrapper` per counter, across ``feed``/``decode`` calls, so that
``DeviceReading.device_time_s`` and ``DeviceReading.seq`` keep increasing when the device counter wraps.

Rule: a step of less than half the counter range forward (modulo the range) is a normal step, including a wrap.
A step backwards (a forward step of half the range or more) cannot come from a counter that only increments; it is
taken as a device restart: the unwrapped value continues one tick after the previous one plus the new raw value
(as if the restart happened right after the previous sample), and ``n_restarts`` counts it so a driver can mark a gap.
For a uint32 µs clock half the range is 35.8 min; for a uint16 counter at 200 Hz it is 164 s of lost samples.
"""

from __future__ import annotations

from collections.abc import Sequence


class CounterUnwrapper:
    """Turns a wrapping counter of ``n_bits`` bits into a monotonically non-decreasing integer."""

    def __init__(self, n_bits: int) -> None:
        if not 1 <= n_bits <= 64:
            raise ValueError(f"counter width must be 1..64 bits, got {n_bits}")
        self.n_bits = n_bits
        self.modulus = 1 << n_bits
        self._half = self.modulus >> 1
        self._last_raw: int | None = None
        self._last_value = 0
        #: Times the counter passed its maximum and started again from zero.
        self.n_wraps = 0
        #: Backward steps taken as device restarts (see the module docstring).
        self.n_restarts = 0

    def unwrap(self, raw: int) -> int:
        """The unwrapped value of the raw counter reading ``raw`` (``0 <= raw < 2**n_bits``)."""
        return self.unwrap_many((raw,))[0]

    def unwrap_many(self, raws: Sequence[int]) -> list[int]:
        """:meth:`unwrap` of each raw reading in turn (one call for a block of readings: the decoders' hot path)."""
        out: list[int] = []
        append = out.append
        last_raw = self._last_raw
        value = self._last_value
        mask = self.modulus - 1
        half = self._half
        for raw in raws:
            if last_raw is None:
                value = raw
            else:
                delta = (raw - last_raw) & mask
                if delta < half:
                    if raw < last_raw:
                        self.n_wraps += 1
                    value += delta
                else:
                    self.n_restarts += 1
                    value += 1 + raw
            last_raw = raw
            append(value)
        self._last_raw = last_raw
        self._last_value = value
        return out

    def reset(self) -> None:
        """Forget the history (a new connection): the next raw value is taken as is."""
        self._last_raw = None
        self._last_value = 0
