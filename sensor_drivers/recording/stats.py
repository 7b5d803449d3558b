"""Per-sensor inspection figures of a clip: counts, rates, loss, gaps, jitter and clock drift.

Definitions (also in ``docs/cli-json.md``, schema ``stridetwin.inspect/1``):

- **effective rate** = (n − 1) / (last − first host time).
- **loss %**: from sequence numbers where every sample has one (missing = sum of forward jumps − 1; a backward jump is
  a counter reset, counted in ``n_seq_resets``, never as loss); otherwise from the count expected at the nominal rate
  over the recording's duration.
- **gaps**: intervals between consecutive samples longer than ``max(gap_factor / nominal_rate_hz, min_gap_s)``
  (defaults 4 periods and 50 ms: three or more consecutive samples missing, and longer than BLE's usual batching of
  notifications). Measured on the device clock when every sample has one (free of transport batching), else on the
  host clock; reported on the host clock, in seconds since the clip's first sample.
- **jitter**: host inter-arrival intervals outside gaps: their standard deviation, and the 99th percentile of their
  absolute deviation from the median interval, in ms.
- **clock drift**: :func:`estimate_drift_ppm`, in the model ``host = offset + (1 + drift_ppm·1e-6)·device + latency``
  of ``sensor_drivers.timing.clock`` (positive: the device clock runs slow against the host clock).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from sensor_drivers.recording.clipfile import Clip, SensorStream
from sensor_drivers.sample import LinkState
from sensor_drivers.timing.clock import ClockSync

INSPECT_SCHEMA = "stridetwin.inspect/1"
DEFAULT_GAP_FACTOR = 4.0
DEFAULT_MIN_GAP_S = 0.05
#: Shortest span of device timestamps :func:`estimate_drift_ppm` fits; below it, a few ms of latency spread
#: would read as hundreds of ppm.
MIN_DRIFT_SPAN_S = 10.0
#: Counter widths devices use; a backward jump that a wrap at one of these explains is a wrap, not a reset.
_SEQ_MODULI = (1 << 8, 1 << 16, 1 << 32)


def estimate_drift_ppm(device_time_s: ArrayLike, host_time_s: ArrayLike) -> float | None:
    """Clock drift in ppm as in ``host = offset + (1 + drift_ppm·1e-6)·device + latency`` (positive: the host clock
    advances more per device second, i.e. the device clock runs slow); ``None`` when the device times span less than
    :data:`MIN_DRIFT_SPAN_S`, are missing or not increasing.

    The fit is the one resampling uses (:class:`sensor_drivers.timing.clock.ClockSync`, a lower-envelope line after
    Moon, Skelly & Towsley 1999), so inspection reports the drift the rest of the pipeline corrects for.
    """
    device = np.asarray(device_time_s, dtype=float)
    host = np.asarray(host_time_s, dtype=float)
    ok = np.isfinite(device) & np.isfinite(host)
    device, host = device[ok], host[ok]
    if len(device) < 2 or device[-1] - device[0] < MIN_DRIFT_SPAN_S or np.any(np.diff(device) <= 0):
        return None
    return float(ClockSync().fit(device, host).drift_ppm_)


def unwrap_seq(seq: ArrayLike) -> tuple[np.ndarray, int]:
    """Sequence numbers made monotonic across counter wraps; also returns the number of resets.

    The counter width is taken as the smallest of 8/16/32 bits that holds every value seen; a backward jump that a
    wrap at that width explains with a forward step of at most half the range is a wrap, any other backward jump is
    a reset (counting restarts, no loss assumed). Equal neighbours are duplicates (no advance).
    """
    seq = np.asarray(seq, dtype=np.int64)
    if len(seq) < 2:
        return seq.copy(), 0
    d = np.diff(seq)
    top = int(seq.max())
    mod = next((m for m in _SEQ_MODULI if top < m), None)
    n_resets = 0
    for i in np.flatnonzero(d < 0):
        if mod is not None and d[i] + mod <= mod // 2:
            d[i] += mod
        else:
            n_resets += 1
            d[i] = 1
    return np.concatenate([[seq[0]], seq[0] + np.cumsum(d)]), n_resets


@dataclass(frozen=True)
class Gap:
    """A span without samples: ``[start_s, end_s)`` between the last sample before and the first after, seconds since
    the clip's first sample on the host clock."""

    start_s: float
    end_s: float
    duration_s: float
    #: Samples missing at the nominal rate.
    n_missing: int
    #: "" for a gap between two samples; "start" / "end" when the sensor started late or fell silent before the
    #: clip's other sensors (a sensor lost mid-walk): the gap then runs from the clip's start or to its end.
    edge: str = ""


@dataclass
class SensorStats:
    """Inspection figures of one sensor."""

    sensor_id: str
    site: str
    n_samples: int
    duration_s: float
    nominal_rate_hz: float | None
    #: "sensor record" or "estimated" (median interval, when the clip does not say).
    nominal_rate_source: str
    effective_rate_hz: float | None
    n_lost: int
    loss_pct: float | None
    #: "sequence" or "nominal rate".
    loss_method: str
    n_seq_resets: int
    gap_threshold_s: float | None
    #: "device" or "host".
    gap_clock: str
    gaps: list[Gap]
    jitter_std_ms: float | None
    jitter_p99_ms: float | None
    drift_ppm: float | None
    #: Why ``drift_ppm`` is missing, else "".
    drift_note: str
    n_disconnects: int
    n_link_gaps: int
    fields_present: list[str] = field(default_factory=list)


def sensor_stats(
    stream: SensorStream,
    *,
    t0_host_s: float | None = None,
    t_end_host_s: float | None = None,
    link_states: list[str] | None = None,
    gap_factor: float = DEFAULT_GAP_FACTOR,
    min_gap_s: float = DEFAULT_MIN_GAP_S,
) -> SensorStats:
    """Figures for one sensor's stream.

    ``t0_host_s`` / ``t_end_host_s`` are the clip's first and last host times (over all sensors): gap times are
    relative to the first, and a sensor that starts late or falls silent early gets a gap at that edge.
    """
    host = np.asarray(stream.host_time_s, dtype=float)
    n = len(host)
    t0 = float(host[0]) if t0_host_s is None and n else (t0_host_s or 0.0)
    duration = float(host[-1] - host[0]) if n > 1 else 0.0
    intervals = np.diff(host)
    nominal = stream.nominal_rate_hz
    source = "sensor record"
    if nominal is None:
        source = "estimated"
        positive = intervals[intervals > 0]
        nominal = float(1.0 / np.median(positive)) if len(positive) else None
    effective = (n - 1) / duration if duration > 0 else None

    seq = np.asarray(stream.seq)
    n_resets = 0
    if n and np.all(seq >= 0):
        unwrapped, n_resets = unwrap_seq(seq)
        jumps = np.diff(unwrapped)
        n_lost = int(np.sum(jumps[jumps > 1] - 1))
        method = "sequence"
    else:
        expected = round(duration * nominal) + 1 if nominal and n else n
        n_lost = max(expected - n, 0)
        method = "nominal rate"
    loss_pct = 100.0 * n_lost / (n + n_lost) if n + n_lost else None

    device = np.asarray(stream.device_time_s, dtype=float)
    use_device = n > 1 and bool(np.all(np.isfinite(device))) and bool(np.all(np.diff(device) >= 0))
    clock_intervals = np.diff(device) if use_device else intervals
    gaps: list[Gap] = []
    threshold = max(gap_factor / nominal, min_gap_s) if nominal else None
    if threshold is not None:
        for i in np.flatnonzero(clock_intervals > threshold):
            dur = float(clock_intervals[i])
            gaps.append(
                Gap(
                    start_s=float(host[i] - t0),
                    end_s=float(host[i + 1] - t0),
                    duration_s=dur,
                    n_missing=max(round(dur * nominal) - 1, 0),
                )
            )
        if n and t0_host_s is not None and host[0] - t0_host_s > threshold:
            dur = float(host[0] - t0_host_s)
            gaps.insert(0, Gap(0.0, dur, dur, max(round(dur * nominal) - 1, 0), edge="start"))
        if n and t_end_host_s is not None and t_end_host_s - host[-1] > threshold:
            dur = float(t_end_host_s - host[-1])
            end = float(t_end_host_s - t0)
            gaps.append(Gap(float(host[-1] - t0), end, dur, max(round(dur * nominal) - 1, 0), edge="end"))
    within = intervals if threshold is None else intervals[clock_intervals <= threshold]
    jitter_std = float(np.std(within) * 1e3) if len(within) > 1 else None
    jitter_p99 = float(np.percentile(np.abs(within - np.median(within)), 99) * 1e3) if len(within) > 1 else None

    drift = None
    host_source = str(stream.info.get("extra", {}).get("host_time_source", "receive"))
    if host_source != "receive":
        note = f"no host receive clock (host times derived from {host_source})"
    elif not np.any(np.isfinite(device)):
        note = "the device sends no timestamps"
    else:
        drift = estimate_drift_ppm(device, host)
        note = "" if drift is not None else f"needs ≥ {MIN_DRIFT_SPAN_S:g} s of increasing device timestamps"
    states = link_states or []
    return SensorStats(
        sensor_id=stream.sensor_id,
        site=str(stream.site),
        n_samples=n,
        duration_s=duration,
        nominal_rate_hz=nominal,
        nominal_rate_source=source if nominal else "unknown",
        effective_rate_hz=effective,
        n_lost=n_lost,
        loss_pct=loss_pct,
        loss_method=method,
        n_seq_resets=n_resets,
        gap_threshold_s=threshold,
        gap_clock="device" if use_device else "host",
        gaps=gaps,
        jitter_std_ms=jitter_std,
        jitter_p99_ms=jitter_p99,
        drift_ppm=drift,
        drift_note=note,
        n_disconnects=sum(s == LinkState.DISCONNECTED for s in states),
        n_link_gaps=sum(s == LinkState.GAP for s in states),
        fields_present=sorted(stream.fields_present),
    )


@dataclass
class ClipInspection:
    """Inspection of a whole clip (``stridetwin inspect``)."""

    path: str
    schema_version: str
    finished: bool
    recovered: bool
    #: Why reading stopped, for an unfinished clip.
    stopped_reading: str | None
    t0_host_s: float | None
    #: From the first to the last sample of any sensor, host clock, s.
    duration_s: float
    metadata: dict[str, Any]
    sensors: list[SensorStats]
    n_link_events: int
    sections: list[str]
    n_skipped_records: int

    def to_json(self) -> dict[str, Any]:
        """The ``stridetwin.inspect/1`` document (see ``docs/cli-json.md``); strict JSON (NaN becomes null)."""
        return _strict({"schema": INSPECT_SCHEMA, **asdict(self)})


def _strict(value: Any) -> Any:
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(v) for v in value]
    return value


def inspect_clip(
    clip: Clip, *, gap_factor: float = DEFAULT_GAP_FACTOR, min_gap_s: float = DEFAULT_MIN_GAP_S
) -> ClipInspection:
    """Figures for every sensor of a clip."""
    starts = [float(s.host_time_s[0]) for s in clip.sensors.values() if s.n_samples]
    ends = [float(s.host_time_s[-1]) for s in clip.sensors.values() if s.n_samples]
    t0 = min(starts) if starts else None
    t_end = max(ends) if ends else None
    states: dict[str, list[str]] = {}
    for ev in clip.link_events:
        states.setdefault(ev.sensor_id, []).append(str(ev.state))
    return ClipInspection(
        path=str(clip.path),
        schema_version=f"{clip.schema_version[0]}.{clip.schema_version[1]}",
        finished=clip.finished,
        recovered=clip.recovered,
        stopped_reading=clip.stopped_reading,
        t0_host_s=t0,
        duration_s=(t_end - t0) if t0 is not None and t_end is not None else 0.0,
        metadata=clip.metadata,
        sensors=[
            sensor_stats(
                s,
                t0_host_s=t0,
                t_end_host_s=t_end,
                link_states=states.get(sid),
                gap_factor=gap_factor,
                min_gap_s=min_gap_s,
            )
            for sid, s in clip.sensors.items()
        ],
        n_link_events=len(clip.link_events),
        sections=sorted(clip.sections),
        n_skipped_records=len(clip.skipped_records),
    )
