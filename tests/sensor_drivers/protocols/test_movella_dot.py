"""Movella DOT: payload layouts per the BLE Service Specification (XD0506P rev. C), the profile and the emulator.

The specification has no example packets; the golden vectors below are written byte by byte from its tables 13-17
(little-endian, IEEE-754 float32), independently of the code's ``struct`` formats.
"""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensor_drivers.errors import ProtocolError
from sensor_drivers.frames import G_M_S2
from sensor_drivers.protocols import movella_dot as dot
from sensor_drivers.protocols.base import BleNotification, GattWrite
from sensor_drivers.sample import DeviceReading, DeviceStatus

from .strategies import MAX_EXAMPLES, assert_close, readings

#: Rate quantities (with mag), mode 20, on the 40-byte medium characteristic: timestamp 123456 µs,
#: acceleration (1, -1, 2) m/s², angular velocity (90, 0, 180) °/s, magnetic field (4096, -2048, 0) = (1, -0.5, 0) a.u.
RATE_MAG_GOLDEN = bytes.fromhex(
    "40e201000000803f 000080bf 000000400000b442 00000000 000034430010 00f8 0000000000000000"
)
#: Extended (Quaternion), mode 2: timestamp 1 s, identity quaternion, zero free acceleration, status 0x0012
#: (acc y and gyro y clipping), clip counts 3 and 4.
EXTENDED_QUAT_GOLDEN = bytes.fromhex(
    "40420f000000803f 00000000 00000000 0000000000000000 00000000 000000001200030400000000"
)


def test_uuids_follow_the_base_uuid() -> None:
    assert dot.CONTROL_UUID == "15172001-4947-11e9-8646-d663bd873d93"
    assert dot.LONG_PAYLOAD_UUID == "15172002-4947-11e9-8646-d663bd873d93"
    assert dot.MEDIUM_PAYLOAD_UUID == "15172003-4947-11e9-8646-d663bd873d93"
    assert dot.SHORT_PAYLOAD_UUID == "15172004-4947-11e9-8646-d663bd873d93"
    assert dot.ORIENTATION_RESET_CONTROL_UUID == "15172006-4947-11e9-8646-d663bd873d93"
    assert dot.BATTERY_UUID == "15173001-4947-11e9-8646-d663bd873d93"


def test_layouts_have_the_spec_sizes_and_characteristics() -> None:
    sizes = {mode: (layout.size, layout.char_uuid) for mode, layout in dot.PAYLOAD_LAYOUTS.items()}
    assert sizes == {
        dot.PayloadMode.EXTENDED_QUATERNION: (36, dot.MEDIUM_PAYLOAD_UUID),
        dot.PayloadMode.COMPLETE_QUATERNION: (32, dot.MEDIUM_PAYLOAD_UUID),
        dot.PayloadMode.RATE_QUANTITIES_WITH_MAG: (34, dot.MEDIUM_PAYLOAD_UUID),
        dot.PayloadMode.RATE_QUANTITIES: (28, dot.MEDIUM_PAYLOAD_UUID),
        dot.PayloadMode.CUSTOM_MODE_5: (44, dot.LONG_PAYLOAD_UUID),
    }


def test_commands_are_the_spec_bytes() -> None:
    assert dot.control_command(True, dot.PayloadMode.RATE_QUANTITIES_WITH_MAG) == bytes((1, 1, 20))
    assert dot.control_command(False, dot.PayloadMode.CUSTOM_MODE_5) == bytes((1, 0, 26))
    assert dot.heading_reset_command() == b"\x01\x00"
    assert dot.heading_revert_command() == b"\x07\x00"
    rate = dot.output_rate_command(60)
    assert len(rate) == 32
    assert rate[0] == 0x10  # visit index: output rate
    assert rate[24:26] == b"\x3c\x00"
    assert set(rate[1:24] + rate[26:]) == {0}
    with pytest.raises(ValueError, match="accepted: 1, 4, 10, 12, 15, 20, 30, 60"):
        dot.output_rate_command(120)


def test_rate_quantities_with_mag_golden_vector() -> None:
    payload = dot.decode_payload(dot.PayloadMode.RATE_QUANTITIES_WITH_MAG, RATE_MAG_GOLDEN)
    assert payload.timestamp_us == 123456
    assert payload.acc_m_s2 == (1.0, -1.0, 2.0)
    assert payload.gyr_deg_s == (90.0, 0.0, 180.0)
    assert payload.mag_raw == (4096, -2048, 0)
    profile = dot.DotProfile(mag_ut_per_au=50.0)
    (reading,) = profile.decode(BleNotification(dot.MEDIUM_PAYLOAD_UUID, RATE_MAG_GOLDEN))
    assert reading.acc_m_s2 == (1.0, -1.0, 2.0)
    assert reading.gyr_rad_s == pytest.approx((math.pi / 2, 0.0, math.pi))
    assert reading.mag_ut == (50.0, -25.0, 0.0)
    assert reading.device_time_s == pytest.approx(0.123456)
    assert reading.seq is None
    assert dot.encode_payload(dot.PayloadMode.RATE_QUANTITIES_WITH_MAG, payload) == RATE_MAG_GOLDEN


def test_extended_quaternion_golden_vector() -> None:
    profile = dot.DotProfile(payload_mode="extended-quaternion")
    (reading,) = profile.decode(BleNotification(dot.MEDIUM_PAYLOAD_UUID, EXTENDED_QUAT_GOLDEN))
    assert reading.quat_wxyz == (1.0, 0.0, 0.0, 0.0)
    assert reading.acc_m_s2 == (0.0, 0.0, G_M_S2)  # rebuilt from zero free acceleration
    assert all(math.isnan(v) for v in reading.gyr_rad_s)  # not sent in this mode
    assert reading.status == DeviceStatus(acc_clip_count=3, gyr_clip_count=4)
    assert dot.decode_payload(2, EXTENDED_QUAT_GOLDEN).status == 0x0012


def test_free_acceleration_is_turned_back_into_specific_force() -> None:
    # Sensor rotated 90° about x: its y axis points up, so gravity reads +g on y.
    half = math.pi / 4
    quat = (math.cos(half), math.sin(half), 0.0, 0.0)
    payload = dot.DotPayload(timestamp_us=0, quat_wxyz=quat, free_acc_m_s2=(0.0, 0.0, 0.0))
    data = dot.encode_payload(dot.PayloadMode.COMPLETE_QUATERNION, payload)
    (reading,) = dot.DotProfile(payload_mode="complete-quaternion").decode(
        BleNotification(dot.MEDIUM_PAYLOAD_UUID, data)
    )
    assert reading.acc_m_s2 == pytest.approx((0.0, G_M_S2, 0.0), abs=1e-5)


def test_timestamp_is_unwrapped_across_notifications() -> None:
    profile = dot.DotProfile(payload_mode="rate")
    times = []
    for t_us in (2**32 - 20_000, 2**32 - 3_333, 13_334, 30_001):
        data = dot.encode_payload("rate", dot.DotPayload(t_us, acc_m_s2=(0, 0, 9.8), gyr_deg_s=(0, 0, 0)))
        times += [r.device_time_s for r in profile.decode(BleNotification(dot.MEDIUM_PAYLOAD_UUID, data))]
    steps = [b - a for a, b in itertools.pairwise(times)]
    assert steps == pytest.approx([0.016667, 0.016667, 0.016667], abs=1e-6)
    assert profile.clock.n_wraps == 1


def test_battery_notifications_update_status() -> None:
    profile = dot.DotProfile()
    assert profile.decode(BleNotification(dot.BATTERY_UUID, bytes((87, 1)))) == []
    assert (profile.battery_pct, profile.charging) == (87, True)
    (reading,) = profile.decode(BleNotification(dot.MEDIUM_PAYLOAD_UUID, RATE_MAG_GOLDEN))
    assert reading.status == DeviceStatus(battery_pct=87)
    with pytest.raises(ProtocolError, match=r"level 0\.\.100"):
        profile.decode(BleNotification(dot.BATTERY_UUID, bytes((187, 0))))


def test_profile_writes_and_subscriptions() -> None:
    profile = dot.DotProfile(payload_mode="custom5", rate_hz=30)
    assert profile.notify_uuids == (dot.LONG_PAYLOAD_UUID, dot.BATTERY_UUID)
    assert profile.start_writes() == [
        GattWrite(dot.DEVICE_CONTROL_UUID, dot.output_rate_command(30)),
        GattWrite(dot.CONTROL_UUID, bytes((1, 1, 26))),
    ]
    assert profile.stop_writes() == [GattWrite(dot.CONTROL_UUID, bytes((1, 0, 26)))]
    assert profile.periodic_writes() == []
    assert [w.data for w in profile.heading_reset_writes()] == [b"\x07\x00", b"\x01\x00"]


def test_unsupported_modes_are_refused_with_the_supported_list() -> None:
    with pytest.raises(ValueError, match=r"supported: .*rate_quantities_with_mag"):
        dot.DotProfile(payload_mode=dot.PayloadMode.CUSTOM_MODE_4)
    with pytest.raises(ValueError, match="supported: extended-quaternion"):
        dot.DotProfile(payload_mode="hifi")


def test_malformed_notifications_raise_protocol_errors() -> None:
    profile = dot.DotProfile()
    with pytest.raises(ProtocolError, match="at least 34"):
        profile.decode(BleNotification(dot.MEDIUM_PAYLOAD_UUID, RATE_MAG_GOLDEN[:33]))
    with pytest.raises(ProtocolError, match="expected 15172003"):
        profile.decode(BleNotification(dot.LONG_PAYLOAD_UUID, RATE_MAG_GOLDEN))
    assert profile.stats.frames_malformed == 1


def started(mode: str, rate_hz: int = 60) -> tuple[dot.DotProfile, dot.DotEmulator]:
    profile = dot.DotProfile(payload_mode=mode, rate_hz=rate_hz)
    emulator = dot.DotEmulator()
    for write in profile.start_writes():
        assert emulator.on_write(write) == []
    return profile, emulator


@pytest.mark.parametrize("mode", sorted(dot.MODE_NAMES))
@settings(max_examples=MAX_EXAMPLES // 3, deadline=None)
@given(batch=st.lists(readings(with_mag=True, with_quat=True), min_size=1, max_size=5))
def test_round_trip_through_the_emulator(mode: str, batch: list[DeviceReading]) -> None:
    profile, emulator = started(mode)
    assert emulator.streaming
    assert emulator.payload_mode == profile.payload_mode
    for k, reading in enumerate(batch):
        (notification,) = emulator.notifications_for(reading)
        (decoded,) = profile.decode(notification)
        assert decoded.device_time_s == pytest.approx(k / 60, abs=2e-6)
        # float32 on the wire: relative error 6e-8, plus the free-acceleration round trip in quaternion modes.
        assert_close(decoded.acc_m_s2, reading.acc_m_s2, 1e-4)
        if mode in ("rate", "rate-mag", "custom5"):
            assert_close(decoded.gyr_rad_s, reading.gyr_rad_s, 1e-5)
        if mode == "rate-mag":
            # int16 / 2**12 a.u. holds ±8 a.u. (±386 µT at the default scale): beyond that it saturates.
            lsb = dot.DEFAULT_MAG_UT_PER_AU / 4096
            expected = tuple(max(-32768 * lsb, min(32767 * lsb, v)) for v in reading.mag_ut)
            assert_close(decoded.mag_ut, expected, lsb / 2 + 1e-9)
        if "quaternion" in mode or mode == "custom5":
            assert_close(decoded.quat_wxyz, reading.quat_wxyz, 1e-6)


def test_emulator_refuses_rate_changes_while_measuring() -> None:
    _, emulator = started("rate-mag", rate_hz=30)
    assert emulator.sampling_rate_hz == 30.0
    emulator.on_write(GattWrite(dot.DEVICE_CONTROL_UUID, dot.output_rate_command(60)))
    assert emulator.sampling_rate_hz == 30.0
    assert emulator.n_rejected_writes == 1
    emulator.on_write(GattWrite(dot.CONTROL_UUID, dot.control_command(False, 20)))
    assert not emulator.streaming
    assert emulator.notifications_for(DeviceReading((0, 0, 9.8), (0, 0, 0), mag_ut=(1, 0, 0))) == []


def _yaw_deg(quat: tuple[float, float, float, float]) -> float:
    w, x, y, z = quat
    return math.degrees(math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)))


def test_heading_reset_zeroes_the_current_heading_until_reverted() -> None:
    profile, emulator = started("custom5")
    yaw = math.radians(40.0)
    reading = DeviceReading((0, 0, 9.8), (0, 0, 0), quat_wxyz=(math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)))

    def heading() -> float:
        (decoded,) = profile.decode(*emulator.notifications_for(reading))
        return _yaw_deg(decoded.quat_wxyz)

    assert heading() == pytest.approx(40.0, abs=1e-4)
    for write in profile.heading_reset_writes():
        emulator.on_write(write)
    assert emulator.heading_reset_ok
    assert heading() == pytest.approx(0.0, abs=1e-4)
    # A second reset without a revert fails on the device.
    emulator.on_write(GattWrite(dot.ORIENTATION_RESET_CONTROL_UUID, dot.heading_reset_command()))
    assert emulator.heading_reset_ok is False
    for write in profile.heading_revert_writes():
        emulator.on_write(write)
    assert heading() == pytest.approx(40.0, abs=1e-4)


def test_emulator_notifies_battery_changes_only() -> None:
    _, emulator = started("rate")
    low = DeviceReading((0, 0, 9.8), (0, 0, 0), status=DeviceStatus(battery_pct=42.0))
    first = emulator.notifications_for(low)
    assert [n.char_uuid for n in first] == [dot.BATTERY_UUID, dot.MEDIUM_PAYLOAD_UUID]
    assert first[0].data == bytes((42, 0))
    assert [n.char_uuid for n in emulator.notifications_for(low)] == [dot.MEDIUM_PAYLOAD_UUID]


@settings(max_examples=MAX_EXAMPLES, deadline=None)
@given(data=st.binary(max_size=70), uuid=st.sampled_from([dot.MEDIUM_PAYLOAD_UUID, dot.BATTERY_UUID, dot.CONTROL_UUID]))
def test_random_notifications_decode_or_raise_protocol_error(data: bytes, uuid: str) -> None:
    profile = dot.DotProfile()
    try:
        out = profile.decode(BleNotification(uuid, data))
    except ProtocolError:
        return
    assert len(out) <= 1
