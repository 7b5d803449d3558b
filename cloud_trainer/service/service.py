"""The trainer service's domain: uploads, jobs, artifacts and their bookkeeping, with no gRPC in sight.

:class:`TrainerService` is what the gRPC servicers call. It owns the stores (clips, jobs, artifacts), the executor,
the audit log and the scheduler that decides which queued job runs next: oldest first, at most
``max_running_jobs_per_clinic`` per clinic, at most the executor's capacity in all. Every method takes the caller's
clinic and only ever sees that clinic's clips, jobs and artifacts; anything else is :class:`NotFoundError`.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, BinaryIO, Literal

from cloud_trainer.pipeline.api import BUDGETS, METHODS, TASKS, PipelineRequest, ProgressEvent
from cloud_trainer.service.artifacts import ArtifactRecord, ArtifactStore, FileArtifactStore
from cloud_trainer.service.audit import AuditLog
from cloud_trainer.service.clipcheck import check_clip
from cloud_trainer.service.clips import ClipRecord, ClipStore, FileClipStore, check_sha256, clip_id_of
from cloud_trainer.service.config import Limits, ServiceConfig
from cloud_trainer.service.errors import (
    BusyError,
    ChecksumMismatchError,
    InvalidClipError,
    InvalidRequestError,
    NotFoundError,
    OffsetError,
    PreconditionError,
    RateLimitedError,
    TooLargeError,
    UnsupportedSchemaError,
)
from cloud_trainer.service.executor import Executor, JobOutcome
from cloud_trainer.service.jobs import JobRecord, JobSpec, JobState, JobStore, SqliteJobStore
from cloud_trainer.service.ratelimit import PerKeyBuckets
from sensor_drivers.recording.format import SUPPORTED_MAJORS

_log = logging.getLogger(__name__)
_READ_BLOCK_BYTES = 1024 * 1024


def server_version() -> str:
    try:
        return version("stridetwin")
    except PackageNotFoundError:
        return "0.0.0+source"


@dataclass(frozen=True)
class UploadHeader:
    """The first message of an upload: which clip, how big, where these bytes start."""

    sha256: str
    size_bytes: int
    offset_bytes: int = 0


@dataclass(frozen=True)
class UploadStatus:
    sha256: str
    state: Literal["absent", "partial", "complete"]
    received_bytes: int
    size_bytes: int
    clip: ClipRecord | None = None


@dataclass(frozen=True)
class UploadOutcome:
    clip: ClipRecord
    #: The server held this clip before the call.
    deduplicated: bool


@dataclass(frozen=True)
class JobResultView:
    """How a job ended, with what it produced."""

    state: JobState
    error_message: str
    report: dict[str, Any]
    artifacts: list[ArtifactRecord]
    resumed: bool


@dataclass(frozen=True)
class WatchItem:
    """One event of a watch stream: the job's state, a progress event, or the result (last)."""

    kind: Literal["job", "progress", "result"]
    job: JobRecord | None = None
    progress: ProgressEvent | None = None
    result: JobResultView | None = None


@dataclass(frozen=True)
class ServerFacts:
    server_version: str
    executor: str
    limits: Limits
    clip_schema_majors: tuple[int, ...]
    tasks: tuple[str, ...] = TASKS
    budgets: tuple[str, ...] = BUDGETS
    methods: tuple[str, ...] = METHODS


_CLOSED = object()


class _Hub:
    """Fans a job's events out to its watchers. A slow watcher loses progress events, never a result."""

    def __init__(self, backlog: int) -> None:
        self._subs: dict[str, set[queue.Queue]] = {}
        self._lock = threading.Lock()
        self._backlog = backlog

    def subscribe(self, job_id: str) -> queue.Queue:
        q: queue.Queue = queue.Queue(maxsize=self._backlog)
        with self._lock:
            self._subs.setdefault(job_id, set()).add(q)
        return q

    def unsubscribe(self, job_id: str, q: queue.Queue) -> None:
        with self._lock:
            subs = self._subs.get(job_id)
            if subs is not None:
                subs.discard(q)
                if not subs:
                    del self._subs[job_id]

    def publish(self, job_id: str, item: WatchItem | object) -> None:
        with self._lock:
            subs = list(self._subs.get(job_id, ()))
        for q in subs:
            try:
                q.put_nowait(item)
            except queue.Full:
                if isinstance(item, WatchItem) and item.kind == "progress":
                    continue
                q.get_nowait()  # make room for a state change or the result
                q.put_nowait(item)

    def close_all(self) -> None:
        with self._lock:
            subs = [q for qs in self._subs.values() for q in qs]
        for q in subs:
            try:
                q.put_nowait(_CLOSED)
            except queue.Full:
                q.get_nowait()
                q.put_nowait(_CLOSED)


class _HashingReader:
    """A read-only stream that hashes every byte read through it; :meth:`finish` reads and hashes the rest."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._hash = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n)
        self._hash.update(data)
        return data

    def finish(self) -> str:
        while block := self._stream.read(_READ_BLOCK_BYTES):
            self._hash.update(block)
        return self._hash.hexdigest()


@dataclass
class _Run:
    clinic: str
    last_stored_s: float = 0.0
    last_key: tuple = ()


class TrainerService:
    """Clips, jobs and artifacts of every clinic, each clinic seeing only its own."""

    def __init__(
        self,
        *,
        clips: ClipStore,
        jobs: JobStore,
        artifacts: ArtifactStore,
        executor: Executor,
        audit: AuditLog,
        work_dir: Path,
        config: ServiceConfig | None = None,
    ) -> None:
        self.clips = clips
        self.jobs = jobs
        self.artifacts = artifacts
        self.executor = executor
        self.audit = audit
        self.work_dir = Path(work_dir)
        self.config = config = config or ServiceConfig()
        self.limits = config.limits
        self._hub = _Hub(config.progress_backlog)
        self._sched_lock = threading.RLock()
        self._running: dict[str, _Run] = {}
        self._stopping = False
        self._upload_lock = threading.Lock()
        self._uploads_active: set[tuple[str, str]] = set()
        self._upload_bytes = PerKeyBuckets(
            self.limits.upload_rate_bytes_per_s, max(self.limits.upload_rate_bytes_per_s, self.limits.max_chunk_bytes)
        )

    @classmethod
    def open(cls, data_dir: Path, executor: Executor, config: ServiceConfig | None = None) -> TrainerService:
        """The service on the default stores under ``data_dir``: files for clips and artifacts, SQLite for jobs."""
        data_dir = Path(data_dir)
        return cls(
            clips=FileClipStore(data_dir),
            jobs=SqliteJobStore(data_dir / "jobs.sqlite3"),
            artifacts=FileArtifactStore(data_dir),
            executor=executor,
            audit=AuditLog(data_dir / "audit.log"),
            work_dir=data_dir / "work",
            config=config,
        )

    # ------------------------------------------------------------------------------------------------ life cycle
    def start(self) -> list[JobRecord]:
        """Put jobs a crash or stop cut short back in the queue, and start what may run; returns the resumed jobs."""
        resumed = self.jobs.requeue_interrupted()
        for job in resumed:
            self.audit.append(job.clinic, "job.resume", job_id=job.job_id, clip_id=job.spec.clip_id,
                              n_attempts=job.n_attempts)  # fmt: skip
        self._dispatch()
        return resumed

    def stop(self, wait_s: float = 10.0) -> None:
        """Stop running jobs (they stay RUNNING in the store and resume at the next start) and close watch streams."""
        with self._sched_lock:
            self._stopping = True
        self.executor.shutdown(wait_s)
        self._hub.close_all()

    def facts(self) -> ServerFacts:
        return ServerFacts(server_version(), self.executor.name, self.limits, SUPPORTED_MAJORS)

    # ------------------------------------------------------------------------------------------------ clips
    def upload_status(self, clinic: str, sha256: str) -> UploadStatus:
        check_sha256(sha256)
        clip = self._clip_by_sha(clinic, sha256)
        if clip is not None:
            return UploadStatus(sha256, "complete", clip.size_bytes, clip.size_bytes, clip)
        progress = self.clips.upload_progress(clinic, sha256)
        if progress is None:
            return UploadStatus(sha256, "absent", 0, 0)
        return UploadStatus(sha256, "partial", progress.received_bytes, progress.size_bytes)

    def _clip_by_sha(self, clinic: str, sha256: str) -> ClipRecord | None:
        clip = self.clips.get(clinic, clip_id_of(sha256))
        return clip if clip is not None and clip.sha256 == sha256 else None

    @contextmanager
    def _upload_slot(self, clinic: str, sha256: str) -> Iterator[None]:
        key = (clinic, sha256)
        with self._upload_lock:
            if key in self._uploads_active:
                raise BusyError(f"clip {sha256[:16]}… is being uploaded by another call; retry when it has ended")
            n_active = sum(1 for c, _ in self._uploads_active if c == clinic)
            if n_active >= self.limits.max_uploads_per_clinic:
                raise RateLimitedError(
                    f"{n_active} uploads of this clinic are in progress (at most {self.limits.max_uploads_per_clinic})"
                )
            self._uploads_active.add(key)
        try:
            yield
        finally:
            with self._upload_lock:
                self._uploads_active.discard(key)

    def upload_clip(self, clinic: str, header: UploadHeader, chunks: Iterable[bytes]) -> UploadOutcome:
        """Receive a clip's bytes from ``header.offset_bytes`` on; when all are held, verify and accept the clip.

        The bytes that arrived are made durable even when the stream breaks, so the client resumes where it stopped.
        """
        sha256 = check_sha256(header.sha256)
        size = header.size_bytes
        if size <= 0:
            raise InvalidRequestError("size_bytes must be > 0")
        if size > self.limits.max_clip_bytes:
            raise TooLargeError(
                f"clip of {size} bytes exceeds the limit of {self.limits.max_clip_bytes} bytes "
                f"({self.limits.max_clip_bytes / 2**20:.0f} MiB)"
            )
        existing = self._clip_by_sha(clinic, sha256)
        if existing is not None:
            self.audit.append(clinic, "clip.upload", clip_id=existing.clip_id, outcome="deduplicated")
            return UploadOutcome(existing, deduplicated=True)
        with self._upload_slot(clinic, sha256):
            existing = self._clip_by_sha(clinic, sha256)  # finished by a call that just ended
            if existing is not None:
                return UploadOutcome(existing, deduplicated=True)
            upload = self.clips.open_upload(clinic, sha256, size)
            try:
                self._receive(clinic, upload, header, chunks)
            finally:
                upload.close()  # acknowledge what arrived, even when the stream broke
            if upload.received_bytes < size:
                raise PreconditionError(
                    f"the upload stream ended after byte {upload.received_bytes} of {size}; resume with offset_bytes "
                    f"{upload.received_bytes}"
                )
            with upload.open_read() as f:
                reader = _HashingReader(f)
                error: Exception | None = None
                try:
                    summary = check_clip(reader, self.limits)  # type: ignore[arg-type]
                except (InvalidClipError, UnsupportedSchemaError, TooLargeError) as exc:
                    error = exc
                actual = reader.finish()
            if actual != sha256:
                self.clips.discard_upload(clinic, sha256)
                self.audit.append(clinic, "clip.upload", clip_id=clip_id_of(sha256), outcome="checksum-mismatch")
                raise ChecksumMismatchError(
                    f"the {size} bytes received hash to SHA-256 {actual[:16]}…, the upload declared {sha256[:16]}…; "
                    "the partial upload was discarded: upload the clip again from offset 0"
                )
            if error is not None:
                self.clips.discard_upload(clinic, sha256)
                self.audit.append(clinic, "clip.upload", clip_id=clip_id_of(sha256), outcome="rejected",
                                  reason=type(error).__name__)  # fmt: skip
                raise error
            record = self.clips.commit(clinic, upload, summary)
        self.audit.append(clinic, "clip.upload", clip_id=record.clip_id, outcome="accepted", size_bytes=size,
                          n_samples=record.n_samples)  # fmt: skip
        return UploadOutcome(record, deduplicated=False)

    def _receive(self, clinic: str, upload: Any, header: UploadHeader, chunks: Iterable[bytes]) -> None:
        held = upload.received_bytes
        if header.offset_bytes > held:
            raise OffsetError(
                f"the server holds {held} bytes of this upload; resume at offset_bytes {held}, "
                f"not {header.offset_bytes}"
            )
        skip = held - header.offset_bytes
        since_sync = 0
        rate = self.limits.upload_rate_bytes_per_s
        bucket = self._upload_bytes[clinic] if rate > 0 else None
        for chunk in chunks:
            if len(chunk) > self.limits.max_chunk_bytes:
                raise InvalidRequestError(
                    f"chunk of {len(chunk)} bytes exceeds max_chunk_bytes {self.limits.max_chunk_bytes}"
                )
            if bucket is not None and (delay_s := bucket.take_delay_s(len(chunk))) > 0:
                time.sleep(delay_s)  # back-pressure: gRPC flow control slows the sender
            if skip:
                n = min(skip, len(chunk))
                chunk, skip = chunk[n:], skip - n
            if upload.received_bytes + len(chunk) > upload.size_bytes:
                raise InvalidRequestError(
                    f"the upload sends more than its size_bytes {upload.size_bytes}; nothing beyond it is accepted"
                )
            upload.write(chunk)
            since_sync += len(chunk)
            if since_sync >= self.config.upload_sync_bytes:
                upload.sync()
                since_sync = 0

    def get_clip(self, clinic: str, clip_id: str) -> ClipRecord:
        clip = self.clips.get(clinic, clip_id)
        if clip is None:
            raise NotFoundError(f"no clip {clip_id[:64]!r}")
        return clip

    def list_clips(self, clinic: str, limit: int, offset: int) -> list[ClipRecord]:
        return self.clips.list(clinic)[offset : offset + limit]

    # ------------------------------------------------------------------------------------------------ jobs
    def submit_job(self, clinic: str, spec: JobSpec, idempotency_key: str) -> JobRecord:
        """Queue a job (or return the one created earlier with the same key)."""
        if not (1 <= len(idempotency_key) <= 128 and idempotency_key.isascii() and idempotency_key.isprintable()):
            raise InvalidRequestError("idempotency_key: 1-128 printable ASCII characters (e.g. a UUID) are required")
        spec.validate()
        self.get_clip(clinic, spec.clip_id)
        with self._sched_lock:
            if self.jobs.find_by_key(clinic, idempotency_key) is None:  # a retried submit is never refused
                pending = self.jobs.count_pending(clinic)
                if pending >= self.limits.max_pending_jobs_per_clinic:
                    raise RateLimitedError(
                        f"{pending} jobs of this clinic are queued or running (at most "
                        f"{self.limits.max_pending_jobs_per_clinic}); wait for some to finish"
                    )
            job, created = self.jobs.create(clinic, spec, idempotency_key)
        if created:
            self.audit.append(clinic, "job.submit", job_id=job.job_id, clip_id=spec.clip_id, tasks=list(spec.tasks),
                              budget=spec.budget, method=spec.method)  # fmt: skip
            self._dispatch()
            job = self.jobs.get_any(job.job_id) or job
        return job

    def get_job(self, clinic: str, job_id: str) -> JobRecord:
        job = self.jobs.get(clinic, job_id)
        if job is None:
            raise NotFoundError(f"no job {job_id[:64]!r}")
        return job

    def list_jobs(self, clinic: str, states: set[JobState], clip_id: str, limit: int, offset: int) -> list[JobRecord]:
        return self.jobs.list(clinic, states, clip_id, limit, offset)

    def cancel_job(self, clinic: str, job_id: str) -> JobRecord:
        job = self.get_job(clinic, job_id)
        if job.state == JobState.CANCELLED:
            return job
        if job.state.ended:
            raise PreconditionError(f"job {job_id} has already {job.state.value}; only queued or running jobs stop")
        with self._sched_lock:
            job = self.jobs.request_cancel(job_id)
            if job.state == JobState.QUEUED:
                job = self.jobs.finish(job_id, JobState.CANCELLED, "cancelled by the clinic before it started")
                self._hub.publish(job_id, WatchItem("result", result=self._result_of(job)))
            else:
                self.executor.stop_job(job_id)
        self.audit.append(clinic, "job.cancel", job_id=job_id, clip_id=job.spec.clip_id)
        return job

    def watch_job(self, clinic: str, job_id: str, is_active: Callable[[], bool] = lambda: True) -> Iterator[WatchItem]:
        """The job now, its progress as it happens, then its result; ends early when ``is_active()`` turns false or
        the service stops."""
        self.get_job(clinic, job_id)
        sub = self._hub.subscribe(job_id)
        try:
            job = self.get_job(clinic, job_id)  # read after subscribing: nothing falls between the two
            yield WatchItem("job", job=job)
            if job.state.ended:
                yield WatchItem("result", result=self._result_of(job))
                return
            while is_active() and not self._stopping:
                try:
                    item = sub.get(timeout=0.25)
                except queue.Empty:
                    continue
                if item is _CLOSED:
                    return
                yield item
                if item.kind == "result":
                    return
        finally:
            self._hub.unsubscribe(job_id, sub)

    def _result_of(self, job: JobRecord) -> JobResultView:
        artifacts = self.artifacts.list(job.clinic, job.job_id) if job.state == JobState.SUCCEEDED else []
        return JobResultView(job.state, job.error_message, job.report or {}, artifacts, job.resumed)

    # ------------------------------------------------------------------------------------------------ scheduler
    def _dispatch(self) -> None:
        with self._sched_lock:
            if self._stopping:
                return
            for job in self.jobs.queued():
                if len(self._running) >= self.executor.capacity:
                    return
                n_clinic = sum(1 for r in self._running.values() if r.clinic == job.clinic)
                if n_clinic >= self.limits.max_running_jobs_per_clinic:
                    continue
                self._start(job)

    def _start(self, job: JobRecord) -> None:
        clip = self.clips.get(job.clinic, job.spec.clip_id)
        if clip is None or job.n_attempts >= self.config.max_attempts:
            reason = (
                f"the clip {job.spec.clip_id} is no longer held"
                if clip is None
                else f"the trainer stopped during this job {job.n_attempts} times; not started again"
            )
            self._end(self.jobs.finish(job.job_id, JobState.FAILED, reason))
            return
        job = self.jobs.mark_running(job.job_id)
        request = PipelineRequest(
            input_path=self.clips.local_path(clip),
            out_dir=self.work_dir / job.clinic / job.job_id,
            tasks=job.spec.tasks,
            budget=job.spec.budget,
            method=job.spec.method,
            seed=job.spec.seed,
        )
        request.out_dir.mkdir(parents=True, exist_ok=True)
        self._running[job.job_id] = _Run(job.clinic)
        self.audit.append(job.clinic, "job.start", job_id=job.job_id, clip_id=clip.clip_id, n_attempts=job.n_attempts)
        self._hub.publish(job.job_id, WatchItem("job", job=job))
        self.executor.start(
            job.job_id, request, partial(self._on_progress, job.job_id), partial(self._on_done, job.job_id)
        )

    def _on_progress(self, job_id: str, event: ProgressEvent) -> None:
        self._hub.publish(job_id, WatchItem("progress", progress=event))
        run = self._running.get(job_id)
        if run is None:
            return
        key = (event.stage, event.task, event.level)
        now = time.monotonic()
        if key != run.last_key or now - run.last_stored_s >= self.config.progress_store_interval_s:
            run.last_key, run.last_stored_s = key, now
            self.jobs.update_progress(job_id, event)

    def _on_done(self, job_id: str, outcome: JobOutcome) -> None:
        try:
            job = self._record_outcome(job_id, outcome)
        finally:
            # Only now does the job stop counting against its clinic: the store already says it ended.
            with self._sched_lock:
                self._running.pop(job_id, None)
        if job is not None:
            self._end(job)
            self._dispatch()

    def _record_outcome(self, job_id: str, outcome: JobOutcome) -> JobRecord | None:
        """Store how the run ended; ``None`` when the job stays RUNNING (the trainer is stopping)."""
        job = self.jobs.get_any(job_id)
        if job is None:
            return None
        if outcome.stopped and self._stopping and not job.cancel_requested:
            return None  # the job stays RUNNING and resumes from its checkpoint at the next start
        if outcome.stopped:
            return self.jobs.finish(job_id, JobState.CANCELLED, "cancelled by the clinic")
        if outcome.error:
            return self.jobs.finish(job_id, JobState.FAILED, outcome.error)
        result = outcome.result
        assert result is not None
        try:
            self.artifacts.publish(job.clinic, job_id, result.out_dir, result.artifacts)
        except (OSError, InvalidRequestError) as exc:
            return self.jobs.finish(job_id, JobState.FAILED, f"publishing the artifacts failed: {exc}")
        return self.jobs.finish(job_id, JobState.SUCCEEDED, report=result.report, resumed=result.resumed)

    def _end(self, job: JobRecord) -> None:
        self.audit.append(job.clinic, "job.finish", job_id=job.job_id, clip_id=job.spec.clip_id, state=job.state.value)
        self._hub.publish(job.job_id, WatchItem("job", job=job))
        self._hub.publish(job.job_id, WatchItem("result", result=self._result_of(job)))

    # ------------------------------------------------------------------------------------------------ artifacts
    def list_artifacts(self, clinic: str, job_id: str) -> list[ArtifactRecord]:
        job = self.get_job(clinic, job_id)
        return self.artifacts.list(clinic, job.job_id) if job.state == JobState.SUCCEEDED else []

    def read_artifact(
        self, clinic: str, job_id: str, name: str, offset_bytes: int = 0
    ) -> tuple[ArtifactRecord, Iterator[bytes]]:
        """The artifact's record and its bytes from ``offset_bytes`` on, in chunks of at most ``max_chunk_bytes``."""
        record = next((a for a in self.list_artifacts(clinic, job_id) if a.name == name), None)
        if record is None:
            raise NotFoundError(f"job {job_id} has no artifact {name[:200]!r}")
        if offset_bytes > record.size_bytes:
            raise OffsetError(f"offset_bytes {offset_bytes} is past the end of {name} ({record.size_bytes} bytes)")
        stream = self.artifacts.open(clinic, job_id, name)
        self.audit.append(clinic, "artifact.download", job_id=job_id, artifact=name, offset_bytes=offset_bytes)

        def chunks() -> Iterator[bytes]:
            with stream:
                stream.seek(offset_bytes)
                while block := stream.read(self.limits.max_chunk_bytes):
                    yield block

        return record, chunks()
