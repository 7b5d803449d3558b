"""Blocks of samples: one sensor's consecutive readings that arrived together, the cheap form of the live capture path.

A serial driver reads each port once per poll and decodes everything that arrived in one go. Handing that on as one
block, instead of one frozen :class:`~sensor_drivers.sample.ImuSample` per reading, is what keeps decoding,
timestamping and resampling of a five-sensor kit at 200 Hz within its CPU budget (``docs/drivers.md``, "Measured").
:class:`ReadingBlock` is to :class:`~sensor_drivers.sample.DeviceReading` what :class:`SampleBlock` is to
:class:`~sensor_drivers.sample.ImuSample`: decoders produce the first, a driver stamps it into the second. Each
expands into the single objects exactly (:meth:`ReadingBlock.readings`, :meth:`SampleBlock.samples`), so code that
iterates single samples sees the same values either way.

A block holds plain tuples: per sample a row of :data:`ROW_WIDTH` floats in the resampler's row layout,
``acc_m_s2`` (columns 0-2), ``gyr_rad_s`` (3-5), ``mag_ut`` (6-8), ``quat_wxyz`` (9-12), ``NaN`` in the columns of a
channel the block does not carry; and per sample its device time and sequence number. Tuples, not numpy arrays: a
block holds the few samples of one 40 ms read, and at that size every numpy call costs more than the Python it
replaces, the more so in the cold caches of a thread that wakes 25 times a second (measured in ``docs/drivers.md``);
the resampler turns the rows into arrays once per emitted block of grid rows. :meth:`SampleBlock.values` gives them as
an array for code that wants one. A block is homogeneous: every reading in it carries the same channels, a device
time or not, a counter or not, and the same device status (a decoder starts a new block where one of these changes).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from sensor_drivers.sample import DeviceReading, DeviceStatus, ImuSample, LinkEvent, StreamItem
from sensor_drivers.sites import Site

FloatArray = NDArray[np.float64]

#: Values per row, and where each channel sits in it (the resampler's row layout, :mod:`sensor_drivers.timing`).
ROW_WIDTH = 13
ACC_COLS = slice(0, 3)
GYR_COLS = slice(3, 6)
MAG_COLS = slice(6, 9)
QUAT_COLS = slice(9, 13)

Row = tuple[float, ...]

_NAN3 = (math.nan, math.nan, math.nan)
_NAN4 = (math.nan, math.nan, math.nan, math.nan)


def sample_row(sample: ImuSample | DeviceReading) -> Row:
    """A sample's values as one row of :data:`ROW_WIDTH` (``NaN`` for a missing magnetometer or quaternion)."""
    mag = sample.mag_ut
    quat = sample.quat_wxyz
    return sample.acc_m_s2 + sample.gyr_rad_s + (_NAN3 if mag is None else mag) + (_NAN4 if quat is None else quat)


def _check_lengths(block: ReadingBlock | SampleBlock) -> None:
    """``ValueError`` when a block's per-reading device times or sequence numbers do not match its rows."""
    n = len(block.rows)
    for what, values in (("device times", block.device_time_s), ("sequence numbers", block.seq)):
        if values is not None and len(values) != n:
            raise ValueError(f"{type(block).__name__}: {len(values)} {what} for {n} rows")


def _vectors(row: Row, has_mag: bool, has_quat: bool) -> tuple[Row, Row, Row | None, Row | None]:
    """``(acc, gyr, mag or None, quat or None)`` of a row, as the single objects hold them."""
    return row[0:3], row[3:6], row[6:9] if has_mag else None, row[9:13] if has_quat else None


@dataclass(frozen=True, slots=True)
class ReadingBlock:
    """Consecutive decoded readings of one device, as the device sent them: no sensor identity, no host clock."""

    #: Per reading: acc, gyr, mag, quat in :data:`ROW_WIDTH` floats (``NaN`` in the columns of a channel not carried).
    rows: tuple[Row, ...]
    #: Device clock per reading, s; ``None`` for a device that sends no timestamp.
    device_time_s: tuple[float, ...] | None
    #: Device packet counter per reading; ``None`` for a protocol without one.
    seq: tuple[int, ...] | None
    has_mag: bool
    has_quat: bool
    #: The device status every reading of the block carries (``None``: not reported).
    status: DeviceStatus | None = None

    def __post_init__(self) -> None:
        _check_lengths(self)

    def __len__(self) -> int:
        return len(self.rows)

    def readings(self) -> list[DeviceReading]:
        """The block as single readings, equal to what a reading-at-a-time decoder makes."""
        n = len(self.rows)
        device = self.device_time_s if self.device_time_s is not None else (None,) * n
        seq = self.seq if self.seq is not None else (None,) * n
        has_mag, has_quat, status = self.has_mag, self.has_quat, self.status
        out = []
        for row, d, s in zip(self.rows, device, seq, strict=True):
            acc, gyr, mag, quat = _vectors(row, has_mag, has_quat)
            out.append(DeviceReading(acc, gyr, d, s, mag, quat, status))
        return out

    @classmethod
    def from_readings(cls, readings: Sequence[DeviceReading]) -> ReadingBlock:
        """One block of readings that agree in channels, device-time presence, counter presence and status;
        ``ValueError`` naming the first that does not."""
        if not readings:
            raise ValueError("ReadingBlock.from_readings: no readings")
        first = readings[0]
        key = _reading_key(first)
        for index, r in enumerate(readings):
            if _reading_key(r) != key:
                raise ValueError(
                    f"ReadingBlock.from_readings: reading {index} differs from the first in its channels, device "
                    "time, counter or status; a block holds readings that agree in these (split it)"
                )
        return cls(
            rows=tuple(sample_row(r) for r in readings),
            device_time_s=tuple(r.device_time_s for r in readings) if first.device_time_s is not None else None,  # type: ignore[misc]
            seq=tuple(r.seq for r in readings) if first.seq is not None else None,  # type: ignore[misc]
            has_mag=first.mag_ut is not None,
            has_quat=first.quat_wxyz is not None,
            status=first.status,
        )


def _reading_key(r: DeviceReading) -> tuple[bool, bool, bool, bool, DeviceStatus | None]:
    return (r.mag_ut is not None, r.quat_wxyz is not None, r.device_time_s is not None, r.seq is not None, r.status)


@dataclass(frozen=True, slots=True)
class SampleBlock:
    """Consecutive samples of one sensor that arrived together, stamped by a driver (the block form of
    :class:`ImuSample`)."""

    sensor_id: str
    site: Site
    #: Host clock at receipt (``time.monotonic()``), s: every sample of the block arrived with it (one read).
    host_time_s: float
    #: Device clock per sample, s (``None`` where the device sends no timestamp).
    device_time_s: tuple[float, ...] | None
    #: Device sequence number per sample, or a driver-side counter where the device has none (``None`` only for
    #: samples that carry neither, as :class:`ImuSample` allows).
    seq: tuple[int, ...] | None
    #: Per sample: acc, gyr, mag, quat in :data:`ROW_WIDTH` floats (``NaN`` in the columns of a channel not carried).
    rows: tuple[Row, ...]
    has_mag: bool
    has_quat: bool
    status: DeviceStatus | None = None

    def __post_init__(self) -> None:
        _check_lengths(self)

    def __len__(self) -> int:
        return len(self.rows)

    def values(self) -> FloatArray:
        """The rows as a new ``(n, ROW_WIDTH)`` array (``[:, ACC_COLS]`` is ``acc_m_s2``, and so on)."""
        return np.array(self.rows, dtype=float).reshape(len(self.rows), ROW_WIDTH)

    def samples(self) -> list[ImuSample]:
        """The block as single samples, equal to what a sample-at-a-time driver stamps."""
        n = len(self.rows)
        device = self.device_time_s if self.device_time_s is not None else (None,) * n
        seq = self.seq if self.seq is not None else (None,) * n
        sensor_id, site, host_time_s, status = self.sensor_id, self.site, self.host_time_s, self.status
        has_mag, has_quat = self.has_mag, self.has_quat
        out = []
        for row, d, s in zip(self.rows, device, seq, strict=True):
            acc, gyr, mag, quat = _vectors(row, has_mag, has_quat)
            out.append(ImuSample(sensor_id, site, d, host_time_s, s, acc, gyr, mag, quat, status))
        return out

    def split(self, start: int, stop: int) -> SampleBlock:
        """Samples ``[start, stop)`` of the block."""
        return SampleBlock(
            self.sensor_id,
            self.site,
            self.host_time_s,
            None if self.device_time_s is None else self.device_time_s[start:stop],
            None if self.seq is None else self.seq[start:stop],
            self.rows[start:stop],
            self.has_mag,
            self.has_quat,
            self.status,
        )

    @classmethod
    def stamp(
        cls,
        block: ReadingBlock,
        sensor_id: str,
        site: Site,
        host_time_s: float,
        seq: tuple[int, ...] | None = None,
    ) -> SampleBlock:
        """Stamp a decoded block with the sensor's identity and the host receive time (``seq``: the driver's counter,
        for a block without a device counter)."""
        return cls(
            sensor_id,
            site,
            host_time_s,
            block.device_time_s,
            block.seq if seq is None else seq,
            block.rows,
            block.has_mag,
            block.has_quat,
            block.status,
        )

    @classmethod
    def from_samples(cls, samples: Sequence[ImuSample]) -> SampleBlock:
        """One block of samples of one sensor that arrived together (one host time) and agree in channels,
        device-time presence, counter presence and status; ``ValueError`` naming the first that does not."""
        if not samples:
            raise ValueError("SampleBlock.from_samples: no samples")
        first = samples[0]
        key = _sample_key(first)
        for index, s in enumerate(samples):
            if _sample_key(s) != key:
                raise ValueError(
                    f"SampleBlock.from_samples: sample {index} differs from the first in its sensor, host time, "
                    "channels, device time, counter or status; a block holds samples that agree in these "
                    "(see group_samples)"
                )
        return cls(
            sensor_id=first.sensor_id,
            site=first.site,
            host_time_s=first.host_time_s,
            device_time_s=tuple(s.device_time_s for s in samples) if first.device_time_s is not None else None,  # type: ignore[misc]
            seq=tuple(s.seq for s in samples) if first.seq is not None else None,  # type: ignore[misc]
            rows=tuple(sample_row(s) for s in samples),
            has_mag=first.mag_ut is not None,
            has_quat=first.quat_wxyz is not None,
            status=first.status,
        )


def _sample_key(s: ImuSample) -> tuple[object, ...]:
    return (
        s.sensor_id,
        s.site,
        s.host_time_s,
        s.mag_ut is not None,
        s.quat_wxyz is not None,
        s.device_time_s is not None,
        s.seq is not None,
        s.status,
    )


#: What a driver's block stream yields (:meth:`~sensor_drivers.drivers.base.Driver.stream_blocks`).
BlockStreamItem = SampleBlock | LinkEvent


def group_samples(items: Iterable[StreamItem | SampleBlock]) -> list[BlockStreamItem]:
    """Stream items with runs of consecutive samples that fit one block (:meth:`SampleBlock.from_samples`) joined
    into blocks; blocks and link events pass as they are, in order."""
    out: list[BlockStreamItem] = []
    run: list[ImuSample] = []
    key: tuple[object, ...] | None = None
    for item in items:
        if type(item) is ImuSample:
            k = _sample_key(item)
            if run and k != key:
                out.append(SampleBlock.from_samples(run))
                run = []
            key = k
            run.append(item)
            continue
        if run:
            out.append(SampleBlock.from_samples(run))
            run = []
        out.append(item)  # type: ignore[arg-type]
    if run:
        out.append(SampleBlock.from_samples(run))
    return out


def expand_blocks(items: Iterable[StreamItem | SampleBlock]) -> list[StreamItem]:
    """Stream items with every block expanded into its samples (:meth:`SampleBlock.samples`), in order."""
    out: list[StreamItem] = []
    for item in items:
        if type(item) is SampleBlock:
            out.extend(item.samples())
        else:
            out.append(item)  # type: ignore[arg-type]
    return out
