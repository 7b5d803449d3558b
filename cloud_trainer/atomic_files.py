"""Files a reader never sees half-written: write beside the target, fsync, rename over it (one implementation for the
pipeline's run record, manifests and reports)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_text_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8) in one rename; a crash leaves the old file or the new one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json_atomic(path: Path, value: Any, indent: int = 1) -> None:
    """:func:`write_text_atomic` of ``value`` as JSON (UTF-8, not ASCII-escaped, a final newline)."""
    write_text_atomic(path, json.dumps(value, indent=indent, ensure_ascii=False) + "\n")
