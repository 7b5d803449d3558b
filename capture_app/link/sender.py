"""Sending the outbox: each entry through upload → confirmed SHA-256 → job submitted, with retries.

:class:`OutboxSender` takes the oldest due entry and makes one attempt at its next step:

- **upload**: ask the trainer how many bytes of the clip it durably holds (``GetUploadStatus``), stream the rest
  from that offset (the resumable upload of ``protos/stridetwin/v1/clips.proto``), and record the trainer's
  confirmation of the SHA-256. A clip the trainer already holds is confirmed without sending a byte.
- **submit**: submit the job with the entry's idempotency key; a retry after a lost answer gets the same job.

A transient failure (no connection, deadline, trainer busy or rate-limiting; :mod:`capture_app.link.client`) puts
the entry back with a delay from :class:`~capture_app.link.backoff.Backoff` and opens a fresh channel for the next
attempt. A refusal specific to the entry (the trainer rejects the clip, the clip changed on disk, a job the trainer
cannot run) marks the entry ``failed`` with the trainer's message. A refusal of the connection itself (the token is
not valid, the API is not served) stops the run with that error and leaves every entry queued.

One process sends at a time: the sender holds ``outbox.sqlite3.lock`` (``flock``) while it runs; another process
that wants an entry sent waits for the lock and meanwhile watches the entry leave the queue.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from capture_app.link.backoff import Backoff
from capture_app.link.client import ServerFacts, TrainerClient
from capture_app.link.errors import IntegrityError, LinkError, TrainerRefusedError, TransientLinkError
from capture_app.link.outbox import Outbox, OutboxEntry

_log = logging.getLogger(__name__)

#: Refusals that concern the connection, not one entry: stop and tell the user, keep the queue as it is.
CONNECTION_REFUSALS: frozenset[str] = frozenset({"UNAUTHENTICATED", "PERMISSION_DENIED", "UNIMPLEMENTED"})
#: A clip whose bytes the trainer rejected (DATA_LOSS) this many times in a row is marked failed.
MAX_CHECKSUM_FAILURES = 3
#: Codes after which the channel is replaced (the connection itself may be dead).
_RESET_CODES = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "UNKNOWN", "INTERNAL", "CANCELLED"})


@dataclass(frozen=True)
class OutboxEvent:
    """What the sender did, for a progress display. ``kind``: ``upload`` (an upload call starts at
    ``offset_bytes``), ``progress`` (``bytes_done`` of ``size_bytes`` sent), ``uploaded`` (SHA-256 confirmed),
    ``submitted`` (job accepted, ``job_id``), ``retry`` (``error``; next attempt in ``delay_s``), ``failed``
    (``error``), ``done`` (the entry left the queue)."""

    kind: str
    entry_id: str
    message: str = ""
    size_bytes: int = 0
    offset_bytes: int = 0
    bytes_done: int = 0
    clip_id: str | None = None
    job_id: str | None = None
    delay_s: float = 0.0
    error: str = ""
    deduplicated: bool = False


@dataclass
class SendReport:
    """What one :meth:`OutboxSender.run` did."""

    n_uploaded: int = 0
    n_submitted: int = 0
    n_failed: int = 0
    n_retries: int = 0
    bytes_sent: int = 0
    #: Why the run ended: ``done`` (the condition was met or the queue is empty), ``stopped``, ``timeout``.
    ended: str = "done"
    failed: list[str] = field(default_factory=list)


class OutboxSender:
    """Sends ``outbox`` to the trainer reached through ``client_factory()``.

    ``backoff`` decides the delays between attempts; ``on_event`` receives :class:`OutboxEvent`\\ s (from the
    sending thread and from gRPC's request thread during an upload; keep it quick).
    """

    def __init__(
        self,
        outbox: Outbox,
        client_factory: Callable[[], TrainerClient],
        *,
        backoff: Backoff | None = None,
        on_event: Callable[[OutboxEvent], None] | None = None,
        chunk_bytes: int = 1024 * 1024,
        progress_interval_bytes: int = 1024 * 1024,
    ) -> None:
        self.outbox = outbox
        self.client_factory = client_factory
        self.backoff = backoff or Backoff()
        self.on_event = on_event or (lambda event: None)
        self.chunk_bytes = chunk_bytes
        self.progress_interval_bytes = progress_interval_bytes
        self._client: TrainerClient | None = None
        self._facts: ServerFacts | None = None
        self._checksum_failures: dict[str, int] = {}

    # ------------------------------------------------------------------------------------------------ running
    def run(
        self,
        until: Callable[[], bool] | None = None,
        *,
        timeout_s: float | None = None,
        stop: threading.Event | None = None,
    ) -> SendReport:
        """Send until ``until()`` holds (default: until nothing is waiting in the queue), ``stop`` is set or
        ``timeout_s`` passed. Raises :class:`TrainerRefusedError` when the trainer refuses the connection itself
        (module docstring) and :class:`~capture_app.link.errors.LinkConfigError` for bad settings."""
        stop = stop or threading.Event()
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        report = SendReport()
        done = until or (lambda: not self.outbox.entries(("upload", "submit")))
        lock_path = Path(f"{self.outbox.path}.lock")
        with open(lock_path, "a+b") as lock:
            while True:  # wait for the lock, watching for the condition: another process may be sending for us
                try:
                    fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if done():
                        return report
                    if self._wait(stop, deadline, 0.2, report):
                        return report
            try:
                while not done():
                    if stop.is_set():
                        report.ended = "stopped"
                        break
                    entry, next_at = self.outbox.next_due(time.time())
                    if entry is None:
                        if next_at is None:  # nothing waits: what is left failed for good
                            break
                        if self._wait(stop, deadline, max(0.0, next_at - time.time()), report):
                            break
                        continue
                    if deadline is not None and time.monotonic() > deadline:
                        report.ended = "timeout"
                        break
                    self.attempt(entry, report)
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
                self._drop_client()
        return report

    @staticmethod
    def _wait(stop: threading.Event, deadline: float | None, wait_s: float, report: SendReport) -> bool:
        """Sleep up to ``wait_s`` (less near the deadline); True when the run must end."""
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                report.ended = "timeout"
                return True
            wait_s = min(wait_s, left)
        if stop.wait(min(wait_s, 1.0)):
            report.ended = "stopped"
            return True
        return False

    def attempt(self, entry: OutboxEntry, report: SendReport | None = None) -> None:
        """One attempt at the entry's next step (upload or submit); failures are recorded on the entry."""
        report = report or SendReport()
        try:
            if entry.state == "upload":
                self._upload(entry, report)
            elif entry.state == "submit":
                self._submit(entry, report)
        except TransientLinkError as exc:
            if exc.code in _RESET_CODES:
                self._drop_client()
            self._retry(entry, str(exc), report)
        except TrainerRefusedError as exc:
            if exc.code in CONNECTION_REFUSALS:
                raise
            if exc.code == "DATA_LOSS":
                self._checksum_mismatch(entry, str(exc), report)
            elif exc.code == "OUT_OF_RANGE":  # the trainer holds fewer bytes than it said: ask again, now
                self._retry(entry, str(exc), report, delay_s=0.0)
            elif exc.code == "NOT_FOUND" and entry.state == "submit":
                self.outbox.back_to_upload(entry.entry_id, f"the trainer no longer holds the clip: {exc}")
                self._retry(entry, str(exc), report, delay_s=0.0)
            else:
                self._fail(entry, str(exc), report)
        except IntegrityError as exc:
            self._fail(entry, str(exc), report)
        except LinkError as exc:  # ClipRefusedError and the like: the entry cannot go as it is
            self._fail(entry, str(exc), report)

    # ------------------------------------------------------------------------------------------------ steps
    def _client_and_facts(self) -> tuple[TrainerClient, ServerFacts]:
        if self._client is None:
            self._client = self.client_factory()
        if self._facts is None:
            self._facts = self._client.server_facts()
        return self._client, self._facts

    def _drop_client(self) -> None:
        if self._client is not None:
            self._client.close()
        self._client, self._facts = None, None

    def _upload(self, entry: OutboxEntry, report: SendReport) -> None:
        path = entry.clip_path
        try:
            stat = path.stat()
        except OSError:
            raise IntegrityError(f"{path} is no longer in the local library; the queued clip cannot be sent") from None
        if stat.st_size != entry.size_bytes:
            raise IntegrityError(f"{path} changed on disk since it was queued ({entry.size_bytes} → {stat.st_size} "
                                 "bytes); queue the clip again")  # fmt: skip
        if stat.st_mtime_ns != entry.clip_mtime_ns:
            # Written to since it was checked: only bytes that were checked for identifying data may leave.
            actual = _sha256_of(path)
            if actual != entry.sha256:
                raise IntegrityError(f"{path} changed on disk since it was queued (SHA-256 {actual[:12]}…, queued as "
                                     f"{entry.sha256[:12]}…); queue the clip again")  # fmt: skip
            self.outbox.rechecked(entry.entry_id, stat.st_mtime_ns)
        size = stat.st_size
        client, facts = self._client_and_facts()
        if size > facts.max_clip_bytes:
            raise TrainerRefusedError(
                f"{path.name} is {size / 2**20:.1f} MiB; the trainer accepts clips up to "
                f"{facts.max_clip_bytes / 2**20:.0f} MiB", "INVALID_ARGUMENT")  # fmt: skip
        if facts.max_clip_samples and entry.n_samples > facts.max_clip_samples:
            raise TrainerRefusedError(
                f"{path.name} holds {entry.n_samples} samples; the trainer processes at most "
                f"{facts.max_clip_samples}; split the recording", "INVALID_ARGUMENT")  # fmt: skip
        state = client.upload_state(entry.sha256)
        if state.state == "complete" and state.clip is not None:
            self._uploaded(entry, state.clip.clip_id, report, deduplicated=True)
            return
        offset = state.received_bytes if state.state == "partial" and state.size_bytes == size else 0
        self.on_event(OutboxEvent("upload", entry.entry_id, f"uploading {path.name} from byte {offset} of {size}",
                                  size_bytes=size, offset_bytes=offset))  # fmt: skip
        sent = [offset]
        next_report = [offset + self.progress_interval_bytes]

        def on_sent(position: int) -> None:
            sent[0] = position
            if position >= next_report[0] or position == size:
                next_report[0] = position + self.progress_interval_bytes
                self.on_event(OutboxEvent("progress", entry.entry_id, size_bytes=size, offset_bytes=offset,
                                          bytes_done=position))  # fmt: skip

        chunk = max(1, min(self.chunk_bytes, facts.max_chunk_bytes or self.chunk_bytes))
        try:
            clip, deduplicated = client.upload(path, entry.sha256, size, offset, chunk_bytes=chunk, on_sent=on_sent)
        except BaseException:
            report.bytes_sent += sent[0] - offset
            self.outbox.record_upload_call(entry.entry_id, offset, sent[0] - offset)
            raise
        report.bytes_sent += sent[0] - offset
        self._uploaded(entry, clip.clip_id, report, deduplicated=deduplicated, call=(offset, sent[0] - offset))

    def _uploaded(self, entry: OutboxEntry, clip_id: str, report: SendReport, *, deduplicated: bool,
                  call: tuple[int, int] | None = None) -> None:  # fmt: skip
        self._checksum_failures.pop(entry.entry_id, None)
        offset, n_sent = call if call is not None else (None, 0)
        after = self.outbox.mark_uploaded(entry.entry_id, clip_id, offset, n_sent)
        report.n_uploaded += 1
        self.on_event(OutboxEvent("uploaded", entry.entry_id, f"the trainer confirmed {entry.clip_path.name} "
                                  f"(SHA-256 {entry.sha256[:12]}…) as clip {clip_id}", size_bytes=entry.size_bytes,
                                  bytes_done=entry.size_bytes, clip_id=clip_id, deduplicated=deduplicated))  # fmt: skip
        if isinstance(after, OutboxEntry):
            self._submit(after, report)
        else:
            self.on_event(OutboxEvent("done", entry.entry_id, "uploaded; no job requested", clip_id=clip_id))

    def _submit(self, entry: OutboxEntry, report: SendReport) -> None:
        assert entry.job is not None
        assert entry.clip_id is not None
        client, facts = self._client_and_facts()
        missing = [t for t in entry.job.tasks if t not in facts.tasks]
        if missing:
            offered = ", ".join(facts.tasks) or "none: training is not available on this trainer"
            raise TrainerRefusedError(f"the trainer does not run task(s) {', '.join(missing)} (it offers {offered})",
                                      "FAILED_PRECONDITION")  # fmt: skip
        job = client.submit_job(entry.clip_id, entry.job.tasks, entry.job.budget, entry.job.method, entry.job.seed,
                                entry.idempotency_key)  # fmt: skip
        self.outbox.mark_submitted(entry.entry_id, job.job_id)
        report.n_submitted += 1
        self.on_event(OutboxEvent("submitted", entry.entry_id, f"job {job.job_id} ({job.state}) for clip "
                                  f"{entry.clip_id}", clip_id=entry.clip_id, job_id=job.job_id))  # fmt: skip
        self.on_event(OutboxEvent("done", entry.entry_id, f"job {job.job_id} submitted", clip_id=entry.clip_id,
                                  job_id=job.job_id))  # fmt: skip

    # ------------------------------------------------------------------------------------------------ failures
    def _retry(self, entry: OutboxEntry, error: str, report: SendReport, delay_s: float | None = None) -> None:
        delay = self.backoff.delay_s(entry.n_failures + 1) if delay_s is None else delay_s
        self.outbox.schedule_retry(entry.entry_id, error, delay)
        report.n_retries += 1
        _log.info("outbox entry %s: %s; retry in %.1f s", entry.entry_id, error, delay)
        self.on_event(OutboxEvent("retry", entry.entry_id, f"retry in {delay:.1f} s", delay_s=delay, error=error))

    def _fail(self, entry: OutboxEntry, error: str, report: SendReport) -> None:
        self.outbox.mark_failed(entry.entry_id, error)
        report.n_failed += 1
        report.failed.append(error)
        _log.warning("outbox entry %s failed: %s", entry.entry_id, error)
        self.on_event(OutboxEvent("failed", entry.entry_id, error, error=error))

    def _checksum_mismatch(self, entry: OutboxEntry, error: str, report: SendReport) -> None:
        """The trainer's SHA-256 over the bytes it received differs from the declared one; it discarded them."""
        actual = _sha256_of(entry.clip_path)
        if actual != entry.sha256:
            self._fail(entry, f"{entry.clip_path} changed on disk since it was queued (SHA-256 {actual[:12]}…, "
                       f"queued as {entry.sha256[:12]}…); queue the clip again", report)  # fmt: skip
            return
        n = self._checksum_failures[entry.entry_id] = self._checksum_failures.get(entry.entry_id, 0) + 1
        if n >= MAX_CHECKSUM_FAILURES:
            self._fail(entry, f"{error} ({n} times in a row; the bytes are damaged on the way)", report)
        else:
            self._retry(entry, error, report)


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while block := f.read(1024 * 1024):
                digest.update(block)
    except OSError:
        return ""
    return digest.hexdigest()


def send_until_done(
    sender: OutboxSender, entry_ids: list[str], *, timeout_s: float | None = None, stop: threading.Event | None = None
) -> SendReport:
    """Run ``sender`` until every one of ``entry_ids`` has left the queue or failed for good."""
    outbox = sender.outbox

    def finished() -> bool:
        for entry_id in entry_ids:
            entry = outbox.get(entry_id)
            if entry is not None and entry.state != "failed":
                return False
        return True

    return sender.run(finished, timeout_s=timeout_s, stop=stop)


__all__ = ["OutboxEvent", "OutboxSender", "SendReport", "send_until_done"]
