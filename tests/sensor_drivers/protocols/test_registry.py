"""The protocol registry: lookup by name, clear errors, and factories that build working pairs."""

from __future__ import annotations

import pytest

from sensor_drivers.errors import SourceError
from sensor_drivers.protocols import registry
from sensor_drivers.sample import DeviceReading

READING = DeviceReading((0.5, -0.25, 9.75), (0.125, 0.0, -0.5), mag_ut=(20.0, 0.0, -44.0), quat_wxyz=(1.0, 0, 0, 0))


def test_names_and_transports() -> None:
    assert registry.protocol_names() == ["dot", "stridetwin", "witmotion", "witmotion-ble"]
    transports = {name: registry.get_protocol(name).transport for name in registry.protocol_names()}
    assert transports == {"dot": "ble", "stridetwin": "serial", "witmotion": "serial", "witmotion-ble": "ble"}
    assert registry.get_protocol(" WitMotion ").name == "witmotion"


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(SourceError, match="unknown device protocol 'xsens'; known protocols: dot, stridetwin"):
        registry.get_protocol("xsens")


def test_wrong_transport_is_a_clear_error() -> None:
    with pytest.raises(SourceError, match="'dot' runs over ble, not serial; serial protocols: stridetwin, witmotion"):
        registry.make_decoder("dot")
    with pytest.raises(SourceError, match="ble protocols: dot, witmotion-ble"):
        registry.make_profile("stridetwin")


@pytest.mark.parametrize("name", ["witmotion", "stridetwin"])
def test_serial_factories_make_a_matching_pair(name: str) -> None:
    encoder = registry.make_encoder(name)
    decoder = registry.make_decoder(name)
    decoded = [r for _ in range(3) for r in decoder.feed(encoder.encode(READING))]
    assert len(decoded) >= 2
    assert decoded[-1].acc_m_s2 == pytest.approx(READING.acc_m_s2, abs=0.005)
    assert decoder.stats.readings_out == len(decoded)


@pytest.mark.parametrize("name", ["witmotion-ble", "dot"])
def test_ble_factories_make_a_matching_pair(name: str) -> None:
    profile = registry.make_profile(name)
    emulator = registry.make_emulator(name)
    for write in profile.start_writes():
        for notification in emulator.on_write(write):
            profile.decode(notification)
    assert emulator.streaming
    assert emulator.sampling_rate_hz == registry.get_protocol(name).default_rate_hz
    notifications = emulator.notifications_for(READING)
    assert set(n.char_uuid for n in notifications) <= set(profile.notify_uuids)
    (decoded,) = [r for n in notifications for r in profile.decode(n)]
    assert decoded.acc_m_s2 == pytest.approx(READING.acc_m_s2, abs=0.005)


def test_factory_options_pass_through() -> None:
    profile = registry.make_profile("dot", payload_mode="custom5", rate_hz=30)
    assert profile.rate_hz == 30
    with pytest.raises(TypeError):
        registry.make_decoder("witmotion", no_such_option=1)


def test_serial_start_commands_set_the_rate() -> None:
    assert registry.serial_start_commands("witmotion") == [
        bytes.fromhex("ff aa 69 88 b5"),
        bytes.fromhex("ff aa 03 0b 00"),
        bytes.fromhex("ff aa 00 00 00"),
    ]
    encoder = registry.make_encoder("stridetwin")
    encoder.feed_command(b"".join(registry.serial_start_commands("stridetwin", 100.0)))
    assert encoder.sampling_rate_hz == 100.0
    with pytest.raises(ValueError, match="accepted rates"):
        registry.serial_start_commands("witmotion", 150.0)
    with pytest.raises(SourceError, match="runs over ble"):
        registry.serial_start_commands("dot")
