"""Protocols by name: ``get_protocol("witmotion")`` and factories for each side of each protocol.

Names (as in source strings, ``serial:/dev/ttyUSB0?protocol=witmotion``, ``ble:ADDR?protocol=dot``):

- ``witmotion``: WitMotion serial (WT901, HWT901B, JY901), :mod:`.witmotion_serial`
- ``witmotion-ble``: WitMotion BLE 5.0 (WT901BLECL, BWT901BLE5.0), :mod:`.witmotion_ble`
- ``dot``: Movella (Xsens) DOT over BLE, :mod:`.movella_dot`
- ``stridetwin``: the open StrideTwin frame for do-it-yourself boards, :mod:`.stridetwin_frame`

Factories pass keyword options on to the class they build (e.g. ``make_profile("dot", payload_mode="custom5")``);
asking a serial protocol for a BLE profile, or the reverse, is a clear error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sensor_drivers.errors import SourceError
from sensor_drivers.protocols import (
    movella_dot,
    stridetwin_frame,
    witmotion_ble,
    witmotion_registers,
    witmotion_serial,
)
from sensor_drivers.protocols.base import (
    BleDeviceEmulator,
    BleProfile,
    ProtocolInfo,
    StreamDecoder,
    StreamEncoder,
)


@dataclass(frozen=True)
class _Entry:
    info: ProtocolInfo
    decoder: Callable[..., StreamDecoder] | None = None
    encoder: Callable[..., StreamEncoder] | None = None
    profile: Callable[..., BleProfile] | None = None
    emulator: Callable[..., BleDeviceEmulator] | None = None
    #: Serial protocols: the bytes that set the device's output rate.
    start_commands: Callable[[float], list[bytes]] | None = None


_ENTRIES: dict[str, _Entry] = {
    "witmotion": _Entry(
        ProtocolInfo(
            name="witmotion",
            transport="serial",
            description="WitMotion serial (WT901, HWT901B, JY901): 11-byte 0x55 frames with an 8-bit checksum",
            default_rate_hz=200.0,
            # 200 Hz × 4 frames × 11 bytes = 8.8 kB/s: 115200 baud is 76 % busy; the devices ship at 9600.
            extra={"baud_rate": 230400, "factory_baud_rate": 9600, "bytes_per_sample": 44},
        ),
        decoder=witmotion_serial.WitmotionSerialDecoder,
        encoder=witmotion_serial.WitmotionSerialEncoder,
        start_commands=witmotion_registers.configure_commands,
    ),
    "witmotion-ble": _Entry(
        ProtocolInfo(
            name="witmotion-ble",
            transport="ble",
            description="WitMotion BLE 5.0 (WT901BLECL, BWT901BLE5.0): 0x55 0x61 notifications, polled registers",
            default_rate_hz=100.0,
            extra={
                "service_uuid": witmotion_ble.SERVICE_UUID,
                "notify_uuid": witmotion_ble.NOTIFY_UUID,
                "write_uuid": witmotion_ble.WRITE_UUID,
            },
        ),
        profile=witmotion_ble.WitmotionBleProfile,
        emulator=witmotion_ble.WitmotionBleEmulator,
    ),
    "dot": _Entry(
        ProtocolInfo(
            name="dot",
            transport="ble",
            description="Movella (Xsens) DOT over BLE: measurement service payload modes, battery, heading reset",
            # The fastest real-time streaming rate of the DOT (120 Hz is for on-board recording only).
            default_rate_hz=60.0,
            extra={
                "measurement_service_uuid": movella_dot.MEASUREMENT_SERVICE_UUID,
                "payload_modes": sorted(movella_dot.MODE_NAMES),
                "advertised_names": ["Movella DOT", "Xsens DOT"],
            },
        ),
        profile=movella_dot.DotProfile,
        emulator=movella_dot.DotEmulator,
    ),
    "stridetwin": _Entry(
        ProtocolInfo(
            name="stridetwin",
            transport="serial",
            description="Open StrideTwin frame for DIY boards: A5 5A sync, µs timestamp, sequence number, CRC-16",
            default_rate_hz=200.0,
            # A full sample frame is 71 bytes: 14.2 kB/s at 200 Hz (docs/protocols/stridetwin-frame.md).
            extra={"baud_rate": 921600, "max_bytes_per_sample": 71},
        ),
        decoder=stridetwin_frame.StrideTwinDecoder,
        encoder=stridetwin_frame.StrideTwinEncoder,
        start_commands=lambda rate_hz: [stridetwin_frame.set_rate_command(rate_hz)],
    ),
}


def protocol_names() -> list[str]:
    """Names of all known protocols."""
    return sorted(_ENTRIES)


def _entry(name: str) -> _Entry:
    entry = _ENTRIES.get(name.strip().lower())
    if entry is None:
        raise SourceError(f"unknown device protocol {name!r}; known protocols: {', '.join(protocol_names())}")
    return entry


def get_protocol(name: str) -> ProtocolInfo:
    """The registry entry of protocol ``name``; :class:`SourceError` listing the known names for an unknown one."""
    return _entry(name).info


def _wrong_transport(name: str, entry: _Entry, wanted: str) -> SourceError:
    names = [n for n, e in sorted(_ENTRIES.items()) if e.info.transport == wanted]
    return SourceError(
        f"protocol {name!r} runs over {entry.info.transport}, not {wanted}; {wanted} protocols: {', '.join(names)}"
    )


def make_decoder(name: str, **options: object) -> StreamDecoder:
    """A new stream decoder of serial protocol ``name``."""
    entry = _entry(name)
    if entry.decoder is None:
        raise _wrong_transport(name, entry, "serial")
    return entry.decoder(**options)


def make_encoder(name: str, **options: object) -> StreamEncoder:
    """A new device-side encoder of serial protocol ``name`` (for the virtual patient)."""
    entry = _entry(name)
    if entry.encoder is None:
        raise _wrong_transport(name, entry, "serial")
    return entry.encoder(**options)


def make_profile(name: str, **options: object) -> BleProfile:
    """A new BLE profile of protocol ``name``."""
    entry = _entry(name)
    if entry.profile is None:
        raise _wrong_transport(name, entry, "ble")
    return entry.profile(**options)


def make_emulator(name: str, **options: object) -> BleDeviceEmulator:
    """A new BLE device emulator of protocol ``name`` (for the GATT-level fake)."""
    entry = _entry(name)
    if entry.emulator is None:
        raise _wrong_transport(name, entry, "ble")
    return entry.emulator(**options)


def serial_start_commands(name: str, rate_hz: float | None = None) -> list[bytes]:
    """Bytes a serial driver writes after opening the port to set the output rate (default: the protocol's).

    WitMotion: unlock, rate, save (send them about 10 ms apart); StrideTwin: one set-rate command (optional for a
    board to honour). Rates a device cannot do are a clear ``ValueError``.
    """
    entry = _entry(name)
    if entry.start_commands is None:
        raise _wrong_transport(name, entry, "serial")
    return entry.start_commands(entry.info.default_rate_hz if rate_hz is None else rate_hz)
