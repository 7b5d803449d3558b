"""Fixtures shared by the motion tests."""

from __future__ import annotations

import pytest

from cloud_trainer.motion.stride import with_stride
from cloud_trainer.twin.model import build_twin

#: The stairs' stride: one foot on every 30 cm tread.
STAIR_STRIDE_M = 0.6


@pytest.fixture(scope="module")
def stairs_walk(walk_reference):
    """The healthy cycle at the stairs' stride and its own cadence, as the stairs task imitates it before planting."""
    speed_m_s = STAIR_STRIDE_M / walk_reference.cycle_period_s
    return with_stride(walk_reference, build_twin().model, speed_m_s, STAIR_STRIDE_M)
