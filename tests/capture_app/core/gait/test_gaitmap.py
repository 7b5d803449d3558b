"""Real foot-IMU recordings with labelled events (gaitmap example data): the event and stride logic where it transfers.

These are foot sensors: the documented medio-lateral axis replaces the PCA axis (bench/accuracy_gait.py explains why);
the event rules, strides and turn detection are the product's own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.accuracy_gait import (
    GAITMAP_RATE_HZ,
    foot_kit,
    foot_swings_and_strides,
    load_gaitmap_events,
    load_gaitmap_imu,
)

pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def gaitmap_dir(shared_data_dir: Path) -> Path:
    folder = shared_data_dir / "imu" / "gaitmap_foot"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found")
    return folder


def test_events_and_strides_against_the_labels(gaitmap_dir: Path) -> None:
    imu = load_gaitmap_imu("imu_sample.csv", gaitmap_dir)
    labels = load_gaitmap_events(gaitmap_dir)
    kit = foot_kit(imu, GAITMAP_RATE_HZ, 100.0)  # on the app's 100 Hz grid
    swings, segmentation = foot_swings_and_strides(kit)
    for side in ("left", "right"):
        for kind, column, max_mean_s in (("ic", "ic", 0.03), ("fc", "tc", 0.02)):
            true = labels[side][column] / GAITMAP_RATE_HZ
            found = np.array([getattr(s, f"{kind}_s") for s in swings[side] if getattr(s, f"{kind}_s") is not None])
            error = np.array([found[np.argmin(np.abs(found - t))] - t for t in true])
            assert np.all(np.abs(error) < 0.1), f"{side} {kind}: a labelled event was not found"
            assert abs(error.mean()) < max_mean_s, f"{side} {kind}: mean error {1000 * error.mean():.0f} ms"
    # the walker turns half-way (at about 16–19 s) and again after the second 20 m (from about 33 s); the strides in
    # between are straight
    strides = segmentation.strides_
    turning = [s for s in strides if s.excluded == "turn"]
    assert all(14.0 < s.ic_s < 20.0 or s.ic_s > 32.0 for s in turning)
    middle = [s for s in strides if s.side == "left" and 15.5 < s.ic_s < 18.5]
    assert sum(s.heading_change_deg for s in middle) == pytest.approx(180.0, abs=30.0)
    straight = [abs(s.heading_change_deg) for s in strides if 20.0 < s.ic_s < 31.0]
    assert max(straight) < 15.0
