"""An append-only, hash-chained audit log of who did what to which clip, job or artifact.

One JSON object per line. Each entry carries the SHA-256 of the entry before it (``prev_sha256``; 64 zeros for the
first) and its own ``sha256``, computed over its canonical JSON without that field, so changing, removing or
reordering any entry breaks the chain from there on. Cutting entries off the end is caught by the head file
(``audit.head``: the last entry's ``seq`` and ``sha256``, replaced atomically after every append). Someone who can
rewrite both files can forge a consistent history; against that, copy the head elsewhere (a backup, a log service) and
verify against the copy: ``verify_audit_log(path, expected_head=...)``.

Entries hold ids, pseudonyms never, names never: clinic, action, clip/job/artifact ids, sizes, outcomes.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cloud_trainer.service.fsutil import write_json_atomic

GENESIS_SHA256 = "0" * 64


def entry_sha256(entry: dict[str, Any]) -> str:
    """The hash of an entry: SHA-256 of its canonical JSON (sorted keys, no spaces) without ``sha256``."""
    body = {k: v for k, v in entry.items() if k != "sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class AuditLog:
    """Appends entries to ``path`` (fsynced before :meth:`append` returns) and keeps ``path.head`` current."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.head_path = self.path.with_suffix(".head")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._seq, self._head = self._read_tail()

    def _read_tail(self) -> tuple[int, str]:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return 0, GENESIS_SHA256
        with open(self.path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 65536))
            lines = f.read().splitlines()
        last = json.loads(lines[-1])
        return int(last["seq"]), str(last["sha256"])

    def append(self, clinic: str, action: str, **fields: Any) -> dict[str, Any]:
        """Record that ``clinic`` did ``action`` (``clip.upload``, ``job.submit``, …) with ids and outcome in
        ``fields``; returns the entry."""
        with self._lock:
            entry: dict[str, Any] = {
                "seq": self._seq + 1,
                "time_utc": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "clinic": clinic,
                "action": action,
                **fields,
                "prev_sha256": self._head,
            }
            entry["sha256"] = entry_sha256(entry)
            line = json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n"
            with open(self.path, "ab") as f:
                f.write(line.encode())
                f.flush()
                os.fsync(f.fileno())
            write_json_atomic(self.head_path, {"seq": entry["seq"], "sha256": entry["sha256"]})
            self._seq, self._head = entry["seq"], entry["sha256"]
            return entry


@dataclass(frozen=True)
class AuditVerification:
    """The outcome of :func:`verify_audit_log`."""

    ok: bool
    n_entries: int
    #: What is wrong and on which line (1-based), when not ok.
    problem: str = ""
    line: int = 0
    head_sha256: str = GENESIS_SHA256


def verify_audit_log(path: Path, expected_head: dict[str, Any] | None = None) -> AuditVerification:
    """Walk the chain of ``path`` and compare its end with ``expected_head`` (default: the ``.head`` file beside it,
    when there is one). Reports the first entry that does not verify."""
    path = Path(path)
    prev = GENESIS_SHA256
    n = 0
    lines = path.read_bytes().splitlines() if path.exists() else []
    for lineno, raw in enumerate(lines, start=1):
        try:
            entry = json.loads(raw)
        except json.JSONDecodeError as exc:
            return AuditVerification(False, n, f"line {lineno} is not JSON ({exc})", lineno, prev)
        if entry.get("seq") != n + 1:
            return AuditVerification(False, n, f"line {lineno}: seq {entry.get('seq')}, expected {n + 1}", lineno, prev)
        if entry.get("prev_sha256") != prev:
            return AuditVerification(
                False,
                n,
                f"line {lineno}: prev_sha256 does not match the entry before (removed or reordered)",
                lineno,
                prev,
            )
        if entry.get("sha256") != entry_sha256(entry):
            return AuditVerification(
                False, n, f"line {lineno}: entry altered (its sha256 does not match)", lineno, prev
            )
        prev = entry["sha256"]
        n += 1
    head_path = path.with_suffix(".head")
    if expected_head is None and head_path.exists():
        expected_head = json.loads(head_path.read_bytes())
    if expected_head is not None and (expected_head.get("seq"), expected_head.get("sha256")) != (n, prev):
        return AuditVerification(
            False, n,
            f"the log ends at entry {n}, its head says entry {expected_head.get('seq')} (entries cut off the end, or "
            "the head rewritten)", n, prev,
        )  # fmt: skip
    return AuditVerification(True, n, "", 0, prev)
