"""The shipped gait library is what its build script derives from the DeepMimic motions in ../shared/data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sensor_drivers.sim import build_gait_library
from sensor_drivers.sim.gait_library import LIBRARY_PATH


@pytest.mark.shared_data
def test_build_reproduces_the_shipped_library(shared_data_dir: Path) -> None:
    fresh = build_gait_library.build(shared_data_dir / "motions" / "deepmimic")
    with np.load(LIBRARY_PATH) as shipped:
        assert build_gait_library.matches(dict(shipped), fresh)
    assert LIBRARY_PATH.stat().st_size < 200_000
