"""WitMotion BLE 5.0: notification decoding, register polling, the profile's writes and the device emulator."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensor_drivers.errors import ProtocolError
from sensor_drivers.frames import G_M_S2
from sensor_drivers.protocols import witmotion_ble as wb
from sensor_drivers.protocols.base import BleNotification, GattWrite
from sensor_drivers.protocols.witmotion_registers import (
    RATE_CODE_NONE,
    Register,
    rate_command,
    read_register_command,
    unlock_command,
    write_register_command,
)
from sensor_drivers.sample import DeviceReading, DeviceStatus

from .strategies import MAX_EXAMPLES, assert_close, readings

#: WT901BLECL datasheet v20-0707 §6.1.2.1: the answer to ``FF AA 27 3A 00``, "magnetic field x=360, y=105, z=122".
DATASHEET_MAG_ANSWER = bytes.fromhex("55 71 3A 00 68 01 69 00 7A 00 00 00 00 00 00 00 00 00 00 00")
#: A data packet built by hand per §6.1.1: acc (0, 0, 1 g), gyro (0, 0, 125 °/s), angle (90°, 0, -90°).
DATA_PACKET = bytes.fromhex("55 61 0000 0000 0008 0000 0000 0008 0040 0000 00c0")

ACC_LSB = 16 * G_M_S2 / 32768
GYR_LSB = math.radians(2000) / 32768


def notify(data: bytes) -> BleNotification:
    return BleNotification(wb.NOTIFY_UUID, data)


def test_uuids_are_the_witmotion_ble5_ones() -> None:
    assert wb.SERVICE_UUID == "0000ffe5-0000-1000-8000-00805f9a34fb"
    assert wb.NOTIFY_UUID == "0000ffe4-0000-1000-8000-00805f9a34fb"
    assert wb.WRITE_UUID == "0000ffe9-0000-1000-8000-00805f9a34fb"
    assert wb.WitmotionBleProfile().notify_uuids == (wb.NOTIFY_UUID,)


def test_hand_built_data_packet() -> None:
    profile = wb.WitmotionBleProfile()
    (reading,) = profile.decode(notify(DATA_PACKET))
    assert reading.acc_m_s2 == pytest.approx((0.0, 0.0, G_M_S2))
    assert reading.gyr_rad_s == pytest.approx((0.0, 0.0, math.radians(125.0)))
    assert profile.angle_deg == (90.0, 0.0, -90.0)
    assert reading.mag_ut is None
    assert reading.device_time_s is None
    assert reading.seq is None


def test_datasheet_magnetometer_example_attaches_to_the_next_reading_only() -> None:
    assert read_register_command(0x3A) == bytes.fromhex("FF AA 27 3A 00")  # the datasheet's request
    profile = wb.WitmotionBleProfile()
    assert profile.decode(notify(DATASHEET_MAG_ANSWER)) == []
    first, second = profile.decode(notify(DATA_PACKET + DATA_PACKET))
    assert first.mag_ut == pytest.approx((36.0, 10.5, 12.2))  # mG → µT until the chip type is known
    assert second.mag_ut is None
    assert wb.decode_register_packet(DATASHEET_MAG_ANSWER) == (0x3A, (360, 105, 122, 0, 0, 0, 0, 0))


def test_chip_type_register_selects_the_sdk_scale() -> None:
    profile = wb.WitmotionBleProfile()
    profile.decode(notify(wb.encode_register_packet(Register.MAGSENSOR, (2, 0, 0, 0, 0, 0, 0, 0))))
    profile.decode(notify(DATASHEET_MAG_ANSWER))
    (reading,) = profile.decode(notify(DATA_PACKET))
    assert profile.mag_sensor_type == 2
    assert reading.mag_ut == pytest.approx((54.0, 15.75, 18.3))  # 0.15 µT/LSB (AK8963)


def test_battery_voltage_register_becomes_a_charge_on_every_reading() -> None:
    profile = wb.WitmotionBleProfile()
    profile.decode(notify(wb.encode_register_packet(Register.BATTERY_VOLTAGE, (382, 0, 0, 0, 0, 0, 0, 0))))
    readings_ = profile.decode(notify(DATA_PACKET * 3))
    assert profile.battery_voltage_v == pytest.approx(3.82)
    assert len({id(r.status) for r in readings_}) == 1  # one shared status object, not one per sample
    assert readings_[0].status == DeviceStatus(battery_pct=pytest.approx(50.0))


def test_profile_writes() -> None:
    profile = wb.WitmotionBleProfile(rate_hz=200, mag_poll_period_s=0.1, battery_poll_period_s=5.0)
    writes = profile.start_writes()
    assert [w.data for w in writes] == [
        bytes.fromhex("ff aa 69 88 b5"),
        bytes.fromhex("ff aa 03 0b 00"),
        bytes.fromhex("ff aa 00 00 00"),
        bytes.fromhex("ff aa 27 72 00"),
    ]
    assert {w.char_uuid for w in writes} == {wb.WRITE_UUID}
    polls = profile.periodic_writes()
    assert [(p.period_s, p.write.data) for p in polls] == [
        (0.1, bytes.fromhex("ff aa 27 3a 00")),
        (5.0, bytes.fromhex("ff aa 27 64 00")),
    ]
    assert profile.stop_writes() == []
    with pytest.raises(ValueError, match="accepted rates"):
        wb.WitmotionBleProfile(rate_hz=60)


def test_malformed_notifications_raise_protocol_errors() -> None:
    profile = wb.WitmotionBleProfile()
    with pytest.raises(ProtocolError, match="multiple of 20"):
        profile.decode(notify(DATA_PACKET[:19]))
    with pytest.raises(ProtocolError, match="without a packet"):
        profile.decode(notify(bytes(20)))
    with pytest.raises(ProtocolError, match="expected 0000ffe4"):
        profile.decode(BleNotification(wb.WRITE_UUID, DATA_PACKET))
    # A good packet beside a bad one is kept; the bad one is counted.
    assert len(profile.decode(notify(bytes(20) + DATA_PACKET))) == 1
    assert profile.stats.bytes_discarded == 19 + 20 + 20 + 20


def connected_pair(rate_hz: float = 100.0) -> tuple[wb.WitmotionBleProfile, wb.WitmotionBleEmulator]:
    """A profile and an emulator after the driver's start writes, with notifications fed back."""
    profile = wb.WitmotionBleProfile(rate_hz=rate_hz)
    emulator = wb.WitmotionBleEmulator(rate_hz=10.0, battery_pct=90.0, mag_sensor_type=2)
    for write in profile.start_writes():
        for notification in emulator.on_write(write):
            assert profile.decode(notification) == []
    return profile, emulator


def test_emulator_applies_the_profiles_rate_and_answers_the_chip_type() -> None:
    profile, emulator = connected_pair(rate_hz=200.0)
    assert emulator.sampling_rate_hz == 200.0
    assert emulator.streaming
    assert emulator.registers.n_saves == 1
    assert profile.mag_sensor_type == 2
    assert profile.mag_ut_per_lsb == 0.15


def test_emulator_refuses_rate_writes_while_locked() -> None:
    emulator = wb.WitmotionBleEmulator(rate_hz=10.0)
    emulator.on_write(GattWrite(wb.WRITE_UUID, rate_command(200)))
    assert emulator.sampling_rate_hz == 10.0
    stop = unlock_command() + write_register_command(Register.RRATE, RATE_CODE_NONE)
    emulator.on_write(GattWrite(wb.WRITE_UUID, stop))
    assert not emulator.streaming
    assert emulator.notifications_for(DeviceReading((0, 0, 9.8), (0, 0, 0))) == []


@settings(max_examples=MAX_EXAMPLES, deadline=None)
@given(batch=st.lists(readings(with_mag=True), min_size=1, max_size=10), battery_pct=st.floats(0, 100))
def test_round_trip_through_the_emulator(batch: list[DeviceReading], battery_pct: float) -> None:
    profile, emulator = connected_pair()
    emulator.set_battery(battery_pct)
    for write in (p.write for p in profile.periodic_writes()):
        assert profile.decode(*emulator.on_write(write)) == []
    for k, reading in enumerate(batch):
        (notification,) = emulator.notifications_for(reading)
        (decoded,) = profile.decode(notification)
        assert_close(decoded.acc_m_s2, reading.acc_m_s2, ACC_LSB / 2 + 1e-9)
        assert_close(decoded.gyr_rad_s, reading.gyr_rad_s, GYR_LSB / 2 + 1e-9)
        if k == 0:
            # The magnetometer polled before the first packet; it held the previous reading's field (none yet).
            assert decoded.mag_ut == (0.0, 0.0, 0.0)
        assert decoded.status is not None
        # 0.01 V register steps: up to 2.5 % where the table is steepest (3.93-3.96 V: 15 %).
        assert decoded.status.battery_pct == pytest.approx(battery_pct, abs=2.5 + 1e-9)
        # Poll the magnetometer: the answer carries this reading's field, to the next packet.
        (answer,) = emulator.on_write(profile.periodic_writes()[0].write)
        profile.decode(answer)
        (next_packet,) = emulator.notifications_for(reading)
        (with_mag,) = profile.decode(next_packet)
        assert_close(with_mag.mag_ut, reading.mag_ut, 0.15 / 2 + 1e-9)


@settings(max_examples=MAX_EXAMPLES, deadline=None)
@given(data=st.binary(max_size=100))
def test_random_notifications_decode_or_raise_protocol_error(data: bytes) -> None:
    profile = wb.WitmotionBleProfile()
    try:
        out = profile.decode(notify(data))
    except ProtocolError:
        return
    assert len(out) <= len(data) // 20
