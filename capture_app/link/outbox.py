"""The durable outbox: finished clips waiting to reach the trainer, and the jobs to submit for them.

One SQLite file (``outbox.sqlite3`` in the app's data directory; WAL journal, ``synchronous = FULL``: a committed
change survives a crash of the app and a power loss). An entry is written before anything is sent and holds all a
retry needs, so the queue survives app restarts, network outages and trainer restarts:

- the clip's path in the local library, SHA-256 and size (the clip is never moved or deleted by the outbox; a clip
  queued from elsewhere is first copied into the library);
- the job to submit once the clip is uploaded (tasks, budget, method, seed) and its idempotency key, a random UUID
  drawn when the entry is created, so a submit retried after a lost answer returns the job created the first time;
- where it stands: ``upload`` (not yet confirmed by the trainer), ``submit`` (the trainer confirmed the SHA-256; the
  job is not yet accepted) or ``failed`` (refused for good, with the reason; :meth:`Outbox.retry` puts it back);
- retry bookkeeping: failed attempts in a row and the time of the next one (wall clock, so it survives restarts).

An entry leaves the queue only after the trainer confirmed the clip's SHA-256 (and accepted its job, if it has one);
it then moves to the ``sent`` table, which remembers which job belongs to which local clip (the results library
stores a job's results next to its clip). Several processes may use the same outbox; one sends at a time
(:class:`~capture_app.link.sender.OutboxSender` holds a lock file).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from capture_app.link.deid import ClipFacts, IdentityMatcher, check_clip_for_upload
from capture_app.link.errors import ClipRefusedError
from capture_app.link.paths import ensure_private_dir, library_dir
from capture_app.link.patients import PatientList

TASK_NAMES: tuple[str, ...] = ("slope", "stairs")
BUDGET_NAMES: tuple[str, ...] = ("smoke", "quick", "full")
METHOD_NAMES: tuple[str, ...] = ("hybrid", "physics-only")
#: Entry states, in life-cycle order.
STATES: tuple[str, ...] = ("upload", "submit", "failed")
_SCHEMA_VERSION = 1
_COPY_BLOCK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class JobRequest:
    """The training job to submit once the clip is uploaded."""

    tasks: tuple[str, ...] = TASK_NAMES
    budget: str = "quick"
    method: str = "hybrid"
    seed: int = 0

    def __post_init__(self) -> None:
        bad = [t for t in self.tasks if t not in TASK_NAMES]
        if not self.tasks or bad or len(set(self.tasks)) != len(self.tasks):
            raise ValueError(f"tasks {list(self.tasks)}: one or more of {', '.join(TASK_NAMES)}, each once")
        if self.budget not in BUDGET_NAMES:
            raise ValueError(f"budget {self.budget!r}: one of {', '.join(BUDGET_NAMES)}")
        if self.method not in METHOD_NAMES:
            raise ValueError(f"method {self.method!r}: one of {', '.join(METHOD_NAMES)}")
        if not 0 <= self.seed < 2**32:
            raise ValueError(f"seed {self.seed}: 0 to 2^32 − 1")

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "tasks": list(self.tasks)}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> JobRequest | None:
        if not text:
            return None
        doc = json.loads(text)
        return cls(tuple(doc["tasks"]), doc["budget"], doc["method"], int(doc["seed"]))


@dataclass(frozen=True)
class OutboxEntry:
    """A clip (and maybe a job) on its way to the trainer."""

    entry_id: str
    clip_path: Path
    sha256: str
    size_bytes: int
    pseudonym: str | None
    n_samples: int
    job: JobRequest | None
    idempotency_key: str
    #: ``upload``, ``submit`` or ``failed``.
    state: str
    #: Set once the trainer confirmed the SHA-256.
    clip_id: str | None
    #: Failed attempts in a row (the backoff's exponent); 0 after a success.
    n_failures: int
    next_attempt_unix_s: float
    last_error: str
    created_unix_s: float
    #: Upload calls made so far, bytes sent in them, and the largest offset an upload resumed from.
    n_upload_calls: int
    bytes_sent: int
    max_resume_offset_bytes: int
    #: When the trainer confirmed the SHA-256 (``None`` before).
    uploaded_unix_s: float | None
    #: The clip file's modification time when it was checked: a later one means it must be checked again.
    clip_mtime_ns: int


@dataclass(frozen=True)
class SentRecord:
    """A clip the trainer confirmed (and the job it accepted for it, if any)."""

    entry_id: str
    clip_path: Path
    sha256: str
    size_bytes: int
    pseudonym: str | None
    clip_id: str
    job: JobRequest | None
    job_id: str | None
    created_unix_s: float
    uploaded_unix_s: float
    done_unix_s: float
    n_upload_calls: int
    bytes_sent: int
    max_resume_offset_bytes: int


_ENTRY_COLUMNS = (
    "entry_id", "clip_path", "sha256", "size_bytes", "pseudonym", "n_samples", "job_json", "idempotency_key",
    "state", "clip_id", "n_failures", "next_attempt_unix_s", "last_error", "created_unix_s", "n_upload_calls",
    "bytes_sent", "max_resume_offset_bytes", "uploaded_unix_s", "clip_mtime_ns",
)  # fmt: skip
_SENT_COLUMNS = (
    "entry_id", "clip_path", "sha256", "size_bytes", "pseudonym", "clip_id", "job_json", "job_id", "created_unix_s",
    "uploaded_unix_s", "done_unix_s", "n_upload_calls", "bytes_sent", "max_resume_offset_bytes",
)  # fmt: skip


def _entry(row: Sequence[Any]) -> OutboxEntry:
    d = dict(zip(_ENTRY_COLUMNS, row, strict=True))
    return OutboxEntry(
        entry_id=d["entry_id"], clip_path=Path(d["clip_path"]), sha256=d["sha256"], size_bytes=d["size_bytes"],
        pseudonym=d["pseudonym"], n_samples=d["n_samples"], job=JobRequest.from_json(d["job_json"]),
        idempotency_key=d["idempotency_key"], state=d["state"], clip_id=d["clip_id"], n_failures=d["n_failures"],
        next_attempt_unix_s=d["next_attempt_unix_s"], last_error=d["last_error"] or "",
        created_unix_s=d["created_unix_s"], n_upload_calls=d["n_upload_calls"], bytes_sent=d["bytes_sent"],
        max_resume_offset_bytes=d["max_resume_offset_bytes"], uploaded_unix_s=d["uploaded_unix_s"],
        clip_mtime_ns=d["clip_mtime_ns"],
    )  # fmt: skip


def _sent(row: Sequence[Any]) -> SentRecord:
    d = dict(zip(_SENT_COLUMNS, row, strict=True))
    return SentRecord(
        entry_id=d["entry_id"], clip_path=Path(d["clip_path"]), sha256=d["sha256"], size_bytes=d["size_bytes"],
        pseudonym=d["pseudonym"], clip_id=d["clip_id"], job=JobRequest.from_json(d["job_json"]), job_id=d["job_id"],
        created_unix_s=d["created_unix_s"], uploaded_unix_s=d["uploaded_unix_s"], done_unix_s=d["done_unix_s"],
        n_upload_calls=d["n_upload_calls"], bytes_sent=d["bytes_sent"],
        max_resume_offset_bytes=d["max_resume_offset_bytes"],
    )  # fmt: skip


class Outbox:
    """The queue in ``data_dir/outbox.sqlite3``; clips queued from outside ``library`` are copied into it."""

    FILE_NAME = "outbox.sqlite3"

    def __init__(self, data_dir: Path, library: Path | None = None) -> None:
        self.data_dir = ensure_private_dir(Path(data_dir))
        self.library = Path(library) if library is not None else library_dir(self.data_dir)
        self.path = self.data_dir / self.FILE_NAME
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        with self._db() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS entries (entry_id TEXT PRIMARY KEY, clip_path TEXT NOT NULL,"
                " sha256 TEXT NOT NULL, size_bytes INTEGER NOT NULL, pseudonym TEXT, n_samples INTEGER NOT NULL,"
                " job_json TEXT, idempotency_key TEXT NOT NULL UNIQUE, state TEXT NOT NULL, clip_id TEXT,"
                " n_failures INTEGER NOT NULL DEFAULT 0, next_attempt_unix_s REAL NOT NULL DEFAULT 0,"
                " last_error TEXT, created_unix_s REAL NOT NULL, n_upload_calls INTEGER NOT NULL DEFAULT 0,"
                " bytes_sent INTEGER NOT NULL DEFAULT 0, max_resume_offset_bytes INTEGER NOT NULL DEFAULT 0,"
                " uploaded_unix_s REAL, clip_mtime_ns INTEGER NOT NULL DEFAULT 0)"
            )
            db.execute(
                "CREATE TABLE IF NOT EXISTS sent (entry_id TEXT PRIMARY KEY, clip_path TEXT NOT NULL,"
                " sha256 TEXT NOT NULL, size_bytes INTEGER NOT NULL, pseudonym TEXT, clip_id TEXT NOT NULL,"
                " job_json TEXT, job_id TEXT, created_unix_s REAL NOT NULL, uploaded_unix_s REAL NOT NULL,"
                " done_unix_s REAL NOT NULL, n_upload_calls INTEGER NOT NULL, bytes_sent INTEGER NOT NULL,"
                " max_resume_offset_bytes INTEGER NOT NULL)"
            )
            db.execute("CREATE INDEX IF NOT EXISTS sent_job ON sent (job_id)")
            db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")

    def _connection(self) -> sqlite3.Connection:
        # One connection for the outbox's life: opening and closing one per call makes SQLite checkpoint the WAL on
        # every close, which tripled the cost of a small upload's bookkeeping (bench/link.py).
        if self._conn is None:
            self._conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = FULL")
        return self._conn

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """One transaction (BEGIN IMMEDIATE: writers of other processes queue up instead of failing), committed
        durably; one at a time within this process."""
        with self._lock:
            db = self._connection()
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def close(self) -> None:
        """Close the database connection (it reopens on the next call)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # ------------------------------------------------------------------------------------------------ queueing
    def enqueue(
        self, clip_path: str | os.PathLike[str], job: JobRequest | None = None,
        patients: PatientList | IdentityMatcher | None = None, facts: ClipFacts | None = None,
    ) -> OutboxEntry:  # fmt: skip
        """Check the clip (:func:`~capture_app.link.deid.check_clip_for_upload`: refused with
        :class:`ClipRefusedError` if it is unfinished, damaged or identifying; pass ``facts`` from that check to
        skip it), make sure it is in the local library, and queue it (with ``job`` to submit after the upload). The
        same clip with the same job already queued is the same entry; after it has been sent, a new entry (a new
        job: see :meth:`sent_matching`)."""
        if facts is None or facts.path != Path(clip_path):
            facts = check_clip_for_upload(clip_path, patients)
        job_json = job.to_json() if job is not None else None
        with self._db() as db:
            row = db.execute(
                f"SELECT {', '.join(_ENTRY_COLUMNS)} FROM entries WHERE sha256 = ? AND job_json IS ?",
                (facts.sha256, job_json),
            ).fetchone()
            if row is not None:
                entry = _entry(row)
                if entry.state != "failed":
                    return entry
        if row is not None:  # queued again after it failed: try again, now
            self.retry(entry.entry_id)
            again = self.get(entry.entry_id)
            if again is not None:
                return again
        stored = self._into_library(facts)
        now = time.time()
        entry_id = uuid.uuid4().hex
        values = {
            "entry_id": entry_id, "clip_path": str(stored), "sha256": facts.sha256, "size_bytes": facts.size_bytes,
            "pseudonym": facts.pseudonym, "n_samples": facts.n_samples, "job_json": job_json,
            "idempotency_key": f"outbox-{uuid.uuid4()}", "state": "upload", "clip_id": None, "n_failures": 0,
            "next_attempt_unix_s": 0.0, "last_error": "", "created_unix_s": now, "n_upload_calls": 0,
            "bytes_sent": 0, "max_resume_offset_bytes": 0, "uploaded_unix_s": None,
            "clip_mtime_ns": stored.stat().st_mtime_ns,
        }  # fmt: skip
        with self._db() as db:
            db.execute(f"INSERT INTO entries ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
                       tuple(values.values()))  # fmt: skip
        return _entry(tuple(values[c] for c in _ENTRY_COLUMNS))

    def _known_copy(self, sha256: str) -> Path | None:
        with self._db() as db:
            rows = db.execute("SELECT clip_path FROM entries WHERE sha256 = ? UNION SELECT clip_path FROM sent "
                              "WHERE sha256 = ?", (sha256, sha256)).fetchall()  # fmt: skip
        for (p,) in rows:
            if Path(p).is_file() and Path(p).stat().st_size > 0:
                return Path(p)
        return None

    def _into_library(self, facts: ClipFacts) -> Path:
        """The clip's path inside the library: itself if it is there, else a verified copy."""
        source = facts.path.resolve()
        library = ensure_private_dir(self.library).resolve()
        if source.parent == library or library in source.parents:
            return source
        if (known := self._known_copy(facts.sha256)) is not None:
            return known
        target = library / source.name
        n = 1
        while target.exists():
            n += 1
            target = library / f"{source.stem}-{n}{source.suffix}"
        tmp = target.with_name(f".{target.name}.copying")
        digest = hashlib.sha256()
        with open(source, "rb") as src, open(tmp, "wb") as dst:
            while block := src.read(_COPY_BLOCK_BYTES):
                digest.update(block)
                dst.write(block)
            dst.flush()
            os.fsync(dst.fileno())
        if digest.hexdigest() != facts.sha256:
            tmp.unlink()
            raise ClipRefusedError(f"{source} changed while it was being copied into the library; queue it again")
        os.replace(tmp, target)
        fd = os.open(library, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        shutil.copystat(source, target)
        return target

    # ------------------------------------------------------------------------------------------------ reading
    def entries(self, states: Sequence[str] = STATES) -> list[OutboxEntry]:
        """Entries in these states, oldest first."""
        marks = ", ".join("?" * len(states))
        with self._db() as db:
            rows = db.execute(f"SELECT {', '.join(_ENTRY_COLUMNS)} FROM entries WHERE state IN ({marks}) "
                              "ORDER BY created_unix_s, entry_id", tuple(states)).fetchall()  # fmt: skip
        return [_entry(r) for r in rows]

    def get(self, entry_id: str) -> OutboxEntry | None:
        with self._db() as db:
            row = db.execute(f"SELECT {', '.join(_ENTRY_COLUMNS)} FROM entries WHERE entry_id = ?",
                             (entry_id,)).fetchone()  # fmt: skip
        return _entry(row) if row else None

    def sent(self, entry_id: str | None = None, job_id: str | None = None) -> list[SentRecord]:
        """What the trainer confirmed, oldest first; only ``entry_id``'s or ``job_id``'s record when given."""
        where, args = "", ()
        if entry_id is not None:
            where, args = "WHERE entry_id = ?", (entry_id,)
        elif job_id is not None:
            where, args = "WHERE job_id = ?", (job_id,)
        with self._db() as db:
            rows = db.execute(f"SELECT {', '.join(_SENT_COLUMNS)} FROM sent {where} ORDER BY done_unix_s",
                              args).fetchall()  # fmt: skip
        return [_sent(r) for r in rows]

    def sent_matching(self, sha256: str, job: JobRequest | None) -> SentRecord | None:
        """The latest record of this clip sent with this job (``None`` if never), so that a caller can avoid
        submitting the same job twice by accident."""
        job_json = job.to_json() if job is not None else None
        matches = [r for r in self.sent() if r.sha256 == sha256 and (r.job.to_json() if r.job else None) == job_json]
        return matches[-1] if matches else None

    def is_done(self, entry_id: str) -> bool:
        """The entry has left the queue (its clip was confirmed and its job accepted)."""
        return bool(self.sent(entry_id=entry_id))

    # ------------------------------------------------------------------------------------------------ transitions
    def next_due(self, now_unix_s: float) -> tuple[OutboxEntry | None, float | None]:
        """The oldest entry due now, else ``None`` and the time the next one is due (``None`` when none waits)."""
        pending = self.entries(("upload", "submit"))
        due = [e for e in pending if e.next_attempt_unix_s <= now_unix_s]
        if due:
            return due[0], None
        return None, min((e.next_attempt_unix_s for e in pending), default=None)

    def record_upload_call(self, entry_id: str, offset_bytes: int, bytes_sent: int) -> None:
        """Count an upload call that started at ``offset_bytes`` and handed ``bytes_sent`` bytes to the channel."""
        with self._db() as db:
            self._count_call(db, entry_id, offset_bytes, bytes_sent)

    @staticmethod
    def _count_call(db: sqlite3.Connection, entry_id: str, offset_bytes: int, bytes_sent: int) -> None:
        db.execute(
            "UPDATE entries SET n_upload_calls = n_upload_calls + 1, bytes_sent = bytes_sent + ?,"
            " max_resume_offset_bytes = MAX(max_resume_offset_bytes, ?) WHERE entry_id = ?",
            (bytes_sent, offset_bytes, entry_id),
        )

    def mark_uploaded(
        self, entry_id: str, clip_id: str, offset_bytes: int | None = None, bytes_sent: int = 0
    ) -> OutboxEntry | SentRecord:
        """The trainer confirmed the clip's SHA-256: on to ``submit``, or out of the queue when there is no job. With
        ``offset_bytes``, the upload call that got the confirmation is counted too (one transaction)."""
        with self._db() as db:
            if offset_bytes is not None:
                self._count_call(db, entry_id, offset_bytes, bytes_sent)
            db.execute("UPDATE entries SET clip_id = ?, state = 'submit', n_failures = 0, next_attempt_unix_s = 0,"
                       " last_error = '', uploaded_unix_s = ? WHERE entry_id = ?",
                       (clip_id, time.time(), entry_id))  # fmt: skip
            entry = self._get(db, entry_id)
            if entry.job is None:
                return self._finish(db, entry, job_id=None)
        return entry

    def mark_submitted(self, entry_id: str, job_id: str) -> SentRecord:
        """The trainer accepted the job: the entry leaves the queue."""
        with self._db() as db:
            return self._finish(db, self._get(db, entry_id), job_id=job_id)

    def rechecked(self, entry_id: str, clip_mtime_ns: int) -> None:
        """The clip was checked again after its file was touched and still hashes to the entry's SHA-256."""
        with self._db() as db:
            db.execute("UPDATE entries SET clip_mtime_ns = ? WHERE entry_id = ?", (clip_mtime_ns, entry_id))

    def back_to_upload(self, entry_id: str, reason: str) -> None:
        """The trainer no longer holds the clip (e.g. its store was restored from an older backup): upload again."""
        with self._db() as db:
            db.execute("UPDATE entries SET state = 'upload', clip_id = NULL, last_error = ? WHERE entry_id = ?",
                       (reason, entry_id))  # fmt: skip

    def schedule_retry(self, entry_id: str, error: str, delay_s: float) -> OutboxEntry:
        with self._db() as db:
            db.execute(
                "UPDATE entries SET n_failures = n_failures + 1, next_attempt_unix_s = ?, last_error = ?"
                " WHERE entry_id = ?",
                (time.time() + delay_s, error, entry_id),
            )
            return self._get(db, entry_id)

    def mark_failed(self, entry_id: str, error: str) -> OutboxEntry:
        """Refused for good: kept (with the reason) until :meth:`retry` or :meth:`remove`."""
        with self._db() as db:
            db.execute("UPDATE entries SET state = 'failed', last_error = ? WHERE entry_id = ?", (error, entry_id))
            return self._get(db, entry_id)

    def retry(self, entry_id: str | None = None) -> int:
        """Put failed entries (all, or one) back in the queue, due now; returns how many."""
        where = "AND entry_id = ?" if entry_id else ""
        with self._db() as db:
            return db.execute(
                "UPDATE entries SET state = CASE WHEN clip_id IS NULL THEN 'upload' ELSE 'submit' END,"
                f" n_failures = 0, next_attempt_unix_s = 0 WHERE state = 'failed' {where}",
                (entry_id,) if entry_id else (),
            ).rowcount

    def wake(self) -> None:
        """Make every waiting entry due now (the network came back, the user pressed "send now")."""
        with self._db() as db:
            db.execute("UPDATE entries SET next_attempt_unix_s = 0 WHERE state IN ('upload', 'submit')")

    def remove(self, entry_id: str) -> bool:
        """Drop an entry from the queue (the clip stays in the library)."""
        with self._db() as db:
            return db.execute("DELETE FROM entries WHERE entry_id = ?", (entry_id,)).rowcount > 0

    # ------------------------------------------------------------------------------------------------ helpers
    @staticmethod
    def _get(db: sqlite3.Connection, entry_id: str) -> OutboxEntry:
        row = db.execute(f"SELECT {', '.join(_ENTRY_COLUMNS)} FROM entries WHERE entry_id = ?", (entry_id,)).fetchone()
        if row is None:
            raise KeyError(f"no outbox entry {entry_id}")
        return _entry(row)

    @staticmethod
    def _finish(db: sqlite3.Connection, entry: OutboxEntry, job_id: str | None) -> SentRecord:
        now = time.time()
        record = SentRecord(
            entry_id=entry.entry_id, clip_path=entry.clip_path, sha256=entry.sha256, size_bytes=entry.size_bytes,
            pseudonym=entry.pseudonym, clip_id=entry.clip_id or "", job=entry.job, job_id=job_id,
            created_unix_s=entry.created_unix_s, uploaded_unix_s=entry.uploaded_unix_s or now, done_unix_s=now,
            n_upload_calls=entry.n_upload_calls, bytes_sent=entry.bytes_sent,
            max_resume_offset_bytes=entry.max_resume_offset_bytes,
        )  # fmt: skip
        values = {**asdict(record), "clip_path": str(record.clip_path),
                  "job_json": entry.job.to_json() if entry.job else None}  # fmt: skip
        values.pop("job")
        db.execute(f"INSERT OR REPLACE INTO sent ({', '.join(_SENT_COLUMNS)}) VALUES "
                   f"({', '.join('?' * len(_SENT_COLUMNS))})", tuple(values[c] for c in _SENT_COLUMNS))  # fmt: skip
        db.execute("DELETE FROM entries WHERE entry_id = ?", (entry.entry_id,))
        return record
