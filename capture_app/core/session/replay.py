"""A recorded clip played back as a driver stream: the same items, in the same arrival order, through the live
pipeline (offline review of a walk as it happened, benchmarks, and the crash-safety test).

``clip_items(clip)`` yields the clip's samples and link events merged in host-time order, lazily (one sensor block
at a time is turned into :class:`~sensor_drivers.sample.ImuSample` objects); ``repeats`` plays it several times in a
row with times and counters continuing, so that a long session can be replayed from a short clip with the memory of
the short one. :class:`ClipReplayDriver` wraps that as a :class:`~sensor_drivers.drivers.base.Driver`: at
``pace=1`` samples arrive when they arrived in the recording (host times re-stamped to now), with ``pace=None`` as
fast as the consumer takes them (host times shifted by a constant, so timing still looks as recorded).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import numpy as np

from sensor_drivers.drivers.base import Driver, SensorInfo
from sensor_drivers.recording.clipfile import Clip, SensorStream
from sensor_drivers.sample import DeviceStatus, ImuSample, LinkEvent, StreamItem
from sensor_drivers.sites import Site

#: Samples turned into objects at a time (bounds the memory of a replay).
CHUNK_SAMPLES = 4096


def sensor_infos(clip: Clip) -> list[SensorInfo]:
    """The clip's sensors (on known sites) as a driver would declare them."""
    out = []
    for s in clip.sensors.values():
        if not isinstance(s.site, Site):
            continue
        info = s.info
        out.append(SensorInfo(
            s.sensor_id, s.site, str(info.get("transport") or "serial"), str(info.get("protocol") or ""),
            str(info.get("address") or ""), float(info.get("nominal_rate_hz") or 100.0),
            str(info.get("device_model") or ""), str(info.get("firmware") or ""),
        ))  # fmt: skip
    return out


def clip_duration_s(clip: Clip) -> float:
    """First to last host time of any sample, s."""
    firsts = [float(s.host_time_s[0]) for s in clip.sensors.values() if s.n_samples]
    lasts = [float(s.host_time_s[-1]) for s in clip.sensors.values() if s.n_samples]
    return max(lasts) - min(firsts) if firsts else 0.0


def first_host_time_s(clip: Clip) -> float:
    """The earliest host time of any sample (0 for an empty clip)."""
    return min((float(s.host_time_s[0]) for s in clip.sensors.values() if s.n_samples), default=0.0)


def clip_items(
    clip: Clip, repeats: int = 1, period_s: float | None = None, host_offset_s: float = 0.0
) -> Iterator[StreamItem]:
    """The clip's items in host-time order (samples of sensors on known sites, and their link events), played
    ``repeats`` times, each ``period_s`` later than the one before (default: the clip's duration plus 10 ms), with
    device times and sequence numbers continuing; ``host_offset_s`` is added to every host time."""
    streams = [s for s in clip.sensors.values() if isinstance(s.site, Site) and s.n_samples]
    ids = {s.sensor_id for s in streams}
    events = sorted((e for e in clip.link_events if e.sensor_id in ids), key=lambda e: e.host_time_s)
    if period_s is None:
        period_s = clip_duration_s(clip) + 0.01
    seq_span = {s.sensor_id: int(np.max(s.seq)) + 1 if (s.seq >= 0).any() else 0 for s in streams}
    # Merge order over all sensors, computed once (indices into the concatenation of the streams).
    host = np.concatenate([s.host_time_s for s in streams]) if streams else np.empty(0)
    which = np.concatenate([np.full(s.n_samples, k) for k, s in enumerate(streams)]) if streams else np.empty(0, int)
    row = np.concatenate([np.arange(s.n_samples) for s in streams]) if streams else np.empty(0, int)
    order = np.argsort(host, kind="stable")
    for r in range(repeats):
        shift_s = r * period_s + host_offset_s
        k_event = 0
        for start in range(0, order.size, CHUNK_SAMPLES):
            chunk = order[start : start + CHUNK_SAMPLES]
            chunk_items = _samples(streams, which[chunk], row[chunk], shift_s, r * period_s, r, seq_span)
            for item in chunk_items:
                while k_event < len(events) and events[k_event].host_time_s + shift_s <= item.host_time_s:
                    yield _shifted_event(events[k_event], shift_s)
                    k_event += 1
                yield item
        for event in events[k_event:]:
            yield _shifted_event(event, shift_s)


def _samples(
    streams: list[SensorStream],
    which: np.ndarray,
    row: np.ndarray,
    host_shift_s: float,
    device_shift_s: float,
    repeat: int,
    seq_span: dict[str, int],
) -> list[ImuSample]:
    """The samples of one chunk (``which``: stream index, ``row``: sample index), converted per stream in bulk."""
    columns: dict[int, Iterator[ImuSample]] = {}
    for k in np.unique(which).tolist():
        columns[k] = _stream_samples(streams[k], row[which == k], host_shift_s, device_shift_s, repeat,
                                     seq_span[streams[k].sensor_id])  # fmt: skip
    return [next(columns[k]) for k in which.tolist()]


def _stream_samples(
    s: SensorStream, rows: np.ndarray, host_shift_s: float, device_shift_s: float, repeat: int, seq_span: int
) -> Iterator[ImuSample]:
    n = rows.size
    host = (s.host_time_s[rows] + host_shift_s).tolist()
    device = s.device_time_s[rows]
    device_list = [None if not np.isfinite(d) else d for d in (device + device_shift_s).tolist()]
    seq = s.seq[rows]
    seq_list = [None if q < 0 else q for q in np.where(seq >= 0, seq + repeat * seq_span, -1).tolist()]
    acc = [tuple(v) for v in s.acc_m_s2[rows].astype(float).tolist()]
    gyr = [tuple(v) for v in s.gyr_rad_s[rows].astype(float).tolist()]
    mag = _optional_vectors(s.mag_ut, rows)
    quat = _optional_vectors(s.quat_wxyz, rows)
    battery = s.battery_pct[rows].astype(float).tolist() if s.battery_pct is not None else [float("nan")] * n
    acc_clips = s.acc_clip_count[rows].tolist() if s.acc_clip_count is not None else [-1] * n
    gyr_clips = s.gyr_clip_count[rows].tolist() if s.gyr_clip_count is not None else [-1] * n
    site = s.site
    for j in range(n):
        b, ca, cg = battery[j], acc_clips[j], gyr_clips[j]
        status = None
        if b == b or ca >= 0 or cg >= 0:  # b == b: not NaN
            status = DeviceStatus(b if b == b else None, None, ca if ca >= 0 else None, cg if cg >= 0 else None)
        yield ImuSample(s.sensor_id, site, device_list[j], host[j], seq_list[j], acc[j], gyr[j],  # type: ignore[arg-type]
                        mag[j], quat[j], status)  # fmt: skip


def _optional_vectors(values: np.ndarray | None, rows: np.ndarray) -> list[tuple[float, ...] | None]:
    if values is None:
        return [None] * rows.size
    picked = values[rows].astype(float)
    ok = np.isfinite(picked).all(axis=1).tolist()
    return [tuple(v) if good else None for v, good in zip(picked.tolist(), ok, strict=True)]


def _shifted_event(event: LinkEvent, shift_s: float) -> LinkEvent:
    return LinkEvent(event.sensor_id, event.site, event.state, event.host_time_s + shift_s, event.reason,
                     event.n_missing)  # fmt: skip


class ClipReplayDriver(Driver):
    """A clip replayed as a live kit (module docstring). ``pace``: 1 = as recorded, 2 = twice as fast, ``None`` = as
    fast as the consumer reads."""

    def __init__(self, clip: Clip, pace: float | None = 1.0, repeats: int = 1) -> None:
        if pace is not None and not pace > 0:
            raise ValueError(f"pace must be positive or None (as fast as possible), got {pace!r}")
        self.clip = clip
        self.pace = pace
        self.repeats = repeats
        self._sensors = sensor_infos(clip)
        self._start_host_s: float | None = None
        self._closed = False

    @property
    def sensors(self) -> list[SensorInfo]:
        return self._sensors

    def clip_metadata(self) -> dict[str, Any]:
        return {"replay": {"source": self.clip.path.name, "pace": self.pace, "repeats": self.repeats}}

    async def connect(self) -> None:
        self._start_host_s = time.monotonic()
        self._closed = False

    async def close(self) -> None:
        self._closed = True

    async def stream(self) -> AsyncIterator[StreamItem]:
        if self._start_host_s is None:
            raise RuntimeError("ClipReplayDriver: connect() first (use `async with`)")
        first = first_host_time_s(self.clip)
        start = self._start_host_s
        pace = self.pace
        if pace is None:
            for n, item in enumerate(clip_items(self.clip, self.repeats, host_offset_s=start - first)):
                if self._closed:
                    return
                yield item
                if n % 256 == 255:
                    await asyncio.sleep(0)  # let the consumer's other tasks run
            return
        for item in clip_items(self.clip, self.repeats, host_offset_s=0.0):
            if self._closed:
                return
            due = start + (item.host_time_s - first) / pace
            delay = due - time.monotonic()
            if delay > 0.002:
                await asyncio.sleep(delay)
            yield _restamped(item, due)


def _restamped(item: StreamItem, host_time_s: float) -> StreamItem:
    if isinstance(item, ImuSample):
        return ImuSample(item.sensor_id, item.site, item.device_time_s, host_time_s, item.seq, item.acc_m_s2,
                         item.gyr_rad_s, item.mag_ut, item.quat_wxyz, item.status)  # fmt: skip
    return LinkEvent(item.sensor_id, item.site, item.state, host_time_s, item.reason, item.n_missing)
