"""The clip store: accepted clips and the partial uploads that lead to them.

:class:`ClipStore` is the interface (object storage can implement it: a partial upload is staged on local disk and
``commit`` puts the verified file into the bucket); :class:`FileClipStore` keeps everything under one directory::

    clips/<clinic>/<sha256>.stclip       accepted clips, byte for byte as uploaded
    clips/<clinic>/<sha256>.json         their records (ClipRecord)
    uploads/<clinic>/<sha256>.part       partial uploads: the bytes received so far
    uploads/<clinic>/<sha256>.json       how many of them are durable (fsynced) and the declared size

Nothing is acknowledged before it is durable: a partial upload's acknowledged size is recorded only after the bytes
are fsynced, and an accepted clip is fsynced, renamed into place and its directory fsynced before its record exists.
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from cloud_trainer.service.clipcheck import ClipSummary
from cloud_trainer.service.errors import InvalidRequestError
from cloud_trainer.service.fsutil import fsync_dir, read_json, write_json_atomic

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
#: Clinic names: they appear in paths, so only these characters.
CLINIC_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def check_sha256(text: str) -> str:
    """``text`` if it is 64 lower-case hex digits, else :class:`InvalidRequestError`."""
    if not _SHA256.match(text):
        raise InvalidRequestError(f"sha256 {text[:80]!r} is not 64 lower-case hex digits")
    return text


def check_clinic(name: str) -> str:
    if not CLINIC_NAME.match(name):
        raise ValueError(
            f"clinic name {name!r}: 1-63 characters of a-z, 0-9, '-' and '_', starting with a letter or digit"
        )
    return name


def clip_id_of(sha256: str) -> str:
    """A clip's id: the first 32 hex digits (128 bits) of its SHA-256."""
    return sha256[:32]


@dataclass(frozen=True)
class ClipRecord:
    """An accepted clip."""

    clip_id: str
    clinic: str
    sha256: str
    size_bytes: int
    received_unix_s: float
    schema_version: str
    pseudonym: str
    duration_s: float
    n_sensors: int
    n_samples: int
    sites: tuple[str, ...]

    @classmethod
    def from_json(cls, doc: dict) -> ClipRecord:
        return cls(**{**doc, "sites": tuple(doc["sites"])})


@dataclass(frozen=True)
class UploadProgress:
    """A partial upload as the store holds it."""

    sha256: str
    size_bytes: int
    #: Bytes durable on disk: the offset a client resumes from.
    received_bytes: int
    started_unix_s: float


class PartialUpload(Protocol):
    """A partial upload being written by one stream."""

    sha256: str
    size_bytes: int

    @property
    def received_bytes(self) -> int:
        """Bytes written so far (durable up to the last :meth:`sync`)."""

    def write(self, data: bytes) -> None:
        """Append ``data``."""

    def sync(self) -> int:
        """Make everything written durable and acknowledge it; returns the acknowledged byte count."""

    def open_read(self) -> BinaryIO:
        """The bytes held, from the start (to hash and check them)."""

    def close(self) -> None:
        """Sync and release the file (the partial upload stays for a later resume)."""


class ClipStore(Protocol):
    """Where accepted clips and partial uploads live."""

    def get(self, clinic: str, clip_id: str) -> ClipRecord | None: ...

    def list(self, clinic: str) -> list[ClipRecord]:
        """The clinic's clips, newest first."""

    def upload_progress(self, clinic: str, sha256: str) -> UploadProgress | None: ...

    def open_upload(self, clinic: str, sha256: str, size_bytes: int) -> PartialUpload:
        """Continue the partial upload (truncated to its acknowledged bytes) or start one."""

    def discard_upload(self, clinic: str, sha256: str) -> None: ...

    def commit(self, clinic: str, upload: PartialUpload, summary: ClipSummary) -> ClipRecord:
        """Turn a complete, verified partial upload into an accepted clip, durably."""

    def local_path(self, record: ClipRecord) -> Path:
        """A local file holding the clip, for the pipeline."""


class _FilePartialUpload:
    def __init__(self, part: Path, state: Path, sha256: str, size_bytes: int, acknowledged: int, started: float):
        self.sha256 = sha256
        self.size_bytes = size_bytes
        self.path = part
        self._state = state
        self._started = started
        self._file = open(part, "r+b" if part.exists() else "w+b")  # noqa: SIM115 (kept open across calls)
        self._file.truncate(acknowledged)  # bytes after the last acknowledgement may be torn: drop them
        self._file.seek(acknowledged)
        self._written = acknowledged
        self._acknowledged = acknowledged
        if acknowledged == 0:
            self.sync()
            fsync_dir(part.parent)

    @property
    def received_bytes(self) -> int:
        return self._written

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self._written += len(data)

    def sync(self) -> int:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._acknowledged = self._written
        write_json_atomic(
            self._state,
            {"sha256": self.sha256, "size_bytes": self.size_bytes, "received_bytes": self._acknowledged,
             "started_unix_s": self._started},
        )  # fmt: skip
        return self._acknowledged

    def open_read(self) -> BinaryIO:
        if not self._file.closed:
            self._file.flush()
        return open(self.path, "rb")

    def close(self) -> None:
        if not self._file.closed:
            if self._written != self._acknowledged:
                self.sync()
            self._file.close()


class FileClipStore:
    """:class:`ClipStore` on the local filesystem under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        (self.root / "clips").mkdir(parents=True, exist_ok=True)
        (self.root / "uploads").mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def _clip_dir(self, clinic: str) -> Path:
        return self.root / "clips" / check_clinic(clinic)

    def _upload_paths(self, clinic: str, sha256: str) -> tuple[Path, Path]:
        d = self.root / "uploads" / check_clinic(clinic)
        return d / f"{check_sha256(sha256)}.part", d / f"{sha256}.json"

    def get(self, clinic: str, clip_id: str) -> ClipRecord | None:
        if not re.fullmatch(r"[0-9a-f]{32}", clip_id):
            return None
        d = self._clip_dir(clinic)
        for path in d.glob(f"{clip_id}*.json") if d.is_dir() else ():
            record = ClipRecord.from_json(read_json(path))
            if record.clip_id == clip_id and (d / f"{record.sha256}.stclip").exists():
                return record
        return None

    def list(self, clinic: str) -> list[ClipRecord]:
        d = self._clip_dir(clinic)
        records = [
            ClipRecord.from_json(read_json(p)) for p in d.glob("*.json") if p.with_suffix(".stclip").exists()
        ] if d.is_dir() else []  # fmt: skip
        return sorted(records, key=lambda r: (-r.received_unix_s, r.clip_id))

    def upload_progress(self, clinic: str, sha256: str) -> UploadProgress | None:
        part, state = self._upload_paths(clinic, sha256)
        if not state.exists() or not part.exists():
            return None
        doc = read_json(state)
        # The file may hold more than was acknowledged (written, not yet fsynced): only acknowledged bytes count.
        received = min(int(doc["received_bytes"]), part.stat().st_size)
        return UploadProgress(sha256, int(doc["size_bytes"]), received, float(doc["started_unix_s"]))

    def open_upload(self, clinic: str, sha256: str, size_bytes: int) -> _FilePartialUpload:
        part, state = self._upload_paths(clinic, sha256)
        part.parent.mkdir(parents=True, exist_ok=True)
        progress = self.upload_progress(clinic, sha256)
        if progress is not None and progress.size_bytes != size_bytes:
            raise InvalidRequestError(
                f"upload of {sha256[:16]}… was started with size_bytes {progress.size_bytes}, not {size_bytes}"
            )
        acknowledged = progress.received_bytes if progress else 0
        started = progress.started_unix_s if progress else time.time()
        return _FilePartialUpload(part, state, sha256, size_bytes, acknowledged, started)

    def discard_upload(self, clinic: str, sha256: str) -> None:
        part, state = self._upload_paths(clinic, sha256)
        state.unlink(missing_ok=True)
        part.unlink(missing_ok=True)

    def commit(self, clinic: str, upload: PartialUpload, summary: ClipSummary) -> ClipRecord:
        assert isinstance(upload, _FilePartialUpload)
        upload.close()
        d = self._clip_dir(clinic)
        d.mkdir(parents=True, exist_ok=True)
        final = d / f"{upload.sha256}.stclip"
        record = ClipRecord(
            clip_id=clip_id_of(upload.sha256),
            clinic=clinic,
            sha256=upload.sha256,
            size_bytes=upload.size_bytes,
            received_unix_s=time.time(),
            schema_version=summary.schema_version,
            pseudonym=summary.pseudonym,
            duration_s=summary.duration_s,
            n_sensors=summary.n_sensors,
            n_samples=summary.n_samples,
            sites=summary.sites,
        )
        # Record first, then the rename that makes the clip exist: a crash in between leaves a record without a file
        # (ignored) and the complete partial upload, which the client's next attempt finishes without resending.
        write_json_atomic(d / f"{upload.sha256}.json", asdict(record))
        os.replace(upload.path, final)  # the part file was fsynced by close()
        fsync_dir(d)
        fsync_dir(upload.path.parent)
        self._upload_paths(clinic, upload.sha256)[1].unlink(missing_ok=True)
        return record

    def local_path(self, record: ClipRecord) -> Path:
        return self._clip_dir(record.clinic) / f"{record.sha256}.stclip"
