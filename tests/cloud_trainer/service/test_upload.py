"""Clip upload over a real TLS channel: interrupted and resumed, idempotent, verified, and bad clips refused with
the status code and a message that names the problem."""

from __future__ import annotations

import hashlib
import json
import random
import struct
import time

import grpc
import pytest

from cloud_trainer.service import clips
from cloud_trainer.service.config import Limits
from protos.stridetwin.v1 import clips_pb2
from sensor_drivers.recording import format as fmt
from tests.cloud_trainer.service.client import upload, upload_requests, upload_with_retries
from tests.cloud_trainer.service.clipmaker import write_clip


def _status(stubs, data: bytes) -> clips_pb2.UploadStatus:
    return stubs.clips.GetUploadStatus(clips_pb2.GetUploadStatusRequest(sha256=hashlib.sha256(data).hexdigest()))


def _held_after_break(stubs, data: bytes, expected: int, timeout_s: float = 5.0) -> int:
    """Bytes the server acknowledges once it has noticed the broken stream (it syncs what arrived on close)."""
    deadline = time.monotonic() + timeout_s
    while (held := _status(stubs, data).received_bytes) != expected and time.monotonic() < deadline:
        time.sleep(0.02)
    return held


def _break_upload(stubs, data: bytes, stop_at: int, chunk_bytes: int) -> None:
    """Upload until ``stop_at`` and drop the connection there; the upload must fail by that drop, not otherwise."""
    with pytest.raises(grpc.RpcError) as info:
        upload_with_retries(stubs, data, chunk_bytes=chunk_bytes, stop_at=stop_at)
    # grpc's client reports an exception raised by the request stream (our drop) this way.
    assert (info.value.code(), info.value.details()) == (grpc.StatusCode.UNKNOWN, "Exception iterating requests!")


def _refused(stubs, data: bytes, **kwargs) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        upload(stubs, data, **kwargs)
    return info.value


@pytest.fixture
def slow_upload_close(monkeypatch):
    """The server acknowledges a broken stream's bytes before it lets the clip go; on a loaded machine the gap can be
    long, and a client resuming inside it is told ABORTED. Widen the gap so every test meets it."""
    close = clips._FilePartialUpload.close

    def close_then_linger(self) -> None:
        close(self)
        time.sleep(0.2)

    monkeypatch.setattr(clips._FilePartialUpload, "close", close_then_linger)


def test_upload_interrupted_at_random_points_resumes_and_verifies(trainer, tmp_path, slow_upload_close):
    data = write_clip(tmp_path / "long.stclip", n_samples=4000).read_bytes()  # ~160 kB
    stubs = trainer.stubs("alpha")
    rng = random.Random(6)
    cuts = sorted(rng.sample(range(1, len(data)), 5))
    held = []
    for cut in cuts:
        _break_upload(stubs, data, cut, chunk_bytes=7000)
        held.append(_held_after_break(stubs, data, cut))
        assert held[-1] == cut  # every byte that reached the server is kept
        assert _status(stubs, data).state == clips_pb2.UPLOAD_STATE_PARTIAL
    assert held == sorted(held), "an acknowledged byte was lost"
    response = upload_with_retries(stubs, data, chunk_bytes=7000)
    assert response.clip.sha256 == hashlib.sha256(data).hexdigest()
    assert response.clip.size_bytes == len(data)
    assert not response.deduplicated
    assert response.clip.n_samples == 5 * 4000
    assert response.clip.n_sensors == 5
    assert list(response.clip.sites) == ["pelvis", "thigh_l", "thigh_r", "shank_l", "shank_r"]
    assert response.clip.pseudonym == "P-0042"
    stored = trainer.service.clips.local_path(trainer.service.get_clip("alpha", response.clip.clip_id))
    assert stored.read_bytes() == data
    done = _status(stubs, data)
    assert done.state == clips_pb2.UPLOAD_STATE_COMPLETE
    assert done.clip.clip_id == response.clip.clip_id


def test_a_resume_that_overlaps_what_the_server_holds_is_accepted(trainer, clip_bytes, slow_upload_close):
    stubs = trainer.stubs("alpha")
    _break_upload(stubs, clip_bytes, 50_000, chunk_bytes=10_000)
    held = _held_after_break(stubs, clip_bytes, 50_000)
    assert held == 50_000
    response = upload_with_retries(stubs, clip_bytes, offset=held // 2)  # resend some bytes the server already has
    assert response.clip.sha256 == hashlib.sha256(clip_bytes).hexdigest()


def test_resuming_past_what_the_server_holds_is_out_of_range(trainer, clip_bytes):
    error = _refused(trainer.stubs("alpha"), clip_bytes, offset=1000)
    assert error.code() == grpc.StatusCode.OUT_OF_RANGE
    assert "holds 0 bytes" in error.details()
    assert "resume at offset_bytes 0" in error.details()


def test_the_same_clip_twice_is_one_clip(trainer, uploaded, clip_bytes):
    again = upload(trainer.stubs("alpha"), clip_bytes)
    assert again.deduplicated
    assert again.clip.clip_id == uploaded.clip.clip_id
    listed = trainer.stubs("alpha").clips.ListClips(clips_pb2.ListClipsRequest())
    assert [c.clip_id for c in listed.clips] == [uploaded.clip.clip_id]


def test_bytes_that_do_not_match_the_declared_sha256_are_data_loss_and_discarded(trainer, clip_bytes):
    stubs = trainer.stubs("alpha")
    wrong = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(grpc.RpcError) as info:
        stubs.clips.UploadClip(upload_requests(clip_bytes, wrong, 0, 65536))
    assert info.value.code() == grpc.StatusCode.DATA_LOSS
    assert "upload the clip again from offset 0" in info.value.details()
    status = stubs.clips.GetUploadStatus(clips_pb2.GetUploadStatusRequest(sha256=wrong))
    assert status.state == clips_pb2.UPLOAD_STATE_ABSENT


def _damage(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda d: b"sensor_id,acc\n" + d[14:], "looks like a CSV/text export"),
        (lambda d: _damage(d, 200), "fails its CRC-32"),
        (lambda d: d[:-300], "unfinished clip"),
        (lambda d: d + b"\0", "bytes follow the end trailer"),
    ],
    ids=["not-a-clip", "damaged-record", "unfinished", "trailing-bytes"],
)
def test_malformed_clips_are_invalid_argument_naming_the_problem(trainer, clip_bytes, make, expected):
    error = _refused(trainer.stubs("alpha"), make(clip_bytes))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert expected in error.details()


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"n_samples": 50}, "has 50 samples; at least 100 are needed"),
        ({"acc_nan_fraction": 0.8}, "80 % of accelerometer samples are NaN"),
        ({"metadata": {"recording": {"Date-of-Birth": "1950-01-01"}}}, "identifying data refused"),
    ],
    ids=["too-few-samples", "nan-accelerometer", "birth-date"],
)
def test_clips_the_trainer_cannot_use_are_invalid_argument(trainer, tmp_path, kwargs, expected, monkeypatch):
    if "metadata" in kwargs:  # the writer refuses identifying keys itself: write the clip as a foreign app might
        monkeypatch.setattr("sensor_drivers.recording.clipfile.check_no_identity", lambda *a, **k: None)
    data = write_clip(tmp_path / "bad.stclip", **kwargs).read_bytes()
    error = _refused(trainer.stubs("alpha"), data)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert expected in error.details()


def test_nan_receive_times_are_refused(trainer, tmp_path, clip_bytes):
    # Rewrite the first sample block's first host_time_s with NaN and fix its CRC and the footer's SHA-256.
    data = bytearray(clip_bytes)
    pos = fmt.HEADER.size
    while True:
        rtype, length = fmt.RECORD_HEAD.unpack_from(data, pos)
        if rtype == fmt.RecordType.SAMPLES:
            break
        pos += fmt.RECORD_OVERHEAD + length
    payload = pos + fmt.RECORD_HEAD.size
    view = fmt.decode_block_head(bytes(data), payload, payload + length, "test")
    start, _ = view.column_spans["host_time_s"]
    struct.pack_into("<d", data, start, float("nan"))
    fmt.CRC.pack_into(data, payload + length, __import__("zlib").crc32(bytes(data[pos : payload + length])))
    footer_offset, _ = fmt.TRAILER.unpack_from(data, len(data) - fmt.TRAILER.size)
    digest = hashlib.sha256(bytes(data[:footer_offset])).digest()
    footer_payload = footer_offset + fmt.RECORD_HEAD.size
    data[footer_payload : footer_payload + 32] = digest
    _, flen = fmt.RECORD_HEAD.unpack_from(data, footer_offset)
    fmt.CRC.pack_into(
        data, footer_payload + flen, __import__("zlib").crc32(bytes(data[footer_offset : footer_payload + flen]))
    )
    error = _refused(trainer.stubs("alpha"), bytes(data))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "host_time_s that is NaN or infinite" in error.details()


def test_a_stale_or_newer_schema_is_failed_precondition(trainer, clip_bytes):
    for major in (0, 2):
        data = clip_bytes[:8] + struct.pack("<H", major) + clip_bytes[10:]
        error = _refused(trainer.stubs("alpha"), data)
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert f"clip schema version {major}.0" in error.details()
        assert "1.x" in error.details()


def test_oversized_clips_are_refused_before_any_byte_is_sent(make_trainer, clip_bytes, tmp_path):
    trainer = make_trainer(limits=Limits(max_clip_bytes=50_000, upload_rate_bytes_per_s=0, max_calls_per_s=0))
    stubs = trainer.stubs("alpha")
    sha = hashlib.sha256(clip_bytes).hexdigest()
    with pytest.raises(grpc.RpcError) as info:
        stubs.clips.UploadClip(iter([clips_pb2.UploadClipRequest(
            header=clips_pb2.UploadHeader(sha256=sha, size_bytes=len(clip_bytes)))]))  # fmt: skip
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # permanent: not a "retry later"
    assert f"clip of {len(clip_bytes)} bytes exceeds the limit of 50000 bytes" in info.value.details()


def test_too_many_samples_are_refused_as_invalid(make_trainer, clip_bytes):
    trainer = make_trainer(limits=Limits(max_clip_samples=1000, upload_rate_bytes_per_s=0, max_calls_per_s=0))
    error = _refused(trainer.stubs("alpha"), clip_bytes)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "more than 1000 samples" in error.details()


def test_chunks_larger_than_the_limit_and_bad_headers_are_invalid_argument(trainer, clip_bytes):
    stubs = trainer.stubs("alpha")
    big = bytes(1024 * 1024 + 1)
    with pytest.raises(grpc.RpcError) as info:
        stubs.clips.UploadClip(upload_requests(big, hashlib.sha256(big).hexdigest(), 0, len(big)))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "chunk of 1048577 bytes exceeds max_chunk_bytes 1048576" in info.value.details()
    with pytest.raises(grpc.RpcError) as info:
        stubs.clips.UploadClip(iter([clips_pb2.UploadClipRequest(chunk=b"x")]))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "first message of UploadClip must be an UploadHeader" in info.value.details()
    with pytest.raises(grpc.RpcError) as info:
        stubs.clips.GetUploadStatus(clips_pb2.GetUploadStatusRequest(sha256="ABC"))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not 64 lower-case hex digits" in info.value.details()


def test_upload_bandwidth_is_limited_per_clinic(make_trainer, tmp_path):
    data = write_clip(tmp_path / "c.stclip", n_samples=5000).read_bytes()  # ~200 kB
    trainer = make_trainer(limits=Limits(upload_rate_bytes_per_s=400_000, max_chunk_bytes=65536, max_calls_per_s=0))
    started = time.monotonic()
    upload(trainer.stubs("alpha"), data, chunk_bytes=65536)
    elapsed = time.monotonic() - started
    # The bucket starts full (one second's worth); the rest must take (size - rate) / rate.
    assert elapsed >= (len(data) - 400_000) / 400_000 * 0.9


def test_upload_status_never_leaks_and_audit_records_uploads(trainer, uploaded, clip_bytes):
    other = _status(trainer.stubs("beta"), clip_bytes)
    assert other.state == clips_pb2.UPLOAD_STATE_ABSENT
    assert other.received_bytes == 0
    entries = [json.loads(line) for line in (trainer.data_dir / "audit.log").read_text().splitlines()]
    assert {"clinic": "alpha", "action": "clip.upload", "outcome": "accepted"}.items() <= entries[-1].items()
    assert entries[-1]["clip_id"] == uploaded.clip.clip_id
