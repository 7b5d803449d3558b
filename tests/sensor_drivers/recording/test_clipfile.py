"""The clip file: round trip, metadata, sections, versioning, damage and recovery."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensor_drivers.drivers.base import SensorInfo
from sensor_drivers.errors import RecordingFormatError
from sensor_drivers.recording import format as fmt
from sensor_drivers.recording.clipfile import (
    ClipWriter,
    UnfinishedClipError,
    find_unfinished,
    read_clip,
    recover,
)
from sensor_drivers.recording.privacy import IdentifyingDataError
from sensor_drivers.sample import DeviceStatus, ImuSample, LinkEvent, LinkState
from sensor_drivers.sites import KIT_SITES, Site
from tests.sensor_drivers.recording.generated_driver import sample_at

RATE_HZ = 200.0


def _samples(n_steps: int, sites=KIT_SITES) -> list[ImuSample]:
    return [
        sample_at(f"S{i}", site, k, RATE_HZ, 50.0 + k / RATE_HZ) for k in range(n_steps) for i, site in enumerate(sites)
    ]


def _write(path: Path, samples, **kwargs) -> None:
    with ClipWriter(path, **kwargs) as writer:
        for s in samples:
            writer.add(s)


def _expected_columns(samples: list[ImuSample], sensor_id: str) -> dict[str, np.ndarray]:
    mine = [s for s in samples if s.sensor_id == sensor_id]
    return fmt.columns_from_samples(mine)


def test_round_trip_is_bit_exact(tmp_path):
    samples = _samples(700)
    path = tmp_path / "walk.stclip"
    _write(path, samples, sensors=[SensorInfo("S0", Site.PELVIS, "sim", "generated", nominal_rate_hz=RATE_HZ)])
    clip = read_clip(path)
    assert clip.finished
    assert not clip.recovered
    assert list(clip.sensors) == [f"S{i}" for i in range(5)]
    for sid, stream in clip.sensors.items():
        expected = _expected_columns(samples, sid)
        assert stream.n_samples == 700
        for name, column in expected.items():
            got = getattr(stream, name)
            assert got.dtype == np.dtype(fmt.FIELDS_BY_NAME[name].dtype).newbyteorder("=")
            np.testing.assert_array_equal(got, column, err_msg=name)
        assert stream.fields_present == frozenset(expected)
        assert stream.quat_wxyz is None
        assert stream.free_acc_m_s2 is None
    assert clip.sensors["S0"].nominal_rate_hz == RATE_HZ
    assert clip.sensors["S0"].site is Site.PELVIS
    assert clip.at_site(Site.SHANK_L) is clip.sensors["S3"]
    # the float32 columns are the samples' values rounded to float32, the float64 ones exact
    first = samples[0]
    np.testing.assert_array_equal(clip.sensors["S0"].acc_m_s2[0], np.float32(first.acc_m_s2))
    assert clip.sensors["S0"].host_time_s[0] == first.host_time_s
    assert clip.index["sensors"][0]["n_samples"] == 700


def test_optional_fields_absent_values_are_nan_or_minus_one(tmp_path):
    s = [
        ImuSample("A", Site.SHANK_L, None, 1.0, None, (1.0, 2.0, 3.0), (0.0, 0.0, 0.0)),
        ImuSample("A", Site.SHANK_L, 0.5, 1.1, 7, (1.0, 2.0, 3.0), (0.0, 0.0, 0.0), quat_wxyz=(1.0, 0.0, 0.0, 0.0)),
        ImuSample(
            "A", Site.SHANK_L, 0.6, 1.2, 8, (1.0, 2.0, 3.0), (0.0, 0.0, 0.0), status=DeviceStatus(acc_clip_count=3)
        ),
    ]
    path = tmp_path / "sparse.stclip"
    _write(path, s)
    a = read_clip(path).sensors["A"]
    np.testing.assert_array_equal(a.device_time_s, [np.nan, 0.5, 0.6])
    np.testing.assert_array_equal(a.seq, [-1, 7, 8])
    np.testing.assert_array_equal(a.quat_wxyz[:, 0], [np.nan, 1.0, np.nan])
    np.testing.assert_array_equal(a.acc_clip_count, [-1, -1, 3])
    assert a.battery_pct is None
    assert a.mag_ut is None


def test_blocks_with_different_fields_concatenate(tmp_path):
    path = tmp_path / "mixed.stclip"
    with ClipWriter(path, block_samples=2) as w:
        for k in range(6):
            mag = (1.0, 2.0, 3.0) if k >= 4 else None
            w.add(ImuSample("A", Site.PELVIS, None, float(k), k, (0.0, 0.0, 9.8), (0.0, 0.0, 0.0), mag_ut=mag))
    a = read_clip(path).sensors["A"]
    np.testing.assert_array_equal(a.host_time_s, np.arange(6.0))
    assert np.isnan(a.mag_ut[:4]).all()
    assert (a.mag_ut[4:] == [1.0, 2.0, 3.0]).all()
    assert np.isnan(a.device_time_s).all()


def test_metadata_sections_and_link_events(tmp_path):
    path = tmp_path / "meta.stclip"
    meta = {"patient": {"pseudonym": "P-0042", "height_m": 1.72}, "protocol": {"walkway_length_m": 20.0}}
    with ClipWriter(path, metadata=meta) as w:
        w.add(ImuSample("A", Site.PELVIS, 0.0, 1.0, 0, (0.0, 0.0, 9.8), (0.0, 0.0, 0.0)))
        w.add(LinkEvent("A", Site.PELVIS, LinkState.GAP, 1.5, "sequence jump of 12", 12))
        w.update_metadata({"patient": {"mass_kg": 70.5, "affected_side": "left"}})
        w.write_section("calibration", {"gyr_bias_rad_s": [0.01, 0.0, -0.02]})
        w.write_section("calibration", {"gyr_bias_rad_s": [0.0, 0.0, 0.0]})  # replaced
        w.write_section("quality_log", [{"t_s": 1.0, "verdict": "ok"}], append=True)
        w.write_section("quality_log", {"t_s": 2.0, "verdict": "warning"}, append=True)
        w.write_section("truth", {"knee_deg": np.linspace(0, 60, 5), "side": np.array([0, 1, 0, 1, 0], np.int8)})
        w.write_section("truth", {"knee_deg": np.array([61.0]), "side": np.array([1], np.int8)}, append=True)
    clip = read_clip(path)
    assert clip.metadata["patient"] == {
        "pseudonym": "P-0042",
        "height_m": 1.72,
        "mass_kg": 70.5,
        "affected_side": "left",
    }
    assert clip.metadata["protocol"]["walkway_length_m"] == 20.0
    assert clip.metadata["schema_version"] == "1.0"
    assert clip.metadata["app"] == "stridetwin"
    assert clip.link_events == [LinkEvent("A", Site.PELVIS, LinkState.GAP, 1.5, "sequence jump of 12", 12)]
    assert clip.sections["calibration"] == {"gyr_bias_rad_s": [0.0, 0.0, 0.0]}
    assert clip.sections["quality_log"] == [{"t_s": 1.0, "verdict": "ok"}, {"t_s": 2.0, "verdict": "warning"}]
    np.testing.assert_array_equal(clip.sections["truth"]["knee_deg"], [0, 15, 30, 45, 60, 61])
    assert clip.sections["truth"]["side"].dtype == np.int8
    assert clip.index["sections"] == {"calibration": 2, "quality_log": 2, "truth": 2}


@pytest.mark.parametrize(
    "metadata",
    [
        {"patient": {"name": "Jane Doe"}},
        {"patient": {"pseudonym": "P1", "birth_date": "1950-01-01"}},
        {"patient": {"Date-Of-Birth": "1950"}},
        {"contacts": [{"email": "a@b.c"}]},
        {"first_name": "Jane"},
    ],
)
def test_identifying_metadata_is_refused_before_anything_is_written(tmp_path, metadata):
    path = tmp_path / "p.stclip"
    with pytest.raises(IdentifyingDataError, match="pseudonym"):
        ClipWriter(path, metadata=metadata)
    assert not path.exists()


def test_identifying_patch_or_section_is_refused(tmp_path):
    with ClipWriter(tmp_path / "p.stclip") as w:
        with pytest.raises(IdentifyingDataError):
            w.update_metadata({"patient": {"dob": "1950-01-01"}})
        with pytest.raises(IdentifyingDataError):
            w.write_section("notes", {"patient_name": "Jane"})
        w.write_section("events", [{"name": "initial_contact", "t_s": 1.2}])  # "name" labels events: allowed
    assert read_clip(tmp_path / "p.stclip").sections["events"][0]["name"] == "initial_contact"


def test_never_overwrites_and_refuses_writes_after_close(tmp_path):
    path = tmp_path / "x.stclip"
    w = ClipWriter(path)
    w.close()
    w.close()  # twice is fine
    with pytest.raises(FileExistsError, match="never overwritten"):
        ClipWriter(path)
    with pytest.raises(ValueError, match="finished"):
        w.write_section("late", {"a": 1})


def test_a_malformed_sample_is_rejected_without_losing_its_block(tmp_path):
    path = tmp_path / "bad-sample.stclip"
    with ClipWriter(path, block_samples=4) as w:
        for k in range(8):
            acc = (0.0, 9.8) if k == 2 else (0.0, 0.0, 9.8)  # a driver bug: a 2-vector
            w.add(ImuSample("A", Site.PELVIS, None, float(k), k, acc, (0.0, 0.0, 0.0)))
    assert w.n_rejected == 1
    np.testing.assert_array_equal(read_clip(path).sensors["A"].seq, [0, 1, 3, 4, 5, 6, 7])


def test_nan_in_json_is_refused_with_a_clear_error(tmp_path):
    with ClipWriter(tmp_path / "x.stclip") as w, pytest.raises(ValueError, match="strict JSON"):
        w.write_section("metrics", {"speed_m_s": math.nan})


# ------------------------------------------------------------------------------------------------ timing of writes
class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_blocks_reach_disk_within_max_block_age_and_fsync_is_rate_limited(tmp_path):
    clock = _Clock()
    path = tmp_path / "t.stclip"
    w = ClipWriter(
        path,
        sensors=[{"sensor_id": "A", "site": "pelvis"}],
        block_samples=1000,
        max_block_age_s=0.25,
        fsync_interval_s=0.5,
        clock=clock,
    )
    size0 = path.stat().st_size
    syncs0 = w.n_fsyncs
    w.add(ImuSample("A", Site.PELVIS, 0.0, 0.0, 0, (0.0, 0.0, 9.8), (0.0, 0.0, 0.0)))
    assert path.stat().st_size == size0  # buffered
    clock.t = 0.2
    w.poll()
    assert path.stat().st_size == size0
    clock.t = 0.26
    w.poll()  # older than 0.25 s → written to the OS
    assert path.stat().st_size > size0
    assert read_clip(path, allow_unfinished=True).sensors["A"].n_samples == 1
    # 100 polls with fresh data in 1 s of writer time: at most 2 fsyncs (every 0.5 s)
    for k in range(100):
        clock.t = 0.26 + k * 0.01
        w.add(ImuSample("A", Site.PELVIS, 0.0, clock.t, k + 1, (0.0, 0.0, 9.8), (0.0, 0.0, 0.0)))
    assert 1 <= w.n_fsyncs - syncs0 <= 3
    w.close()


# ------------------------------------------------------------------------------------------------ bad files
def _finished_clip(tmp_path: Path, n_steps: int = 300) -> Path:
    path = tmp_path / "good.stclip"
    _write(path, _samples(n_steps))
    return path


def _record_offsets(data: bytes) -> list[tuple[int, int, int]]:
    """(offset, type, total length) of each record, walking the framing as a foreign reader would."""
    out = []
    pos = fmt.HEADER.size
    while pos < len(data) - fmt.TRAILER.size:
        rtype, length = struct.unpack_from("<BI", data, pos)
        out.append((pos, rtype, 5 + length + 4))
        pos += 5 + length + 4
    return out


def test_not_a_clip(tmp_path):
    csv = tmp_path / "export.csv"
    csv.write_text("sep=,\nPacketCounter,SampleTimeFine\n1,2\n")
    with pytest.raises(RecordingFormatError, match=r"not a StrideTwin clip .*stridetwin import"):
        read_clip(csv)
    junk = tmp_path / "junk.stclip"
    junk.write_bytes(b"\x00\x01garbage" * 10)
    with pytest.raises(RecordingFormatError, match="magic bytes"):
        read_clip(junk)
    empty = tmp_path / "empty.stclip"
    empty.write_bytes(b"")
    with pytest.raises(RecordingFormatError, match="empty"):
        read_clip(empty)


def test_newer_major_schema_is_refused_naming_the_supported_versions(tmp_path):
    data = bytearray(_finished_clip(tmp_path).read_bytes())
    struct.pack_into("<H", data, 8, 2)
    path = tmp_path / "v2.stclip"
    path.write_bytes(bytes(data))
    with pytest.raises(RecordingFormatError, match=r"schema version 2\.0 is newer .*\(1\.x\)"):
        read_clip(path)


def test_newer_minor_with_unknown_record_types_and_fields_is_read(tmp_path):
    """A 1.7 clip with a record type and a sample field this reader does not know: both skipped, rest intact."""
    samples = _samples(10, sites=[Site.PELVIS])
    block = fmt.encode_block(0, fmt.columns_from_samples(samples))
    sensor_index, reserved, n, mask = fmt.BLOCK_HEAD.unpack_from(block)
    future_block = (
        fmt.BLOCK_HEAD.pack(sensor_index, reserved, n, mask | (1 << 20))
        + block[fmt.BLOCK_HEAD.size :]
        + b"\xab" * (4 * n)
    )
    body = b"".join(
        [
            fmt.encode_header(1, 7),
            fmt.encode_record(fmt.RecordType.METADATA, fmt.encode_json({"schema_version": "1.7", "new_key": 1})),
            fmt.encode_record(
                fmt.RecordType.SENSOR, fmt.encode_json({"index": 0, "sensor_id": "S0", "site": "pelvis"})
            ),
            fmt.encode_record(0x42, b"something new"),
            fmt.encode_record(fmt.RecordType.SAMPLES, future_block),
        ]
    )
    footer = fmt.encode_record(fmt.RecordType.FOOTER, hashlib.sha256(body).digest() + b"{}")
    path = tmp_path / "future.stclip"
    path.write_bytes(body + footer + fmt.TRAILER.pack(len(body), fmt.END_MAGIC))
    clip = read_clip(path)
    assert clip.schema_version == (1, 7)
    assert clip.metadata["new_key"] == 1
    assert [r.reason for r in clip.skipped_records] == ["unknown record type 0x42"]
    np.testing.assert_array_equal(clip.sensors["S0"].acc_m_s2, fmt.columns_from_samples(samples)["acc_m_s2"])


def test_truncated_clip_is_unfinished_and_recovers(tmp_path):
    path = _finished_clip(tmp_path)
    data = path.read_bytes()
    offsets = _record_offsets(data)
    cut_in = offsets[len(offsets) // 2]
    cut = tmp_path / "cut.stclip"
    cut.write_bytes(data[: cut_in[0] + 10])  # in the middle of a record
    with pytest.raises(UnfinishedClipError, match=r"truncated record at byte \d+.*stridetwin recover"):
        read_clip(cut)
    partial = read_clip(cut, allow_unfinished=True)
    assert not partial.finished
    assert "truncated" in partial.stopped_reading
    report = recover(cut)
    assert report.out_path == tmp_path / "cut.recovered.stclip"
    assert cut.read_bytes() == data[: cut_in[0] + 10]  # original untouched
    rec = read_clip(report.out_path)
    assert rec.recovered
    assert rec.finished
    assert rec.metadata["recovery"]["source"] == "cut.stclip"
    full = read_clip(path)
    for sid, stream in rec.sensors.items():
        n = stream.n_samples
        assert n == partial.sensors[sid].n_samples
        np.testing.assert_array_equal(stream.acc_m_s2, full.sensors[sid].acc_m_s2[:n])
    assert report.dropped
    assert report.dropped[0].offset == cut_in[0]


def test_bit_flip_in_a_block_is_a_clear_crc_error_and_recovery_salvages_the_rest(tmp_path):
    path = _finished_clip(tmp_path)
    data = bytearray(path.read_bytes())
    offsets = [o for o in _record_offsets(bytes(data)) if o[1] == fmt.RecordType.SAMPLES]
    victim = offsets[3]
    data[victim[0] + 40] ^= 0x10
    bad = tmp_path / "flip.stclip"
    bad.write_bytes(bytes(data))
    with pytest.raises(
        RecordingFormatError, match=rf"corrupted: record of type 0x03 fails its CRC-32 at byte {victim[0]}"
    ):
        read_clip(bad)
    report = recover(bad)
    assert [(d.offset, d.n_bytes) for d in report.dropped] == [(victim[0], victim[2])]
    rec = read_clip(report.out_path)
    full = read_clip(path)
    lost = {s: full.sensors[s].n_samples - rec.sensors[s].n_samples for s in full.sensors}
    assert sorted(lost.values()) == [0, 0, 0, 0, 64]  # exactly one block of one sensor


def test_a_well_framed_but_malformed_record_is_a_clear_error_and_recovery_drops_it(tmp_path):
    """A writer bug: a CRC-valid link event without its state."""
    body = b"".join(
        [
            fmt.encode_header(),
            fmt.encode_record(fmt.RecordType.METADATA, fmt.encode_json({"schema_version": "1.0"})),
            fmt.encode_record(fmt.RecordType.LINK_EVENT, fmt.encode_json({"sensor_id": "A", "site": "pelvis"})),
        ]
    )
    path = tmp_path / "bug.stclip"
    path.write_bytes(body)
    with pytest.raises(RecordingFormatError, match=r"record #1 at byte \d+: malformed link event"):
        read_clip(path, allow_unfinished=True)
    report = recover(path)
    assert [d.reason for d in report.dropped] == ["record with undecodable content"]
    assert read_clip(report.out_path).link_events == []


def test_tampered_but_crc_valid_file_fails_the_checksum(tmp_path):
    """Swap two whole, valid records: every CRC still matches, only the footer's SHA-256 notices."""
    path = _finished_clip(tmp_path)
    data = path.read_bytes()
    blocks = [o for o in _record_offsets(data) if o[1] == fmt.RecordType.SAMPLES]
    (a_off, _, a_len), (b_off, _, b_len) = blocks[0], blocks[1]
    assert a_off + a_len == b_off
    assert a_len == b_len
    swapped = data[:a_off] + data[b_off : b_off + b_len] + data[a_off : a_off + a_len] + data[b_off + b_len :]
    bad = tmp_path / "swap.stclip"
    bad.write_bytes(swapped)
    with pytest.raises(RecordingFormatError, match="checksum mismatch"):
        read_clip(bad)


def test_bytes_after_the_footer_are_reported(tmp_path):
    path = _finished_clip(tmp_path)
    bad = tmp_path / "tail.stclip"
    bad.write_bytes(path.read_bytes() + b"extra")
    with pytest.raises(RecordingFormatError, match="end trailer"):
        read_clip(bad)


def test_recover_on_a_good_clip_writes_nothing(tmp_path):
    path = _finished_clip(tmp_path, 20)
    report = recover(path)
    assert report.out_path is None
    assert report.n_samples["S0"] == 20
    assert list(tmp_path.iterdir()) == [path]


def test_find_unfinished(tmp_path):
    good = _finished_clip(tmp_path, 5)
    w = ClipWriter(tmp_path / "open.stclip")
    w.add(ImuSample("A", Site.PELVIS, 0.0, 0.0, 0, (0.0, 0.0, 9.8), (0.0, 0.0, 0.0)))
    w.flush()
    assert find_unfinished(tmp_path) == [tmp_path / "open.stclip"]
    recover(tmp_path / "open.stclip")
    assert find_unfinished(tmp_path) == []  # a recovered copy exists
    w.close()
    assert good.exists()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_damage_gives_clear_errors_or_valid_data(tmp_path_factory, data):
    """Random truncation, bit flips and garbage: read_clip raises RecordingFormatError or returns data; recover
    never loses a record before the damage."""
    base = tmp_path_factory.getbasetemp() / "fuzz-base.stclip"
    if not base.exists():
        _write(base, _samples(80))
    original = base.read_bytes()
    buf = bytearray(original)
    kind = data.draw(st.sampled_from(["truncate", "flip", "garbage"]))
    if kind == "truncate":
        buf = buf[: data.draw(st.integers(0, len(buf) - 1))]
    elif kind == "flip":
        for _ in range(data.draw(st.integers(1, 4))):
            pos = data.draw(st.integers(0, len(buf) - 1))
            buf[pos] ^= 1 << data.draw(st.integers(0, 7))
    else:
        pos = data.draw(st.integers(0, len(buf)))
        buf[pos:pos] = data.draw(st.binary(min_size=1, max_size=64))
    path = tmp_path_factory.mktemp("fuzz") / "damaged.stclip"
    path.write_bytes(bytes(buf))
    with contextlib.suppress(RecordingFormatError):
        read_clip(path)
    try:
        report = recover(path)
    except RecordingFormatError as exc:
        message = str(exc)
        # only a damaged header makes recovery impossible
        assert "not a StrideTwin clip" in message or "schema version" in message, message
        return
    if report.out_path is not None:
        assert read_clip(report.out_path).recovered


def test_a_foreign_reader_can_walk_the_format_from_the_documentation(tmp_path):
    """Decode a clip with nothing but struct, zlib and json, following docs/clip-format.md."""
    import zlib

    path = tmp_path / "doc.stclip"
    samples = _samples(70, sites=[Site.PELVIS])
    _write(path, samples, metadata={"patient": {"pseudonym": "P-1"}})
    data = path.read_bytes()
    assert data[:8] == b"\x89STC\r\n\x1a\n"
    assert struct.unpack_from("<HH", data, 8) == (1, 0)
    footer_offset, end = struct.unpack_from("<Q8s", data, len(data) - 16)
    assert end == b"\x89STCEND\n"
    pos, host = 16, []
    while pos < footer_offset:
        rtype, length = struct.unpack_from("<BI", data, pos)
        payload = data[pos + 5 : pos + 5 + length]
        (crc,) = struct.unpack_from("<I", data, pos + 5 + length)
        assert crc == zlib.crc32(data[pos : pos + 5 + length])
        if rtype == 1:
            assert json.loads(payload)["patient"]["pseudonym"] == "P-1"
        if rtype == 3:
            _sensor, _res, n, mask = struct.unpack_from("<HHII", payload)
            offset = 12 + (8 * n if mask & 1 else 0)  # device_time_s first, then host_time_s
            host += struct.unpack_from(f"<{n}d", payload, offset)
        pos += 5 + length + 4
    assert host == [s.host_time_s for s in samples]
    assert data[footer_offset + 5 : footer_offset + 37] == hashlib.sha256(data[:footer_offset]).digest()
