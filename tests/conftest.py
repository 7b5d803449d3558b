"""Fixtures shared by the whole test suite."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _find_shared_data() -> Path:
    """``../shared/data`` beside the repository; from a git worktree (``/work/wt/<branch>``) the first ancestor that
    has ``shared/data``."""
    for parent in REPO_ROOT.parents:
        candidate = parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return REPO_ROOT.parent / "shared" / "data"


#: The development data sets live beside the repository (``../shared/data``); CI may not have them.
SHARED_DATA_DIR = _find_shared_data()


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """``../shared/data``, or skip the test where it does not exist."""
    if not SHARED_DATA_DIR.is_dir():
        pytest.skip(f"development data not found at {SHARED_DATA_DIR}")
    return SHARED_DATA_DIR
