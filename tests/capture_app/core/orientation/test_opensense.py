"""The real OpenSense Xsens walk (device orientations, no gyroscope): the pipeline runs end to end and its hip and
knee ranges are physiological. There is no joint-angle truth for this recording (docs/joint-angles.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.accuracy_angles import opensense_kit, opensense_ranges
from capture_app.core.orientation.joint_angles import ANGLE_NAMES
from capture_app.core.orientation.pipeline import OrientationPipeline
from sensor_drivers.sites import Site

pytestmark = pytest.mark.shared_data


def test_opensense_walk_gives_physiological_ranges(shared_data_dir: Path, tmp_path: Path) -> None:
    kit = opensense_kit(shared_data_dir, tmp_path)
    pipeline = OrientationPipeline().estimate(kit)
    # The device's own orientation is used (no gyroscope in the export), its rate derived from it.
    assert not pipeline._fusion.smoothed_sites_
    assert np.isfinite(pipeline._fusion.gyr_rad_s_[Site.SHANK_L][1:]).mean() > 0.95
    assert set(pipeline.angles_deg_) == set(ANGLE_NAMES)
    ranges = opensense_ranges(pipeline, kit)["walk"]
    for side in ("l", "r"):
        knee = ranges[f"knee_flexion_{side}_deg"]
        hip = ranges[f"hip_flexion_{side}_deg"]
        # Healthy walking: knee peak flexion in swing 55-70°, hip flexion-extension range 35-45°
        # (OpenSim's normal gait, crouch_gait/normal.mot: knee 2-58°, hip -17..25°).
        assert 50.0 < knee["p99"] < 75.0
        assert 25.0 < hip["p99"] - hip["p1"] < 55.0
        assert 15.0 < hip["p99"] < 35.0
    # The knee is not a clean hinge in this recording, and the walk turns: both are said.
    codes = {v.code for v in pipeline.verdicts_}
    assert {"calibration.poor_hinge_fit", "calibration.walk_not_straight"} <= codes
