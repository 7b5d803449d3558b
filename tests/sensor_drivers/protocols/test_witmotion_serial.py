"""WitMotion serial protocol: frames, output cycles, resynchronisation, commands and the device emulator.

Golden frames are built by hand from the formulas of the WT901 datasheet (v20-0702, §5.1) and the HWT905 protocol
page: ``55 <type> <4 int16 LE> <low byte of the sum of the first 10 bytes>``.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensor_drivers.errors import ProtocolError
from sensor_drivers.frames import G_M_S2
from sensor_drivers.protocols import witmotion_serial as ws
from sensor_drivers.protocols.witmotion_registers import (
    OutputContent,
    battery_pct_from_voltage,
    baud_command,
    configure_commands,
    output_content_command,
    rate_command,
    read_register_command,
    save_command,
    unlock_command,
    voltage_from_battery_pct,
)
from sensor_drivers.sample import DeviceReading

from .strategies import MAX_EXAMPLES, assert_close, readings

ACC_1G = bytes.fromhex("55 51 00 00 00 00 00 08 c4 09 7b")  # az = 2048 LSB = 1 g, 25.00 °C
GYRO_125 = bytes.fromhex("55 52 00 00 00 00 00 08 c4 09 7c")  # wz = 2048 LSB = 125 °/s
TIME_2024 = bytes.fromhex("55 50 18 03 0f 0c 22 38 15 03 4d")  # 2024-03-15 12:34:56.789
MAG_EXAMPLE = bytes.fromhex("55 54 68 01 69 00 7a 00 c4 09 c2")  # 360, 105, 122 LSB
QUAT_IDENTITY = bytes.fromhex("55 59 ff 7f 00 00 00 00 00 00 2c")

FULL = ws.DEFAULT_CONTENT | OutputContent.TIME | OutputContent.QUATERNION
ACC_LSB = 16 * G_M_S2 / 32768
GYR_LSB = math.radians(2000) / 32768


def test_golden_frames_decode_to_the_datasheet_values() -> None:
    decoder = ws.WitmotionSerialDecoder()
    (reading,) = decoder.feed(TIME_2024 + ACC_1G + GYRO_125 + MAG_EXAMPLE + QUAT_IDENTITY + TIME_2024)
    assert reading.acc_m_s2 == (0.0, 0.0, G_M_S2 / 2048 * 2048 / 1)  # exactly 1 g
    assert reading.gyr_rad_s == pytest.approx((0.0, 0.0, math.radians(125.0)))
    assert reading.mag_ut == pytest.approx((36.0, 10.5, 12.2))  # mG → µT
    assert reading.quat_wxyz == (32767 / 32768, 0.0, 0.0, 0.0)
    # 2024-03-15 12:34:56.789 is 763 821 296.789 s after 2000-01-01 00:00:00.
    assert reading.device_time_s == pytest.approx(763_821_296.789, abs=1e-6)
    assert reading.seq is None
    assert decoder.temperature_c == pytest.approx(25.0)


def test_decode_frame_checks_everything() -> None:
    assert ws.decode_frame(ACC_1G) == ws.WitFrame(0x51, (0, 0, 2048, 2500))
    with pytest.raises(ProtocolError, match="checksum"):
        ws.decode_frame(ACC_1G[:-1] + b"\x00")
    with pytest.raises(ProtocolError, match="11 bytes"):
        ws.decode_frame(ACC_1G[:-1])
    with pytest.raises(ProtocolError, match="0x55"):
        ws.decode_frame(b"\x54" + ACC_1G[1:])


def test_commands_are_the_documented_bytes() -> None:
    assert unlock_command() == bytes.fromhex("ff aa 69 88 b5")
    assert save_command() == bytes.fromhex("ff aa 00 00 00")
    assert rate_command(200) == bytes.fromhex("ff aa 03 0b 00")
    assert rate_command(10) == bytes.fromhex("ff aa 03 06 00")
    assert read_register_command(0x3A) == bytes.fromhex("ff aa 27 3a 00")
    assert output_content_command(OutputContent.ACC | OutputContent.GYRO) == bytes.fromhex("ff aa 02 06 00")
    assert baud_command(115200) == bytes.fromhex("ff aa 04 06 00")
    assert configure_commands(100, save=False) == [unlock_command(), rate_command(100)]
    with pytest.raises(ValueError, match="accepted rates"):
        rate_command(150)


def test_battery_table_follows_the_sdk_and_inverts() -> None:
    assert battery_pct_from_voltage(3.99) == 100.0
    assert battery_pct_from_voltage(3.3) == 0.0
    assert battery_pct_from_voltage(3.82) == pytest.approx(50.0)
    assert battery_pct_from_voltage(8.0) == pytest.approx(70.0)  # two cells: 7.75 V → 60 %, 8.5 V → 90 %
    for pct in (0.0, 12.5, 50.0, 83.0, 100.0):
        assert battery_pct_from_voltage(voltage_from_battery_pct(pct)) == pytest.approx(pct)


@settings(max_examples=MAX_EXAMPLES, deadline=None)
@given(batch=st.lists(readings(with_mag=True, with_quat=True), min_size=1, max_size=8), start_s=st.floats(0.0, 7e8))
def test_round_trip_within_quantisation(batch: list[DeviceReading], start_s: float) -> None:
    batch = [replace(r, device_time_s=start_s + 0.005 * k) for k, r in enumerate(batch)]
    encoder = ws.WitmotionSerialEncoder(content=FULL)
    decoder = ws.WitmotionSerialDecoder(content=FULL)
    decoded = decoder.feed(b"".join(encoder.encode(r) for r in batch))
    assert len(decoded) == len(batch)
    for got, sent in zip(decoded, batch, strict=True):
        assert_close(got.acc_m_s2, sent.acc_m_s2, ACC_LSB / 2 + 1e-9)
        assert_close(got.gyr_rad_s, sent.gyr_rad_s, GYR_LSB / 2 + 1e-9)
        assert_close(got.mag_ut, sent.mag_ut, 0.1 / 2 + 1e-9)
        # 32768 does not fit an int16: a component of exactly 1 saturates at 32767/32768.
        assert_close(got.quat_wxyz, sent.quat_wxyz, 1.5 / 32768)
        assert got.device_time_s == pytest.approx(round(sent.device_time_s * 1000) / 1000, abs=1e-6)
    assert decoder.stats.readings_out == len(batch)
    assert decoder.stats.checksum_errors == decoder.stats.bytes_discarded == 0


def test_encoder_saturates_at_full_scale_like_the_device() -> None:
    encoder = ws.WitmotionSerialEncoder(content=OutputContent.ACC | OutputContent.GYRO)
    frames = encoder.encode(DeviceReading(acc_m_s2=(20 * G_M_S2, -20 * G_M_S2, 0.0), gyr_rad_s=(50.0, -50.0, 0.0)))
    acc = ws.decode_frame(frames[:11])
    gyr = ws.decode_frame(frames[11:22])
    assert acc.words[:2] == (32767, -32768)
    assert gyr.words[:2] == (32767, -32768)


def test_each_cycle_is_emitted_as_soon_as_it_is_complete() -> None:
    encoder = ws.WitmotionSerialEncoder(content=FULL)
    sample = DeviceReading((0, 0, 9.8), (0.1, 0, 0), device_time_s=1.0, mag_ut=(1, 2, 3), quat_wxyz=(1, 0, 0, 0))
    learning = ws.WitmotionSerialDecoder()
    # The first cycle closes when the second one starts; from then on the decoder knows the cycle's shape.
    assert learning.feed(encoder.encode(sample)) == []
    assert len(learning.feed(encoder.encode(sample))) == 2
    for _ in range(5):
        assert len(learning.feed(encoder.encode(sample))) == 1
    told = ws.WitmotionSerialDecoder(content=FULL)
    for _ in range(5):
        assert len(told.feed(encoder.encode(sample))) == 1


def test_missing_fields_are_none_not_invented() -> None:
    encoder = ws.WitmotionSerialEncoder(content=FULL)
    decoder = ws.WitmotionSerialDecoder()
    sample = DeviceReading((0.0, 0.0, 9.8), (0.1, 0.0, 0.0))
    reading = next(r for _ in range(2) for r in decoder.feed(encoder.encode(sample)))
    assert reading.mag_ut is None
    assert reading.quat_wxyz is None
    assert reading.device_time_s is None


def test_cycle_without_gyro_is_dropped_and_counted() -> None:
    decoder = ws.WitmotionSerialDecoder()
    out = decoder.feed(ACC_1G + ACC_1G + GYRO_125 + ACC_1G)
    assert len(out) == 1
    assert decoder.stats.readings_incomplete == 1


def test_output_content_change_is_learned() -> None:
    encoder = ws.WitmotionSerialEncoder(content=OutputContent.ACC | OutputContent.GYRO)
    decoder = ws.WitmotionSerialDecoder()
    sample = DeviceReading((0.0, 0.0, 9.8), (0.1, 0.0, 0.0), mag_ut=(10.0, 0.0, 0.0))
    decoded = [r for _ in range(3) for r in decoder.feed(encoder.encode(sample))]
    encoder.feed_command(unlock_command() + output_content_command(encoder.content | OutputContent.MAG))
    decoded += [r for _ in range(4) for r in decoder.feed(encoder.encode(sample))]
    # The first cycle with a magnetometer frame was emitted before that frame arrived (the decoder still expected
    # acc + gyro only); from the next cycle on it waits for the magnetometer.
    assert [r.mag_ut is not None for r in decoded] == [False] * 4 + [True] * 3


def test_register_answers_and_other_frames_do_not_break_cycles() -> None:
    decoder = ws.WitmotionSerialDecoder()
    registers = ws.encode_frame(ws.TYPE_REGISTERS, 0x72 - 0x72 + 2, 0, 0, 0)
    pressure = ws.encode_frame(0x56, 1, 2, 3, 4)
    out = decoder.feed(ACC_1G + registers + GYRO_125 + pressure + ACC_1G + GYRO_125 + ACC_1G)
    assert len(out) == 2
    assert decoder.stats.frames_ignored == 2
    assert decoder.last_registers == (2, 0, 0, 0)


def _stream(batch: list[DeviceReading]) -> list[bytes]:
    encoder = ws.WitmotionSerialEncoder(content=FULL)
    frames = []
    for reading in batch:
        cycle = encoder.encode(reading)
        frames += [cycle[k : k + 11] for k in range(0, len(cycle), 11)]
    return frames


def _same_values(a: DeviceReading, b: DeviceReading) -> bool:
    return (a.acc_m_s2, a.gyr_rad_s, a.mag_ut, a.quat_wxyz) == (b.acc_m_s2, b.gyr_rad_s, b.mag_ut, b.quat_wxyz)


@settings(max_examples=MAX_EXAMPLES, deadline=None)
@given(
    batch=st.lists(readings(with_mag=True, with_quat=True), min_size=2, max_size=6),
    garbage=st.lists(st.binary(max_size=30).map(lambda b: b.replace(b"\x55", b"\x54")), min_size=40, max_size=40),
)
def test_frames_between_garbage_are_all_recovered(batch: list[DeviceReading], garbage: list[bytes]) -> None:
    frames = _stream(batch)
    clean = ws.WitmotionSerialDecoder().feed(b"".join(frames))
    noisy = ws.WitmotionSerialDecoder()
    stream = b"".join(garbage[k % len(garbage)] + frame for k, frame in enumerate(frames))
    recovered = noisy.feed(stream)
    assert len(recovered) == len(clean) == len(batch)
    assert all(_same_values(a, b) for a, b in zip(recovered, clean, strict=True))
    assert noisy.stats.bytes_discarded == sum(len(garbage[k % len(garbage)]) for k in range(len(frames)))


@settings(max_examples=MAX_EXAMPLES, deadline=None)
@given(batch=st.lists(readings(with_mag=True), min_size=3, max_size=6), garbage=st.binary(max_size=200))
def test_arbitrary_garbage_costs_at_most_the_first_reading(batch: list[DeviceReading], garbage: bytes) -> None:
    """An 8-bit checksum lets a false frame in garbage swallow the real frame it overlaps: only the first."""
    frames = _stream(batch)
    clean = ws.WitmotionSerialDecoder().feed(b"".join(frames))
    recovered = ws.WitmotionSerialDecoder().feed(garbage + b"".join(frames))
    assert all(_same_values(a, b) for a, b in zip(recovered[-(len(clean) - 1) :], clean[1:], strict=True))


@settings(max_examples=MAX_EXAMPLES, deadline=None)
@given(chunks=st.lists(st.binary(max_size=64), max_size=20))
def test_random_bytes_never_raise_and_every_byte_is_counted(chunks: list[bytes]) -> None:
    decoder = ws.WitmotionSerialDecoder()
    for chunk in chunks:
        decoder.feed(chunk)
    stats = decoder.stats
    assert stats.bytes_in == sum(map(len, chunks))
    assert stats.bytes_in == stats.bytes_discarded + 11 * stats.frames_ok + len(decoder._buf)
    assert len(decoder._buf) < 11


def test_truncated_and_corrupted_frames_are_counted_and_skipped() -> None:
    decoder = ws.WitmotionSerialDecoder()
    corrupted = ACC_1G[:5] + b"\xff" + ACC_1G[6:]
    out = decoder.feed(ACC_1G[:6] + GYRO_125 + corrupted + ACC_1G + GYRO_125 + ACC_1G + GYRO_125)
    assert len(out) == 2
    assert decoder.stats.checksum_errors == 2
    assert decoder.stats.readings_incomplete == 1  # the gyro left alone by the truncated acceleration frame


def test_split_feeds_give_the_same_readings() -> None:
    batch = [DeviceReading((0.1 * k, 0, 9.8), (0, 0, 0.1 * k), quat_wxyz=(1, 0, 0, 0)) for k in range(6)]
    stream = b"".join(_stream(batch))
    whole = ws.WitmotionSerialDecoder().feed(stream)
    decoder = ws.WitmotionSerialDecoder()
    split = [r for k in range(0, len(stream), 7) for r in decoder.feed(stream[k : k + 7])]
    assert split == whole


def test_emulator_honours_rate_and_content_only_after_unlock() -> None:
    encoder = ws.WitmotionSerialEncoder(rate_hz=10)
    assert encoder.feed_command(rate_command(100)) == b""
    assert encoder.sampling_rate_hz == 10.0
    assert encoder.registers.n_rejected_writes == 1
    assert encoder.feed_command(b"".join(configure_commands(100, OutputContent.ACC | OutputContent.GYRO))) == b""
    assert encoder.sampling_rate_hz == 100.0
    assert encoder.content == OutputContent.ACC | OutputContent.GYRO
    assert encoder.registers.n_saves == 1
    # Commands may arrive split across writes, after line noise.
    encoder.feed_command(b"\x00\x13" + rate_command(200)[:3])
    encoder.feed_command(rate_command(200)[3:])
    assert encoder.sampling_rate_hz == 200.0


def test_emulator_answers_register_reads_with_a_registers_frame() -> None:
    encoder = ws.WitmotionSerialEncoder()
    encoder.encode(DeviceReading((0.0, 0.0, 9.8), (0.0, 0.0, 0.0), mag_ut=(36.0, 10.5, 12.2)))
    answer = encoder.feed_command(read_register_command(0x3A))
    # Four registers from 0x3A: HX, HY, HZ and roll (0x3D; zero, the reading has no orientation).
    assert ws.decode_frame(answer) == ws.WitFrame(ws.TYPE_REGISTERS, (360, 105, 122, 0))
    decoder = ws.WitmotionSerialDecoder()
    decoder.feed(answer)
    assert decoder.last_registers == (360, 105, 122, 0)


def test_time_frame_outside_its_range_is_refused() -> None:
    with pytest.raises(ValueError, match="2000-01-01"):
        ws.encode_time_frame(-1.0)
    assert ws.time_frame_seconds(24, 13, 1, 0, 0, 0, 0) is None
