"""A level walk turned into a stair climb: each foot stands still on its tread while the pelvis rises, then swings a
tread pair higher; only hip and knee flexion change, and an impossible climb is refused."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from cloud_trainer.errors import ReferenceMotionError
from cloud_trainer.motion.climb import climbing, foot_lift_m, minimum_jerk, raised_frames
from cloud_trainer.twin.constants import JOINT_NAMES, N_ROOT_QPOS
from cloud_trainer.twin.kinematics import forward_kinematics, lowest_sole_m
from cloud_trainer.twin.model import build_twin

STAIR_STRIDE_M = 0.6
#: Two 7.5 cm risers a stride (curriculum level 3).
RISE_M = 0.15
#: Hip and knee flexion, right and left.
SOLVED = [N_ROOT_QPOS + JOINT_NAMES.index(f"{j}_{s}") for s in "rl" for j in ("hip_flexion", "knee_flexion")]


@pytest.fixture(scope="module")
def model():
    return build_twin().model


def test_minimum_jerk_rises_from_0_to_1_with_flat_ends() -> None:
    s = np.linspace(-0.5, 1.5, 201)
    y = minimum_jerk(s)
    assert y[s <= 0].max() == 0.0
    assert y[s >= 1].min() == 1.0
    assert np.all(np.diff(y) >= 0)
    assert minimum_jerk(np.array([0.5]))[0] == pytest.approx(0.5)
    assert (minimum_jerk(np.array([1e-3]))[0], 1 - minimum_jerk(np.array([1 - 1e-3]))[0]) < (1e-7, 1e-7)


def test_a_foot_rises_while_it_is_raised_in_the_recorded_swing_even_when_it_peaks_early() -> None:
    n = 100
    swing = np.zeros(n)
    swing[30:80] = np.interp(np.arange(30, 80), [30, 40, 60, 79], [0.0, 0.15, 0.08, 0.0])  # high early, lands late
    first, last = raised_frames(swing)
    assert (first, last) == (np.flatnonzero(swing > 0.25 * 0.15)[0], np.flatnonzero(swing > 0.25 * 0.15)[-1])
    assert last >= 70  # the rise ends near landing (79), not near the foot's highest frame (40)
    wrapped = np.roll(swing, 40)  # a swing across the cycle's end
    assert raised_frames(wrapped) == ((first + 40) % n, (last + 40) % n)


def test_a_foot_seen_from_a_rising_pelvis_is_lifted_most_at_landing_and_hardly_at_toe_off() -> None:
    n, start, end = 100, 40, 65
    lift = foot_lift_m(n, start, end, RISE_M)
    assert lift.min() > -0.02 * RISE_M  # the minimum-jerk rise starts a little slower than the pelvis
    assert lift[start] == pytest.approx(0.0)
    # risen a tread pair by the end of the rise, the pelvis its share of it less: the highest the foot is lifted
    assert lift[end] == pytest.approx((1 - (end - start) / n) * RISE_M)
    assert start < lift.argmax() <= end
    assert lift.max() < lift[end] + 0.02 * RISE_M
    # standing on its tread: the foot drops at the pelvis' rate of rise (R per cycle) until the next rise
    stance = (np.arange(end, start + n) % n)[1:-1]
    np.testing.assert_allclose(np.diff(lift[stance]), -RISE_M / n, atol=1e-12)


def test_the_climb_moves_each_foot_up_by_its_lift_and_changes_only_hips_knees_and_root_height(
    model, stairs_walk
) -> None:
    climb = climbing(stairs_walk, model, RISE_M)
    before, after = forward_kinematics(model, stairs_walk.qpos), forward_kinematics(model, climb.qpos)
    feet_before = before.ends_in_heading_m()[:, :2]
    feet_after = after.ends_in_heading_m()[:, :2]
    n = len(stairs_walk.qpos)
    for leg in range(2):
        lift = foot_lift_m(n, *raised_frames(before.end_pos_m[:, leg, 2]), RISE_M)
        np.testing.assert_allclose(feet_after[:, leg, 2] - feet_before[:, leg, 2], lift, atol=0.005)
        np.testing.assert_allclose(feet_after[:, leg, 0], feet_before[:, leg, 0], atol=0.005)
    others = np.setdiff1d(np.arange(stairs_walk.qpos.shape[1]), [*SOLVED, 2])
    np.testing.assert_array_equal(climb.qpos[:, others], stairs_walk.qpos[:, others])
    # a raised landing flexes hip and knee more than level walking does
    for column in SOLVED:
        assert climb.qpos[:, column].max() > stairs_walk.qpos[:, column].max() + np.radians(5)
    # the pelvis sits lower over the bent stance leg, and a foot still stands on the ground
    np.testing.assert_allclose(lowest_sole_m(model, climb.qpos), lowest_sole_m(model, stairs_walk.qpos), atol=1e-9)
    assert np.all(climb.qpos[:, 2] <= stairs_walk.qpos[:, 2] + 0.02 * RISE_M)  # (the slow start of a rise)
    assert (stairs_walk.qpos[:, 2] - climb.qpos[:, 2]).mean() > 0.1 * RISE_M
    assert climb.stride_length_m == pytest.approx(stairs_walk.stride_length_m, rel=1e-3)
    assert "climbing 15.0 cm a stride" in climb.source


def test_no_rise_is_the_walk_itself_and_bad_rises_are_refused(model, stairs_walk) -> None:
    assert climbing(stairs_walk, model, 0.0) is stairs_walk
    with pytest.raises(ReferenceMotionError, match="≥ 0"):
        climbing(stairs_walk, model, -0.1)
    with pytest.raises(ReferenceMotionError, match="not one gait cycle"):
        climbing(dataclasses.replace(stairs_walk, cyclic=False), model, RISE_M)
    with pytest.raises(ReferenceMotionError, match="beyond what the legs' joint ranges reach"):
        climbing(stairs_walk, model, 1.5)  # 75 cm risers
