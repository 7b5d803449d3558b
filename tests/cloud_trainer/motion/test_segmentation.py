"""Gait-cycle segmentation: known periods, turns, inconsistent strides, too-short clips, the DeepMimic long walks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cloud_trainer.motion.errors import MotionQualityError
from cloud_trainer.motion.joints import JOINT_INDEX
from cloud_trainer.motion.kinematics import FOOT_POINT_INDEX, LightKinematics, Skeleton
from cloud_trainer.motion.readers import read_deepmimic
from cloud_trainer.motion.segmentation import GaitCycleSegmenter, dominant_frequency_hz

from .gait_fixtures import synthetic_gait


def test_dominant_frequency_of_a_known_sinusoid() -> None:
    t = np.arange(0, 12, 1 / 100)
    signal = np.sin(2 * np.pi * 0.83 * t) + 0.3 * np.sin(2 * np.pi * 1.66 * t) + 0.05 * t
    assert dominant_frequency_hz(signal, 100.0, (0.3, 1.6)) == pytest.approx(0.83, abs=0.005)


@pytest.mark.parametrize("period_s", [0.9, 1.1, 1.6])
def test_synthetic_gait_with_known_period(period_s: float) -> None:
    # Heel strikes at (k + 0.5) periods: 7 of them inside 7.2 periods, hence 6 complete cycles.
    traj = synthetic_gait(period_s=period_s, n_cycles=7.2, sampling_rate_hz=60.0, phase_offset=0.5)
    seg = GaitCycleSegmenter().segment(traj)
    assert seg.dominant_frequency_hz_ == pytest.approx(1.0 / period_s, rel=0.02)
    assert len(seg.cycles_) == 6
    assert len(seg.accepted_cycles_) == 6
    true_strikes = (np.arange(7) + 0.5) * period_s
    np.testing.assert_allclose(traj.time_s[seg.events_], true_strikes, atol=0.05 * period_s)
    for cycle in seg.accepted_cycles_:
        assert cycle.period_s == pytest.approx(period_s, abs=1.5 / 60)
        assert cycle.heading_change_deg < 1.0
        assert cycle.speed_m_s == pytest.approx(1.2, rel=0.03)
    assert seg.mean_cycle_rad_.shape == (101, 15)


def test_turning_cycles_are_excluded() -> None:
    traj = synthetic_gait(n_cycles=6.0, turn_rate_deg_s=20.0, phase_offset=0.5)
    seg = GaitCycleSegmenter(min_cycles=0).segment(traj)
    assert seg.cycles_
    assert not seg.accepted_cycles_
    assert all(c.reason.startswith("turning") for c in seg.cycles_)
    with pytest.raises(MotionQualityError, match=r"0 usable gait cycles \(of 5 found; rejected: turning.*at least 2"):
        GaitCycleSegmenter(min_cycles=2).segment(traj)


def test_an_inconsistent_stride_is_excluded() -> None:
    traj = synthetic_gait(n_cycles=8.2, phase_offset=0.5)
    angles = traj.joint_angles_rad.copy()
    odd = (traj.time_s > 4.0) & (traj.time_s < 4.9)  # inside the 4th cycle (3.85 s to 4.95 s)
    angles[odd, JOINT_INDEX["knee_flexion_l"]] += np.radians(35.0)
    angles[odd, JOINT_INDEX["hip_adduction_l"]] += np.radians(15.0)
    seg = GaitCycleSegmenter().segment(traj.with_values(joint_angles_rad=angles))
    rejected = [c for c in seg.cycles_ if not c.accepted]
    assert len(rejected) == 1
    assert rejected[0].start_time_s == pytest.approx(3.85, abs=0.1)
    assert rejected[0].reason.startswith("inconsistent")


def test_too_short_a_clip_is_refused_naming_the_minimum() -> None:
    traj = synthetic_gait(n_cycles=0.5)
    with pytest.raises(MotionQualityError, match=r"cannot hold one gait cycle.*at least 3 full strides"):
        GaitCycleSegmenter(min_cycles=3).segment(traj)


def test_too_few_strides_are_refused_naming_the_minimum() -> None:
    traj = synthetic_gait(n_cycles=3.2, phase_offset=0.5)
    with pytest.raises(MotionQualityError, match=r"2 usable gait cycles \(of 2 found\); at least 3 needed"):
        GaitCycleSegmenter(min_cycles=3).segment(traj)


def _swing_count(trajectory) -> int:
    """Independent count of right strides: swings of the right heel in the world, from the DeepMimic body's FK."""
    points = LightKinematics(Skeleton.deepmimic_humanoid3d()).foot_points(
        trajectory.root_pos_m, trajectory.root_quat_wxyz, trajectory.joint_angles_rad
    )
    heel_z = points[:, FOOT_POINT_INDEX["heel_r"], 2]
    high = heel_z > np.percentile(heel_z, 5) + 0.08
    return int(np.count_nonzero(np.diff(high.astype(int)) == 1))


@pytest.mark.shared_data
@pytest.mark.parametrize(("name", "n_straight"), [("long_walk1", 5), ("long_walk3", 6)])
def test_deepmimic_long_walks(shared_data_dir: Path, name: str, n_straight: int) -> None:
    traj = read_deepmimic(shared_data_dir / f"motions/deepmimic/humanoid3d_{name}.txt")
    seg = GaitCycleSegmenter().segment(traj)
    # Every stride is found (against swings of the heel counted in the world frame) …
    assert abs(len(seg.events_) - _swing_count(traj)) <= 1
    # … and only the straight, consistent ones are kept (the walks turn most of the time).
    assert len(seg.accepted_cycles_) == n_straight
    for cycle in seg.accepted_cycles_:
        assert cycle.heading_change_deg <= 10.0
        assert 0.9 < cycle.period_s < 1.4
        assert 0.9 < cycle.speed_m_s < 1.6


@pytest.mark.shared_data
def test_deepmimic_long_walk2_turns_throughout(shared_data_dir: Path) -> None:
    traj = read_deepmimic(shared_data_dir / "motions/deepmimic/humanoid3d_long_walk2.txt")
    with pytest.raises(MotionQualityError, match=r"0 usable gait cycles \(of 20 found; rejected: turning"):
        GaitCycleSegmenter().segment(traj)
