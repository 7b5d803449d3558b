"""The results library: the artifacts of finished jobs, downloaded, verified and kept for offline playback.

Layout (docs/link.md, "On disk"). A job's results live next to its clip when the clip is in the local library (the
outbox remembers which job came from which clip), else under the app's data directory::

    sessions/<clip>.stclip
    sessions/<clip>.results/<job_id>/
        job.json                 written last, atomically, once every artifact is verified: the job, its report and
                                 the artifact list with sizes and SHA-256 (schema stridetwin.results/1)
        files/<name>             the verified artifacts, e.g. files/policies/slope.onnx, files/report.json
        partial/<name>.part      a download in progress (never shown as a result)
        fetch.json               what the fetch in progress expects (artifact list), for resuming it
    results/<job_id>/            the same, for a job whose clip is not in the library

A result is **complete** only when ``job.json`` exists; :meth:`ResultsLibrary.get` re-hashes the files on request
and reports damaged ones, and :meth:`ResultsLibrary.fetch` downloads only what is missing or damaged. A download
resumes from the bytes already in its ``.part`` file (their hash is recomputed, so the SHA-256 always covers every
byte); a file whose SHA-256 does not match after it is complete is deleted and downloaded once more from the start,
and if the second copy does not match either the fetch fails (:class:`IntegrityError`) and nothing is marked
complete.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from capture_app.link.backoff import Backoff
from capture_app.link.client import (
    STREAM_BASE_TIMEOUT_S,
    STREAM_MIN_RATE_BYTES_PER_S,
    ArtifactInfo,
    RemoteJob,
    TrainerClient,
)
from capture_app.link.errors import IntegrityError, TrainerRefusedError, TransientLinkError
from capture_app.link.outbox import Outbox
from capture_app.link.paths import ensure_private_dir

RESULTS_SCHEMA = "stridetwin.results/1"
_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
#: Bytes written between two fsyncs of a download: what a power loss can cost to fetch again.
SYNC_BYTES = 8 * 1024 * 1024
#: Downloads of one artifact that may fail transiently in a row before the fetch gives up (it resumes next time).
MAX_TRANSIENT_FAILURES = 8


@dataclass(frozen=True)
class FetchProgress:
    """``bytes_done`` of ``size_bytes`` of artifact ``name`` (``resumed_from_bytes`` were already on disk)."""

    job_id: str
    name: str
    bytes_done: int
    size_bytes: int
    resumed_from_bytes: int = 0
    #: ``download``, ``verified``, ``corrupt`` (deleted, fetched again), ``retry``.
    kind: str = "download"
    message: str = ""


@dataclass(frozen=True)
class JobResults:
    """A job's results in the library."""

    job_id: str
    directory: Path
    #: True when every artifact is verified (``job.json`` exists).
    complete: bool
    state: str
    clip_id: str
    clip_path: Path | None
    report: dict[str, Any]
    artifacts: tuple[ArtifactInfo, ...]
    #: Artifacts whose file is missing or does not hash to its SHA-256 (only filled when verified).
    damaged: tuple[str, ...] = ()
    fetched_utc: str = ""

    def path_of(self, name: str) -> Path:
        """Where artifact ``name`` is stored."""
        return self.directory / "files" / _safe_name(name)


def _safe_name(name: str) -> PurePosixPath:
    posix = PurePosixPath(name)
    if not name or posix.is_absolute() or any(part in ("", ".", "..") for part in posix.parts) or "\\" in name:
        raise IntegrityError(f"artifact name {name[:200]!r} is not a relative path inside the job; not stored")
    return posix


def _check_job_id(job_id: str) -> str:
    if not _JOB_ID.match(job_id):
        raise ValueError(f"job id {job_id[:80]!r}: 1-128 letters, digits, '-' or '_'")
    return job_id


def _write_json_atomic(path: Path, doc: Any) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _hash_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while block := f.read(1024 * 1024):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def _artifact_json(a: ArtifactInfo) -> dict[str, Any]:
    return asdict(a)


def _artifact_from(doc: dict[str, Any]) -> ArtifactInfo:
    return ArtifactInfo(**doc)


class ResultsLibrary:
    """Results of jobs, kept under ``data_dir`` and next to the clips of ``outbox`` (module docstring)."""

    def __init__(self, data_dir: Path, outbox: Outbox | None = None, backoff: Backoff | None = None) -> None:
        self.data_dir = ensure_private_dir(Path(data_dir))
        self.outbox = outbox if outbox is not None else Outbox(self.data_dir)
        self.backoff = backoff or Backoff(initial_s=0.5, max_s=10.0)

    # ------------------------------------------------------------------------------------------------ where
    def _clip_for(self, job_id: str, clip_id: str = "") -> Path | None:
        """The local clip a job was submitted for (by job id, else by clip id), if it is still in the library."""
        records = self.outbox.sent(job_id=job_id)
        if not records and clip_id:
            records = [r for r in self.outbox.sent() if r.clip_id == clip_id]
        for record in records:
            if record.clip_path.is_file():
                return record.clip_path
        return None

    def directory_for(self, job_id: str, clip_id: str = "") -> Path:
        """Where a job's results go: ``<clip>.results/<job_id>`` beside its clip, else ``results/<job_id>``."""
        _check_job_id(job_id)
        clip = self._clip_for(job_id, clip_id)
        if clip is not None:
            return clip.with_name(f"{clip.stem}.results") / job_id
        return self.data_dir / "results" / job_id

    def _existing_dir(self, job_id: str) -> Path | None:
        for candidate in (self.directory_for(job_id), self.data_dir / "results" / job_id):
            if candidate.is_dir():
                return candidate
        for record in self.outbox.sent():
            candidate = record.clip_path.with_name(f"{record.clip_path.stem}.results") / job_id
            if candidate.is_dir():
                return candidate
        return None

    # ------------------------------------------------------------------------------------------------ reading
    def get(self, job_id: str, *, verify: bool = False) -> JobResults | None:
        """The job's results if any were fetched (complete or not); with ``verify``, every file is re-hashed and
        the damaged ones listed (a damaged result is not complete)."""
        directory = self._existing_dir(_check_job_id(job_id))
        if directory is None:
            return None
        doc_path = directory / "job.json"
        complete = doc_path.exists()
        source = doc_path if complete else directory / "fetch.json"
        if not source.exists():
            return None
        doc = json.loads(source.read_text())
        artifacts = tuple(_artifact_from(a) for a in doc["artifacts"])
        damaged: list[str] = []
        if verify:
            for a in artifacts:
                path = directory / "files" / _safe_name(a.name)
                if not path.is_file() or path.stat().st_size != a.size_bytes or _hash_file(path)[0] != a.sha256:
                    damaged.append(a.name)
        return JobResults(
            job_id=job_id, directory=directory, complete=complete and not damaged, state=doc.get("state", ""),
            clip_id=doc.get("clip_id", ""), clip_path=Path(doc["clip_path"]) if doc.get("clip_path") else None,
            report=doc.get("report", {}), artifacts=artifacts, damaged=tuple(damaged),
            fetched_utc=doc.get("fetched_utc", ""),
        )  # fmt: skip

    def list(self) -> list[JobResults]:
        """Every result in the library (complete or partly fetched), newest first."""
        found: dict[str, JobResults] = {}
        dirs = list((self.data_dir / "results").glob("*"))
        for record in self.outbox.sent():
            dirs.extend(record.clip_path.with_name(f"{record.clip_path.stem}.results").glob("*"))
        for d in dirs:
            if d.is_dir() and _JOB_ID.match(d.name) and d.name not in found:
                result = self.get(d.name)
                if result is not None:
                    found[d.name] = result
        return sorted(found.values(), key=lambda r: r.fetched_utc, reverse=True)

    # ------------------------------------------------------------------------------------------------ fetching
    def fetch(
        self,
        client: TrainerClient,
        job_id: str,
        *,
        on_progress: Callable[[FetchProgress], None] | None = None,
        progress_interval_bytes: int = 4 * 1024 * 1024,
    ) -> JobResults:
        """Download what is missing or damaged of a succeeded job's artifacts, verify every SHA-256, and mark the
        result complete. Raises :class:`LinkError` subclasses: the job has not succeeded
        (:class:`~capture_app.link.errors.TrainerRefusedError` with code ``FAILED_PRECONDITION``), the trainer cannot
        be reached (:class:`TransientLinkError`: what was downloaded is kept and resumed next time), or an artifact
        does not match its SHA-256 twice (:class:`IntegrityError`)."""
        _check_job_id(job_id)
        emit = on_progress or (lambda p: None)
        job, report, artifacts = self._finished_job(client, job_id)
        if job.state != "succeeded":
            raise TrainerRefusedError(
                f"job {job_id} is {job.state}" + (f" ({job.error_message})" if job.error_message else "")
                + ("; fetch its results once it has succeeded (`stridetwin jobs --watch " + job_id + "`)"
                   if not job.ended else "; it has no results to fetch"),
                "FAILED_PRECONDITION",
            )  # fmt: skip
        directory = self.directory_for(job_id, job.clip_id)
        ensure_private_dir(directory)
        with self._locked(directory):
            clip = self._clip_for(job_id, job.clip_id)
            doc = {
                "schema": RESULTS_SCHEMA, "job_id": job_id, "clip_id": job.clip_id,
                "clip_path": str(clip) if clip else None, "state": job.state, "tasks": list(job.tasks),
                "budget": job.budget, "method": job.method, "finished_unix_s": job.finished_unix_s,
                "report": report, "artifacts": [_artifact_json(a) for a in artifacts],
            }  # fmt: skip
            done_doc = directory / "job.json"
            if done_doc.exists() and json.loads(done_doc.read_text()).get("artifacts") != doc["artifacts"]:
                done_doc.unlink()  # a different set than the one verified before: start over
            _write_json_atomic(directory / "fetch.json", doc)
            for a in artifacts:
                self._fetch_one(client, directory, a, emit, progress_interval_bytes)
            doc["fetched_utc"] = datetime.now(UTC).isoformat(timespec="seconds")
            _write_json_atomic(done_doc, doc)
            (directory / "fetch.json").unlink(missing_ok=True)
            shutil.rmtree(directory / "partial", ignore_errors=True)
        result = self.get(job_id)
        assert result is not None
        return result

    def _finished_job(self, client: TrainerClient, job_id: str) -> tuple[RemoteJob, dict, tuple[ArtifactInfo, ...]]:
        """The job, its report and its artifacts (the watch stream of an ended job is its state and its result)."""
        job: RemoteJob | None = None
        for event in client.watch_job(job_id, timeout_s=30.0):
            if event.kind == "job" and event.job is not None:
                job = event.job
                if not job.ended:
                    break
            elif event.kind == "result" and event.result is not None and job is not None:
                return job, event.result.report, event.result.artifacts
        if job is None:
            job = client.get_job(job_id)
        return job, {}, ()

    @contextmanager
    def _locked(self, directory: Path) -> Iterator[None]:
        with open(directory / ".lock", "a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def _fetch_one(
        self, client: TrainerClient, directory: Path, a: ArtifactInfo, emit: Callable[[FetchProgress], None],
        interval: int,
    ) -> None:  # fmt: skip
        name = _safe_name(a.name)
        final = directory / "files" / name
        if final.is_file() and final.stat().st_size == a.size_bytes and _hash_file(final)[0] == a.sha256:
            emit(FetchProgress(a.job_id, a.name, a.size_bytes, a.size_bytes, a.size_bytes, "verified", "already here"))
            return
        final.unlink(missing_ok=True)  # missing or damaged
        part = directory / "partial" / name.parent / f"{name.name}.part"
        for copy in (1, 2):
            digest = self._download(client, a, part, emit, interval)
            if digest == a.sha256:
                break
            part.unlink(missing_ok=True)
            emit(FetchProgress(a.job_id, a.name, 0, a.size_bytes, 0, "corrupt",
                               f"SHA-256 {digest[:12]}… instead of {a.sha256[:12]}…; deleted"))  # fmt: skip
            if copy == 2:
                raise IntegrityError(
                    f"artifact {a.name} of job {a.job_id} does not match its SHA-256 after two downloads "
                    f"({digest[:12]}… instead of {a.sha256[:12]}…); the trainer's copy may be damaged (operator: "
                    "check the artifact store); nothing was marked complete"
                )
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(part, final)
        _fsync_dir(final.parent)
        emit(FetchProgress(a.job_id, a.name, a.size_bytes, a.size_bytes, 0, "verified"))

    def _download(
        self, client: TrainerClient, a: ArtifactInfo, part: Path, emit: Callable[[FetchProgress], None],
        interval: int,
    ) -> str:  # fmt: skip
        """Complete ``part`` (resuming from its length) and return the SHA-256 of all its bytes."""
        part.parent.mkdir(parents=True, exist_ok=True)
        failures = 0
        while True:
            with open(part, "a+b") as f:
                f.seek(0)
                digest = hashlib.sha256()
                have = 0
                while block := f.read(1024 * 1024):
                    digest.update(block)
                    have += len(block)
                if have > a.size_bytes:  # longer than the artifact: not ours, start over
                    f.truncate(0)
                    digest, have = hashlib.sha256(), 0
                resumed = have
                if have == a.size_bytes:
                    return digest.hexdigest()
                emit(FetchProgress(a.job_id, a.name, have, a.size_bytes, resumed))
                since_sync = 0
                next_emit = have + interval
                try:
                    timeout_s = STREAM_BASE_TIMEOUT_S + (a.size_bytes - have) / STREAM_MIN_RATE_BYTES_PER_S
                    for offset, data in client.download_artifact(a.job_id, a.name, have, timeout_s=timeout_s):
                        if offset != have:
                            raise IntegrityError(f"the trainer sent {a.name} bytes at offset {offset}, expected {have}")
                        if have + len(data) > a.size_bytes:
                            raise IntegrityError(f"the trainer sent more of {a.name} than its {a.size_bytes} bytes")
                        f.write(data)
                        digest.update(data)
                        have += len(data)
                        since_sync += len(data)
                        if since_sync >= SYNC_BYTES:
                            f.flush()
                            os.fsync(f.fileno())
                            since_sync = 0
                        if have >= next_emit:
                            next_emit = have + interval
                            emit(FetchProgress(a.job_id, a.name, have, a.size_bytes, resumed))
                except TransientLinkError as exc:
                    f.flush()
                    os.fsync(f.fileno())
                    failures = failures + 1 if have == resumed else 1
                    if failures > MAX_TRANSIENT_FAILURES:
                        raise
                    delay = self.backoff.delay_s(failures)
                    emit(FetchProgress(a.job_id, a.name, have, a.size_bytes, resumed, "retry",
                                       f"{exc}; resuming in {delay:.1f} s"))  # fmt: skip
                    time.sleep(delay)
                    client.reset()
                    continue
                f.flush()
                os.fsync(f.fileno())
                if have < a.size_bytes:
                    failures += 1
                    if failures > MAX_TRANSIENT_FAILURES:
                        raise TransientLinkError(f"the download of {a.name} keeps ending at byte {have} of "
                                                 f"{a.size_bytes}", "UNAVAILABLE")  # fmt: skip
                    continue
                emit(FetchProgress(a.job_id, a.name, have, a.size_bytes, resumed))
                return digest.hexdigest()


