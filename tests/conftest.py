"""Fixtures shared by the whole test suite."""

from __future__ import annotations

from pathlib import Path

import pytest

#: The development data sets live beside the repository (``../shared/data``); CI may not have them.
SHARED_DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """``../shared/data``, or skip the test where it does not exist."""
    if not SHARED_DATA_DIR.is_dir():
        pytest.skip(f"development data not found at {SHARED_DATA_DIR}")
    return SHARED_DATA_DIR
