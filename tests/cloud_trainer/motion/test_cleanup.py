"""Foot-contact clean-up: no penetration, no floating, stance feet that stay put; cyclic loops stay loops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cloud_trainer.motion.cleanup import FootContactCleaner, contact_slides_m
from cloud_trainer.motion.cycles import extract_cycle, make_cyclic, tile_cycle
from cloud_trainer.motion.kinematics import LightKinematics, Skeleton
from cloud_trainer.motion.readers import read_deepmimic
from cloud_trainer.motion.segmentation import GaitCycleSegmenter
from cloud_trainer.motion.twin_adapter import twin_skeleton

from .gait_fixtures import synthetic_gait

#: The acceptance figures: stance feet slide less than 1 cm per step, nothing below the ground.
MAX_SLIDE_M = 0.01


def _assert_clean(cleaner: FootContactCleaner) -> None:
    assert cleaner.max_slide_m_ < MAX_SLIDE_M
    assert cleaner.min_height_m_ > -1e-6
    assert cleaner.max_contact_height_m_ < 0.01
    # Recomputed from the cleaned trajectory by the same FK, not taken from the cleaner's own bookkeeping.
    t = cleaner.trajectory_
    points = cleaner.kinematics.foot_points(t.root_pos_m, t.root_quat_wxyz, t.joint_angles_rad)
    assert points[..., 2].min() > -1e-6
    assert contact_slides_m(points, cleaner.contacts_).max() < MAX_SLIDE_M


def test_a_floating_sliding_clip_is_planted() -> None:
    # Root stuck at 0.5 m height and moving at the wrong speed: feet far below the ground and sliding.
    raw = synthetic_gait(n_cycles=3.0, speed_m_s=0.3)
    raw = raw.with_values(root_pos_m=raw.root_pos_m * np.array([1.0, 1.0, 0.0]) + np.array([0.0, 0.0, 0.5]))
    kin = LightKinematics(Skeleton.from_height(1.75))
    before = kin.foot_points(raw.root_pos_m, raw.root_quat_wxyz, raw.joint_angles_rad)
    assert before[..., 2].min() < -0.3
    cleaner = FootContactCleaner(kin).clean(raw)
    _assert_clean(cleaner)
    # Each foot is down a bit more than half the cycle, and the body walks on at a plausible speed.
    assert np.all((cleaner.stance_.mean(axis=0) > 0.5) & (cleaner.stance_.mean(axis=0) < 0.75))
    speed = np.diff(cleaner.trajectory_.root_pos_m[[0, -1], 0])[0] / raw.duration_s
    assert 0.9 < speed < 1.6


def test_a_cyclic_cycle_stays_a_clean_loop() -> None:
    traj = synthetic_gait(n_cycles=3.2, phase_offset=0.5)
    seg = GaitCycleSegmenter().segment(traj)
    loop = make_cyclic(extract_cycle(traj, seg.accepted_cycles_[0]))
    cleaner = FootContactCleaner().clean(loop)
    _assert_clean(cleaner)
    out = cleaner.trajectory_
    assert out.meta["cyclic"]
    np.testing.assert_allclose(out.joint_angles_rad[-1], out.joint_angles_rad[0], atol=1e-9)
    np.testing.assert_allclose(out.root_pos_m[-1, 1:], out.root_pos_m[0, 1:], atol=1e-9)
    assert out.root_pos_m[-1, 0] == pytest.approx(out.meta["stride_length_m"])
    # Looping it three times keeps the feet planted across the seams.
    again = FootContactCleaner(hold_planted_points=False, anchor_horizontal=False).clean(tile_cycle(out, 3))
    assert again.max_slide_m_ < MAX_SLIDE_M


def test_the_injected_body_is_the_one_cleaned() -> None:
    traj = synthetic_gait(n_cycles=2.0)
    small = FootContactCleaner(LightKinematics(Skeleton.from_height(1.5))).clean(traj)
    tall = FootContactCleaner(LightKinematics(Skeleton.from_height(1.9))).clean(traj)
    _assert_clean(small)
    _assert_clean(tall)
    # Same joint angles on a taller body: a higher pelvis and a longer stride.
    assert tall.trajectory_.root_pos_m[:, 2].mean() > small.trajectory_.root_pos_m[:, 2].mean() + 0.15
    travel = [c.trajectory_.root_pos_m[-1, 0] - c.trajectory_.root_pos_m[0, 0] for c in (small, tall)]
    assert travel[1] / travel[0] == pytest.approx(1.9 / 1.5, rel=0.05)


@pytest.mark.shared_data
@pytest.mark.parametrize(
    "skeleton",
    [Skeleton.deepmimic_humanoid3d(), Skeleton.from_height(1.75), twin_skeleton()],
    ids=["own", "winter-1.75m", "twin-1.75m"],
)
def test_deepmimic_walk_cleaned_on_its_own_and_other_bodies(shared_data_dir: Path, skeleton: Skeleton) -> None:
    walk = read_deepmimic(shared_data_dir / "motions/deepmimic/humanoid3d_walk.txt")
    raw_points = LightKinematics(skeleton).foot_points(walk.root_pos_m, walk.root_quat_wxyz, walk.joint_angles_rad)
    loop = make_cyclic(walk)
    cleaner = FootContactCleaner(LightKinematics(skeleton)).clean(loop)
    _assert_clean(cleaner)
    # On its own body the planted feet reproduce the capture's stride (1.24 m) within a few per cent.
    if skeleton.name == "DeepMimic humanoid3d":
        assert cleaner.trajectory_.meta["stride_length_m"] == pytest.approx(1.2386, rel=0.05)
        assert raw_points[..., 2].min() < 0.0  # the capture itself dips below the ground
