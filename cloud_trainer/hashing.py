"""File checksums, one implementation for the trainer (weights, policies, inputs and artifacts of a run)."""

from __future__ import annotations

import hashlib
from pathlib import Path

_BLOCK_BYTES = 1 << 20


def file_sha256(path: Path) -> str:
    """The SHA-256 (hex) of the file at ``path``, read in 1 MiB blocks (constant memory for any size)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_BLOCK_BYTES):
            digest.update(block)
    return digest.hexdigest()
