"""Interfaces every protocol implements, so that transports (serial, BLE) and emulators stay protocol-agnostic.

- A byte-stream protocol (serial) provides a :class:`StreamDecoder`: ``feed(bytes) -> list[DeviceReading]``, which
  resynchronises after garbage and counts what it dropped in :class:`DecoderStats`. It never raises on bad input.
- A BLE protocol provides a :class:`BleProfile`: which characteristics to subscribe to, what to write to start,
  stop and poll, and how to decode a notification.
- For the virtual patient, each protocol also provides an emulator of the device side (:class:`StreamEncoder` for
  serial, :class:`BleDeviceEmulator` for BLE) that turns readings into the exact bytes the real device sends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sensor_drivers.sample import DeviceReading


@dataclass
class DecoderStats:
    """What a stream decoder saw. Everything not decoded is counted, never silently dropped."""

    bytes_in: int = 0
    frames_ok: int = 0
    #: Frames whose checksum/CRC did not match (dropped).
    checksum_errors: int = 0
    #: Bytes skipped while searching for the next frame start (garbage, truncated frames).
    bytes_discarded: int = 0
    #: Well-formed frames of a type the decoder does not use (kept count only).
    frames_ignored: int = 0
    #: Frames with a valid checksum whose content is inconsistent (length does not match its flags, impossible
    #: field values): a firmware bug rather than line noise, so counted apart from checksum errors.
    frames_malformed: int = 0
    #: Decoded frames that could not form a complete reading (a WitMotion output cycle that lost its acceleration
    #: or angular-velocity frame), dropped.
    readings_incomplete: int = 0
    #: Readings emitted.
    readings_out: int = 0


class StreamDecoder(Protocol):
    """Decodes a byte stream (serial) incrementally. Keeps at most one partial frame between calls."""

    stats: DecoderStats

    def feed(self, data: bytes) -> list[DeviceReading]:
        """Consume ``data`` and return every reading completed by it (possibly none). Never raises on bad bytes."""
        ...


class StreamEncoder(Protocol):
    """The device side of a byte-stream protocol: readings → the bytes the device would send."""

    def encode(self, reading: DeviceReading) -> bytes:
        """Bytes for one reading (one or several frames)."""
        ...


@dataclass(frozen=True)
class GattWrite:
    """One write to a GATT characteristic."""

    char_uuid: str
    data: bytes
    #: Whether the device acknowledges the write (BLE "write with response").
    response: bool = True


@dataclass(frozen=True)
class PeriodicWrite:
    """A write repeated while streaming, e.g. WitMotion register polling for magnetometer and battery."""

    period_s: float
    write: GattWrite


@dataclass(frozen=True)
class BleNotification:
    """One notification as it arrives: which characteristic, which bytes."""

    char_uuid: str
    data: bytes


class BleProfile(Protocol):
    """Everything a BLE driver needs to know about one device family. Stateful only in its decoder."""

    #: Short protocol name used in source strings (``ble:ADDR?protocol=<name>``).
    name: str
    #: Characteristics to subscribe to, in order.
    notify_uuids: Sequence[str]

    def start_writes(self) -> list[GattWrite]:
        """Writes after connecting and subscribing that make the device stream (rate, mode, start)."""
        ...

    def stop_writes(self) -> list[GattWrite]:
        """Writes that stop streaming before disconnecting."""
        ...

    def periodic_writes(self) -> list[PeriodicWrite]:
        """Writes repeated while streaming (may be empty)."""
        ...

    def decode(self, notification: BleNotification) -> list[DeviceReading]:
        """Readings carried by one notification. Status-only notifications update state and return ``[]``.

        Raises :class:`~sensor_drivers.errors.ProtocolError` for a malformed notification; the driver counts it
        and carries on.
        """
        ...


class BleDeviceEmulator(Protocol):
    """The device side of a BLE profile, for the GATT-level fake: it answers writes and produces notifications."""

    def on_write(self, write: GattWrite) -> list[BleNotification]:
        """React to a write from the central (start/stop/configure/poll); returns notifications it triggers."""
        ...

    def notifications_for(self, reading: DeviceReading) -> list[BleNotification]:
        """Notifications carrying one reading, in the currently configured mode ([] while not streaming)."""
        ...

    @property
    def streaming(self) -> bool:
        """Whether the emulated device is currently sending measurement notifications."""
        ...

    @property
    def sampling_rate_hz(self) -> float:
        """The output rate currently configured."""
        ...


@dataclass
class ProtocolInfo:
    """Registry entry: how to build each side of one protocol."""

    name: str
    transport: str  # "serial" or "ble"
    description: str
    #: Default sampling rate the driver configures, Hz.
    default_rate_hz: float
    extra: dict[str, object] = field(default_factory=dict)
