"""The real device protocols, registered with the driver registry's ``serial`` and ``ble`` schemes.

The codecs live in :mod:`sensor_drivers.protocols`; this module only says how a driver builds each side of them.
Sequence numbers and device clocks arrive already unwrapped from the decoders, so no ``seq_modulus`` is needed.
"""

from __future__ import annotations

from sensor_drivers.drivers.protocol_specs import BleProtocolSpec, SerialProtocolSpec
from sensor_drivers.protocols import registry as protocols
from sensor_drivers.protocols import witmotion_registers


def _witmotion_start_writes(rate_hz: float | None) -> list[bytes]:
    # No "save": the rate is re-sent on every (re)open, and saving would write the device's flash each time.
    return witmotion_registers.configure_commands(rate_hz or 200.0, save=False)


def _stridetwin_start_writes(rate_hz: float | None) -> list[bytes]:
    return protocols.serial_start_commands("stridetwin", rate_hz) if rate_hz is not None else []


def _serial_spec(name: str, start_writes: object) -> SerialProtocolSpec:
    info = protocols.get_protocol(name)
    return SerialProtocolSpec(
        name=name,
        description=info.description,
        make_decoder=lambda: protocols.make_decoder(name),
        start_writes=start_writes,  # type: ignore[arg-type]
        default_baud=int(info.extra.get("baud_rate", 115200)),  # type: ignore[arg-type]
        default_rate_hz=info.default_rate_hz,
        make_encoder=lambda: protocols.make_encoder(name),
    )


def _ble_spec(name: str) -> BleProtocolSpec:
    info = protocols.get_protocol(name)
    return BleProtocolSpec(
        name=name,
        description=info.description,
        make_profile=lambda rate_hz: (
            protocols.make_profile(name) if rate_hz is None else protocols.make_profile(name, rate_hz=rate_hz)
        ),
        default_rate_hz=info.default_rate_hz,
        make_emulator=lambda: protocols.make_emulator(name),
    )


def builtin_serial_protocols() -> list[SerialProtocolSpec]:
    """WitMotion serial and the StrideTwin frame."""
    return [_serial_spec("witmotion", _witmotion_start_writes), _serial_spec("stridetwin", _stridetwin_start_writes)]


def builtin_ble_protocols() -> list[BleProtocolSpec]:
    """WitMotion BLE 5.0 and Movella DOT."""
    return [_ble_spec("witmotion-ble"), _ble_spec("dot")]
