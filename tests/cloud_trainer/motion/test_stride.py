"""A reference walked with a shorter stride at its own cadence: the stance foot must stand still under the body."""

from __future__ import annotations

import numpy as np
import pytest

from cloud_trainer.errors import ReferenceMotionError
from cloud_trainer.motion.stride import stance_slip_m_s, with_stride
from cloud_trainer.motion.synthetic import standing_reference
from cloud_trainer.twin.constants import JOINT_NAMES, N_ROOT_QPOS
from cloud_trainer.twin.kinematics import lowest_sole_m
from cloud_trainer.twin.model import build_twin

STAIR_STRIDE_M = 0.6


@pytest.fixture(scope="module")
def model():
    return build_twin().model


def hip_range_rad(motion) -> float:
    return float(np.ptp(motion.qpos[:, N_ROOT_QPOS + JOINT_NAMES.index("hip_flexion_r")]))


def test_recorded_walk_stands_on_its_stance_foot_and_a_merely_resampled_one_slides(model, walk_reference) -> None:
    speed = STAIR_STRIDE_M / walk_reference.cycle_period_s  # the same cadence
    assert stance_slip_m_s(model, walk_reference) < 0.05
    assert stance_slip_m_s(model, walk_reference.resampled(speed, STAIR_STRIDE_M)) > 0.5 * speed


def test_shorter_stride_scales_the_hip_swing_until_the_stance_foot_stands(model, walk_reference) -> None:
    speed = STAIR_STRIDE_M / walk_reference.cycle_period_s
    resampled = walk_reference.resampled(speed, STAIR_STRIDE_M)
    motion = with_stride(walk_reference, model, speed, STAIR_STRIDE_M)
    assert motion.stride_length_m == pytest.approx(STAIR_STRIDE_M, rel=1e-3)
    assert motion.speed_m_s == pytest.approx(speed, rel=1e-3)
    assert stance_slip_m_s(model, motion) < 0.35 * stance_slip_m_s(model, resampled)
    assert 0.3 < hip_range_rad(motion) / hip_range_rad(walk_reference) < 0.9
    assert "hip swing ×" in motion.source
    # the other joints keep their recorded trajectories
    knee = N_ROOT_QPOS + JOINT_NAMES.index("knee_flexion_r")
    np.testing.assert_allclose(motion.qpos[:, knee], resampled.qpos[:, knee])
    # straighter legs do not sink into the floor: the lower sole stays as high as recorded
    np.testing.assert_allclose(lowest_sole_m(model, motion.qpos), lowest_sole_m(model, resampled.qpos), atol=1e-6)


def test_own_stride_keeps_the_recorded_hip_swing(model, walk_reference) -> None:
    motion = with_stride(walk_reference, model, walk_reference.speed_m_s, walk_reference.stride_length_m)
    assert hip_range_rad(motion) == pytest.approx(hip_range_rad(walk_reference), rel=0.1)


def test_a_motion_that_does_not_travel_is_refused(model) -> None:
    with pytest.raises(ReferenceMotionError, match="does not travel"):
        with_stride(standing_reference(model), model, 0.5, STAIR_STRIDE_M)
