"""The StrideTwin frame: golden vectors from ``docs/protocols/stridetwin-frame.md``, CRC, resync and the emulator."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensor_drivers.errors import ProtocolError
from sensor_drivers.protocols import stridetwin_frame as sf
from sensor_drivers.protocols.counters import CounterUnwrapper
from sensor_drivers.sample import DeviceReading, DeviceStatus

from .strategies import MAX_EXAMPLES, readings

DOC = Path(__file__).parents[3] / "docs" / "protocols" / "stridetwin-frame.md"

SAMPLE_GOLDEN = bytes.fromhex(
    "a5 5a 01 01 24 40 42 0f 00 2a 00 04 00 00 00 3f 00 00 80 bf 00 00 1c 41 00 00 80 3e 00 00 00 00 00 00 00 c0"
    " 57 00 00 00 00 8e e0"
)
SAMPLE_MAG_QUAT_GOLDEN = bytes.fromhex(
    "a5 5a 01 01 3b c8 55 0f 00 2b 00 03 00 00 00 3f 00 00 80 bf 00 00 1c 41 00 00 80 3e 00 00 00 00 00 00 00 c0"
    " 00 00 a0 41 00 00 00 00 00 00 30 c2 00 00 80 3f 00 00 00 00 00 00 00 00 00 00 00 00 1e df"
)
INFO_GOLDEN = bytes.fromhex(
    "a5 5a 01 02 34 00 00 48 43 0a e8 1c 43 58 a0 0b 42 f6 e5 d4 c3 b2 a1 00 00 45 53 50 33 32 2d 42 4d 49 32 37 30"
    " 00 00 00 00 31 2e 30 2e 30 00 00 00 00 00 00 00 00 00 00 00 89 16"
)
#: The longest possible frame: a false header claiming it must be settled before later frames come out.
MAX_FRAME_LEN = sf.MAX_PAYLOAD_LEN + sf.FRAME_OVERHEAD


def crc16_bitwise(data: bytes) -> int:
    """The C sketch of the doc, transcribed: an independent check of ``binascii.crc_hqx``."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def test_crc_check_value() -> None:
    assert sf.crc16_ccitt_false(b"123456789") == 0x29B1
    assert crc16_bitwise(b"123456789") == 0x29B1
    assert crc16_bitwise(SAMPLE_GOLDEN[2:-2]) == 0xE08E


def doc_hex_examples() -> list[bytes]:
    """The bytes of every fenced block of the doc that starts with ``a5 5a`` (annotations after the hex dropped)."""
    examples: list[bytes] = []
    block: list[str] | None = None
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            if block is not None and block and block[0].startswith("a5 5a"):
                examples.append(bytes.fromhex(" ".join(block)))
            block = [] if block is None else None
        elif block is not None:
            tokens = []
            for token in line.split():
                if not re.fullmatch(r"[0-9a-f]{2}", token):
                    break
                tokens.append(token)
            block.append(" ".join(tokens))
    return examples


def test_doc_examples_are_the_golden_vectors() -> None:
    assert doc_hex_examples() == [SAMPLE_GOLDEN, SAMPLE_MAG_QUAT_GOLDEN, INFO_GOLDEN]
    assert sf.request_info_command() == bytes.fromhex("A5 5A 01 81 00 05 D3")
    assert sf.set_rate_command(100) == bytes.fromhex("A5 5A 01 82 04 00 00 C8 42 B2 68")


def test_golden_sample_decodes() -> None:
    decoder = sf.StrideTwinDecoder()
    first, second = decoder.feed(SAMPLE_GOLDEN + SAMPLE_MAG_QUAT_GOLDEN)
    assert first.device_time_s == pytest.approx(1.0)
    assert first.seq == 42
    assert first.acc_m_s2 == (0.5, -1.0, 9.75)
    assert first.gyr_rad_s == (0.25, 0.0, -2.0)
    assert first.status == DeviceStatus(battery_pct=87.0, acc_clip_count=0, gyr_clip_count=0)
    assert first.mag_ut is None
    assert second.device_time_s == pytest.approx(1.005)
    assert second.seq == 43
    assert second.mag_ut == (20.0, 0.0, -44.0)
    assert second.quat_wxyz == (1.0, 0.0, 0.0, 0.0)
    assert second.status is None
    sample = sf.decode_sample_payload(SAMPLE_GOLDEN[5:-2])
    assert sf.encode_sample(sample) == SAMPLE_GOLDEN


def test_golden_device_info_decodes() -> None:
    decoder = sf.StrideTwinDecoder()
    assert decoder.feed(INFO_GOLDEN) == []
    info = decoder.device_info
    assert info is not None
    assert (info.model, info.firmware, info.sensor_id_hex) == ("ESP32-BMI270", "1.0.0", "0000a1b2c3d4e5f6")
    assert info.nominal_rate_hz == 200.0
    assert info.acc_range_m_s2 == pytest.approx(156.9064, rel=1e-6)
    assert info.gyr_range_rad_s == pytest.approx(math.radians(2000), rel=1e-6)
    assert sf.encode_device_info(info) == INFO_GOLDEN


def test_payload_errors_name_the_problem() -> None:
    with pytest.raises(ProtocolError, match="flags 0x01; expected 43"):
        sf.decode_sample_payload(bytes(6) + b"\x01" + bytes(29))
    with pytest.raises(ProtocolError, match="expected 52"):
        sf.decode_device_info_payload(bytes(10))
    with pytest.raises(ValueError, match="at most 16"):
        sf.encode_device_info(sf.DeviceInfo("a model name that is too long", "1", 0, 200.0))
    with pytest.raises(ValueError, match=r"\(0, 1000\]"):
        sf.set_rate_command(0)


def test_length_not_matching_flags_is_counted_as_malformed() -> None:
    bad = bytearray(SAMPLE_GOLDEN[5:-2])
    bad[6] = 0x01  # MAG flag, but the payload has the status block's length
    decoder = sf.StrideTwinDecoder()
    assert decoder.feed(sf.encode_frame(sf.FrameType.SAMPLE, bytes(bad)) + SAMPLE_GOLDEN) != []
    assert decoder.stats.frames_malformed == 1
    assert decoder.stats.readings_out == 1


def test_unknown_frame_types_are_skipped_and_counted() -> None:
    decoder = sf.StrideTwinDecoder()
    out = decoder.feed(sf.encode_frame(0x40, b"future") + SAMPLE_GOLDEN)
    assert len(out) == 1
    assert decoder.stats.frames_ignored == 1


@settings(max_examples=MAX_EXAMPLES, deadline=None)
@given(batch=st.lists(readings(), min_size=1, max_size=10), t0_us=st.integers(0, 2**32 - 1), seq0=st.integers(0, 65535))
def test_round_trip_unwraps_timestamp_and_sequence(batch: list[DeviceReading], t0_us: int, seq0: int) -> None:
    encoder = sf.StrideTwinEncoder(info_period_s=0.02)
    decoder = sf.StrideTwinDecoder()
    decoded = []
    for k, reading in enumerate(batch):
        stamped = DeviceReading(
            reading.acc_m_s2,
            reading.gyr_rad_s,
            device_time_s=((t0_us + 5000 * k) % 2**32) * 1e-6,  # a device clock that wraps
            seq=(seq0 + k) % 2**16,
            mag_ut=reading.mag_ut,
            quat_wxyz=reading.quat_wxyz,
            status=DeviceStatus(battery_pct=55.0),
        )
        decoded += decoder.feed(encoder.encode(stamped))
    assert len(decoded) == len(batch)
    for k, (got, sent) in enumerate(zip(decoded, batch, strict=True)):
        assert got.seq == seq0 + k
        assert got.device_time_s == pytest.approx((t0_us + 5000 * k) * 1e-6, abs=1e-9)
        for a, b in zip(got.acc_m_s2 + got.gyr_rad_s, sent.acc_m_s2 + sent.gyr_rad_s, strict=True):
            assert a == pytest.approx(b, rel=2**-23)  # float32
        assert got.status is not None
        assert got.status.battery_pct == 55.0
        assert (got.mag_ut is None) == (sent.mag_ut is None)
        assert (got.quat_wxyz is None) == (sent.quat_wxyz is None)
    assert decoder.device_info is not None


def _frames(batch: list[DeviceReading]) -> list[bytes]:
    encoder = sf.StrideTwinEncoder()
    return [encoder.encode(DeviceReading(r.acc_m_s2, r.gyr_rad_s, seq=k)) for k, r in enumerate(batch)]


@settings(max_examples=MAX_EXAMPLES, deadline=None)
@given(
    batch=st.lists(readings(with_mag=False, with_quat=False), min_size=1, max_size=8),
    garbage=st.lists(st.binary(max_size=40), min_size=9, max_size=9),
)
def test_frames_between_garbage_are_all_recovered(batch: list[DeviceReading], garbage: list[bytes]) -> None:
    frames = _frames(batch)
    decoder = sf.StrideTwinDecoder()
    stream = b"".join(g + f for g, f in zip(garbage, frames, strict=False)) + garbage[-1]
    recovered = decoder.feed(stream)
    # A false header in the garbage may claim up to 255 bytes; a live stream keeps coming, so feed on.
    recovered += decoder.feed(bytes(MAX_FRAME_LEN))
    assert [r.seq for r in recovered] == list(range(len(batch)))
    clean = sf.StrideTwinDecoder().feed(b"".join(frames))
    assert [(r.acc_m_s2, r.gyr_rad_s) for r in recovered] == [(r.acc_m_s2, r.gyr_rad_s) for r in clean]


@settings(max_examples=MAX_EXAMPLES, deadline=None)
@given(chunks=st.lists(st.binary(max_size=80), max_size=20))
def test_random_bytes_never_raise_and_every_byte_is_counted(chunks: list[bytes]) -> None:
    decoder = sf.StrideTwinDecoder()
    for chunk in chunks:
        for reading in decoder.feed(chunk):
            assert reading.seq is not None
    stats = decoder.stats
    pending = len(decoder._scanner._buf)
    framed = stats.bytes_in - stats.bytes_discarded - pending
    assert framed >= 0
    assert pending <= MAX_FRAME_LEN
    assert stats.frames_ok == 0 or framed >= stats.frames_ok * sf.FRAME_OVERHEAD


def test_truncated_and_corrupted_frames_are_counted_and_skipped() -> None:
    corrupted = bytearray(SAMPLE_GOLDEN)
    corrupted[20] ^= 0x01
    decoder = sf.StrideTwinDecoder()
    out = decoder.feed(SAMPLE_GOLDEN[:30] + bytes(corrupted) + SAMPLE_GOLDEN[:-1] + SAMPLE_MAG_QUAT_GOLDEN)
    assert [r.seq for r in out] == [43]
    assert decoder.stats.checksum_errors == 3  # the truncated, the corrupted and the one missing its last byte


def test_split_feeds_give_the_same_readings() -> None:
    stream = b"".join(_frames([DeviceReading((0.1 * k, 0, 9.8), (0, 0, 0.1)) for k in range(5)]))
    whole = sf.StrideTwinDecoder().feed(stream)
    decoder = sf.StrideTwinDecoder()
    split = [r for k in range(0, len(stream), 3) for r in decoder.feed(stream[k : k + 3])]
    assert split == whole


def test_encoder_saturates_sets_flags_and_counts_clipping() -> None:
    encoder = sf.StrideTwinEncoder()
    decoder = sf.StrideTwinDecoder()
    full_scale = encoder.info.acc_range_m_s2
    over = DeviceReading((2 * full_scale, 0.0, 9.8), (0.0, 0.0, 50.0))
    frames = encoder.encode(over) + encoder.encode(over)
    _, second = decoder.feed(frames)
    assert second.acc_m_s2[0] == pytest.approx(full_scale, rel=1e-6)
    assert second.gyr_rad_s[2] == pytest.approx(encoder.info.gyr_range_rad_s, rel=1e-6)
    assert (second.status.acc_clip_count, second.status.gyr_clip_count) == (2, 2)
    sample = sf.decode_sample_payload(frames[-(sf.SAMPLE_BASE_LEN + 5 + 2) : -2])
    assert sample.acc_clipped
    assert sample.gyr_clipped


def test_encoder_sends_device_info_at_start_and_periodically() -> None:
    encoder = sf.StrideTwinEncoder(info_period_s=0.05)  # every 10 samples at 200 Hz
    decoder = sf.StrideTwinDecoder()
    reading = DeviceReading((0.0, 0.0, 9.8), (0.0, 0.0, 0.0))
    n_info = sum(encoder.encode(reading).startswith(b"\xa5\x5a\x01\x02") for _ in range(25))
    assert n_info == 3
    decoder.feed(encoder.encode(reading))
    # Without a device clock in the readings, the encoder's own clock runs at the nominal rate.
    times = [r.device_time_s for r in decoder.feed(encoder.encode(reading) + encoder.encode(reading))]
    assert times[1] - times[0] == pytest.approx(0.005, abs=1e-6)


def test_host_commands() -> None:
    encoder = sf.StrideTwinEncoder()
    answer = encoder.feed_command(b"noise" + sf.set_rate_command(100.0) + sf.request_info_command()[:4])
    assert encoder.sampling_rate_hz == 100.0
    answer += encoder.feed_command(sf.request_info_command()[4:])
    decoder = sf.StrideTwinDecoder()
    decoder.feed(answer)
    assert decoder.stats.frames_ok == 2
    assert decoder.device_info is not None
    assert decoder.device_info.nominal_rate_hz == 100.0


# -- The block decoder against a frame-at-a-time oracle ----------------------------------------------------------


def reference_decode(chunks: list[bytes]) -> tuple[list[DeviceReading], sf.DecoderStats, sf.DeviceInfo | None]:
    """The stream decoded a frame at a time, as ``docs/protocols/stridetwin-frame.md`` describes it: search the sync,
    check the header, wait for the whole frame, check the CRC, on any failure resume one byte after the false sync.
    Written out here independently of :class:`sf.FrameScanner`, as the oracle for the run-wise block decoder."""
    stats = sf.DecoderStats()
    clock, sequence = CounterUnwrapper(32), CounterUnwrapper(16)
    out: list[DeviceReading] = []
    info = None
    buf = b""
    for chunk in chunks:
        stats.bytes_in += len(chunk)
        buf += chunk
        i = 0
        while True:
            j = buf.find(sf.SYNC, i)
            if j < 0:
                keep = 1 if buf[i:].endswith(b"\xa5") else 0
                stats.bytes_discarded += len(buf) - i - keep
                i = len(buf) - keep
                break
            stats.bytes_discarded += j - i
            if len(buf) - j < sf.HEADER_LEN:
                i = j
                break
            version, frame_type, length = buf[j + 2], buf[j + 3], buf[j + 4]
            lengths = sf.VALID_PAYLOAD_LENS.get(frame_type)
            if version != sf.VERSION or (lengths is not None and length not in lengths):
                stats.bytes_discarded += 1
                i = j + 1
                continue
            end = j + length + sf.FRAME_OVERHEAD
            if len(buf) < end:
                i = j
                break
            if crc16_bitwise(buf[j + 2 : end - 2]) != int.from_bytes(buf[end - 2 : end], "little"):
                stats.checksum_errors += 1
                stats.bytes_discarded += 1
                i = j + 1
                continue
            stats.frames_ok += 1
            payload = buf[j + sf.HEADER_LEN : end - 2]
            i = end
            if frame_type == sf.FrameType.DEVICE_INFO:
                info = sf.decode_device_info_payload(payload)
                continue
            if frame_type != sf.FrameType.SAMPLE:
                stats.frames_ignored += 1
                continue
            try:
                s = sf.decode_sample_payload(payload)
            except ProtocolError:
                stats.frames_malformed += 1
                continue
            status = None
            if s.has_status:
                battery = None if s.battery_pct is None else float(s.battery_pct)
                status = DeviceStatus(
                    battery_pct=battery, acc_clip_count=s.acc_clip_count, gyr_clip_count=s.gyr_clip_count
                )
            out.append(
                DeviceReading(
                    s.acc_m_s2,
                    s.gyr_rad_s,
                    clock.unwrap(s.timestamp_us) * 1e-6,
                    sequence.unwrap(s.seq),
                    s.mag_ut,
                    s.quat_wxyz,
                    status,
                )
            )
        buf = buf[i:]
    stats.readings_out = len(out)
    return out, stats, info


@st.composite
def streams(draw: st.DrawFn) -> list[bytes]:
    """Sample frames of a device that changes layout, status and clipping now and then, with device-info frames,
    frames of unknown type, malformed and corrupted frames and garbage between them; cut into random reads."""
    pieces: list[bytes] = []
    t_us = draw(st.integers(0, 2**32 - 1))
    seq = draw(st.integers(0, 2**16 - 1))
    flags = draw(st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7]))
    status = (80, 0, 0)
    for _ in range(draw(st.integers(1, 40))):
        kind = draw(
            st.sampled_from(
                ["sample"] * 12 + ["layout", "status", "info", "unknown", "malformed", "corrupt", "garbage", "jump"]
            )
        )
        if kind == "layout":
            flags = draw(st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7]))
        elif kind == "status":
            status = (draw(st.sampled_from([0, 55, 100, 0xFF])), draw(st.sampled_from([0, 3, 0xFFFF])), 0)
        elif kind == "jump":
            t_us = draw(st.integers(0, 2**32 - 1))
            seq = draw(st.integers(0, 2**16 - 1))
        elif kind == "info":
            pieces.append(sf.encode_device_info(sf.DeviceInfo("m", "f", 1, 200.0)))
        elif kind == "unknown":
            pieces.append(sf.encode_frame(0x40, draw(st.binary(max_size=20))))
        elif kind == "garbage":
            pieces.append(draw(st.binary(max_size=30)))
        else:
            reading = draw(readings(with_mag=bool(flags & 1), with_quat=bool(flags & 2)))
            clipped = draw(st.sampled_from([0, 0, 0, sf.SampleFlags.ACC_CLIPPED, sf.SampleFlags.GYR_CLIPPED]))
            sample = sf.StrideTwinSample(
                t_us % 2**32,
                seq % 2**16,
                reading.acc_m_s2,
                reading.gyr_rad_s,
                reading.mag_ut,
                reading.quat_wxyz,
                has_status=bool(flags & 4),
                battery_pct=None if status[0] == 0xFF else status[0],
                acc_clip_count=None if status[1] == 0xFFFF else status[1],
                gyr_clip_count=status[2],
                acc_clipped=bool(clipped & sf.SampleFlags.ACC_CLIPPED),
                gyr_clipped=bool(clipped & sf.SampleFlags.GYR_CLIPPED),
            )
            payload = bytearray(sf.encode_sample_payload(sample))
            if kind == "malformed":  # CRC-valid, but its flags say another layout than its length
                payload[6] ^= draw(st.sampled_from([1, 2, 4]))
            frame = bytearray(sf.encode_frame(sf.FrameType.SAMPLE, bytes(payload)))
            if kind == "corrupt":
                frame[draw(st.integers(2, len(frame) - 1))] ^= 1 << draw(st.integers(0, 7))
            pieces.append(bytes(frame))
            t_us += 5000
            seq += 1
    stream = b"".join(pieces)
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    return [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]


@settings(max_examples=MAX_EXAMPLES, deadline=None)
@given(streams())
def test_blocks_equal_the_frame_at_a_time_decoding(chunks: list[bytes]) -> None:
    expected, expected_stats, expected_info = reference_decode(chunks)
    decoder = sf.StrideTwinDecoder()
    blocks = [block for chunk in chunks for block in decoder.feed_blocks(chunk)]
    assert [r for block in blocks for r in block.readings()] == expected
    assert decoder.stats == expected_stats
    assert decoder.device_info == expected_info
    for block in blocks:  # homogeneous: one layout and one status per block
        assert {(r.mag_ut is None, r.quat_wxyz is None, r.status) for r in block.readings()} == {
            (not block.has_mag, not block.has_quat, block.status)
        }
    one_by_one = sf.StrideTwinDecoder()
    assert [r for chunk in chunks for r in one_by_one.feed(chunk)] == expected


def test_a_read_becomes_one_block_per_stretch_of_equal_status() -> None:
    encoder = sf.StrideTwinEncoder()
    decoder = sf.StrideTwinDecoder()
    decoder.feed(encoder.encode_info())
    clip = 2 * encoder.info.acc_range_m_s2

    def reading(acc_x: float, battery: float) -> DeviceReading:
        return DeviceReading(
            (acc_x, 0.0, 9.8), (0.0, 0.0, 0.0), mag_ut=(20.0, 0.0, -40.0), status=DeviceStatus(battery)
        )

    # Clipping sets a flag in its frame and raises the clipping counter; the battery drops a percent.
    data = b"".join(encoder.encode(r) for r in (reading(0, 90), reading(0, 90), reading(clip, 90), reading(0, 89)))
    blocks = decoder.feed_blocks(data)
    assert [len(b) for b in blocks] == [2, 1, 1]
    assert [(b.status.battery_pct, b.status.acc_clip_count) for b in blocks] == [(90, 0), (90, 1), (89, 1)]
    assert [r.seq for b in blocks for r in b.readings()] == [0, 1, 2, 3]
    assert all(b.has_mag and not b.has_quat for b in blocks)
    assert decoder.stats.frames_malformed == 0


@pytest.mark.parametrize("prefix", [b"", b"\x00garbage"])  # the steady path, and the scan after garbage
def test_a_long_read_is_decoded_in_pieces_all_of_it(prefix: bytes) -> None:
    encoder = sf.StrideTwinEncoder(info_period_s=1e9)
    encoder.encode_info()
    reading = DeviceReading((0.0, 0.0, 9.8), (0.0, 0.0, 0.1), mag_ut=(20.0, 0.0, -40.0))
    frames = b"".join(encoder.encode(reading) for _ in range(2 * sf.MAX_FRAMES_PER_UNPACK + 20))
    chunks = [prefix + frames[:-30], frames[-30:]]
    decoder = sf.StrideTwinDecoder()
    blocks = [b for chunk in chunks for b in decoder.feed_blocks(chunk)]
    expected, expected_stats, _ = reference_decode(chunks)
    assert [r for b in blocks for r in b.readings()] == expected
    assert len(expected) == 2 * sf.MAX_FRAMES_PER_UNPACK + 20
    assert decoder.stats == expected_stats
