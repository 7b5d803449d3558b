"""The artifact store: the files a finished job produced, each with its SHA-256, downloadable by name.

:class:`ArtifactStore` is the interface (object storage implements ``publish`` as uploads and ``open`` as ranged
reads); :class:`FileArtifactStore` keeps ``artifacts/<clinic>/<job_id>/files/<name>`` and an ``index.json`` that is
written last, atomically, so a job's artifacts appear all at once or not at all.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Protocol

from cloud_trainer.pipeline.api import Artifact
from cloud_trainer.service.clips import check_clinic
from cloud_trainer.service.errors import InvalidRequestError
from cloud_trainer.service.fsutil import fsync_dir, read_json, write_json_atomic

_HASH_BLOCK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class ArtifactRecord:
    """One published artifact."""

    job_id: str
    #: Path relative to the job's output, '/'-separated.
    name: str
    #: ``onnx``, ``manifest``, ``video``, ``angles_csv``, ``report_json``, ``report_html``, ``log`` (api.Artifact).
    kind: str
    task: str | None
    level: int | None
    sha256: str
    size_bytes: int


def sha256_of_file(path: Path) -> tuple[str, int]:
    """SHA-256 (hex) and size of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while block := f.read(_HASH_BLOCK_BYTES):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def artifact_name(path: Path | str) -> str:
    """The artifact's name: its relative path in POSIX form; refuses absolute paths and ``..``."""
    posix = PurePosixPath(Path(path).as_posix())
    if posix.is_absolute() or ".." in posix.parts or not posix.parts:
        raise InvalidRequestError(f"artifact path {str(path)!r} must be relative to the job's output, without '..'")
    return str(posix)


class ArtifactStore(Protocol):
    """Where finished jobs' artifacts live."""

    def publish(self, clinic: str, job_id: str, out_dir: Path, artifacts: Iterable[Artifact]) -> list[ArtifactRecord]:
        """Copy the run's artifacts (paths relative to ``out_dir``) into the store, verifying each declared SHA-256;
        idempotent (publishing again replaces the set)."""

    def list(self, clinic: str, job_id: str) -> list[ArtifactRecord]:
        """The job's artifacts; empty when none were published."""

    def open(self, clinic: str, job_id: str, name: str) -> BinaryIO:
        """A seekable binary reader of one artifact; FileNotFoundError when there is none of that name."""


class FileArtifactStore:
    """:class:`ArtifactStore` on the local filesystem under ``root/artifacts``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root) / "artifacts"
        self.root.mkdir(parents=True, exist_ok=True)

    def _job_dir(self, clinic: str, job_id: str) -> Path:
        if not job_id.isalnum():
            raise InvalidRequestError(f"job id {job_id[:80]!r} is not alphanumeric")
        return self.root / check_clinic(clinic) / job_id

    def publish(self, clinic: str, job_id: str, out_dir: Path, artifacts: Iterable[Artifact]) -> list[ArtifactRecord]:
        job_dir = self._job_dir(clinic, job_id)
        files = job_dir / "files"
        records: list[ArtifactRecord] = []
        for art in artifacts:
            name = artifact_name(art.path)
            src = Path(out_dir) / name
            dst = files / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = dst.with_name(f".{dst.name}.tmp")
            try:
                os.link(src, tmp)  # same filesystem: no copy; the pipeline never rewrites a finished artifact
            except OSError:
                shutil.copyfile(src, tmp)
            sha256, size = sha256_of_file(tmp)
            if art.sha256 and art.sha256 != sha256:
                tmp.unlink()
                raise OSError(
                    f"artifact {name}: the run declared SHA-256 {art.sha256[:16]}…, the file has {sha256[:16]}…"
                )
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, dst)
            fsync_dir(dst.parent)
            records.append(ArtifactRecord(job_id, name, art.kind, art.task, art.level, sha256, size))
        write_json_atomic(job_dir / "index.json", [asdict(r) for r in records])
        return records

    def list(self, clinic: str, job_id: str) -> list[ArtifactRecord]:
        index = self._job_dir(clinic, job_id) / "index.json"
        if not index.exists():
            return []
        return [ArtifactRecord(**doc) for doc in read_json(index)]

    def open(self, clinic: str, job_id: str, name: str) -> BinaryIO:
        if not any(r.name == name for r in self.list(clinic, job_id)):
            raise FileNotFoundError(name)
        return open(self._job_dir(clinic, job_id) / "files" / artifact_name(name), "rb")
