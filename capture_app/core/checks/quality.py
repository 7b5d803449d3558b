"""Live per-sensor signal quality over a sliding window: connection, rate, loss, jitter, clipping, magnetic field,
battery, radio signal, and a sensor stuck on one value.

Fed with the drivers' stream items (:class:`~sensor_drivers.sample.ImuSample`,
:class:`~sensor_drivers.sample.LinkEvent`) and/or grid blocks (:class:`~capture_app.core.signals.KitSignals`).
Memory is bounded: each sensor keeps a short summary per batch of samples (counts, first/last times and sequence
numbers, delay percentiles, extremes) for the last ``window_s``, at most one window of samples not yet summarised,
its recent link events and a few numbers; grid blocks older than the window are dropped. Adding a sample is one
dictionary look-up and one list append; samples are summarised in bulk, once, when ``verdicts_`` is read (cached until
the next update) or when a window's worth has piled up, and the window's figures are combined from the summaries. The
window is therefore ``window_s`` rounded out to whole summaries (one read interval). ``bench/accuracy_placement.py``
measures the cost.

Thresholds and their sources: ``docs/sensor-placement.md``, "Live signal quality".
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from capture_app.core.checks.placement import site_name
from capture_app.core.signals import KitSignals
from capture_app.core.verdict import Level, Verdict
from sensor_drivers.frames import G_M_S2
from sensor_drivers.sample import ImuSample, LinkEvent, LinkState, StreamItem
from sensor_drivers.sites import Site

FloatArray = NDArray[np.float64]

#: Counter widths tried when a sequence number goes backwards (8-, 16- and 32-bit device counters).
SEQ_MODULI = (256, 65536, 2**32)


@dataclass(frozen=True)
class QualityThresholds:
    """Limits of the live checks (``docs/sensor-placement.md`` gives the reasons)."""

    #: No sample for this long means the sensor is not sending, s.
    stale_s: float = 1.0
    #: Fewest samples in the window before rate, loss and jitter are judged.
    min_samples: int = 20
    #: Effective rate below this share of the nominal rate: warning, fail.
    rate_warn_ratio: float = 0.9
    rate_fail_ratio: float = 0.7
    #: Lost samples in the window, %: warning, fail.
    loss_warn_pct: float = 1.0
    loss_fail_pct: float = 5.0
    #: 95th percentile of the arrival delay beyond the fastest sample of the window, ms: warning, and fail at the
    #: live resampler's latency budget (later samples are dropped from the live grid; docs/timing.md).
    jitter_warn_ms: float = 100.0
    jitter_fail_ms: float = 250.0
    #: Clipped samples (device counters or values at full scale) in the window: any is a warning; this share a fail.
    clip_fail_fraction: float = 0.01
    #: A value within this share of the range counts as at full scale.
    full_scale_fraction: float = 0.98
    #: Battery, %: warning, fail.
    battery_warn_pct: float = 20.0
    battery_fail_pct: float = 10.0
    #: Received signal strength, dBm: warning, fail.
    rssi_warn_dbm: float = -80.0
    rssi_fail_dbm: float = -90.0
    #: Earth's field band (World Magnetic Model: 22-67 µT at the surface), µT.
    mag_min_ut: float = 25.0
    mag_max_ut: float = 65.0


@dataclass
class SensorQuality:
    """One sensor's figures over the window (``None``: not measurable from what was fed)."""

    sensor_id: str
    site: Site | None
    n_samples: int = 0
    connected: bool | None = None
    since_last_sample_s: float | None = None
    rate_hz: float | None = None
    nominal_rate_hz: float | None = None
    loss_pct: float | None = None
    longest_gap_s: float | None = None
    jitter_ms: float | None = None
    n_clipped: int = 0
    clip_fraction: float = 0.0
    mag_norm_ut: tuple[float, float] | None = None
    battery_pct: float | None = None
    rssi_dbm: float | None = None
    stuck: bool = False
    source: str = "stream"


@dataclass
class _Chunk:
    """A summary of consecutive samples of one sensor, computed once when they are converted in bulk: the window's
    figures are combined from these (a chunk is about one read interval of samples), never from single samples."""

    n: int
    host_first_s: float
    host_last_s: float
    #: Device clock at the first and last sample, if every sample had one and it increased.
    device_first_s: float | None
    device_last_s: float | None
    #: Unwrapped sequence numbers (continuing across chunks) at the first and last sample, if every sample had one.
    seq_first: int | None
    seq_last: int | None
    #: Longest interval between consecutive samples within the chunk, on the device clock if it has one, s.
    longest_gap_s: float
    #: Arrival delay against the device clock (else counter / nominal rate): smallest and 95th percentile, s.
    delay_min_s: float | None
    delay_p95_s: float | None
    n_full_scale: int
    #: Device clip counters (acc + gyr) at the first and last sample that reported them.
    clips_first: int | None
    clips_last: int | None
    mag_min_ut: float | None
    mag_max_ut: float | None
    #: Per-axis extremes of acceleration and angular velocity (all equal: a stuck sensor).
    low: FloatArray
    high: FloatArray


@dataclass
class _Sensor:
    """Bounded per-sensor state."""

    sensor_id: str
    site: Site | None
    nominal_rate_hz: float | None
    capacity: int
    #: Samples added since the last summary (converted to a chunk then, or when ``capacity`` is reached).
    pending: list[ImuSample] = field(default_factory=list)
    chunks: deque[_Chunk] = field(default_factory=lambda: deque(maxlen=4096))
    events: deque[LinkEvent] = field(default_factory=lambda: deque(maxlen=64))
    connected: bool | None = None
    battery_pct: float | None = None
    rssi_dbm: float | None = None
    #: Host time of the latest sample seen (kept when the window has moved past it).
    last_host_s: float | None = None
    #: The last raw and unwrapped sequence numbers, to continue the unwrapping in the next chunk.
    last_seq_raw: int | None = None
    last_seq: int | None = None
    grid: deque[tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]] = field(
        default_factory=lambda: deque(maxlen=4096))

    def flush(self, acc_limit: float, gyr_limit: float) -> None:
        """Summarise the pending samples into one chunk (values at or beyond the limits count as full scale)."""
        batch = self.pending
        if not batch:
            return
        self.pending = []
        n = len(batch)
        chain = itertools.chain.from_iterable
        host = np.fromiter((b.host_time_s for b in batch), float, n)
        acc = np.fromiter(chain(b.acc_m_s2 for b in batch), float, 3 * n).reshape(n, 3)
        gyr = np.fromiter(chain(b.gyr_rad_s for b in batch), float, 3 * n).reshape(n, 3)
        device_list = [b.device_time_s for b in batch]
        device = None if any(d is None for d in device_list) else np.asarray(device_list, dtype=float)
        if device is not None and n > 1 and not np.all(np.diff(device) > 0):
            device = None  # a restarted device clock: judge on arrival times
        seq_list = [b.seq for b in batch]
        seq = None
        if all(q is not None for q in seq_list):
            raw = np.asarray(seq_list, dtype=np.int64)
            if self.last_seq_raw is not None and self.last_seq is not None:
                continued = _unwrapped(np.concatenate([[self.last_seq_raw], raw]))
                seq = continued[1:] - continued[0] + self.last_seq
            else:
                seq = _unwrapped(raw)
            self.last_seq_raw, self.last_seq = int(raw[-1]), int(seq[-1])
        else:
            self.last_seq_raw = self.last_seq = None
        clock = device if device is not None else host
        if device is not None:
            delay = host - device
        elif seq is not None and self.nominal_rate_hz:
            delay = host - seq / self.nominal_rate_hz
        else:
            delay = None
        statuses = [b.status for b in batch]
        clips = [(st.acc_clip_count or 0) + (st.gyr_clip_count or 0) for st in statuses
                 if st is not None and (st.acc_clip_count is not None or st.gyr_clip_count is not None)]
        for st in reversed(statuses):
            if st is not None and st.battery_pct is not None:
                self.battery_pct = st.battery_pct
                break
        for st in reversed(statuses):
            if st is not None and st.rssi_dbm is not None:
                self.rssi_dbm = st.rssi_dbm
                break
        mags = [b.mag_ut for b in batch if b.mag_ut is not None]
        mag_norm = np.linalg.norm(np.asarray(mags, dtype=float), axis=1) if mags else None
        with np.errstate(invalid="ignore"):
            full = (np.any(np.abs(acc) >= acc_limit, axis=1) | np.any(np.abs(gyr) >= gyr_limit, axis=1))
        both = np.hstack([acc, gyr])
        self.chunks.append(_Chunk(
            n=n, host_first_s=float(host[0]), host_last_s=float(host[-1]),
            device_first_s=None if device is None else float(device[0]),
            device_last_s=None if device is None else float(device[-1]),
            seq_first=None if seq is None else int(seq[0]), seq_last=None if seq is None else int(seq[-1]),
            longest_gap_s=float(np.max(np.diff(clock))) if n > 1 else 0.0,
            delay_min_s=None if delay is None else float(delay.min()),
            delay_p95_s=None if delay is None else float(np.percentile(delay, 95)),
            n_full_scale=int(full.sum()),
            clips_first=clips[0] if clips else None, clips_last=clips[-1] if clips else None,
            mag_min_ut=None if mag_norm is None else float(mag_norm.min()),
            mag_max_ut=None if mag_norm is None else float(mag_norm.max()),
            low=both.min(axis=0), high=both.max(axis=0),
        ))
        self.last_host_s = float(host[-1])


class QualityMonitor:
    """Live signal quality of each sensor over the last ``window_s`` seconds.

    ``update(data, now_s=None)`` takes stream items (an iterable of ``ImuSample``/``LinkEvent``) or a grid block
    (``KitSignals``) and returns self; ``now_s`` is the host clock (stream items) or clip clock (grid) of "now",
    by default the latest time seen. ``reset()`` forgets everything. Results:

    - ``verdicts_``: per sensor one verdict per check (``ok`` included), worst first within a sensor;
    - ``stats_``: sensor id → :class:`SensorQuality`.
    """

    def __init__(
        self,
        window_s: float = 5.0,
        nominal_rate_hz: float | dict[str, float] | None = None,
        expected_sensors: dict[str, Site] | None = None,
        acc_range_m_s2: float = 16.0 * G_M_S2,
        gyr_range_rad_s: float = float(np.radians(2000.0)),
        uses_magnetometer: bool = False,
        thresholds: QualityThresholds | None = None,
    ) -> None:
        self.window_s = window_s
        #: Nominal rate (one for all sensors, or per sensor id); ``None``: not judged.
        self.nominal_rate_hz = nominal_rate_hz
        #: Sensors that should be sending (id → site); a missing one is reported.
        self.expected_sensors = expected_sensors
        #: Full-scale ranges of the devices (default ±16 g, ±2000 °/s).
        self.acc_range_m_s2 = acc_range_m_s2
        self.gyr_range_rad_s = gyr_range_rad_s
        self.uses_magnetometer = uses_magnetometer
        self.thresholds = thresholds
        self.reset()

    def reset(self) -> QualityMonitor:
        """Forget all sensors; returns self."""
        self._sensors: dict[str, _Sensor] = {}
        self._now_s: float | None = None
        self._grid_now_s: float | None = None
        self._cache: list[Verdict] | None = None
        self._stats: dict[str, SensorQuality] = {}
        return self

    # -- input ---------------------------------------------------------------------------------------------------
    def update(self, data: Iterable[StreamItem] | KitSignals, now_s: float | None = None) -> QualityMonitor:
        """Add stream items or a grid block; returns self."""
        if isinstance(data, KitSignals):
            self._add_block(data)
            if now_s is not None:
                self._grid_now_s = now_s
        else:
            sensors = self._sensors
            item = None
            for item in data:
                state = sensors.get(item.sensor_id)
                if state is None:
                    state = self._new_sensor(item.sensor_id, item.site)
                if type(item) is ImuSample:
                    state.pending.append(item)
                elif isinstance(item, LinkEvent):
                    state.events.append(item)
                    state.connected = item.state is not LinkState.DISCONNECTED
            if item is not None:
                # Items come in arrival order: the last one is the latest.
                self._now_s = item.host_time_s if self._now_s is None else max(self._now_s, item.host_time_s)
            for state in sensors.values():
                if len(state.pending) >= state.capacity:
                    state.flush(*self._limits())
                    self._prune(state)
            if now_s is not None:
                self._now_s = now_s
        self._cache = None
        return self

    def _new_sensor(self, sensor_id: str, site: Site | None) -> _Sensor:
        nominal = self._nominal(sensor_id)
        capacity = int(self.window_s * (nominal or 1000.0)) + 16
        state = _Sensor(sensor_id, site, nominal, capacity)
        self._sensors[sensor_id] = state
        return state

    def _nominal(self, sensor_id: str) -> float | None:
        if isinstance(self.nominal_rate_hz, dict):
            return self.nominal_rate_hz.get(sensor_id)
        return self.nominal_rate_hz

    def _add_block(self, block: KitSignals) -> None:
        if block.n_samples == 0:
            return
        for site, signals in block.sites.items():
            state = self._sensors.get(signals.sensor_id)
            if state is None:
                state = self._new_sensor(signals.sensor_id, site)
            mag = signals.mag_ut if signals.mag_ut is not None else np.full((block.n_samples, 3), np.nan)
            state.grid.append((block.time_s, signals.valid, signals.acc_m_s2, signals.gyr_rad_s, mag))
        end = float(block.time_s[-1])
        self._grid_now_s = end if self._grid_now_s is None else max(self._grid_now_s, end)
        self._grid_rate_hz = block.rate_hz
        horizon = self._grid_now_s - self.window_s
        for state in self._sensors.values():
            while state.grid and state.grid[0][0][-1] < horizon:
                state.grid.popleft()

    # -- results -------------------------------------------------------------------------------------------------
    @property
    def stats_(self) -> dict[str, SensorQuality]:
        """Sensor id → its figures over the window."""
        self._evaluate()
        return self._stats

    @property
    def verdicts_(self) -> list[Verdict]:
        """One verdict per check and sensor, ``ok`` included."""
        self._evaluate()
        assert self._cache is not None
        return self._cache

    def _evaluate(self) -> None:
        if self._cache is not None:
            return
        limits = self.thresholds or QualityThresholds()
        verdicts: list[Verdict] = []
        self._stats = {}
        for sensor_id, site in (self.expected_sensors or {}).items():
            if sensor_id not in self._sensors:
                subject = site.value if site is not None else sensor_id
                verdicts.append(Verdict(
                    Level.FAIL, "quality.connection",
                    f"No data from the {_name(site, sensor_id)} sensor yet.",
                    "Switch it on and check that it is paired with this computer.", subject=subject,
                    details={"sensor_id": sensor_id}))
        for state in self._sensors.values():
            stats = self._summarise(state, limits)
            self._stats[state.sensor_id] = stats
            own = self._judge(stats, limits)
            own.sort(key=lambda v: -v.level.rank)
            verdicts += own
        self._cache = verdicts

    def _prune(self, state: _Sensor) -> None:
        """Drop chunks and link events that ended before the window."""
        if self._now_s is None:
            return
        horizon = self._now_s - self.window_s
        while state.chunks and state.chunks[0].host_last_s < horizon:
            state.chunks.popleft()
        while state.events and state.events[0].host_time_s < horizon:
            state.events.popleft()

    def _limits(self) -> tuple[float, float]:
        fraction = (self.thresholds or QualityThresholds()).full_scale_fraction
        return fraction * self.acc_range_m_s2, fraction * self.gyr_range_rad_s

    def _summarise(self, state: _Sensor, limits: QualityThresholds) -> SensorQuality:
        state.flush(*self._limits())
        self._prune(state)
        stats = SensorQuality(state.sensor_id, state.site, connected=state.connected,
                              nominal_rate_hz=state.nominal_rate_hz, battery_pct=state.battery_pct,
                              rssi_dbm=state.rssi_dbm)
        if self._now_s is not None and state.last_host_s is not None:
            stats.since_last_sample_s = max(0.0, self._now_s - state.last_host_s)
        if state.chunks:
            self._stream_figures(state, stats, limits)
        elif state.grid:
            self._grid_figures(state, stats)
        return stats

    def _stream_figures(self, state: _Sensor, stats: SensorQuality, limits: QualityThresholds) -> None:
        """Combine the chunk summaries of the window (whole chunks: the window is ``window_s`` plus at most one
        read interval)."""
        chunks = list(state.chunks)
        n = sum(c.n for c in chunks)
        stats.n_samples = n
        if n == 0:
            return
        first, last = chunks[0], chunks[-1]
        on_device = all(c.device_first_s is not None for c in chunks) and all(
            b.device_first_s > a.device_last_s for a, b in itertools.pairwise(chunks))  # type: ignore[operator]
        if n >= limits.min_samples:
            if on_device:
                span = last.device_last_s - first.device_first_s  # type: ignore[operator]
                joins = [b.device_first_s - a.device_last_s for a, b in itertools.pairwise(chunks)]  # type: ignore[operator]
            else:
                span = last.host_last_s - first.host_first_s
                joins = [b.host_first_s - a.host_last_s for a, b in itertools.pairwise(chunks)]
            if span > 0:
                stats.rate_hz = (n - 1) / span
                stats.longest_gap_s = max([c.longest_gap_s for c in chunks] + joins)
            if all(c.seq_first is not None for c in chunks):
                expected = last.seq_last - first.seq_first + 1  # type: ignore[operator]
                stats.loss_pct = 100.0 * max(expected - n, 0) / max(expected, 1)
            else:
                missing = sum(e.n_missing or 0 for e in state.events if e.state is LinkState.GAP)
                stats.loss_pct = 100.0 * missing / (n + missing) if missing else None
            if all(c.delay_min_s is not None for c in chunks):
                fastest = min(c.delay_min_s for c in chunks)  # type: ignore[type-var]
                stats.jitter_ms = 1000.0 * (max(c.delay_p95_s for c in chunks) - fastest)  # type: ignore[operator]
        stats.n_clipped = sum(c.n_full_scale for c in chunks)
        reported = [c for c in chunks if c.clips_first is not None]
        if reported:
            stats.n_clipped = max(stats.n_clipped, max(reported[-1].clips_last - reported[0].clips_first, 0))  # type: ignore[operator]
        stats.clip_fraction = stats.n_clipped / n
        mags = [c for c in chunks if c.mag_min_ut is not None]
        if mags:
            stats.mag_norm_ut = (min(c.mag_min_ut for c in mags), max(c.mag_max_ut for c in mags))  # type: ignore[type-var]
        low = np.min([c.low for c in chunks], axis=0)
        high = np.max([c.high for c in chunks], axis=0)
        stats.stuck = n >= limits.min_samples and bool(np.all(low == high))

    def _grid_figures(self, state: _Sensor, stats: SensorQuality) -> None:
        stats.source = "grid"
        time_s = np.concatenate([g[0] for g in state.grid])
        horizon = (self._grid_now_s or float(time_s[-1])) - self.window_s
        keep = time_s >= horizon
        valid = np.concatenate([g[1] for g in state.grid])[keep]
        acc = np.concatenate([g[2] for g in state.grid])[keep]
        gyr = np.concatenate([g[3] for g in state.grid])[keep]
        stats.n_samples = int(valid.sum())
        if valid.size:
            stats.loss_pct = 100.0 * float(1.0 - valid.mean())
            missing_run = _longest_run(~valid)
            stats.longest_gap_s = missing_run / getattr(self, "_grid_rate_hz", 100.0)
            if valid.any():
                last_valid = float(time_s[keep][valid][-1])
                stats.since_last_sample_s = max(0.0, (self._grid_now_s or last_valid) - last_valid)
        acc, gyr = acc[valid], gyr[valid]
        if acc.shape[0]:
            clipped = self._at_full_scale(acc, gyr)
            stats.n_clipped = int(clipped.sum())
            stats.clip_fraction = stats.n_clipped / acc.shape[0]
            stats.stuck = acc.shape[0] >= 20 and bool(np.all(np.ptp(acc, axis=0) == 0.0)
                                                      and np.all(np.ptp(gyr, axis=0) == 0.0))
        mag = np.concatenate([g[4] for g in state.grid])[keep]
        mag = mag[np.all(np.isfinite(mag), axis=1)]
        if mag.shape[0]:
            norms = np.linalg.norm(mag, axis=1)
            stats.mag_norm_ut = (float(norms.min()), float(norms.max()))

    def _at_full_scale(self, acc: FloatArray, gyr: FloatArray) -> NDArray[np.bool_]:
        fraction = (self.thresholds or QualityThresholds()).full_scale_fraction
        with np.errstate(invalid="ignore"):
            return (np.any(np.abs(acc) >= fraction * self.acc_range_m_s2, axis=1)
                    | np.any(np.abs(gyr) >= fraction * self.gyr_range_rad_s, axis=1))

    # -- verdicts ------------------------------------------------------------------------------------------------
    def _judge(self, stats: SensorQuality, limits: QualityThresholds) -> list[Verdict]:
        name = _name(stats.site, stats.sensor_id)
        subject = stats.site.value if stats.site is not None else stats.sensor_id
        base = {"sensor_id": stats.sensor_id, "source": stats.source}
        out: list[Verdict] = []

        def add(level: Level, code: str, message: str, action: str = "", **details: object) -> None:
            out.append(Verdict(level, code, message, action, subject=subject, details={**base, **details}))

        reconnect = "Check that it is switched on and within a few metres of the receiver; StrideTwin reconnects " \
                    "by itself."
        since = stats.since_last_sample_s
        if stats.connected is False:
            add(Level.FAIL, "quality.connection", f"The {name} sensor is disconnected.", reconnect)
        elif since is not None and since > limits.stale_s:
            add(Level.FAIL, "quality.connection", f"No data from the {name} sensor for {since:.1f} s.", reconnect,
                since_last_sample_s=round(since, 2))
        else:
            add(Level.OK, "quality.connection", f"The {name} sensor is connected.")

        if stats.rate_hz is not None and stats.nominal_rate_hz:
            ratio = stats.rate_hz / stats.nominal_rate_hz
            figures = {"rate_hz": round(stats.rate_hz, 1), "nominal_rate_hz": stats.nominal_rate_hz}
            if ratio < limits.rate_warn_ratio:
                add(Level.FAIL if ratio < limits.rate_fail_ratio else Level.WARNING, "quality.rate",
                    f"The {name} sensor sends {stats.rate_hz:.0f} samples per second instead of "
                    f"{stats.nominal_rate_hz:.0f}.",
                    f"Check its sampling-rate setting ({stats.nominal_rate_hz:.0f} Hz) and its connection.", **figures)
            else:
                add(Level.OK, "quality.rate", f"The {name} sensor sends at its full rate.", **figures)

        if stats.loss_pct is not None:
            figures = {"loss_pct": round(stats.loss_pct, 2),
                       "longest_gap_s": None if stats.longest_gap_s is None else round(stats.longest_gap_s, 3)}
            if stats.loss_pct > limits.loss_warn_pct:
                add(Level.FAIL if stats.loss_pct > limits.loss_fail_pct else Level.WARNING, "quality.loss",
                    f"The {name} sensor lost {stats.loss_pct:.1f} % of its samples in the last {self.window_s:.0f} s.",
                    "Move the receiver closer to the patient, with nothing in between, and check the battery.",
                    **figures)
            else:
                add(Level.OK, "quality.loss", f"The {name} sensor loses almost no samples.", **figures)

        if stats.jitter_ms is not None:
            if stats.jitter_ms > limits.jitter_warn_ms:
                add(Level.FAIL if stats.jitter_ms > limits.jitter_fail_ms else Level.WARNING, "quality.jitter",
                    f"Data from the {name} sensor arrives irregularly (up to {stats.jitter_ms:.0f} ms late).",
                    "Move the receiver closer and close other programs that use Bluetooth or USB.",
                    jitter_ms=round(stats.jitter_ms, 1))
            else:
                add(Level.OK, "quality.jitter", f"Data from the {name} sensor arrives on time.",
                    jitter_ms=round(stats.jitter_ms, 1))

        if stats.stuck:
            add(Level.FAIL, "quality.stuck", f"The {name} sensor sends the same values all the time.",
                "Switch it off and on again; if it persists, replace it.")
        if stats.n_samples:
            if stats.n_clipped:
                add(Level.FAIL if stats.clip_fraction > limits.clip_fail_fraction else Level.WARNING,
                    "quality.clipping",
                    f"The {name} sensor hit the end of its measuring range {stats.n_clipped} times in the last "
                    f"{self.window_s:.0f} s.",
                    "Set its range to ±16 g and ±2000 °/s if it allows, and strap it more firmly.",
                    n_clipped=stats.n_clipped, clip_fraction=round(stats.clip_fraction, 4))
            else:
                add(Level.OK, "quality.clipping", f"The {name} sensor stays within its measuring range.")

        if stats.mag_norm_ut is not None:
            low, high = stats.mag_norm_ut
            figures = {"mag_norm_min_ut": round(low, 1), "mag_norm_max_ut": round(high, 1)}
            if low < limits.mag_min_ut or high > limits.mag_max_ut:
                shown = high if high > limits.mag_max_ut else low
                message = (f"The magnetic field at the {name} sensor is disturbed ({shown:.0f} µT; the Earth's field "
                           "is 25–65 µT)")
                if self.uses_magnetometer:
                    add(Level.WARNING, "quality.magnetic", message + ".",
                        "Move away from metal furniture and electrical devices, or switch to 6-axis mode.", **figures)
                else:
                    add(Level.OK, "quality.magnetic", message + "; this does not matter in 6-axis mode.", **figures)
            else:
                add(Level.OK, "quality.magnetic", f"The magnetic field at the {name} sensor is normal.", **figures)

        if stats.battery_pct is not None:
            battery = stats.battery_pct
            if battery < limits.battery_fail_pct:
                add(Level.FAIL, "quality.battery", f"Battery of the {name} sensor at {battery:.0f} %.",
                    "Charge or replace it before the walk.", battery_pct=battery)
            elif battery < limits.battery_warn_pct:
                add(Level.WARNING, "quality.battery", f"Battery of the {name} sensor at {battery:.0f} %.",
                    "Enough for this walk; charge it afterwards.", battery_pct=battery)
            else:
                add(Level.OK, "quality.battery", f"Battery of the {name} sensor at {battery:.0f} %.",
                    battery_pct=battery)

        if stats.rssi_dbm is not None:
            rssi = stats.rssi_dbm
            if rssi < limits.rssi_warn_dbm:
                add(Level.FAIL if rssi < limits.rssi_fail_dbm else Level.WARNING, "quality.rssi",
                    f"Weak radio signal from the {name} sensor ({rssi:.0f} dBm).",
                    "Move the receiver closer to the patient, with nothing in between.", rssi_dbm=rssi)
            else:
                add(Level.OK, "quality.rssi", f"Good radio signal from the {name} sensor ({rssi:.0f} dBm).",
                    rssi_dbm=rssi)
        return out


def _name(site: Site | None, sensor_id: str) -> str:
    return site_name(site) if site is not None else sensor_id


def _unwrapped(seq: NDArray[np.int64]) -> NDArray[np.int64]:
    """A device counter made monotonic: a step backwards is a wrap of the smallest counter width that turns it into a
    step forward (8, 16 or 32 bits); a restart (no width fits) continues the count."""
    if seq.size < 2:
        return seq
    step = np.diff(seq)
    backwards = np.flatnonzero(step <= 0)
    for i in backwards:
        before = int(seq[i])
        for modulus in SEQ_MODULI:
            if before < modulus and 0 < int(step[i]) + modulus <= modulus // 2:
                step[i] += modulus
                break
        else:
            step[i] = 1  # a restart or a repeat: no loss can be told
    return np.concatenate([[0], np.cumsum(step)]) + int(seq[0])


def _longest_run(flags: NDArray[np.bool_]) -> int:
    """Length of the longest run of True."""
    if not flags.any():
        return 0
    padded = np.concatenate([[0], flags.astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(padded))
    return int(np.max(edges[1::2] - edges[::2]))

