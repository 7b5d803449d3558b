"""A small but real framed protocol for the transport tests (a test double of a protocol, not of a transport).

Frame (34 bytes, little-endian)::

    0xA5 0x5A | seq u16 | time_us u32 | acc xyz f32 | gyr xyz f32 | battery u8 (255 = not sent) | sum8

``sum8`` is the sum of the bytes from ``seq`` to ``battery`` modulo 256. The serial side is a byte stream of frames;
the BLE side sends one frame per notification on ``DATA_UUID``, starts/stops on a write of ``0x01 rate_hz_u8`` /
``0x00`` to ``CONTROL_UUID``, and answers a poll ``0x02`` with a status notification ``0xB7 battery_u8`` on
``STATUS_UUID``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from sensor_drivers.errors import ProtocolError
from sensor_drivers.protocols.base import (
    BleNotification,
    DecoderStats,
    GattWrite,
    PeriodicWrite,
)
from sensor_drivers.sample import DeviceReading, DeviceStatus

SYNC = b"\xa5\x5a"
_BODY = struct.Struct("<HI6fB")
FRAME_LEN = len(SYNC) + _BODY.size + 1
SEQ_MODULUS = 1 << 16

DATA_UUID = "0000ff01-0000-1000-8000-00805f9b34fb"
CONTROL_UUID = "0000ff02-0000-1000-8000-00805f9b34fb"
STATUS_UUID = "0000ff03-0000-1000-8000-00805f9b34fb"
CHARACTERISTICS = (DATA_UUID, CONTROL_UUID, STATUS_UUID)


def encode_frame(reading: DeviceReading) -> bytes:
    """One frame for a reading (seq and time are required)."""
    assert reading.seq is not None
    assert reading.device_time_s is not None
    battery = 255
    if reading.status is not None and reading.status.battery_pct is not None:
        battery = round(reading.status.battery_pct)
    body = _BODY.pack(
        reading.seq % SEQ_MODULUS,
        round(reading.device_time_s * 1e6) % (1 << 32),
        *reading.acc_m_s2,
        *reading.gyr_rad_s,
        battery,
    )
    return SYNC + body + bytes([sum(body) & 0xFF])


def decode_frame(frame: bytes) -> DeviceReading:
    """A reading from exactly one frame; ProtocolError for anything else."""
    if len(frame) != FRAME_LEN or frame[:2] != SYNC:
        raise ProtocolError(f"toy frame must be {FRAME_LEN} bytes starting A5 5A, got {len(frame)}: {frame[:4].hex()}")
    body = frame[2:-1]
    if sum(body) & 0xFF != frame[-1]:
        raise ProtocolError("toy frame checksum mismatch")
    return _reading(body)


def _reading(body: bytes | memoryview) -> DeviceReading:
    seq, time_us, ax, ay, az, gx, gy, gz, battery = _BODY.unpack(body)
    return DeviceReading(
        acc_m_s2=(ax, ay, az),
        gyr_rad_s=(gx, gy, gz),
        device_time_s=time_us * 1e-6,
        seq=seq,
        status=DeviceStatus(battery_pct=float(battery)) if battery != 255 else None,
    )


class ToyDecoder:
    """Incremental decoder: resynchronises on the sync word, drops frames with a bad checksum."""

    def __init__(self) -> None:
        self.stats = DecoderStats()
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[DeviceReading]:
        """Readings completed by ``data``."""
        stats = self.stats
        stats.bytes_in += len(data)
        buf = self._buf
        buf += data
        out: list[DeviceReading] = []
        pos = 0
        n = len(buf)
        while True:
            start = buf.find(SYNC, pos)
            if start < 0:
                # keep a trailing first sync byte that may start the next frame
                keep = n - 1 if n > pos and buf[-1] == SYNC[0] else n
                stats.bytes_discarded += keep - pos
                pos = keep
                break
            stats.bytes_discarded += start - pos
            if start + FRAME_LEN > n:
                pos = start
                break
            body = bytes(buf[start + 2 : start + FRAME_LEN - 1])
            if sum(body) & 0xFF != buf[start + FRAME_LEN - 1]:
                stats.checksum_errors += 1
                stats.bytes_discarded += 1
                pos = start + 1
                continue
            out.append(_reading(body))
            stats.frames_ok += 1
            pos = start + FRAME_LEN
        del buf[:pos]
        stats.readings_out += len(out)
        return out


class ToyEncoder:
    """The device side of the serial protocol."""

    def encode(self, reading: DeviceReading) -> bytes:
        """One frame."""
        return encode_frame(reading)


def start_bytes(rate_hz: float | None) -> list[bytes]:
    """Serial configuration: ``RATE <hz>\\n`` (accepts 1-255 Hz)."""
    if rate_hz is None:
        return []
    if not 1 <= rate_hz <= 255:
        raise ValueError(f"toy devices run at 1-255 Hz, not {rate_hz:g}")
    return [f"RATE {round(rate_hz)}\n".encode()]


class ToyBleProfile:
    """BLE profile of the toy device."""

    name = "toy-ble"
    notify_uuids = (DATA_UUID, STATUS_UUID)

    def __init__(self, rate_hz: float | None = None, poll_period_s: float = 0.05) -> None:
        if rate_hz is not None and not 1 <= rate_hz <= 255:
            raise ValueError(f"toy devices run at 1-255 Hz, not {rate_hz:g}")
        self.rate_hz = rate_hz or 100.0
        self.poll_period_s = poll_period_s
        self.battery_pct: float | None = None

    def start_writes(self) -> list[GattWrite]:
        """Start streaming at the configured rate."""
        return [GattWrite(CONTROL_UUID, bytes([0x01, round(self.rate_hz)]))]

    def stop_writes(self) -> list[GattWrite]:
        """Stop streaming."""
        return [GattWrite(CONTROL_UUID, b"\x00")]

    def periodic_writes(self) -> list[PeriodicWrite]:
        """Battery poll."""
        return [PeriodicWrite(self.poll_period_s, GattWrite(CONTROL_UUID, b"\x02", response=False))]

    def decode(self, notification: BleNotification) -> list[DeviceReading]:
        """A data frame, or a status update."""
        if notification.char_uuid == STATUS_UUID:
            data = notification.data
            if len(data) != 2 or data[0] != 0xB7:
                raise ProtocolError(f"toy status must be B7 xx, got {data.hex()}")
            self.battery_pct = float(data[1])
            return []
        if notification.char_uuid != DATA_UUID:
            raise ProtocolError(f"toy profile has no notifications on {notification.char_uuid}")
        return [decode_frame(notification.data)]


class ToyBleEmulator:
    """Device side of the toy BLE profile."""

    def __init__(self, battery_pct: int = 87) -> None:
        self._streaming = False
        self._rate_hz = 100.0
        self.battery_pct = battery_pct
        self.n_polls = 0

    def on_write(self, write: GattWrite) -> list[BleNotification]:
        """Start, stop, poll."""
        if write.char_uuid != CONTROL_UUID or not write.data:
            return []
        command = write.data[0]
        if command == 0x01:
            self._streaming = True
            if len(write.data) > 1:
                self._rate_hz = float(write.data[1])
        elif command == 0x00:
            self._streaming = False
        elif command == 0x02:
            self.n_polls += 1
            return [BleNotification(STATUS_UUID, bytes([0xB7, self.battery_pct]))]
        return []

    def notifications_for(self, reading: DeviceReading) -> list[BleNotification]:
        """One data notification per reading while streaming."""
        if not self._streaming:
            return []
        return [BleNotification(DATA_UUID, encode_frame(reading))]

    @property
    def streaming(self) -> bool:
        """Whether measurement notifications are on."""
        return self._streaming

    @property
    def sampling_rate_hz(self) -> float:
        """Configured rate."""
        return self._rate_hz


def readings(
    n: int, rate_hz: float = 200.0, seq0: int = 0, skip: frozenset[int] = frozenset()
) -> Iterator[tuple[float, DeviceReading]]:
    """``n`` distinct readings at ``rate_hz`` as ``(time_s, reading)``; sequence numbers in ``skip`` are not sent."""
    for i in range(n):
        seq = seq0 + i
        if seq in skip:
            continue
        t = i / rate_hz
        yield t, make_reading(seq, t)


def make_reading(seq: int, time_s: float) -> DeviceReading:
    """A reading whose values encode its sequence number (float32-exact), so losses and mix-ups show."""
    return DeviceReading(
        acc_m_s2=(float(seq % 1000), 0.5, 9.75),
        gyr_rad_s=(0.25, -float(seq % 977), 0.125),
        device_time_s=round(time_s * 1e6) * 1e-6,
        seq=seq % SEQ_MODULUS,
    )
