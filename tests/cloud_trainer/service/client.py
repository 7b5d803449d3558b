"""A minimal client of the contract for the tests and the benchmark: upload with resume, watch, download."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2_grpc

from protos.stridetwin.v1 import (
    artifacts_pb2,
    artifacts_pb2_grpc,
    clips_pb2,
    clips_pb2_grpc,
    jobs_pb2,
    jobs_pb2_grpc,
    server_pb2_grpc,
)


@dataclass
class Stubs:
    clips: clips_pb2_grpc.ClipServiceStub
    jobs: jobs_pb2_grpc.JobServiceStub
    artifacts: artifacts_pb2_grpc.ArtifactServiceStub
    server: server_pb2_grpc.ServerServiceStub
    health: health_pb2_grpc.HealthStub

    @classmethod
    def on(cls, channel: grpc.Channel) -> Stubs:
        return cls(
            clips_pb2_grpc.ClipServiceStub(channel),
            jobs_pb2_grpc.JobServiceStub(channel),
            artifacts_pb2_grpc.ArtifactServiceStub(channel),
            server_pb2_grpc.ServerServiceStub(channel),
            health_pb2_grpc.HealthStub(channel),
        )


class UploadInterruptedError(Exception):
    """Raised by the client's request stream to break an upload on purpose (a dropped connection)."""


def upload_requests(
    data: bytes | memoryview,
    sha256: str,
    offset: int,
    chunk_bytes: int,
    stop_at: int | None = None,
    linger_s: float = 0.3,
) -> Iterator[clips_pb2.UploadClipRequest]:
    """The header, then chunks from ``offset``; raises :class:`UploadInterruptedError` once ``stop_at`` bytes were
    sent, after ``linger_s`` (a connection that drops after its bytes arrived; messages still in flight when a
    client cancels are never delivered to the server's handler)."""
    yield clips_pb2.UploadClipRequest(
        header=clips_pb2.UploadHeader(sha256=sha256, size_bytes=len(data), offset_bytes=offset)
    )
    for start in range(offset, len(data), chunk_bytes):
        end = min(len(data), start + chunk_bytes)
        if stop_at is not None and end > stop_at:
            if stop_at > start:
                yield clips_pb2.UploadClipRequest(chunk=bytes(data[start:stop_at]))
            time.sleep(linger_s)
            raise UploadInterruptedError(f"connection dropped at byte {stop_at}")
        yield clips_pb2.UploadClipRequest(chunk=bytes(data[start:end]))


def upload(
    stubs: Stubs, data: bytes, *, chunk_bytes: int = 64 * 1024, stop_at: int | None = None, offset: int | None = None
) -> clips_pb2.UploadClipResponse:
    """Upload ``data``, resuming from what the server holds (unless ``offset`` is given)."""
    sha256 = hashlib.sha256(data).hexdigest()
    if offset is None:
        offset = stubs.clips.GetUploadStatus(clips_pb2.GetUploadStatusRequest(sha256=sha256)).received_bytes
    return stubs.clips.UploadClip(upload_requests(data, sha256, offset, chunk_bytes, stop_at))


def upload_with_retries(
    stubs: Stubs, data: bytes, *, chunk_bytes: int = 64 * 1024, stop_at: int | None = None, offset: int | None = None
) -> clips_pb2.UploadClipResponse:
    """:func:`upload`, retried while the server answers ABORTED: it is still closing the previous stream of this clip
    (it acknowledges that stream's bytes before it lets the clip go)."""
    for _ in range(50):
        try:
            return upload(stubs, data, chunk_bytes=chunk_bytes, stop_at=stop_at, offset=offset)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.ABORTED:
                raise
            time.sleep(0.05)
    raise AssertionError("upload still busy after 50 tries")


def watch(stubs: Stubs, job_id: str, timeout_s: float = 60.0) -> list[jobs_pb2.JobEvent]:
    return list(stubs.jobs.WatchJob(jobs_pb2.WatchJobRequest(job_id=job_id), timeout=timeout_s))


def download(stubs: Stubs, job_id: str, name: str, offset: int = 0) -> tuple[artifacts_pb2.ArtifactInfo, bytes]:
    info = None
    parts = []
    for chunk in stubs.artifacts.DownloadArtifact(
        artifacts_pb2.DownloadArtifactRequest(job_id=job_id, name=name, offset_bytes=offset)
    ):
        if chunk.HasField("info"):
            info = chunk.info
        parts.append(chunk.data)
    assert info is not None
    return info, b"".join(parts)
