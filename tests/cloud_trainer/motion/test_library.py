"""The healthy motion library: the shipped file, nearest-neighbour queries, time resampling, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cloud_trainer.motion.build_library import CLEAN_RATE_HZ, _clip, _looped_cycle
from cloud_trainer.motion.cleanup import FootContactCleaner
from cloud_trainer.motion.cycles import extract_cycle, make_cyclic
from cloud_trainer.motion.errors import LibraryError
from cloud_trainer.motion.kinematics import LightKinematics
from cloud_trainer.motion.library import (
    LIBRARY_BODY_HEIGHT_M,
    LIBRARY_PATH,
    N_CYCLE_FRAMES,
    HealthyMotionLibrary,
    LibraryClip,
    library_kinematics,
)
from cloud_trainer.motion.readers import read_deepmimic
from cloud_trainer.motion.segmentation import GaitCycleSegmenter, heel_forward_distance
from cloud_trainer.motion.twin_adapter import twin_skeleton
from cloud_trainer.twin.anthropometry import Anthropometry

from .gait_fixtures import synthetic_gait

ATTRIBUTION = LIBRARY_PATH.parent / "ATTRIBUTION.md"


@pytest.fixture(scope="module")
def shipped() -> HealthyMotionLibrary:
    return HealthyMotionLibrary.load()


def test_shipped_library_is_small_attributed_and_healthy(shipped: HealthyMotionLibrary) -> None:
    assert LIBRARY_PATH.stat().st_size < 2_000_000
    text = ATTRIBUTION.read_text()
    assert "xbpeng/DeepMimic" in text
    assert "robfiras/loco-mujoco" in text
    assert text.count("Permission is hereby granted") == 2
    assert shipped.body_height_m == LIBRARY_BODY_HEIGHT_M
    sources = {c.source for c in shipped.clips}
    assert not any("opensim" in s for s in sources)  # no license: never shipped
    typical = [c for c in shipped.clips if not c.flags["atypical"]]
    assert len(typical) >= 12
    for clip in typical:
        assert 0.8 < clip.speed_m_s < 1.8
        assert 1.0 < clip.stride_length_m < 1.8
        assert clip.flags["cleanup_max_slide_m"] < 0.01
        assert clip.source in text or Path(clip.source).name in text


def test_shipped_clips_are_loops_starting_at_right_heel_strike(shipped: HealthyMotionLibrary) -> None:
    kin = library_kinematics()
    for clip in shipped.clips:
        t = clip.trajectory
        assert t.n_frames == N_CYCLE_FRAMES + 1
        assert t.duration_s == pytest.approx(clip.period_s)
        np.testing.assert_allclose(t.joint_angles_rad[-1], t.joint_angles_rad[0], atol=1e-5)
        assert t.root_pos_m[-1, 0] == pytest.approx(clip.stride_length_m, abs=1e-5)
        # Phase 0 is the right heel strike: the heel is farthest ahead of the pelvis at the start (or the end).
        heel = heel_forward_distance(t, kin, "r")
        assert min(np.argmax(heel), N_CYCLE_FRAMES - np.argmax(heel)) <= 0.04 * N_CYCLE_FRAMES, clip.clip_id
        if not clip.flags["atypical"]:
            points = kin.foot_points(t.root_pos_m, t.root_quat_wxyz, t.joint_angles_rad)
            assert points[..., 2].min() > -2e-3, clip.clip_id  # float32 storage and resampling, not penetration


def small_library() -> HealthyMotionLibrary:
    """Three synthetic clips with known (speed, stride): slow, medium, fast."""
    clips = []
    for name, period, speed in (("slow", 1.4, 0.7), ("medium", 1.1, 1.1), ("fast", 0.95, 1.5)):
        gait = synthetic_gait(period_s=period, n_cycles=2.2, speed_m_s=speed, phase_offset=0.5)
        cycle = make_cyclic(extract_cycle(gait, GaitCycleSegmenter().segment(gait).accepted_cycles_[0]))
        # The synthetic root already walks at the named speed; keep it (no clean-up) so speeds are known exactly.
        clips.append(_clip(cycle, name, "synthetic", "none", {"mirrored": False, "atypical": name == "fast"}))
    return HealthyMotionLibrary(clips, LIBRARY_BODY_HEIGHT_M)


def test_nearest_clip_in_normalised_units() -> None:
    lib = small_library()
    strides = {c.clip_id: c.stride_length_m for c in lib.clips}
    assert lib.nearest(0.75, strides["slow"])[0].clip_id == "slow"
    assert lib.nearest(1.0, 1.2)[0].clip_id == "medium"
    # Distance is normalised by the goal ranges (1.0 m/s, 1.2 m): 0.3 m/s off counts like 0.36 m off.
    clip, distance = lib.nearest(1.4, strides["medium"])
    assert clip.clip_id == "medium"  # 'fast' is atypical and skipped …
    assert distance == pytest.approx(0.3 / 1.0, rel=1e-6)
    assert lib.nearest(1.5, strides["fast"], include_atypical=True)[0].clip_id == "fast"  # … unless asked for


def test_query_matches_the_speed_exactly_and_keeps_the_stride() -> None:
    lib = small_library()
    medium = next(c for c in lib.clips if c.clip_id == "medium")
    for target in (0.9, 1.1, 1.3):
        ref = lib.query(target, medium.stride_length_m)
        assert ref.meta["library_clip"] == "medium"
        travelled = ref.root_pos_m[-1, 0] - ref.root_pos_m[0, 0]
        assert travelled == pytest.approx(medium.stride_length_m, abs=1e-5)  # stride kept
        assert travelled / ref.duration_s == pytest.approx(target, rel=1e-12)  # speed exact
        assert ref.meta["cadence_ratio"] == pytest.approx(target / medium.speed_m_s)
        np.testing.assert_allclose(ref.joint_angles_rad, medium.trajectory.joint_angles_rad)  # poses unchanged


def test_query_for_another_body_scales_the_geometry(shipped: HealthyMotionLibrary) -> None:
    medium = shipped.clips[0]
    lib = HealthyMotionLibrary([medium], shipped.body_height_m)
    k = 1.5 / LIBRARY_BODY_HEIGHT_M
    ref = lib.query(1.0, medium.stride_length_m * k, body_height_m=1.5)
    assert ref.meta["body_scale"] == pytest.approx(k)
    assert ref.root_pos_m[-1, 0] == pytest.approx(medium.stride_length_m * k, abs=1e-5)
    assert ref.root_pos_m[-1, 0] / ref.duration_s == pytest.approx(1.0)
    # Geometric similarity: the twin scales every length with height, so on a smaller patient the scaled clip's feet
    # are the library body's feet scaled by k: whatever was planted stays planted, nothing goes below the ground.
    t = medium.trajectory
    on_library_body = library_kinematics().foot_points(t.root_pos_m, t.root_quat_wxyz, t.joint_angles_rad)
    small = LightKinematics(twin_skeleton(Anthropometry(height_m=1.5, mass_kg=55.0, sex="male")))
    on_small_body = small.foot_points(ref.root_pos_m, ref.root_quat_wxyz, ref.joint_angles_rad)
    np.testing.assert_allclose(on_small_body, k * on_library_body, atol=1e-9)


@pytest.mark.parametrize(
    ("speed", "stride", "message"),
    [
        (0.0, 1.2, r"target speed 0.0 m/s outside the accepted 0.1–2.5 m/s"),
        (float("nan"), 1.2, r"target speed nan m/s outside"),
        (1.0, 3.0, r"target stride length 3.0 m outside the accepted 0.2–2.2 m"),
    ],
)
def test_query_refuses_impossible_targets(shipped: HealthyMotionLibrary, speed: float, stride: float, message) -> None:
    with pytest.raises(LibraryError, match=message):
        shipped.query(speed, stride)


def test_library_files_that_cannot_be_read(tmp_path: Path) -> None:
    with pytest.raises(LibraryError, match=r"no healthy library; build it with 'python -m cloud_trainer\.motion"):
        HealthyMotionLibrary.load(tmp_path / "missing.npz")
    (tmp_path / "corrupt.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(LibraryError, match=r"corrupt\.npz: not a readable healthy-library npz"):
        HealthyMotionLibrary.load(tmp_path / "corrupt.npz")
    lib = small_library()
    lib.save(tmp_path / "ok.npz")
    with np.load(tmp_path / "ok.npz") as data:
        arrays = dict(data)
    np.savez(tmp_path / "old.npz", **{**arrays, "format_version": np.array(0)})
    with pytest.raises(LibraryError, match="format version 0, this code reads 1"):
        HealthyMotionLibrary.load(tmp_path / "old.npz")
    angles = arrays["joint_angles_rad"].copy()
    angles[1, 5, 3] = np.nan
    np.savez(tmp_path / "nan.npz", **{**arrays, "joint_angles_rad": angles})
    with pytest.raises(LibraryError, match="clip medium is corrupt"):
        HealthyMotionLibrary.load(tmp_path / "nan.npz")


def test_save_load_round_trip(tmp_path: Path) -> None:
    lib = small_library()
    lib.save(tmp_path / "lib.npz")
    back = HealthyMotionLibrary.load(tmp_path / "lib.npz")
    assert [c.clip_id for c in back.clips] == ["slow", "medium", "fast"]
    assert back.clips[2].flags["atypical"] is True
    for a, b in zip(lib.clips, back.clips, strict=True):
        assert b.speed_m_s == a.speed_m_s
        np.testing.assert_allclose(b.trajectory.joint_angles_rad, a.trajectory.joint_angles_rad, atol=1e-6)


def test_mean_cycle_and_coverage(shipped: HealthyMotionLibrary) -> None:
    mean = shipped.mean_cycle_rad()
    assert mean.shape == (101, 15)
    assert np.all(np.isfinite(mean))
    knee = np.degrees(mean[:, 6])
    assert 45 < knee.max() < 80  # swing peak of a healthy knee
    coverage = shipped.coverage()
    assert coverage["speed_m_s"][0] < 1.0 < coverage["speed_m_s"][1]
    assert 0.0 < coverage["goal_box_within_0.2"] < 1.0
    assert len(shipped.table()) == len(shipped.clips)


@pytest.mark.shared_data
def test_shipped_walk_clip_is_reproduced_from_the_source(shipped: HealthyMotionLibrary, shared_data_dir: Path) -> None:
    kin = library_kinematics()
    walk = read_deepmimic(shared_data_dir / "motions/deepmimic/humanoid3d_walk.txt")
    assert walk.sampling_rate_hz < CLEAN_RATE_HZ
    cleaned = FootContactCleaner(kin).clean(_looped_cycle(walk, kin)).trajectory_
    rebuilt = _clip(cleaned, "walk", "", "", {})
    stored = next(c for c in shipped.clips if c.clip_id == "humanoid3d_walk@loop")
    assert rebuilt.speed_m_s == pytest.approx(stored.speed_m_s, rel=1e-9)
    assert rebuilt.stride_length_m == pytest.approx(stored.stride_length_m, rel=1e-9)
    np.testing.assert_allclose(rebuilt.trajectory.joint_angles_rad, stored.trajectory.joint_angles_rad, atol=1e-5)


def test_library_needs_clips() -> None:
    with pytest.raises(LibraryError, match="at least one clip"):
        HealthyMotionLibrary([])
    assert isinstance(small_library().clips[0], LibraryClip)
