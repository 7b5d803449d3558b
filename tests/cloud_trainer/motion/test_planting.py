"""A stairs reference whose stance feet stand where they land: the swing carries the difference, only hip and knee
flexion change, the stride and the landings stay, and a motion with no stance is refused."""

from __future__ import annotations

import numpy as np
import pytest

from cloud_trainer.errors import ReferenceMotionError
from cloud_trainer.motion.leg_ik import LEG_COLUMNS
from cloud_trainer.motion.planting import landing_samples, planted, toe_off_samples
from cloud_trainer.motion.synthetic import standing_reference
from cloud_trainer.twin.kinematics import forward_kinematics, lowest_sole_m
from cloud_trainer.twin.model import build_twin

STAIR_STRIDE_M = 0.6


@pytest.fixture(scope="module")
def model():
    return build_twin().model


def feet_forward_m(model, motion) -> np.ndarray:
    """Both feet's world x over the cycle (2 legs, T)."""
    return forward_kinematics(model, motion.qpos).end_pos_m[:, :2, 0].T


def steps_m(model, motion) -> np.ndarray:
    x = feet_forward_m(model, motion)
    return np.diff(np.concatenate([x, x[:, :1] + motion.cycle_offset_m[0]], axis=1), axis=1)


def test_landing_and_toe_off_are_where_the_swing_starts_and_stops_moving_the_foot() -> None:
    step = np.zeros(20)
    step[5:12] = [0.01, 0.05, 0.1, 0.12, 0.1, 0.05, 0.005]  # fastest move 8 → 9; below a tenth of it from 11 → 12
    assert landing_samples(step) == 11
    # 5 → 6 moves the foot by less than a tenth of the fastest: it still stands at 6, and its swing starts 6 → 7
    assert toe_off_samples(step) == 6
    rolled = np.roll(step, 12)  # a swing across the cycle's end
    assert (landing_samples(rolled), toe_off_samples(rolled)) == (3, 18)
    both = np.stack([step, rolled])  # feet in rows
    np.testing.assert_array_equal(landing_samples(both), [11, 3])


def test_stance_feet_stand_where_they_land_and_swing_back_onto_the_recorded_path(model, stairs_walk) -> None:
    plant = planted(stairs_walk, model)
    before, after = feet_forward_m(model, stairs_walk), feet_forward_m(model, plant)
    for leg in range(2):
        step = steps_m(model, stairs_walk)[leg]
        landing, toe_off = int(landing_samples(step)), int(toe_off_samples(step))
        stance = (landing + np.arange((toe_off - landing) % len(step) + 1)) % len(step)
        unrolled = after[leg] + np.where(np.arange(len(step)) < landing, STAIR_STRIDE_M, 0.0)
        # recorded, the stance foot slides back by a sixth of a stride or more; planted, it stands
        recorded = before[leg] + np.where(np.arange(len(step)) < landing, STAIR_STRIDE_M, 0.0)
        assert np.ptp(recorded[stance]) > 0.1
        assert np.abs(unrolled[stance] - after[leg, landing]).max() < 0.002
        # the landing stays where it was: the swing carries the held-back foot to its recorded place
        assert after[leg, landing] == pytest.approx(before[leg, landing], abs=0.005)
    assert plant.stride_length_m == pytest.approx(stairs_walk.stride_length_m, rel=1e-3)
    assert plant.source.endswith("stance feet planted")


def test_only_hip_and_knee_flexion_change_and_the_soles_stay_as_high(model, stairs_walk) -> None:
    plant = planted(stairs_walk, model)
    others = np.setdiff1d(np.arange(3, stairs_walk.qpos.shape[1]), LEG_COLUMNS.ravel())
    np.testing.assert_array_equal(plant.qpos[:, others], stairs_walk.qpos[:, others])
    assert np.abs(plant.qpos[:, LEG_COLUMNS.ravel()] - stairs_walk.qpos[:, LEG_COLUMNS.ravel()]).max() > 0.05
    np.testing.assert_allclose(lowest_sole_m(model, plant.qpos), lowest_sole_m(model, stairs_walk.qpos), atol=1e-6)
    np.testing.assert_array_equal(plant.qpos[:, :2], stairs_walk.qpos[:, :2])


def test_a_motion_with_no_stance_to_plant_is_refused(model) -> None:
    with pytest.raises(ReferenceMotionError, match="not a travelling gait cycle"):
        planted(standing_reference(model), model)
