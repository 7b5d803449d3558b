"""All sensors onto one time grid: linear interpolation for vectors, SLERP for quaternions, gaps kept as gaps.

The grid is absolute: row ``k`` is at ``k / rate_hz`` seconds of host time, so a streaming run and a batch run (and
two recordings) agree on where rows fall without agreeing on a start. A grid row at ``t`` gets a sensor's value from
the two samples around it, ``t_i ≤ t < t_(i+1)``, only if they are neighbours in the stream: not more than
``gap_factor`` nominal sample periods apart, and with no link event (gap, disconnect) between them. Otherwise the row
is ``NaN`` and invalid for that sensor; a row exactly on a sample takes that sample. Nothing is ever bridged across a
gap, and nothing is extrapolated past a sensor's first or last sample.

Both forms pick the same pairs of samples and compute the same arithmetic in the same order, so their outputs are
equal bit for bit (and tested so): :class:`GridResampler` over whole recordings with one kernel vectorised over all
sensors at once (:func:`interpolate_block`), :class:`StreamingResampler` block by block as samples arrive, with
memory bounded by its latency budget. The streaming form applies the kernel's rule in plain Python over the few rows
of each emit (at 20 emits a second numpy's cost per call is more than the work: ``docs/drivers.md``, "Measured"), and
both share :func:`slerp`.

Every sensor's samples are rows of :data:`ROW_WIDTH` values, ``acc_m_s2`` (3), ``gyr_rad_s`` (3), ``mag_ut`` (3),
``quat_wxyz`` (4), with ``NaN`` where a sample lacks a channel; a grid row next to such a sample is ``NaN`` in that
channel only (the sensor's ``valid`` mask speaks for the time grid, i.e. for acc and gyr).
"""

from __future__ import annotations

import bisect
import itertools
import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from sensor_drivers.blocks import ACC_COLS, GYR_COLS, MAG_COLS, QUAT_COLS, ROW_WIDTH, sample_row

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

_NAN_ROW = (math.nan,) * ROW_WIDTH

__all__ = [
    "ACC_COLS",
    "GYR_COLS",
    "MAG_COLS",
    "QUAT_COLS",
    "ROW_WIDTH",
    "GridBlock",
    "GridResampler",
    "SensorGrid",
    "SensorSeries",
    "StreamingResampler",
    "continuous_signs",
    "grid_index_after",
    "grid_index_at_or_after",
    "grid_times",
    "interpolate_block",
    "sample_row",
    "slerp",
]


@dataclass(frozen=True)
class SensorGrid:
    """One sensor's values on the grid rows of a block. Invalid rows are ``NaN`` in every channel."""

    valid: BoolArray
    acc_m_s2: FloatArray
    gyr_rad_s: FloatArray
    #: ``None`` where the sensor has no magnetometer / no device quaternion.
    mag_ut: FloatArray | None = None
    quat_wxyz: FloatArray | None = None

    @classmethod
    def from_rows(cls, values: FloatArray, valid: BoolArray, has_mag: bool, has_quat: bool) -> SensorGrid:
        """Split a block of rows into named channels (views, no copies)."""
        return cls(
            valid=valid,
            acc_m_s2=values[:, ACC_COLS],
            gyr_rad_s=values[:, GYR_COLS],
            mag_ut=values[:, MAG_COLS] if has_mag else None,
            quat_wxyz=values[:, QUAT_COLS] if has_quat else None,
        )


@dataclass(frozen=True)
class GridBlock:
    """Consecutive grid rows ``[first_index, first_index + n_rows)``, at ``time_s = index / rate_hz``."""

    rate_hz: float
    first_index: int
    time_s: FloatArray
    sensors: dict[str, SensorGrid] = field(default_factory=dict)

    @property
    def n_rows(self) -> int:
        """Rows in the block."""
        return int(self.time_s.size)

    @staticmethod
    def concatenate(blocks: Sequence[GridBlock]) -> GridBlock:
        """Join consecutive blocks (as a streaming run emits them) into one."""
        if not blocks:
            raise ValueError("GridBlock.concatenate: no blocks")
        for a, b in itertools.pairwise(blocks):
            if b.first_index != a.first_index + a.n_rows or b.sensors.keys() != a.sensors.keys():
                raise ValueError("GridBlock.concatenate: blocks must be consecutive and carry the same sensors")

        def cat(parts: list[FloatArray | None]) -> FloatArray | None:
            return None if parts[0] is None else np.concatenate(parts)  # type: ignore[arg-type]

        sensors = {}
        for name in blocks[0].sensors:
            grids = [b.sensors[name] for b in blocks]
            sensors[name] = SensorGrid(
                valid=np.concatenate([g.valid for g in grids]),
                acc_m_s2=np.concatenate([g.acc_m_s2 for g in grids]),
                gyr_rad_s=np.concatenate([g.gyr_rad_s for g in grids]),
                mag_ut=cat([g.mag_ut for g in grids]),
                quat_wxyz=cat([g.quat_wxyz for g in grids]),
            )
        time_s = np.concatenate([b.time_s for b in blocks])
        return GridBlock(blocks[0].rate_hz, blocks[0].first_index, time_s, sensors)


def grid_index_at_or_after(time_s: float, rate_hz: float) -> int:
    """The first grid index ``k`` with ``k / rate_hz ≥ time_s`` (exact, whatever the rounding of ``time_s·rate``)."""
    k = math.ceil(time_s * rate_hz)
    while k / rate_hz < time_s:
        k += 1
    while (k - 1) / rate_hz >= time_s:
        k -= 1
    return k


def grid_index_after(time_s: float, rate_hz: float) -> int:
    """The first grid index ``k`` with ``k / rate_hz > time_s``."""
    k = grid_index_at_or_after(time_s, rate_hz)
    return k + 1 if k / rate_hz == time_s else k


def grid_times(first_index: int, stop_index: int, rate_hz: float) -> FloatArray:
    """Times of grid rows ``[first_index, stop_index)``, s."""
    return np.arange(first_index, stop_index, dtype=np.float64) / rate_hz


def _rowdot(a: FloatArray, b: FloatArray) -> FloatArray:
    """Row-wise dot product of (m, 4) arrays, summed left to right like the streaming form's float arithmetic."""
    return a[:, 0] * b[:, 0] + a[:, 1] * b[:, 1] + a[:, 2] * b[:, 2] + a[:, 3] * b[:, 3]


def continuous_signs(quat_wxyz: FloatArray) -> FloatArray:
    """Flip quaternions so that each has a non-negative dot product with the one before: ``q`` and ``−q`` are one
    rotation and a device may send either. (The streaming form does the same sample by sample in ``push``.)"""
    if quat_wxyz.shape[0] < 2:
        return quat_wxyz
    flips = np.ones(quat_wxyz.shape[0])
    flips[1:] = np.where(_rowdot(quat_wxyz[1:], quat_wxyz[:-1]) < 0.0, -1.0, 1.0)
    return quat_wxyz * np.cumprod(flips)[:, None]


def slerp(q0_wxyz: FloatArray, q1_wxyz: FloatArray, w: FloatArray) -> FloatArray:
    """Spherical linear interpolation (Shoemake 1985) of quaternion rows (normalised here), along the shorter arc;
    unit output.

    Falls back to normalised linear interpolation where the two are within 1e-6 rad, where both agree to that
    precision and SLERP's ``sin θ`` denominator loses it.
    """
    q0 = q0_wxyz / np.sqrt(_rowdot(q0_wxyz, q0_wxyz))[:, None]
    q1 = q1_wxyz / np.sqrt(_rowdot(q1_wxyz, q1_wxyz))[:, None]
    dot = _rowdot(q0, q1)
    q1 = np.where((dot < 0.0)[:, None], -q1, q1)  # the shorter arc
    dot = np.minimum(np.abs(dot), 1.0)
    theta = np.arccos(dot)
    sin_theta = np.sin(theta)
    near = sin_theta < 1e-6
    safe = np.where(near, 1.0, sin_theta)
    a = np.where(near, 1.0 - w, np.sin((1.0 - w) * theta) / safe)
    b = np.where(near, w, np.sin(w * theta) / safe)
    q = a[:, None] * q0 + b[:, None] * q1
    return q / np.sqrt(_rowdot(q, q))[:, None]


def interpolate_block(
    times_s: Sequence[FloatArray],
    rows: FloatArray,
    gap_before: BoolArray,
    max_interval_s: Sequence[float],
    grid_s: FloatArray,
) -> tuple[FloatArray, BoolArray, list[int]]:
    """The batch kernel, for several sensors at once.

    ``times_s[s]`` are sensor ``s``'s sample times (strictly increasing); ``rows`` and ``gap_before`` hold every
    sensor's samples one sensor after another (``gap_before[i]``: samples ``i−1`` and ``i`` must not be joined).
    Returns the values at ``grid_s`` as ``(n_sensors·m, ROW_WIDTH)`` (sensor ``s`` in rows ``[s·m, (s+1)·m)``,
    ``NaN`` where invalid), the ``(n_sensors·m,)`` valid mask, and per sensor the index of its last sample at or
    before the last grid time (where a stream keeps its tail from). Each output row depends only on the two samples
    around it, so a grid computed in pieces equals the grid computed at once.
    """
    m = grid_s.size
    n_sensors = len(times_s)
    counts = [t.size for t in times_s]
    n_total = sum(counts)
    out = np.full((n_sensors * m, ROW_WIDTH), np.nan)
    if m == 0 or n_sensors == 0:
        return out, np.zeros(n_sensors * m, dtype=bool), [-1] * n_sensors
    # Per sensor, the sample at or before each grid time (−1: none); everything else over all sensors at once.
    i = np.concatenate([np.searchsorted(t, grid_s, side="right") for t in times_s])
    i -= 1
    last_before = i[m - 1 :: m].tolist()
    if n_total == 0:
        return out, np.zeros(n_sensors * m, dtype=bool), last_before
    has_left = i >= 0
    inside = has_left & (i < np.repeat([c - 1 for c in counts], m))
    i0 = np.maximum(i, 0)
    i0 += np.repeat(list(itertools.accumulate(counts, initial=0))[:-1], m)
    np.minimum(i0, n_total - 1, out=i0)  # any valid index where there is no sample
    i1 = i0 + inside
    all_t = np.concatenate(times_s)
    grid_all = np.concatenate([grid_s] * n_sensors)
    t0 = all_t[i0]
    dt = all_t[i1] - t0
    joined = inside & (dt <= np.repeat(max_interval_s, m)) & ~gap_before[i1]
    valid = joined | (has_left & (grid_all == t0))
    rows_out = np.flatnonzero(valid)
    if rows_out.size == 0:
        return out, valid, last_before
    j = joined[rows_out]
    j0 = i0[rows_out]
    j1 = np.where(j, i1[rows_out], j0)  # an exact hit without a neighbour "interpolates" with itself
    # An exact hit without a neighbour has weight 0 / 1 = 0: grid time and sample time are equal.
    w = (grid_all[rows_out] - t0[rows_out]) / np.where(j, dt[rows_out], 1.0)
    v0 = rows[j0]
    v1 = rows[j1]
    res = v0 + w[:, None] * (v1 - v0)
    has_quat = ~(np.isnan(v0[:, QUAT_COLS.start]) | np.isnan(v1[:, QUAT_COLS.start]))
    if has_quat.any():
        q = np.flatnonzero(has_quat)
        res[q, QUAT_COLS] = slerp(v0[q, QUAT_COLS], v1[q, QUAT_COLS], w[q])
    out[rows_out] = res
    return out, valid, last_before


@dataclass(frozen=True)
class SensorSeries:
    """One sensor's samples for batch resampling: mapped host times and channels (``(n, 3)`` / ``(n, 4)``)."""

    time_s: ArrayLike
    acc_m_s2: ArrayLike
    gyr_rad_s: ArrayLike
    nominal_rate_hz: float
    mag_ut: ArrayLike | None = None
    quat_wxyz: ArrayLike | None = None
    #: ``gap_before[i]``: a link event (gap, disconnect) lies between samples ``i−1`` and ``i``.
    gap_before: ArrayLike | None = None

    def arrays(self) -> tuple[FloatArray, FloatArray, BoolArray]:
        """``(time_s, rows, gap_before)`` with rows of :data:`ROW_WIDTH`; raises ``ValueError`` on wrong shapes."""
        t = np.asarray(self.time_s, dtype=float)
        n = t.size
        if t.ndim != 1:
            raise ValueError(f"SensorSeries: time_s must be 1-D, got shape {t.shape}")
        rows = np.full((n, ROW_WIDTH), np.nan)
        channels = {
            "acc_m_s2": (self.acc_m_s2, ACC_COLS),
            "gyr_rad_s": (self.gyr_rad_s, GYR_COLS),
            "mag_ut": (self.mag_ut, MAG_COLS),
            "quat_wxyz": (self.quat_wxyz, QUAT_COLS),
        }
        for name, (data, cols) in channels.items():
            if data is None:
                continue
            a = np.asarray(data, dtype=float)
            width = cols.stop - cols.start
            if a.shape != (n, width):
                raise ValueError(f"SensorSeries: {name} has shape {a.shape}; {n} samples need ({n}, {width})")
            rows[:, cols] = a
        g = np.zeros(n, dtype=bool) if self.gap_before is None else np.asarray(self.gap_before, dtype=bool)
        if g.shape != (n,):
            raise ValueError(f"SensorSeries: gap_before has shape {g.shape}; {n} samples need ({n},)")
        return t, rows, g


def _drop_out_of_order(t: FloatArray, rows: FloatArray, g: BoolArray) -> tuple[FloatArray, FloatArray, BoolArray, int]:
    """Drop samples whose time does not increase (as the streaming form drops them on arrival); a gap marked on a
    dropped sample still separates the kept samples around it."""
    before = np.maximum.accumulate(np.concatenate([[-np.inf], np.where(np.isnan(t), -np.inf, t)]))[:-1]
    keep = t > before  # False for NaN too
    n_dropped = int(np.count_nonzero(~keep))
    if n_dropped:
        g = g.copy()
        pending = False
        for k in range(t.size):
            if keep[k]:
                g[k] |= pending
                pending = False
            else:
                pending |= bool(g[k])
    return t[keep], rows[keep], g[keep], n_dropped


def _check_grid_params(rate_hz: float, gap_factor: float) -> None:
    if not rate_hz > 0.0:
        raise ValueError(f"resampling: rate_hz must be > 0, got {rate_hz}")
    if not gap_factor >= 1.0:
        raise ValueError(f"resampling: gap_factor must be ≥ 1 (in nominal sample periods), got {gap_factor}")


class GridResampler:
    """Batch resampling of several sensors onto one grid (the offline form of :class:`StreamingResampler`).

    Parameters
    ----------
    rate_hz
        Grid rate (rows at ``k / rate_hz`` s).
    gap_factor
        Two consecutive samples more than ``gap_factor`` nominal periods apart are not joined (a gap). The default
        1.5 makes a single lost sample a gap: with mapped device times consecutive samples are one period apart to
        within the clock model's slew (±5 %), so anything longer is missing data.
    start_s, end_s
        Grid span; by default from the earliest first sample to the latest last sample of all sensors.
    """

    def __init__(
        self, rate_hz: float = 100.0, gap_factor: float = 1.5, start_s: float | None = None, end_s: float | None = None
    ) -> None:
        _check_grid_params(rate_hz, gap_factor)
        self.rate_hz = rate_hz
        self.gap_factor = gap_factor
        self.start_s = start_s
        self.end_s = end_s

    def resample(self, series: Mapping[str, SensorSeries]) -> GridResampler:
        """Resample; sets ``grid_`` (a :class:`GridBlock`) and ``n_dropped_`` (per sensor: samples out of order)."""
        names = list(series)
        times, rows, gaps = [], [], []
        self.n_dropped_: dict[str, int] = {}
        for name in names:
            t, r, g, n_dropped = _drop_out_of_order(*series[name].arrays())
            if series[name].quat_wxyz is not None:
                r[:, QUAT_COLS] = continuous_signs(r[:, QUAT_COLS])
            times.append(t)
            rows.append(r)
            gaps.append(g)
            self.n_dropped_[name] = n_dropped
        firsts = [t[0] for t in times if t.size]
        lasts = [t[-1] for t in times if t.size]
        start = self.start_s if self.start_s is not None else min(firsts, default=math.inf)
        end = self.end_s if self.end_s is not None else max(lasts, default=-math.inf)
        k0 = grid_index_at_or_after(start, self.rate_hz) if start < math.inf else 0
        k1 = max(k0, grid_index_after(end, self.rate_hz)) if end > -math.inf else k0
        grid = grid_times(k0, k1, self.rate_hz)
        out, valid, _ = interpolate_block(
            times,
            np.concatenate(rows) if rows else np.empty((0, ROW_WIDTH)),
            np.concatenate(gaps) if gaps else np.empty(0, dtype=bool),
            [self.gap_factor / series[name].nominal_rate_hz for name in names],
            grid,
        )
        m = grid.size
        self.grid_ = GridBlock(
            self.rate_hz,
            k0,
            grid,
            {
                name: SensorGrid.from_rows(
                    out[s * m : (s + 1) * m],
                    valid[s * m : (s + 1) * m],
                    series[name].mag_ut is not None,
                    series[name].quat_wxyz is not None,
                )
                for s, name in enumerate(names)
            },
        )
        return self


class _Track:
    """One sensor's state in the streaming resampler: the samples still needed, as plain lists (times, rows, and
    where a link event lies before a sample: its position among those held, ``gap_at``)."""

    __slots__ = (
        "gap_at",
        "gap_pending",
        "has_mag",
        "has_quat",
        "last_quat",
        "last_time_s",
        "max_interval_s",
        "n_dropped",
        "n_late",
        "negate",
        "rows",
        "time_s",
    )

    def __init__(self, nominal_rate_hz: float, has_mag: bool, has_quat: bool, gap_factor: float) -> None:
        self.has_mag = has_mag
        self.has_quat = has_quat
        self.max_interval_s = gap_factor / nominal_rate_hz
        self.time_s: list[float] = []
        self.rows: list[Sequence[float]] = []
        self.gap_at: list[int] = []
        self.last_time_s = -math.inf
        self.last_quat: Sequence[float] | None = None  # as received
        self.negate = False
        self.gap_pending = False
        self.n_dropped = 0
        self.n_late = 0


class StreamingResampler:
    """Incremental resampling: push samples as they arrive, take grid rows as soon as they are final.

    A row at ``t`` is emitted once every sensor has a sample after ``t``, or once ``latency_budget_s`` of host time
    has passed since ``t`` (a late sensor is then invalid in that row; its samples that arrive after their rows
    were emitted are counted in ``n_late_``). Memory: per sensor, the samples of the last ``latency_budget_s`` plus
    those since the last :meth:`emit`. Per sample, :meth:`push` is a few list appends; the numpy work is done once
    per :meth:`emit` for all sensors together.

    Parameters are those of :class:`GridResampler`, plus ``latency_budget_s``; ``start_s`` defaults to the earliest
    first sample seen when rows are first emitted.
    """

    def __init__(
        self,
        rate_hz: float = 100.0,
        gap_factor: float = 1.5,
        latency_budget_s: float = 0.25,
        start_s: float | None = None,
    ) -> None:
        _check_grid_params(rate_hz, gap_factor)
        if not latency_budget_s >= 0.0:
            raise ValueError(f"StreamingResampler: latency_budget_s must be ≥ 0, got {latency_budget_s}")
        self.rate_hz = rate_hz
        self.gap_factor = gap_factor
        self.latency_budget_s = latency_budget_s
        self.start_s = start_s
        self._tracks: dict[str, _Track] = {}
        self._next_index: int | None = None
        self._emitted_s = -math.inf  # time of the last row emitted

    def add_sensor(self, sensor_id: str, nominal_rate_hz: float, has_mag: bool = False, has_quat: bool = False) -> None:
        """Declare a sensor before its first sample, and before rows are emitted (so that every row carries it)."""
        if sensor_id in self._tracks:
            raise ValueError(f"StreamingResampler: sensor {sensor_id!r} added twice")
        if not nominal_rate_hz > 0.0:
            raise ValueError(f"StreamingResampler: nominal_rate_hz must be > 0, got {nominal_rate_hz}")
        if self._next_index is not None:
            raise ValueError(f"StreamingResampler: sensor {sensor_id!r} added after rows were emitted")
        self._tracks[sensor_id] = _Track(nominal_rate_hz, has_mag, has_quat, self.gap_factor)

    def _track(self, sensor_id: str) -> _Track:
        track = self._tracks.get(sensor_id)
        if track is None:
            raise KeyError(f"StreamingResampler: unknown sensor {sensor_id!r}; added: {sorted(self._tracks)}")
        return track

    def push(self, sensor_id: str, time_s: float, row: Sequence[float]) -> None:
        """One sample: its mapped host time and its row (:func:`sample_row`). Samples whose time does not
        increase are dropped (counted in ``n_dropped_``)."""
        track = self._tracks.get(sensor_id) or self._track(sensor_id)
        if not time_s > track.last_time_s:  # out of order, repeated, or NaN
            track.n_dropped += 1
            return
        if track.last_time_s < self._emitted_s and self._late(track.last_time_s, time_s):
            track.n_late += 1
        if track.has_quat:
            # Sign continuity, sample by sample, with the same arithmetic as continuous_signs().
            w, x, y, z = row[9], row[10], row[11], row[12]
            last = track.last_quat
            if last is not None and w * last[0] + x * last[1] + y * last[2] + z * last[3] < 0.0:
                track.negate = not track.negate
            track.last_quat = (w, x, y, z)
            if track.negate:
                row = (*row[:9], -w, -x, -y, -z)
        track.last_time_s = time_s
        if track.gap_pending:
            track.gap_at.append(len(track.time_s))
            track.gap_pending = False
        track.time_s.append(time_s)
        track.rows.append(row)

    def push_block(self, sensor_id: str, time_s: Sequence[float], rows: Sequence[Sequence[float]]) -> None:
        """Consecutive samples of one sensor: their mapped host times and their rows (:func:`sample_row`; a
        :class:`~sensor_drivers.blocks.SampleBlock`'s ``rows``). The same result as :meth:`push` for each in turn,
        with one check for the whole block when it is in order and on time (the common case)."""
        track = self._tracks.get(sensor_id) or self._track(sensor_id)
        n = len(time_s)
        if len(rows) != n:
            raise ValueError(f"StreamingResampler.push_block: {len(rows)} rows for {n} times")
        if not n:
            return
        times = time_s if type(time_s) is list else list(time_s)
        if (
            track.has_quat  # sign continuity, sample by sample
            or not times[0] > track.last_time_s
            or track.last_time_s < self._emitted_s  # may be late
            or not all(map(operator.lt, times, times[1:]))  # increasing (False for NaN)
        ):
            push = self.push
            for time, row in zip(times, rows, strict=True):
                push(sensor_id, time, row)
            return
        if track.gap_pending:
            track.gap_at.append(len(track.time_s))
            track.gap_pending = False
        track.time_s += times
        track.rows += rows
        track.last_time_s = times[-1]

    def _late(self, previous_s: float, time_s: float) -> bool:
        """Whether rows between a sensor's previous sample and this one were already emitted (without it)."""
        if previous_s == -math.inf:
            return time_s <= self._emitted_s
        return grid_index_after(previous_s, self.rate_hz) / self.rate_hz <= min(time_s, self._emitted_s)

    def mark_gap(self, sensor_id: str) -> None:
        """A link event (gap, disconnect): the next sample of this sensor is not joined to the previous one."""
        self._track(sensor_id).gap_pending = True

    def buffered_samples(self) -> dict[str, int]:
        """Samples held per sensor (what bounds memory)."""
        return {name: len(t.time_s) for name, t in self._tracks.items()}

    @property
    def n_late_(self) -> dict[str, int]:
        """Samples per sensor that arrived after the rows at their time had been emitted."""
        return {name: t.n_late for name, t in self._tracks.items()}

    @property
    def n_dropped_(self) -> dict[str, int]:
        """Samples per sensor dropped because their time did not increase."""
        return {name: t.n_dropped for name, t in self._tracks.items()}

    def emit(self, now_s: float) -> GridBlock | None:
        """Grid rows that are final at host time ``now_s`` (``None`` if there are none yet)."""
        horizon = now_s - self.latency_budget_s
        watermark = min((max(t.last_time_s, horizon) for t in self._tracks.values()), default=-math.inf)
        if watermark == -math.inf:
            return None
        return self._emit_before(grid_index_at_or_after(watermark, self.rate_hz))

    def flush(self) -> GridBlock | None:
        """Every remaining row up to the last sample of any sensor (end of stream)."""
        last = max((t.last_time_s for t in self._tracks.values()), default=-math.inf)
        if last == -math.inf:
            return None
        return self._emit_before(grid_index_after(last, self.rate_hz))

    def _emit_before(self, stop_index: int) -> GridBlock | None:
        tracks = list(self._tracks.values())
        k0 = self._next_index
        if k0 is None:
            # The grid starts at the earliest sample seen when the first rows go out.
            firsts = [t.time_s[0] for t in tracks if t.time_s]
            if not firsts:
                return None
            start = self.start_s if self.start_s is not None else min(firsts)
            k0 = grid_index_at_or_after(start, self.rate_hz)
        if stop_index <= k0:
            return None
        # The rows asked for, plus the next one: where each sensor's kept tail begins.
        rate_hz = self.rate_hz
        grid_ext = [k / rate_hz for k in range(k0, stop_index + 1)]  # = grid_times(), value for value
        m = len(grid_ext)
        out: list[Sequence[float]] = []
        valid: list[bool] = []
        arcs: list[tuple[int, Sequence[float], Sequence[float], float]] = []
        out_append = out.append
        valid_append = valid.append
        for track in tracks:
            times, rows, gap_at = track.time_s, track.rows, track.gap_at
            n = len(times)
            max_dt = track.max_interval_s
            has_quat = track.has_quat
            # interpolate_block's rule and arithmetic, row by row (see the module docstring).
            i = bisect.bisect_right(times, grid_ext[0]) - 1
            for g in grid_ext:
                while i + 1 < n and times[i + 1] <= g:
                    i += 1
                if i < 0:
                    out_append(_NAN_ROW)
                    valid_append(False)
                    continue
                t0 = times[i]
                if i + 1 < n and times[i + 1] - t0 <= max_dt and (not gap_at or i + 1 not in gap_at):
                    w = (g - t0) / (times[i + 1] - t0)
                    r0, r1 = rows[i], rows[i + 1]
                elif g == t0:  # an exact hit without a neighbour "interpolates" with itself, weight (g − t0) / 1 = 0
                    w = 0.0
                    r0 = r1 = rows[i]
                else:
                    out_append(_NAN_ROW)
                    valid_append(False)
                    continue
                if has_quat and r0[9] == r0[9] and r1[9] == r1[9]:  # both carry a quaternion (not NaN)
                    arcs.append((len(out), r0[9:13], r1[9:13], w))
                out_append([a + w * (b - a) for a, b in zip(r0, r1, strict=True)])
                valid_append(True)
            # Keep from the last sample at or before the next row on: the left neighbour of every later row.
            keep = max(i, 0)
            if keep:
                del times[:keep], rows[:keep]
                if gap_at:
                    track.gap_at = [k - keep for k in gap_at if k >= keep]
        values = np.array(out, dtype=float)
        if arcs:
            index, q0, q1, w = zip(*arcs, strict=True)
            values[list(index), QUAT_COLS] = slerp(np.array(q0), np.array(q1), np.array(w))
        valid_mask = np.array(valid, dtype=bool)
        grid = np.array(grid_ext[:-1])
        sensors = {}
        for s, (name, track) in enumerate(self._tracks.items()):
            block = slice(s * m, (s + 1) * m - 1)
            sensors[name] = SensorGrid.from_rows(values[block], valid_mask[block], track.has_mag, track.has_quat)
        self._next_index = stop_index
        self._emitted_s = float(grid[-1])
        return GridBlock(self.rate_hz, k0, grid, sensors)
