"""Jobs as the service keeps them, and the job store (SQLite by default).

A job moves QUEUED → RUNNING → SUCCEEDED | FAILED | CANCELLED. A job found RUNNING when the trainer starts was cut
short by a crash or a stop: :meth:`JobStore.requeue_interrupted` puts it back in the queue and the pipeline, run
again on the same output directory, resumes from its last checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from cloud_trainer.pipeline.api import BUDGETS, METHODS, TASKS, ProgressEvent, Stage
from cloud_trainer.service.errors import ConflictError, InvalidRequestError


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def ended(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


@dataclass(frozen=True)
class JobSpec:
    """What a clinic asked for."""

    clip_id: str
    tasks: tuple[str, ...]
    budget: str = "quick"
    method: str = "hybrid"
    seed: int = 0

    def validate(self) -> None:
        """Raise :class:`InvalidRequestError` naming the bad field and what is accepted."""
        if not self.tasks:
            raise InvalidRequestError(f"tasks: at least one of {', '.join(TASKS)}")
        if len(set(self.tasks)) != len(self.tasks):
            raise InvalidRequestError(f"tasks {list(self.tasks)}: each task at most once")
        unknown = [t for t in self.tasks if t not in TASKS]
        if unknown:
            raise InvalidRequestError(f"tasks {unknown}: accepted {', '.join(TASKS)}")
        if self.budget not in BUDGETS:
            raise InvalidRequestError(f"budget {self.budget!r}: accepted {', '.join(BUDGETS)}")
        if self.method not in METHODS:
            raise InvalidRequestError(f"method {self.method!r}: accepted {', '.join(METHODS)}")
        if not 0 <= self.seed < 2**32:
            raise InvalidRequestError(f"seed {self.seed}: accepted 0 to 2**32 - 1")

    def fingerprint(self) -> str:
        """Identifies the request, to tell a retried submit from a different one under the same idempotency key."""
        doc = {"clip_id": self.clip_id, "tasks": list(self.tasks), "budget": self.budget, "method": self.method,
               "seed": self.seed}  # fmt: skip
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class JobRecord:
    """A job as stored."""

    job_id: str
    clinic: str
    spec: JobSpec
    state: JobState
    created_unix_s: float
    started_unix_s: float = 0.0
    finished_unix_s: float = 0.0
    error_message: str = ""
    n_attempts: int = 0
    cancel_requested: bool = False
    progress: ProgressEvent | None = None
    #: The pipeline's report (SUCCEEDED only).
    report: dict[str, Any] | None = None
    resumed: bool = False


def progress_from_json(doc: dict[str, Any] | None) -> ProgressEvent | None:
    if not doc:
        return None
    return ProgressEvent(**{**doc, "stage": Stage(doc["stage"])})


class JobStore(Protocol):
    """Where jobs live. Every method is safe to call from several threads."""

    def create(self, clinic: str, spec: JobSpec, idempotency_key: str) -> tuple[JobRecord, bool]:
        """A new QUEUED job, or the one this clinic created with the same key (``False``: not new); ConflictError
        when that key was used for a different request."""

    def get(self, clinic: str, job_id: str) -> JobRecord | None:
        """The job if it belongs to ``clinic``."""

    def get_any(self, job_id: str) -> JobRecord | None: ...

    def find_by_key(self, clinic: str, idempotency_key: str) -> JobRecord | None: ...

    def list(self, clinic: str, states: set[JobState], clip_id: str, limit: int, offset: int) -> list[JobRecord]:
        """Newest first."""

    def queued(self) -> list[JobRecord]:
        """QUEUED jobs of every clinic, oldest first."""

    def count_pending(self, clinic: str) -> int:
        """QUEUED or RUNNING jobs of ``clinic``."""

    def mark_running(self, job_id: str) -> JobRecord: ...

    def update_progress(self, job_id: str, event: ProgressEvent) -> None: ...

    def request_cancel(self, job_id: str) -> JobRecord: ...

    def finish(
        self, job_id: str, state: JobState, error_message: str = "", report: dict | None = None, resumed: bool = False
    ) -> JobRecord: ...

    def requeue_interrupted(self) -> list[JobRecord]:
        """RUNNING jobs (cut short by a crash or stop) back to QUEUED; returns them."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    clinic TEXT NOT NULL,
    clip_id TEXT NOT NULL,
    tasks TEXT NOT NULL,
    budget TEXT NOT NULL,
    method TEXT NOT NULL,
    seed INTEGER NOT NULL,
    idempotency_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    state TEXT NOT NULL,
    created_unix_s REAL NOT NULL,
    started_unix_s REAL NOT NULL DEFAULT 0,
    finished_unix_s REAL NOT NULL DEFAULT 0,
    error_message TEXT NOT NULL DEFAULT '',
    n_attempts INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    progress TEXT,
    report TEXT,
    resumed INTEGER NOT NULL DEFAULT 0,
    UNIQUE (clinic, idempotency_key)
);
CREATE INDEX IF NOT EXISTS jobs_by_clinic ON jobs (clinic, created_unix_s);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, created_unix_s);
PRAGMA user_version = 1;
"""


class SqliteJobStore:
    """:class:`JobStore` in one SQLite file (WAL, ``synchronous=FULL``: a job is durable when ``create`` returns)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _row(self, row: sqlite3.Row | None) -> JobRecord | None:
        if row is None:
            return None
        spec = JobSpec(row["clip_id"], tuple(json.loads(row["tasks"])), row["budget"], row["method"], row["seed"])
        return JobRecord(
            job_id=row["job_id"],
            clinic=row["clinic"],
            spec=spec,
            state=JobState(row["state"]),
            created_unix_s=row["created_unix_s"],
            started_unix_s=row["started_unix_s"],
            finished_unix_s=row["finished_unix_s"],
            error_message=row["error_message"],
            n_attempts=row["n_attempts"],
            cancel_requested=bool(row["cancel_requested"]),
            progress=progress_from_json(json.loads(row["progress"]) if row["progress"] else None),
            report=json.loads(row["report"]) if row["report"] else None,
            resumed=bool(row["resumed"]),
        )

    def _one(self, sql: str, args: tuple) -> JobRecord | None:
        return self._row(self._db.execute(sql, args).fetchone())

    def create(self, clinic: str, spec: JobSpec, idempotency_key: str) -> tuple[JobRecord, bool]:
        fingerprint = spec.fingerprint()
        with self._lock:
            existing = self._db.execute(
                "SELECT * FROM jobs WHERE clinic = ? AND idempotency_key = ?", (clinic, idempotency_key)
            ).fetchone()
            if existing is not None:
                if existing["fingerprint"] != fingerprint:
                    raise ConflictError(
                        f"idempotency key {idempotency_key!r} was used for a different job ({existing['job_id']}); "
                        "use a new key for a new request"
                    )
                record = self._row(existing)
                assert record is not None
                return record, False
            job_id = uuid.uuid4().hex
            self._db.execute(
                "INSERT INTO jobs (job_id, clinic, clip_id, tasks, budget, method, seed, idempotency_key, fingerprint,"
                " state, created_unix_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (job_id, clinic, spec.clip_id, json.dumps(list(spec.tasks)), spec.budget, spec.method, spec.seed,
                 idempotency_key, fingerprint, JobState.QUEUED.value, time.time()),
            )  # fmt: skip
            record = self._one("SELECT * FROM jobs WHERE job_id = ?", (job_id,))
        assert record is not None
        return record, True

    def get(self, clinic: str, job_id: str) -> JobRecord | None:
        with self._lock:
            return self._one("SELECT * FROM jobs WHERE job_id = ? AND clinic = ?", (job_id, clinic))

    def find_by_key(self, clinic: str, idempotency_key: str) -> JobRecord | None:
        with self._lock:
            return self._one("SELECT * FROM jobs WHERE clinic = ? AND idempotency_key = ?", (clinic, idempotency_key))

    def get_any(self, job_id: str) -> JobRecord | None:
        with self._lock:
            return self._one("SELECT * FROM jobs WHERE job_id = ?", (job_id,))

    def list(self, clinic: str, states: set[JobState], clip_id: str, limit: int, offset: int) -> list[JobRecord]:
        sql = "SELECT * FROM jobs WHERE clinic = ?"
        args: list[Any] = [clinic]
        if states:
            sql += f" AND state IN ({', '.join('?' * len(states))})"
            args += sorted(s.value for s in states)
        if clip_id:
            sql += " AND clip_id = ?"
            args.append(clip_id)
        sql += " ORDER BY created_unix_s DESC, job_id LIMIT ? OFFSET ?"
        args += [limit, offset]
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [r for r in map(self._row, rows) if r is not None]

    def queued(self) -> list[JobRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM jobs WHERE state = ? ORDER BY created_unix_s, job_id", (JobState.QUEUED.value,)
            ).fetchall()
        return [r for r in map(self._row, rows) if r is not None]

    def count_pending(self, clinic: str) -> int:
        with self._lock:
            (n,) = self._db.execute(
                "SELECT COUNT(*) FROM jobs WHERE clinic = ? AND state IN (?, ?)",
                (clinic, JobState.QUEUED.value, JobState.RUNNING.value),
            ).fetchone()
        return int(n)

    def _update(self, job_id: str, sql: str, args: tuple) -> JobRecord:
        with self._lock:
            self._db.execute(f"UPDATE jobs SET {sql} WHERE job_id = ?", (*args, job_id))
            record = self._one("SELECT * FROM jobs WHERE job_id = ?", (job_id,))
        if record is None:
            raise KeyError(job_id)
        return record

    def mark_running(self, job_id: str) -> JobRecord:
        return self._update(
            job_id, "state = ?, started_unix_s = ?, n_attempts = n_attempts + 1", (JobState.RUNNING.value, time.time())
        )

    def update_progress(self, job_id: str, event: ProgressEvent) -> None:
        with self._lock:
            self._db.execute("UPDATE jobs SET progress = ? WHERE job_id = ?", (json.dumps(event.to_json()), job_id))

    def request_cancel(self, job_id: str) -> JobRecord:
        return self._update(job_id, "cancel_requested = 1", ())

    def finish(
        self, job_id: str, state: JobState, error_message: str = "", report: dict | None = None, resumed: bool = False
    ) -> JobRecord:
        return self._update(
            job_id,
            "state = ?, finished_unix_s = ?, error_message = ?, report = ?, resumed = ?",
            (state.value, time.time(), error_message, json.dumps(report) if report is not None else None, int(resumed)),
        )

    def requeue_interrupted(self) -> list[JobRecord]:
        with self._lock:
            rows = self._db.execute("SELECT job_id FROM jobs WHERE state = ?", (JobState.RUNNING.value,)).fetchall()
            self._db.execute(
                "UPDATE jobs SET state = ? WHERE state = ?", (JobState.QUEUED.value, JobState.RUNNING.value)
            )
            ids = [r["job_id"] for r in rows]
            records = [self._one("SELECT * FROM jobs WHERE job_id = ?", (i,)) for i in ids]
        return [r for r in records if r is not None]
