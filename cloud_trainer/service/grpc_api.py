"""The gRPC face of the trainer: servicers that translate between ``stridetwin.v1`` messages and the domain
(:class:`~cloud_trainer.service.service.TrainerService`), and the interceptor that authenticates every call.

Nothing here decides anything: each servicer method converts the request, calls one domain method, converts the
answer, and maps domain errors to status codes (:data:`STATUS_OF`).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from cloud_trainer.pipeline.api import ProgressEvent, Stage
from cloud_trainer.service import errors
from cloud_trainer.service.artifacts import ArtifactRecord
from cloud_trainer.service.auth import ClinicRegistry
from cloud_trainer.service.clips import ClipRecord
from cloud_trainer.service.jobs import JobRecord, JobSpec, JobState
from cloud_trainer.service.ratelimit import PerKeyBuckets
from cloud_trainer.service.service import JobResultView, TrainerService, UploadHeader, WatchItem
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

_log = logging.getLogger(__name__)

API_VERSION = "stridetwin.v1"

#: Domain error → gRPC status code. Order matters only for subclasses (none overlap). A clip over the size or sample
#: limit is INVALID_ARGUMENT (sending it again will not help), kept apart from RESOURCE_EXHAUSTED, which means "too
#: much right now" (rate and concurrency limits) and is worth retrying after a backoff.
STATUS_OF: dict[type[errors.ServiceError], grpc.StatusCode] = {
    errors.NotFoundError: grpc.StatusCode.NOT_FOUND,
    errors.InvalidRequestError: grpc.StatusCode.INVALID_ARGUMENT,
    errors.InvalidClipError: grpc.StatusCode.INVALID_ARGUMENT,
    errors.UnsupportedSchemaError: grpc.StatusCode.FAILED_PRECONDITION,
    errors.TooLargeError: grpc.StatusCode.INVALID_ARGUMENT,
    errors.RateLimitedError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.ChecksumMismatchError: grpc.StatusCode.DATA_LOSS,
    errors.OffsetError: grpc.StatusCode.OUT_OF_RANGE,
    errors.PreconditionError: grpc.StatusCode.FAILED_PRECONDITION,
    errors.ConflictError: grpc.StatusCode.ALREADY_EXISTS,
    errors.BusyError: grpc.StatusCode.ABORTED,
}

TASK_TO_PB = {"slope": jobs_pb2.TASK_SLOPE, "stairs": jobs_pb2.TASK_STAIRS}
BUDGET_TO_PB = {"smoke": jobs_pb2.BUDGET_SMOKE, "quick": jobs_pb2.BUDGET_QUICK, "full": jobs_pb2.BUDGET_FULL}
METHOD_TO_PB = {"hybrid": jobs_pb2.METHOD_HYBRID, "physics-only": jobs_pb2.METHOD_PHYSICS_ONLY}
STATE_TO_PB = {
    JobState.QUEUED: jobs_pb2.JOB_STATE_QUEUED,
    JobState.RUNNING: jobs_pb2.JOB_STATE_RUNNING,
    JobState.SUCCEEDED: jobs_pb2.JOB_STATE_SUCCEEDED,
    JobState.FAILED: jobs_pb2.JOB_STATE_FAILED,
    JobState.CANCELLED: jobs_pb2.JOB_STATE_CANCELLED,
}
STAGE_TO_PB = {
    Stage.REFERENCE: jobs_pb2.STAGE_REFERENCE,
    Stage.ADAPTATION: jobs_pb2.STAGE_ADAPTATION,
    Stage.PREDICTION: jobs_pb2.STAGE_PREDICTION,
    Stage.EXPORT: jobs_pb2.STAGE_EXPORT,
    Stage.DONE: jobs_pb2.STAGE_DONE,
}
KIND_TO_PB = {
    "onnx": artifacts_pb2.ARTIFACT_KIND_ONNX,
    "manifest": artifacts_pb2.ARTIFACT_KIND_MANIFEST,
    "video": artifacts_pb2.ARTIFACT_KIND_VIDEO,
    "angles_csv": artifacts_pb2.ARTIFACT_KIND_ANGLES_CSV,
    "report_json": artifacts_pb2.ARTIFACT_KIND_REPORT_JSON,
    "report_html": artifacts_pb2.ARTIFACT_KIND_REPORT_HTML,
    "log": artifacts_pb2.ARTIFACT_KIND_LOG,
}
_TASK_FROM_PB = {v: k for k, v in TASK_TO_PB.items()}
_BUDGET_FROM_PB = {v: k for k, v in BUDGET_TO_PB.items()}
_METHOD_FROM_PB = {v: k for k, v in METHOD_TO_PB.items()}
_STATE_FROM_PB = {v: k for k, v in STATE_TO_PB.items()}
_MAX_PAGE = 1000
_DEFAULT_PAGE = 100


# ---------------------------------------------------------------------------------------------------------- messages
def clip_to_pb(clip: ClipRecord) -> clips_pb2.Clip:
    return clips_pb2.Clip(
        clip_id=clip.clip_id, sha256=clip.sha256, size_bytes=clip.size_bytes, received_unix_s=clip.received_unix_s,
        schema_version=clip.schema_version, pseudonym=clip.pseudonym, duration_s=clip.duration_s,
        n_sensors=clip.n_sensors, n_samples=clip.n_samples, sites=list(clip.sites),
    )  # fmt: skip


def progress_to_pb(event: ProgressEvent) -> jobs_pb2.Progress:
    msg = jobs_pb2.Progress(
        stage=STAGE_TO_PB.get(event.stage, jobs_pb2.STAGE_UNSPECIFIED),
        message=event.message,
        samples=max(0, int(event.samples)),
        elapsed_s=event.elapsed_s,
    )
    if event.task is not None:
        msg.task = event.task
    if event.level is not None:
        msg.level = event.level
    if event.samples_total is not None:
        msg.samples_total = max(0, int(event.samples_total))
    if event.eta_s is not None:
        msg.eta_s = event.eta_s
    return msg


def job_to_pb(job: JobRecord) -> jobs_pb2.Job:
    msg = jobs_pb2.Job(
        job_id=job.job_id, clip_id=job.spec.clip_id, tasks=[TASK_TO_PB[t] for t in job.spec.tasks],
        budget=BUDGET_TO_PB[job.spec.budget], method=METHOD_TO_PB[job.spec.method], seed=job.spec.seed,
        state=STATE_TO_PB[job.state], created_unix_s=job.created_unix_s, started_unix_s=job.started_unix_s,
        finished_unix_s=job.finished_unix_s, error_message=job.error_message, n_attempts=job.n_attempts,
        cancel_requested=job.cancel_requested,
    )  # fmt: skip
    if job.progress is not None:
        msg.progress.CopyFrom(progress_to_pb(job.progress))
    return msg


def artifact_to_pb(art: ArtifactRecord) -> artifacts_pb2.ArtifactInfo:
    msg = artifacts_pb2.ArtifactInfo(
        job_id=art.job_id, name=art.name, kind=KIND_TO_PB.get(art.kind, artifacts_pb2.ARTIFACT_KIND_OTHER),
        sha256=art.sha256, size_bytes=art.size_bytes,
    )  # fmt: skip
    if art.task is not None:
        msg.task = art.task
    if art.level is not None:
        msg.level = art.level
    return msg


def result_to_pb(result: JobResultView) -> jobs_pb2.JobResult:
    import json

    return jobs_pb2.JobResult(
        state=STATE_TO_PB[result.state], error_message=result.error_message,
        report_json=json.dumps(result.report, allow_nan=False), artifacts=[artifact_to_pb(a) for a in result.artifacts],
        resumed=result.resumed,
    )  # fmt: skip


def spec_from_pb(request: jobs_pb2.SubmitJobRequest) -> JobSpec:
    tasks = []
    for value in request.tasks:
        if value not in _TASK_FROM_PB:
            raise errors.InvalidRequestError(f"task {value}: accepted TASK_SLOPE (1), TASK_STAIRS (2)")
        tasks.append(_TASK_FROM_PB[value])
    budget = request.budget or jobs_pb2.BUDGET_QUICK
    method = request.method or jobs_pb2.METHOD_HYBRID
    if budget not in _BUDGET_FROM_PB:
        raise errors.InvalidRequestError(f"budget {budget}: accepted BUDGET_SMOKE, BUDGET_QUICK, BUDGET_FULL")
    if method not in _METHOD_FROM_PB:
        raise errors.InvalidRequestError(f"method {method}: accepted METHOD_HYBRID, METHOD_PHYSICS_ONLY")
    return JobSpec(request.clip_id, tuple(tasks), _BUDGET_FROM_PB[budget], _METHOD_FROM_PB[method], request.seed)


def _page(page_size: int, page_token: str) -> tuple[int, int]:
    limit = _DEFAULT_PAGE if page_size == 0 else page_size
    if not 1 <= limit <= _MAX_PAGE:
        raise errors.InvalidRequestError(f"page_size {page_size}: accepted 1-{_MAX_PAGE} (0 means {_DEFAULT_PAGE})")
    try:
        offset = int(page_token) if page_token else 0
    except ValueError:
        raise errors.InvalidRequestError("page_token: pass next_page_token from the previous page unchanged") from None
    if offset < 0:
        raise errors.InvalidRequestError("page_token: pass next_page_token from the previous page unchanged")
    return limit, offset


# ---------------------------------------------------------------------------------------------------------- errors
def _abort_for(context: grpc.ServicerContext, exc: Exception) -> None:
    if isinstance(exc, errors.ServiceError):
        code = next((c for cls, c in STATUS_OF.items() if isinstance(exc, cls)), grpc.StatusCode.INVALID_ARGUMENT)
        context.abort(code, str(exc))
    _log.exception("internal error")
    context.abort(grpc.StatusCode.INTERNAL, f"internal error ({type(exc).__name__}); the trainer's log has details")


def _unary(method: Callable) -> Callable:
    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(self, request, context)
        except Exception as exc:
            if _is_abort(exc):
                raise
            _abort_for(context, exc)

    return wrapper


def _streaming(method: Callable) -> Callable:
    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Iterator:
        try:
            yield from method(self, request, context)
        except Exception as exc:
            if _is_abort(exc):
                raise
            _abort_for(context, exc)

    return wrapper


def _is_abort(exc: Exception) -> bool:
    """``context.abort`` raises a bare ``Exception``; a cancelled client's request stream raises ``grpc.RpcError``.
    Both end the call already: let them through untouched."""
    return type(exc) is Exception or isinstance(exc, grpc.RpcError)


def clinic_of(context: grpc.ServicerContext) -> str:
    """The caller's clinic, set by :class:`AuthInterceptor`."""
    return context.clinic  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------------------------- servicers
class ClipServicer(clips_pb2_grpc.ClipServiceServicer):
    def __init__(self, service: TrainerService) -> None:
        self.service = service

    @_unary
    def GetUploadStatus(self, request, context):  # noqa: N802 (gRPC method names)
        status = self.service.upload_status(clinic_of(context), request.sha256)
        state = {"absent": clips_pb2.UPLOAD_STATE_ABSENT, "partial": clips_pb2.UPLOAD_STATE_PARTIAL,
                 "complete": clips_pb2.UPLOAD_STATE_COMPLETE}[status.state]  # fmt: skip
        msg = clips_pb2.UploadStatus(
            sha256=status.sha256, state=state, received_bytes=status.received_bytes, size_bytes=status.size_bytes
        )
        if status.clip is not None:
            msg.clip.CopyFrom(clip_to_pb(status.clip))
        return msg

    @_unary
    def UploadClip(self, request_iterator, context):  # noqa: N802
        first = next(request_iterator, None)
        if first is None or first.WhichOneof("item") != "header":
            raise errors.InvalidRequestError("the first message of UploadClip must be an UploadHeader")
        head = first.header

        def chunks() -> Iterator[bytes]:
            for message in request_iterator:
                if message.WhichOneof("item") != "chunk":
                    raise errors.InvalidRequestError("only the first message of UploadClip may be an UploadHeader")
                yield message.chunk

        outcome = self.service.upload_clip(
            clinic_of(context), UploadHeader(head.sha256, head.size_bytes, head.offset_bytes), chunks()
        )
        return clips_pb2.UploadClipResponse(clip=clip_to_pb(outcome.clip), deduplicated=outcome.deduplicated)

    @_unary
    def GetClip(self, request, context):  # noqa: N802
        return clip_to_pb(self.service.get_clip(clinic_of(context), request.clip_id))

    @_unary
    def ListClips(self, request, context):  # noqa: N802
        limit, offset = _page(request.page_size, request.page_token)
        clips = self.service.list_clips(clinic_of(context), limit + 1, offset)
        token = str(offset + limit) if len(clips) > limit else ""
        return clips_pb2.ListClipsResponse(clips=[clip_to_pb(c) for c in clips[:limit]], next_page_token=token)


class JobServicer(jobs_pb2_grpc.JobServiceServicer):
    def __init__(self, service: TrainerService) -> None:
        self.service = service

    @_unary
    def SubmitJob(self, request, context):  # noqa: N802
        job = self.service.submit_job(clinic_of(context), spec_from_pb(request), request.idempotency_key)
        return job_to_pb(job)

    @_unary
    def GetJob(self, request, context):  # noqa: N802
        return job_to_pb(self.service.get_job(clinic_of(context), request.job_id))

    @_streaming
    def WatchJob(self, request, context):  # noqa: N802
        for seq, item in enumerate(self.service.watch_job(clinic_of(context), request.job_id, context.is_active)):
            yield _event_to_pb(seq, item)

    @_unary
    def CancelJob(self, request, context):  # noqa: N802
        return job_to_pb(self.service.cancel_job(clinic_of(context), request.job_id))

    @_unary
    def ListJobs(self, request, context):  # noqa: N802
        limit, offset = _page(request.page_size, request.page_token)
        states = set()
        for value in request.states:
            if value not in _STATE_FROM_PB:
                raise errors.InvalidRequestError(f"states: {value} is not a JobState")
            states.add(_STATE_FROM_PB[value])
        jobs = self.service.list_jobs(clinic_of(context), states, request.clip_id, limit + 1, offset)
        token = str(offset + limit) if len(jobs) > limit else ""
        return jobs_pb2.ListJobsResponse(jobs=[job_to_pb(j) for j in jobs[:limit]], next_page_token=token)


def _event_to_pb(seq: int, item: WatchItem) -> jobs_pb2.JobEvent:
    if item.kind == "job":
        assert item.job is not None
        return jobs_pb2.JobEvent(seq=seq, job=job_to_pb(item.job))
    if item.kind == "progress":
        assert item.progress is not None
        return jobs_pb2.JobEvent(seq=seq, progress=progress_to_pb(item.progress))
    assert item.result is not None
    return jobs_pb2.JobEvent(seq=seq, result=result_to_pb(item.result))


class ArtifactServicer(artifacts_pb2_grpc.ArtifactServiceServicer):
    def __init__(self, service: TrainerService) -> None:
        self.service = service

    @_unary
    def ListArtifacts(self, request, context):  # noqa: N802
        arts = self.service.list_artifacts(clinic_of(context), request.job_id)
        return artifacts_pb2.ListArtifactsResponse(artifacts=[artifact_to_pb(a) for a in arts])

    @_streaming
    def DownloadArtifact(self, request, context):  # noqa: N802
        record, chunks = self.service.read_artifact(
            clinic_of(context), request.job_id, request.name, request.offset_bytes
        )
        offset = request.offset_bytes
        first = artifacts_pb2.ArtifactChunk(info=artifact_to_pb(record), offset_bytes=offset)
        for data in chunks:
            if first is not None:
                first.data = data
                yield first
                first = None
            else:
                yield artifacts_pb2.ArtifactChunk(offset_bytes=offset, data=data)
            offset += len(data)
        if first is not None:  # nothing left to send (empty file, or resumed at the end)
            yield first


class ServerServicer(server_pb2_grpc.ServerServiceServicer):
    def __init__(self, service: TrainerService) -> None:
        self.service = service

    @_unary
    def GetServerInfo(self, request, context):  # noqa: N802
        facts = self.service.facts()
        lim = facts.limits
        return server_pb2.ServerInfo(
            server_version=facts.server_version,
            api_version=API_VERSION,
            clip_schema_majors=list(facts.clip_schema_majors),
            limits=server_pb2.Limits(
                max_clip_bytes=lim.max_clip_bytes,
                max_chunk_bytes=lim.max_chunk_bytes,
                upload_rate_bytes_per_s=lim.upload_rate_bytes_per_s,
                max_running_jobs_per_clinic=lim.max_running_jobs_per_clinic,
                max_pending_jobs_per_clinic=lim.max_pending_jobs_per_clinic,
                max_calls_per_s=lim.max_calls_per_s,
                max_clip_samples=lim.max_clip_samples,
            ),
            tasks=[TASK_TO_PB[t] for t in facts.tasks],
            budgets=[BUDGET_TO_PB[b] for b in facts.budgets],
            methods=[METHOD_TO_PB[m] for m in facts.methods],
            executor=facts.executor,
            clinic=clinic_of(context),
        )


# ---------------------------------------------------------------------------------------------------------- auth
class _ClinicContext:
    """The servicer context of an authenticated call, with the caller's clinic."""

    def __init__(self, context: grpc.ServicerContext, clinic: str) -> None:
        self._context = context
        self.clinic = clinic

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


def _handler_like(handler: grpc.RpcMethodHandler, behavior: Callable) -> grpc.RpcMethodHandler:
    if handler.unary_unary:
        make = grpc.unary_unary_rpc_method_handler
    elif handler.unary_stream:
        make = grpc.unary_stream_rpc_method_handler
    elif handler.stream_unary:
        make = grpc.stream_unary_rpc_method_handler
    else:
        make = grpc.stream_stream_rpc_method_handler
    return make(behavior, request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)  # fmt: skip


class AuthInterceptor(grpc.ServerInterceptor):
    """Every call carries ``authorization: Bearer <token>`` of a known clinic, within the clinic's call rate; else
    UNAUTHENTICATED or RESOURCE_EXHAUSTED. Only the standard health service answers without a token (load balancers
    and orchestrators probe it; it reveals nothing but serving or not)."""

    EXEMPT_PREFIXES: tuple[str, ...] = ("/grpc.health.v1.Health/",)

    def __init__(self, registry: ClinicRegistry, max_calls_per_s: int) -> None:
        self.registry = registry
        self._calls = PerKeyBuckets(max_calls_per_s, 2 * max_calls_per_s) if max_calls_per_s > 0 else None

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(self.EXEMPT_PREFIXES):
            return handler
        auth = next((v for k, v in handler_call_details.invocation_metadata or () if k == "authorization"), None)
        if not auth:
            return self._deny(
                handler,
                grpc.StatusCode.UNAUTHENTICATED,
                "missing 'authorization: Bearer <token>' metadata; every call needs a clinic's token",
            )
        scheme, _, token = str(auth).partition(" ")
        clinic = self.registry.authenticate(token.strip()) if scheme.lower() == "bearer" else None
        if clinic is None:
            _log.warning("rejected call to %s: unknown or malformed token", method)
            return self._deny(
                handler,
                grpc.StatusCode.UNAUTHENTICATED,
                "the bearer token is not valid for this trainer (revoked, mistyped, or another trainer's)",
            )
        if self._calls is not None and not self._calls[clinic].try_take():
            return self._deny(
                handler,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"rate limit: more than {self._calls.rate_per_s:g} calls/s from this clinic; retry later",
            )
        return self._with_clinic(handler, clinic)  # fmt: skip

    @staticmethod
    def _deny(handler: grpc.RpcMethodHandler, code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
        def abort(request: Any, context: grpc.ServicerContext) -> Any:
            context.abort(code, message)

        return _handler_like(handler, abort)

    @staticmethod
    def _with_clinic(handler: grpc.RpcMethodHandler, clinic: str) -> grpc.RpcMethodHandler:
        inner = handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream

        def behavior(request: Any, context: grpc.ServicerContext) -> Any:
            return inner(request, _ClinicContext(context, clinic))

        return _handler_like(handler, behavior)


def add_servicers(server: grpc.Server, service: TrainerService) -> None:
    """Register the four ``stridetwin.v1`` services on ``server``."""
    clips_pb2_grpc.add_ClipServiceServicer_to_server(ClipServicer(service), server)
    jobs_pb2_grpc.add_JobServiceServicer_to_server(JobServicer(service), server)
    artifacts_pb2_grpc.add_ArtifactServiceServicer_to_server(ArtifactServicer(service), server)
    server_pb2_grpc.add_ServerServiceServicer_to_server(ServerServicer(service), server)


SERVICE_NAMES: tuple[str, ...] = tuple(
    f"{API_VERSION}.{name}" for name in ("ClipService", "JobService", "ArtifactService", "ServerService")
)
