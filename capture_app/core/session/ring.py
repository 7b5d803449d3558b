"""Fixed-size ring buffers: what live plots and live checks read, with memory that never grows with the recording."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


class RingBuffer:
    """The last ``capacity`` rows of ``width`` float64 columns. Appending is one vectorised copy; :meth:`view`
    returns the kept rows oldest first (a copy)."""

    def __init__(self, capacity: int, width: int = 1) -> None:
        if capacity < 1 or width < 1:
            raise ValueError(f"RingBuffer needs capacity ≥ 1 and width ≥ 1, got {capacity} and {width}")
        self.capacity = capacity
        self.width = width
        self._data = np.full((capacity, width), np.nan)
        #: Rows appended since the start (the buffer keeps the last ``capacity`` of them).
        self.n_written = 0

    def append(self, rows: FloatArray) -> None:
        """Append ``(n, width)`` rows (or ``(n,)`` values for width 1)."""
        rows = np.asarray(rows, dtype=float).reshape(-1, self.width)
        n = rows.shape[0]
        if n == 0:
            return
        if n >= self.capacity:
            rows = rows[-self.capacity :]
            start = (self.n_written + n - self.capacity) % self.capacity
            positions = (start + np.arange(self.capacity)) % self.capacity
        else:
            positions = (self.n_written + np.arange(n)) % self.capacity
        self._data[positions] = rows
        self.n_written += n

    @property
    def n_kept(self) -> int:
        return min(self.n_written, self.capacity)

    def view(self, last: int | None = None) -> FloatArray:
        """The last ``last`` (default: all kept) rows, oldest first, ``(n, width)``."""
        n = self.n_kept if last is None else max(0, min(last, self.n_kept))
        order = (self.n_written - n + np.arange(n)) % self.capacity
        return self._data[order]

    def clear(self) -> None:
        self._data.fill(np.nan)
        self.n_written = 0

    @property
    def nbytes(self) -> int:
        """Memory held by the data, bytes (constant)."""
        return int(self._data.nbytes)


class PlotBuffers:
    """Aligned ring buffers of the last ``window_s`` seconds of grid rows for live plots: one time column and one
    buffer per channel (e.g. ``shank_l.gyr_rad_s`` with 3 columns, ``knee_flexion_l_deg`` with 1). Every append
    writes every channel (NaN where a channel has nothing), so row ``i`` of each channel is at ``time_s[i]``.
    A UI redraws from :meth:`snapshot` on a timer (20-30 Hz)."""

    def __init__(self, channels: dict[str, int], window_s: float = 10.0, rate_hz: float = 100.0) -> None:
        self.window_s = window_s
        self.rate_hz = rate_hz
        capacity = max(1, round(window_s * rate_hz))
        self.time_s = RingBuffer(capacity)
        self.channels = {name: RingBuffer(capacity, width) for name, width in channels.items()}

    def append(self, time_s: FloatArray, values: dict[str, FloatArray]) -> None:
        """Append rows at ``time_s``; channels missing from ``values`` get NaN rows."""
        n = int(np.asarray(time_s).size)
        if n == 0:
            return
        self.time_s.append(time_s)
        for name, ring in self.channels.items():
            v = values.get(name)
            ring.append(np.full((n, ring.width), np.nan) if v is None else v)

    def snapshot(self, names: Iterable[str] | None = None) -> dict[str, FloatArray]:
        """``{"time_s": (n,), name: (n, width) …}``, oldest first (copies)."""
        out = {"time_s": self.time_s.view()[:, 0]}
        for name in names if names is not None else self.channels:
            out[name] = self.channels[name].view()
        return out

    @property
    def nbytes(self) -> int:
        return self.time_s.nbytes + sum(r.nbytes for r in self.channels.values())
