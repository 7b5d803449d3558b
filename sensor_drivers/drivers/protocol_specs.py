"""What the ``serial`` and ``ble`` schemes need to know about a protocol to build its drivers (and emulators)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sensor_drivers.protocols.base import BleDeviceEmulator, BleProfile, StreamDecoder, StreamEncoder


@dataclass(frozen=True)
class SerialProtocolSpec:
    """How the ``serial`` scheme (and the virtual patient) builds one byte-stream protocol."""

    name: str
    description: str
    make_decoder: Callable[[], StreamDecoder]
    #: Configuration bytes written after every (re)open, given the requested rate (``None``: the device's own).
    #: Raise ValueError naming the accepted rates for one the device cannot do.
    start_writes: Callable[[float | None], list[bytes]] = field(default=lambda rate_hz: [])
    default_baud: int = 115200
    default_rate_hz: float = 200.0
    #: Where the protocol's sequence counter wraps (``None``: no wrap, or no counter).
    seq_modulus: int | None = None
    #: The device side, for the virtual patient's pty server.
    make_encoder: Callable[[], StreamEncoder] | None = None


@dataclass(frozen=True)
class BleProtocolSpec:
    """How the ``ble`` scheme (and the virtual patient) builds one BLE protocol."""

    name: str
    description: str
    #: A fresh profile configured for the requested rate (``None``: the protocol's default). Raise ValueError naming
    #: the accepted rates for one the device cannot do.
    make_profile: Callable[[float | None], BleProfile]
    default_rate_hz: float = 60.0
    seq_modulus: int | None = None
    #: The device side, for the GATT-level fake.
    make_emulator: Callable[[], BleDeviceEmulator] | None = None
