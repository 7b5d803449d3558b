"""Fixtures shared by the whole test suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def _find_shared_data() -> Path:
    """The development data sets live beside the repository (``../shared/data``); CI may not have them.

    ``STRIDETWIN_SHARED_DATA`` overrides; otherwise the nearest ``shared/data`` above the repository is used, so that
    git worktrees nested one level deeper find the same folder.
    """
    if override := os.environ.get("STRIDETWIN_SHARED_DATA"):
        return Path(override)
    repo_root = Path(__file__).resolve().parents[1]
    for parent in repo_root.parents:
        if (parent / "shared" / "data").is_dir():
            return parent / "shared" / "data"
    return repo_root.parent / "shared" / "data"


SHARED_DATA_DIR = _find_shared_data()


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """``../shared/data``, or skip the test where it does not exist."""
    if not SHARED_DATA_DIR.is_dir():
        pytest.skip(f"development data not found at {SHARED_DATA_DIR}")
    return SHARED_DATA_DIR
