"""The app's client of the ``stridetwin.v1`` contract: translates between protobuf and the app's own dataclasses, and
gRPC status codes into :mod:`~capture_app.link.errors`. Nothing here retries or decides; the outbox and the results
library do.

Which status codes are worth retrying: UNAVAILABLE (no connection), DEADLINE_EXCEEDED, ABORTED (the trainer is still
closing a previous stream of the same upload), RESOURCE_EXHAUSTED (rate and concurrency limits: "too much right now";
a clip over the size or sample limit is INVALID_ARGUMENT), CANCELLED, UNKNOWN and INTERNAL (a broken stream or a
trainer bug that a restart may fix). Everything else is a refusal that a retry would only repeat.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from capture_app.link.errors import IntegrityError, TrainerRefusedError, TransientLinkError
from capture_app.link.settings import LinkSettings
from protos.stridetwin.v1 import (
    artifacts_pb2,
    artifacts_pb2_grpc,
    clips_pb2,
    clips_pb2_grpc,
    jobs_pb2,
    jobs_pb2_grpc,
    server_pb2,
    server_pb2_grpc,
)

TRANSIENT_CODES: frozenset[grpc.StatusCode] = frozenset({
    grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED,
    grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.CANCELLED, grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.INTERNAL,
})  # fmt: skip
#: Deadline of a unary call, seconds.
UNARY_TIMEOUT_S = 15.0
#: An upload's or a download's deadline: this plus its size at this slowest acceptable rate (a stalled stream is
#: then retried from where it stopped).
STREAM_BASE_TIMEOUT_S = 30.0
STREAM_MIN_RATE_BYTES_PER_S = 256 * 1024
DEFAULT_CHUNK_BYTES = 1024 * 1024

TASKS = {"slope": jobs_pb2.TASK_SLOPE, "stairs": jobs_pb2.TASK_STAIRS}
BUDGETS = {"smoke": jobs_pb2.BUDGET_SMOKE, "quick": jobs_pb2.BUDGET_QUICK, "full": jobs_pb2.BUDGET_FULL}
METHODS = {"hybrid": jobs_pb2.METHOD_HYBRID, "physics-only": jobs_pb2.METHOD_PHYSICS_ONLY}
JOB_STATES = {
    jobs_pb2.JOB_STATE_QUEUED: "queued", jobs_pb2.JOB_STATE_RUNNING: "running",
    jobs_pb2.JOB_STATE_SUCCEEDED: "succeeded", jobs_pb2.JOB_STATE_FAILED: "failed",
    jobs_pb2.JOB_STATE_CANCELLED: "cancelled",
}  # fmt: skip
ENDED_STATES = frozenset({"succeeded", "failed", "cancelled"})
STAGES = {
    jobs_pb2.STAGE_REFERENCE: "reference", jobs_pb2.STAGE_ADAPTATION: "adaptation",
    jobs_pb2.STAGE_PREDICTION: "prediction", jobs_pb2.STAGE_EXPORT: "export", jobs_pb2.STAGE_DONE: "done",
}  # fmt: skip
ARTIFACT_KINDS = {
    artifacts_pb2.ARTIFACT_KIND_ONNX: "onnx", artifacts_pb2.ARTIFACT_KIND_MANIFEST: "manifest",
    artifacts_pb2.ARTIFACT_KIND_VIDEO: "video", artifacts_pb2.ARTIFACT_KIND_ANGLES_CSV: "angles_csv",
    artifacts_pb2.ARTIFACT_KIND_REPORT_JSON: "report_json", artifacts_pb2.ARTIFACT_KIND_REPORT_HTML: "report_html",
    artifacts_pb2.ARTIFACT_KIND_LOG: "log", artifacts_pb2.ARTIFACT_KIND_OTHER: "other",
}  # fmt: skip
_TASK_NAME = {v: k for k, v in TASKS.items()}
_BUDGET_NAME = {v: k for k, v in BUDGETS.items()}
_METHOD_NAME = {v: k for k, v in METHODS.items()}


# ------------------------------------------------------------------------------------------------ the app's view
@dataclass(frozen=True)
class ServerFacts:
    """What the trainer is, what it accepts, and whose token this is."""

    server_version: str
    api_version: str
    clinic: str
    executor: str
    clip_schema_majors: tuple[int, ...]
    max_clip_bytes: int
    max_chunk_bytes: int
    max_clip_samples: int
    upload_rate_bytes_per_s: int
    tasks: tuple[str, ...]
    budgets: tuple[str, ...]


@dataclass(frozen=True)
class RemoteClip:
    """A clip the trainer accepted."""

    clip_id: str
    sha256: str
    size_bytes: int
    pseudonym: str
    n_samples: int
    duration_s: float
    received_unix_s: float


@dataclass(frozen=True)
class UploadState:
    """How much of a clip the trainer durably holds."""

    #: ``absent``, ``partial`` or ``complete``.
    state: str
    received_bytes: int
    size_bytes: int
    clip: RemoteClip | None = None


@dataclass(frozen=True)
class JobProgress:
    stage: str
    message: str
    task: str | None
    level: int | None
    samples: int
    samples_total: int | None
    elapsed_s: float
    eta_s: float | None


@dataclass(frozen=True)
class RemoteJob:
    job_id: str
    clip_id: str
    tasks: tuple[str, ...]
    budget: str
    method: str
    seed: int
    #: ``queued``, ``running``, ``succeeded``, ``failed`` or ``cancelled``.
    state: str
    created_unix_s: float
    started_unix_s: float
    finished_unix_s: float
    error_message: str
    n_attempts: int
    progress: JobProgress | None

    @property
    def ended(self) -> bool:
        return self.state in ENDED_STATES


@dataclass(frozen=True)
class ArtifactInfo:
    job_id: str
    #: '/'-separated path relative to the job's output, e.g. ``policies/slope.onnx``.
    name: str
    kind: str
    task: str | None
    level: int | None
    sha256: str
    size_bytes: int


@dataclass(frozen=True)
class JobOutcome:
    """How a job ended (the last event of a watch)."""

    state: str
    error_message: str
    report: dict[str, Any]
    artifacts: tuple[ArtifactInfo, ...]
    resumed: bool


@dataclass(frozen=True)
class JobEvent:
    """One event of a watch: the job's state (``job``), a ``progress`` event, or the ``result`` (last)."""

    seq: int
    kind: str
    job: RemoteJob | None = None
    progress: JobProgress | None = None
    result: JobOutcome | None = None


# ---------------------------------------------------------------------------------------------------------- translation
def _clip(msg: clips_pb2.Clip) -> RemoteClip:
    return RemoteClip(msg.clip_id, msg.sha256, msg.size_bytes, msg.pseudonym, msg.n_samples, msg.duration_s,
                      msg.received_unix_s)  # fmt: skip


def _progress(msg: jobs_pb2.Progress) -> JobProgress:
    return JobProgress(
        stage=STAGES.get(msg.stage, "unspecified"),
        message=msg.message,
        task=msg.task if msg.HasField("task") else None,
        level=msg.level if msg.HasField("level") else None,
        samples=msg.samples,
        samples_total=msg.samples_total if msg.HasField("samples_total") else None,
        elapsed_s=msg.elapsed_s,
        eta_s=msg.eta_s if msg.HasField("eta_s") else None,
    )


def _job(msg: jobs_pb2.Job) -> RemoteJob:
    return RemoteJob(
        job_id=msg.job_id, clip_id=msg.clip_id, tasks=tuple(_TASK_NAME.get(t, str(t)) for t in msg.tasks),
        budget=_BUDGET_NAME.get(msg.budget, str(msg.budget)), method=_METHOD_NAME.get(msg.method, str(msg.method)),
        seed=msg.seed, state=JOB_STATES.get(msg.state, "unspecified"), created_unix_s=msg.created_unix_s,
        started_unix_s=msg.started_unix_s, finished_unix_s=msg.finished_unix_s, error_message=msg.error_message,
        n_attempts=msg.n_attempts, progress=_progress(msg.progress) if msg.HasField("progress") else None,
    )  # fmt: skip


def _artifact(msg: artifacts_pb2.ArtifactInfo) -> ArtifactInfo:
    return ArtifactInfo(
        job_id=msg.job_id, name=msg.name, kind=ARTIFACT_KINDS.get(msg.kind, "other"),
        task=msg.task if msg.HasField("task") else None, level=msg.level if msg.HasField("level") else None,
        sha256=msg.sha256, size_bytes=msg.size_bytes,
    )  # fmt: skip


def _outcome(msg: jobs_pb2.JobResult) -> JobOutcome:
    try:
        report = json.loads(msg.report_json) if msg.report_json else {}
    except ValueError:
        report = {}
    return JobOutcome(JOB_STATES.get(msg.state, "unspecified"), msg.error_message, report,
                      tuple(_artifact(a) for a in msg.artifacts), msg.resumed)  # fmt: skip


def _event(msg: jobs_pb2.JobEvent) -> JobEvent:
    kind = msg.WhichOneof("event")
    if kind == "job":
        return JobEvent(msg.seq, "job", job=_job(msg.job))
    if kind == "progress":
        return JobEvent(msg.seq, "progress", progress=_progress(msg.progress))
    return JobEvent(msg.seq, "result", result=_outcome(msg.result))


def link_error(exc: grpc.RpcError, what: str) -> TransientLinkError | TrainerRefusedError:
    """The link error for a failed call: transient (retry) or a refusal, with the trainer's message."""
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = (exc.details() if hasattr(exc, "details") else "") or str(code)
    message = f"{what}: {details} ({code.name})"
    if code in TRANSIENT_CODES:
        return TransientLinkError(message, code.name)
    return TrainerRefusedError(message, code.name)


# ---------------------------------------------------------------------------------------------------------- the client
@dataclass
class _Stubs:
    clips: clips_pb2_grpc.ClipServiceStub
    jobs: jobs_pb2_grpc.JobServiceStub
    artifacts: artifacts_pb2_grpc.ArtifactServiceStub
    server: server_pb2_grpc.ServerServiceStub
    health: health_pb2_grpc.HealthStub
    channel: Any = field(repr=False, default=None)


class TrainerClient:
    """One trainer, over one channel (opened on first use; :meth:`reset` opens a fresh one after an outage, so that
    the outbox's backoff, not the channel's own reconnect timer, decides when to try again)."""

    def __init__(self, settings: LinkSettings) -> None:
        self.settings = settings.validate()
        self._stubs: _Stubs | None = None
        self._lock = threading.Lock()

    def _s(self) -> _Stubs:
        with self._lock:
            if self._stubs is None:
                ch = self.settings.open_channel()
                self._stubs = _Stubs(
                    clips_pb2_grpc.ClipServiceStub(ch), jobs_pb2_grpc.JobServiceStub(ch),
                    artifacts_pb2_grpc.ArtifactServiceStub(ch), server_pb2_grpc.ServerServiceStub(ch),
                    health_pb2_grpc.HealthStub(ch), ch,
                )  # fmt: skip
            return self._stubs

    def reset(self) -> None:
        """Close the channel; the next call opens a new one."""
        with self._lock:
            stubs, self._stubs = self._stubs, None
        if stubs is not None:
            stubs.channel.close()

    def close(self) -> None:
        self.reset()

    def __enter__(self) -> TrainerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- server
    def healthy(self, timeout_s: float = 5.0) -> bool:
        """The standard health service says SERVING (needs no token)."""
        try:
            reply = self._s().health.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout_s)
        except grpc.RpcError:
            return False
        return reply.status == health_pb2.HealthCheckResponse.SERVING

    def server_facts(self) -> ServerFacts:
        try:
            info = self._s().server.GetServerInfo(server_pb2.GetServerInfoRequest(), timeout=UNARY_TIMEOUT_S)
        except grpc.RpcError as exc:
            raise link_error(exc, f"asking the trainer at {self.settings.server} what it accepts") from None
        return ServerFacts(
            server_version=info.server_version, api_version=info.api_version, clinic=info.clinic,
            executor=info.executor, clip_schema_majors=tuple(info.clip_schema_majors),
            max_clip_bytes=info.limits.max_clip_bytes, max_chunk_bytes=info.limits.max_chunk_bytes,
            max_clip_samples=info.limits.max_clip_samples,
            upload_rate_bytes_per_s=info.limits.upload_rate_bytes_per_s,
            tasks=tuple(_TASK_NAME[t] for t in info.tasks if t in _TASK_NAME),
            budgets=tuple(_BUDGET_NAME[b] for b in info.budgets if b in _BUDGET_NAME),
        )  # fmt: skip

    # -- clips
    def upload_state(self, sha256: str) -> UploadState:
        try:
            msg = self._s().clips.GetUploadStatus(clips_pb2.GetUploadStatusRequest(sha256=sha256),
                                                  timeout=UNARY_TIMEOUT_S)  # fmt: skip
        except grpc.RpcError as exc:
            raise link_error(exc, f"asking for the upload state of clip {sha256[:12]}…") from None
        state = {clips_pb2.UPLOAD_STATE_ABSENT: "absent", clips_pb2.UPLOAD_STATE_PARTIAL: "partial",
                 clips_pb2.UPLOAD_STATE_COMPLETE: "complete"}.get(msg.state, "absent")  # fmt: skip
        return UploadState(state, msg.received_bytes, msg.size_bytes, _clip(msg.clip) if msg.HasField("clip") else None)

    def upload(
        self,
        path: Path,
        sha256: str,
        size_bytes: int,
        offset_bytes: int,
        *,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        on_sent: Callable[[int], None] | None = None,
    ) -> tuple[RemoteClip, bool]:
        """Send ``path`` from ``offset_bytes`` on (read in chunks: memory stays flat); returns the accepted clip and
        whether the trainer already held it. ``on_sent(bytes_sent_so_far_in_file)`` after each chunk."""

        def requests() -> Iterator[clips_pb2.UploadClipRequest]:
            yield clips_pb2.UploadClipRequest(
                header=clips_pb2.UploadHeader(sha256=sha256, size_bytes=size_bytes, offset_bytes=offset_bytes)
            )
            with open(path, "rb") as f:
                f.seek(offset_bytes)
                position = offset_bytes
                while position < size_bytes and (block := f.read(min(chunk_bytes, size_bytes - position))):
                    yield clips_pb2.UploadClipRequest(chunk=block)
                    position += len(block)
                    if on_sent is not None:
                        on_sent(position)

        timeout_s = STREAM_BASE_TIMEOUT_S + (size_bytes - offset_bytes) / STREAM_MIN_RATE_BYTES_PER_S
        try:
            reply = self._s().clips.UploadClip(requests(), timeout=timeout_s)
        except grpc.RpcError as exc:
            raise link_error(exc, f"uploading {Path(path).name}") from None
        clip = _clip(reply.clip)
        if clip.sha256 != sha256 or clip.size_bytes != size_bytes:
            raise IntegrityError(
                f"the trainer accepted clip {clip.sha256[:12]}… of {clip.size_bytes} bytes for {sha256[:12]}… of "
                f"{size_bytes} bytes; not counting it as uploaded"
            )
        return clip, reply.deduplicated

    def list_clips(self) -> list[RemoteClip]:
        out: list[RemoteClip] = []
        token = ""
        while True:
            try:
                page = self._s().clips.ListClips(clips_pb2.ListClipsRequest(page_size=1000, page_token=token),
                                                 timeout=UNARY_TIMEOUT_S)  # fmt: skip
            except grpc.RpcError as exc:
                raise link_error(exc, "listing clips") from None
            out.extend(_clip(c) for c in page.clips)
            token = page.next_page_token
            if not token:
                return out

    # -- jobs
    def submit_job(
        self, clip_id: str, tasks: tuple[str, ...], budget: str, method: str, seed: int, idempotency_key: str
    ) -> RemoteJob:
        request = jobs_pb2.SubmitJobRequest(
            clip_id=clip_id, tasks=[TASKS[t] for t in tasks], budget=BUDGETS[budget], method=METHODS[method],
            seed=seed, idempotency_key=idempotency_key,
        )  # fmt: skip
        try:
            return _job(self._s().jobs.SubmitJob(request, timeout=UNARY_TIMEOUT_S))
        except grpc.RpcError as exc:
            raise link_error(exc, f"submitting a job for clip {clip_id}") from None

    def get_job(self, job_id: str) -> RemoteJob:
        try:
            return _job(self._s().jobs.GetJob(jobs_pb2.GetJobRequest(job_id=job_id), timeout=UNARY_TIMEOUT_S))
        except grpc.RpcError as exc:
            raise link_error(exc, f"asking for job {job_id}") from None

    def list_jobs(self, clip_id: str = "", states: tuple[str, ...] = ()) -> list[RemoteJob]:
        by_name = {v: k for k, v in JOB_STATES.items()}
        out: list[RemoteJob] = []
        token = ""
        while True:
            request = jobs_pb2.ListJobsRequest(page_size=1000, page_token=token, clip_id=clip_id,
                                               states=[by_name[s] for s in states])  # fmt: skip
            try:
                page = self._s().jobs.ListJobs(request, timeout=UNARY_TIMEOUT_S)
            except grpc.RpcError as exc:
                raise link_error(exc, "listing jobs") from None
            out.extend(_job(j) for j in page.jobs)
            token = page.next_page_token
            if not token:
                return out

    def cancel_job(self, job_id: str) -> RemoteJob:
        try:
            return _job(self._s().jobs.CancelJob(jobs_pb2.CancelJobRequest(job_id=job_id), timeout=UNARY_TIMEOUT_S))
        except grpc.RpcError as exc:
            raise link_error(exc, f"cancelling job {job_id}") from None

    def watch_job(self, job_id: str, timeout_s: float | None = None) -> Iterator[JobEvent]:
        """The job now, its progress as it happens, then its result; a broken stream raises a link error."""
        call = None
        try:
            call = self._s().jobs.WatchJob(jobs_pb2.WatchJobRequest(job_id=job_id), timeout=timeout_s)
            for msg in call:
                yield _event(msg)
        except grpc.RpcError as exc:
            raise link_error(exc, f"watching job {job_id}") from None
        finally:
            if call is not None:
                call.cancel()  # a caller that stops reading early ends the stream now, not at garbage collection

    # -- artifacts
    def list_artifacts(self, job_id: str) -> list[ArtifactInfo]:
        try:
            reply = self._s().artifacts.ListArtifacts(artifacts_pb2.ListArtifactsRequest(job_id=job_id),
                                                      timeout=UNARY_TIMEOUT_S)  # fmt: skip
        except grpc.RpcError as exc:
            raise link_error(exc, f"listing the artifacts of job {job_id}") from None
        return [_artifact(a) for a in reply.artifacts]

    def download_artifact(
        self, job_id: str, name: str, offset_bytes: int = 0, timeout_s: float | None = None
    ) -> Iterator[tuple[int, bytes]]:
        """``(offset_bytes, data)`` chunks of one artifact from ``offset_bytes`` on; ``timeout_s`` bounds the whole
        stream (a stalled one then fails as DEADLINE_EXCEEDED and is resumed by the caller)."""
        request = artifacts_pb2.DownloadArtifactRequest(job_id=job_id, name=name, offset_bytes=offset_bytes)
        call = None
        try:
            call = self._s().artifacts.DownloadArtifact(request, timeout=timeout_s)
            for chunk in call:
                if chunk.data:
                    yield chunk.offset_bytes, chunk.data
        except grpc.RpcError as exc:
            raise link_error(exc, f"downloading {name} of job {job_id}") from None
        finally:
            if call is not None:
                call.cancel()
