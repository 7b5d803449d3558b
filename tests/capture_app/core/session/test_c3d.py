"""C3D export read back with ezc3d: analogs, Plug-in Gait angle points, gait events, all on the clip clock."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from capture_app.core.session.analysis import WalkAnalysis
from capture_app.core.session.c3d import ANGLE_POINTS, export_c3d
from capture_app.core.signals import signals_from_clip
from sensor_drivers.recording.clipfile import read_clip

ezc3d = pytest.importorskip("ezc3d")


def test_c3d_round_trip(healthy_clip: Path, tmp_path: Path) -> None:
    clip = read_clip(healthy_clip)
    analysis = WalkAnalysis().analyze(clip)
    out = tmp_path / "walk.c3d"
    summary = export_c3d(analysis, clip, out)
    c3d = ezc3d.c3d(str(out))
    params = c3d["parameters"]

    # time: frame 1 is the clip clock's zero, 100 Hz points, 200 Hz analogs (the sensors' rate)
    assert c3d["header"]["points"]["frame_rate"] == 100.0
    assert c3d["header"]["analogs"]["frame_rate"] == 200.0
    n_frames = c3d["data"]["points"].shape[2]
    assert n_frames == summary["n_frames"] == round(analysis.kit_.time_s[-1] * 100) + 1

    # angles: Plug-in Gait labels, declared as angles in degrees, values as computed (signs per the convention)
    labels = list(params["POINT"]["LABELS"]["value"])
    assert labels == list(ANGLE_POINTS)
    assert list(params["POINT"]["ANGLES"]["value"]) == labels
    assert list(params["POINT"]["ANGLE_UNITS"]["value"]) == ["deg"]
    frames = np.round(analysis.kit_.time_s * 100).astype(int)
    knee = c3d["data"]["points"][0, labels.index("LKneeAngles"), frames]
    expected = analysis.angles_deg_["knee_flexion_l_deg"]
    knee_ok = np.isfinite(expected)
    np.testing.assert_allclose(knee[knee_ok], expected[knee_ok], atol=1e-3)
    assert np.isnan(knee[~knee_ok]).all()
    assert np.all(c3d["data"]["points"][1, labels.index("LKneeAngles"), frames[knee_ok]] == 0.0)  # not measured
    rotation = c3d["data"]["points"][2, labels.index("LPelvisAngles"), frames]
    pelvis = analysis.angles_deg_["pelvis_rotation_deg"]
    ok = np.isfinite(pelvis)
    np.testing.assert_allclose(rotation[ok], -pelvis[ok], atol=1e-3)  # left side forward is positive for LPelvis

    # analogs: the raw channels on the 200 Hz grid, with a validity channel
    analog_labels = list(params["ANALOG"]["LABELS"]["value"])
    assert "shank_l_gyr_x" in analog_labels
    assert "shank_l_valid" in analog_labels
    grid = signals_from_clip(clip, 200.0)
    index = np.round(grid.time_s * 200).astype(int)
    shank = grid.sites[next(s for s in grid.sites if s.value == "shank_l")]
    written = c3d["data"]["analogs"][0, analog_labels.index("shank_l_gyr_x"), index]
    valid = c3d["data"]["analogs"][0, analog_labels.index("shank_l_valid"), index] > 0.5
    np.testing.assert_array_equal(valid, shank.valid)
    np.testing.assert_allclose(written[valid], shank.gyr_rad_s[valid, 0], atol=1e-5)
    units = dict(zip(analog_labels, params["ANALOG"]["UNITS"]["value"], strict=True))
    assert units["shank_l_acc_x"] == "m/s^2"
    assert units["shank_l_gyr_x"] == "rad/s"

    # events: Foot Strike / Foot Off per side, at the analysis' times (clip clock)
    event = params["EVENT"]
    times = event["TIMES"]["value"][0] * 60 + event["TIMES"]["value"][1]
    written_events = sorted(zip(event["CONTEXTS"]["value"], event["LABELS"]["value"], np.round(times, 4),
                                strict=True))  # fmt: skip
    expected_events = sorted(
        ("Left" if e.side == "left" else "Right", {"ic": "Foot Strike", "fc": "Foot Off"}[e.kind], round(e.time_s, 4))
        for e in analysis.events_ if e.kind in ("ic", "fc")
    )
    assert len(written_events) == len(expected_events) == summary["n_events"] > 0
    for (c1, l1, t1), (c2, l2, t2) in zip(written_events, expected_events, strict=True):
        assert (c1, l1) == (c2, l2)
        assert abs(t1 - t2) < 1e-4
    assert float(params["PROCESSING"]["Height"]["value"][0]) == pytest.approx(1750.0)
    assert next(iter(params["SUBJECTS"]["NAMES"]["value"])).startswith("VIRTUAL-")
    with pytest.raises(FileExistsError):
        export_c3d(analysis, clip, out)


def test_c3d_without_angles(bad_clips: dict[str, Path], tmp_path: Path) -> None:
    clip = read_clip(bad_clips["standing"])
    analysis = WalkAnalysis().analyze(clip)
    summary = export_c3d(analysis, clip, tmp_path / "standing.c3d")
    c3d = ezc3d.c3d(str(tmp_path / "standing.c3d"))
    assert summary["points"] == []
    assert summary["n_events"] == 0
    assert c3d["data"]["analogs"].shape[1] == summary["n_analog_channels"] == 5 * 10
