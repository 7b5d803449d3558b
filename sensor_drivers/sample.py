"""The sample model: what every driver yields, and what decoders produce before a driver stamps it.

Vectors are plain tuples of floats so that a sample is immutable, hashable and cheap to build (a driver makes about
a thousand a second for a five-sensor kit at 200 Hz).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sensor_drivers.sites import Site

Vec3 = tuple[float, float, float]
Quat = tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """Device-reported health, where the device sends it. ``None`` means "not reported"."""

    battery_pct: float | None = None
    rssi_dbm: float | None = None
    #: Samples clipped at the accelerometer / gyroscope range since the stream started (device counters).
    acc_clip_count: int | None = None
    gyr_clip_count: int | None = None


@dataclass(frozen=True, slots=True)
class DeviceReading:
    """One decoded measurement, as the device sent it: no sensor identity and no host clock yet.

    Decoders (pure functions of bytes) produce these; a driver turns each into an :class:`ImuSample`.
    """

    acc_m_s2: Vec3
    gyr_rad_s: Vec3
    #: Device clock in seconds (already scaled from ticks), or ``None`` for devices that send no timestamp.
    device_time_s: float | None = None
    #: Device packet counter, or ``None`` when the protocol has none.
    seq: int | None = None
    mag_ut: Vec3 | None = None
    #: Orientation computed on the device, sensor → device's world frame, w first.
    quat_wxyz: Quat | None = None
    status: DeviceStatus | None = None


@dataclass(frozen=True, slots=True)
class ImuSample:
    """One IMU sample, stamped by a driver."""

    sensor_id: str
    site: Site
    #: Device clock, s (``None`` where the device sends no timestamp).
    device_time_s: float | None
    #: Host clock at receipt (``time.monotonic()``), s.
    host_time_s: float
    #: Device sequence number, or a driver-side counter where the device has none.
    seq: int | None
    acc_m_s2: Vec3
    gyr_rad_s: Vec3
    mag_ut: Vec3 | None = None
    quat_wxyz: Quat | None = None
    status: DeviceStatus | None = None

    @classmethod
    def from_reading(cls, reading: DeviceReading, sensor_id: str, site: Site, host_time_s: float) -> ImuSample:
        """Stamp a decoded reading with the sensor's identity and the host receive time."""
        return cls(
            sensor_id=sensor_id,
            site=site,
            device_time_s=reading.device_time_s,
            host_time_s=host_time_s,
            seq=reading.seq,
            acc_m_s2=reading.acc_m_s2,
            gyr_rad_s=reading.gyr_rad_s,
            mag_ut=reading.mag_ut,
            quat_wxyz=reading.quat_wxyz,
            status=reading.status,
        )


class LinkState(StrEnum):
    """Connection state changes a driver reports in its stream."""

    CONNECTED = "connected"
    #: The link dropped; samples from ``host_time_s`` on are missing until the next ``CONNECTED``.
    DISCONNECTED = "disconnected"
    #: The device is still connected but samples were lost (sequence jump); the gap is ``[start, end)``.
    GAP = "gap"


@dataclass(frozen=True, slots=True)
class LinkEvent:
    """A marked event in a sensor's stream: connection changes and gaps, never silently papered over."""

    sensor_id: str
    site: Site
    state: LinkState
    host_time_s: float
    #: Human-readable cause ("BLE link lost", "port vanished", "sequence jump of 12").
    reason: str = ""
    #: For ``GAP``: number of samples missing, where the sequence counter tells.
    n_missing: int | None = None


#: What a driver's stream yields.
StreamItem = ImuSample | LinkEvent
