"""Shared fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """``../shared/data`` beside the repository (or ``$STRIDETWIN_SHARED_DATA``); tests using it carry the
    ``shared_data`` marker and are skipped where it does not exist."""
    path = Path(os.environ.get("STRIDETWIN_SHARED_DATA", Path(__file__).parents[1].parent / "shared" / "data"))
    if not path.is_dir():
        pytest.skip(f"shared data not available at {path}")
    return path
