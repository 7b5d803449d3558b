"""The offline walk analysis on virtual-patient clips with known truth, and on the issue's bad inputs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from capture_app.core.session.analysis import (
    ANALYZE_JSON_SCHEMA,
    WalkAnalysis,
    movement_onset_s,
    still_from_session_log,
)
from capture_app.core.session.replay import clip_items
from capture_app.core.session.stages import angle_names
from capture_app.core.verdict import Level
from sensor_drivers.recording.clipfile import ClipWriter, read_clip
from sensor_drivers.sim.clip_export import truth_path_for
from sensor_drivers.sim.truth import GroundTruth
from sensor_drivers.sites import Site

TOP_KEYS = {"schema", "clip", "level", "grid_rate_hz", "intervals", "events", "strides", "metrics", "missing",
            "context", "joint_angles", "placement", "calibration", "verdicts"}  # fmt: skip


def _strict_json(doc: dict) -> dict:
    """The document survives strict JSON (no NaN) unchanged."""
    return json.loads(json.dumps(doc, allow_nan=False))


@pytest.fixture(scope="module")
def healthy(healthy_clip: Path) -> WalkAnalysis:
    return WalkAnalysis().analyze(read_clip(healthy_clip))


def test_events_strides_and_metrics_against_the_truth(healthy: WalkAnalysis, healthy_clip: Path) -> None:
    truth = GroundTruth.load(truth_path_for(healthy_clip))
    assert healthy.level_ is Level.OK, [v.code for v in healthy.verdicts_]
    for side in ("left", "right"):
        true_ic = np.array(truth.events_of(side, "ic"))
        found = np.array([e.time_s for e in healthy.events_ if e.side == side and e.kind == "ic"])
        assert found.size >= true_ic.size - 1  # the first step of a walk may be too small to detect
        errors = [np.min(np.abs(true_ic - t)) for t in found]
        assert np.mean(errors) <= 0.020
        assert max(errors) <= 0.05
        strides = [s for s in healthy.strides_ if s.side == side]
        assert len(strides) >= len([s for s in truth.strides if s.side == side]) - 2
    assert abs(healthy.metrics_["cadence_steps_min"] / truth.cadence_steps_per_min - 1) < 0.02
    assert set(healthy.metrics_) | set(healthy.missing_)  # every metric is either given or explained
    for name in healthy.missing_:
        assert healthy.missing_[name].message


def test_json_document(healthy: WalkAnalysis) -> None:
    doc = _strict_json(healthy.to_json())
    assert set(doc) >= TOP_KEYS
    assert doc["schema"] == ANALYZE_JSON_SCHEMA == "stridetwin.analyze/1"
    assert doc["strides"], "strides"
    for stride in doc["strides"]:
        assert stride["side"] in ("left", "right")
        assert isinstance(stride["ic_s"], float)
    # stride times are on the clip clock: inside the recording, after the still period
    still_end = doc["intervals"]["still_s"][1]
    assert all(still_end < s["ic_s"] < doc["clip"]["duration_s"] for s in doc["strides"])
    units = ("_s", "_m", "_m_s", "_pct", "_steps_min", "_ratio", "_pct_l", "_pct_r")
    for name in doc["metrics"]:
        assert name.startswith("n_") or name.endswith(units), name
    assert doc["joint_angles"]["names"] == list(angle_names())
    for name, r in doc["joint_angles"]["ranges"].items():
        assert name.endswith("_deg")
        assert r["min_deg"] <= r["max_deg"]
        assert r["range_deg"] == pytest.approx(r["max_deg"] - r["min_deg"], abs=1e-5)
    assert doc["calibration"]["schema"] == "stridetwin.calibration/1"
    assert doc["clip"]["patient"]["pseudonym"].startswith("VIRTUAL-")
    assert doc["placement"]["proposed_assignment"] == doc["clip"]["sites"]


def test_angles_csv_columns_and_clip_clock(healthy: WalkAnalysis, healthy_clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "angles.csv"
    n_rows = healthy.write_angles_csv(out)
    with out.open() as fh:
        rows = list(csv.reader(fh))
    header = rows[0]
    assert header[0] == "time_s"
    assert {"knee_flexion_l_deg", "knee_flexion_r_deg", "hip_flexion_l_deg", "hip_flexion_r_deg"} <= set(header)
    assert len(rows) == n_rows + 1
    time_s = np.array([float(r[0]) for r in rows[1:]])
    np.testing.assert_allclose(np.diff(time_s), 0.01, atol=1e-6)
    # the knee angle over time matches the simulation's truth on the same clock (a clock offset would not)
    truth = GroundTruth.load(truth_path_for(healthy_clip))
    column = header.index("knee_flexion_l_deg")
    knee = np.array([float(r[column]) if r[column] else np.nan for r in rows[1:]])
    steady = (time_s > truth.steady_start_s) & (time_s < truth.steady_end_s) & np.isfinite(knee)
    true_knee = np.interp(time_s[steady], truth.time_s, truth.joint_angles_deg["knee_flexion_l_deg"])
    assert np.sqrt(np.mean((knee[steady] - true_knee) ** 2)) < 5.0
    shifted = np.interp(time_s[steady] + 0.1, truth.time_s, truth.joint_angles_deg["knee_flexion_l_deg"])
    assert np.sqrt(np.mean((knee[steady] - shifted) ** 2)) > np.sqrt(np.mean((knee[steady] - true_knee) ** 2))
    with pytest.raises(FileExistsError):
        healthy.write_angles_csv(out)


def test_hemiparetic_walk(hemiparetic_clip: Path) -> None:
    analysis = WalkAnalysis().analyze(read_clip(hemiparetic_clip))
    truth = GroundTruth.load(truth_path_for(hemiparetic_clip))
    assert analysis.clip_.affected_side == "right"
    assert analysis.level_ is not Level.FAIL, [v.code for v in analysis.verdicts_]
    assert {s.side for s in analysis.strides_} == {"left", "right"}
    assert abs(analysis.metrics_["cadence_steps_min"] / truth.cadence_steps_per_min - 1) < 0.02


@pytest.mark.parametrize(("name", "codes"), [
    ("no_thighs", {"analysis.sites_missing", "placement.missing", "angles.missing_segment"}),
    ("standing", {"gait.standing_still"}),
    ("shanks_only_standing", {"gait.standing_still", "analysis.sites_missing"}),
    ("nan", {"analysis.invalid_samples"}),
    ("saturated", {"analysis.saturated"}),
    ("lost_mid_walk", {"gait.sensor_lost"}),
    ("short", {"gait.walk_too_short"}),
])  # fmt: skip
def test_bad_inputs_give_verdicts_and_partial_results(name: str, codes: set[str], bad_clips: dict[str, Path]) -> None:
    analysis = WalkAnalysis().analyze(read_clip(bad_clips[name]))
    found = {v.code for v in analysis.verdicts_}
    assert codes <= found, found
    assert "analysis.stage_failed" not in found
    doc = _strict_json(analysis.to_json())
    assert set(doc) >= TOP_KEYS
    # every metric not given says why, and every angle not given too
    assert all(v["message"] and v["action"] is not None for v in doc["missing"].values())
    assert set(doc["joint_angles"]["ranges"]) | set(doc["joint_angles"]["missing"]) == set(angle_names())
    if name == "no_thighs":
        assert analysis.metrics_["cadence_steps_min"] > 0  # gait needs only the shanks
        assert "pelvis_tilt_deg" in analysis.angle_ranges_
        assert "knee_flexion_l_deg" in analysis.angles_missing_
    if name in ("nan", "lost_mid_walk", "saturated"):
        assert analysis.strides_
        assert analysis.angle_ranges_
    if name == "standing":
        assert not analysis.strides_
        assert analysis.intervals_.still_s is not None
        assert analysis.intervals_.walking_s is None


def test_a_clip_without_samples_and_an_unknown_site(tmp_path: Path) -> None:
    path = tmp_path / "empty.stclip"
    with ClipWriter(path, sensors=[{"sensor_id": "A", "site": "pelvis"}, {"sensor_id": "B", "site": "wrist"}]):
        pass
    analysis = WalkAnalysis().analyze(read_clip(path))
    assert [v.code for v in analysis.verdicts_] == ["analysis.no_data"]
    assert analysis.level_ is Level.FAIL
    assert _strict_json(analysis.to_json())["events"] == []


def test_an_unfinished_clip_is_analysed_up_to_its_end(healthy_clip: Path, tmp_path: Path) -> None:
    source = read_clip(healthy_clip)
    path = tmp_path / "open.stclip"
    writer = ClipWriter(path, metadata={"protocol": {"walkway_length_m": 6.0}}, sensors=[
        {"sensor_id": s.sensor_id, "site": str(s.site), "nominal_rate_hz": 200.0} for s in source.sensors.values()])
    try:
        for item in clip_items(source):
            if item.host_time_s > 10.0:
                break
            writer.add(item)
        writer.flush()  # on disk, as a crash would leave it: no footer
        clip = read_clip(path, allow_unfinished=True)
        analysis = WalkAnalysis().analyze(clip)
    finally:
        writer.close()
    assert not clip.finished
    assert "clip.unfinished" in {v.code for v in analysis.verdicts_}
    assert analysis.strides_
    assert max(s.next_ic_s for s in analysis.strides_) < 10.0


def test_still_interval_from_the_session_log(healthy: WalkAnalysis) -> None:
    log = [{"time_s": 0.01, "from": "disconnected", "to": "connected"},
           {"time_s": 0.4, "from": "connected", "to": "placement_check"},
           {"time_s": 1.0, "from": "placement_check", "to": "still"},
           {"time_s": 2.4, "from": "still", "to": "walking"}]  # fmt: skip
    assert still_from_session_log(log) == (1.0, 2.4)
    assert still_from_session_log([]) is None
    analysis = WalkAnalysis().analyze_signals(healthy.kit_, 6.0, log)
    assert analysis.intervals_.source == "session_log"
    assert analysis.intervals_.still_s == (1.0, 2.4)
    onset = movement_onset_s(healthy.kit_, healthy.events_[0].time_s)
    assert 2.3 < onset < healthy.events_[0].time_s  # the virtual patient starts moving at 2.5 s
    assert {s.side for s in analysis.strides_} == {"left", "right"}
    assert analysis.kit_.sites[Site.PELVIS].sensor_id == "sim-pelvis"


@pytest.mark.shared_data
def test_the_real_opensense_walk(shared_data_dir: Path, tmp_path: Path) -> None:
    """The OpenSense Xsens walk (acceleration and orientation only, about 4.5 s standing, then walking round a room):
    the angular velocity is derived from the orientation, so gait events are found; the intervals match the
    recording's."""
    from sensor_drivers.recording.importers import import_files

    sites = {"00B42279": "pelvis", "00B4227C": "thigh_r", "00B4227D": "shank_r", "00B421EE": "thigh_l",
             "00B421ED": "shank_l"}  # fmt: skip
    folder = shared_data_dir / "imu" / "opensense_xsens" / "OpenSenseExampleIMUData"
    path = tmp_path / "opensense.stclip"
    import_files("xsens", [next(folder.glob(f"*_{key}.txt")) for key in sites], path, sites=sites)
    analysis = WalkAnalysis().analyze(read_clip(path))
    codes = {v.code for v in analysis.verdicts_}
    assert "analysis.stage_failed" not in codes
    assert "analysis.channel_missing" not in codes  # orientation stands in for the gyroscope
    still, walking = analysis.intervals_.still_s, analysis.intervals_.walking_s
    assert 4.0 < still[1] < 4.8
    assert 4.5 < walking[0] < 5.2
    for side in ("left", "right"):
        assert sum(1 for s in analysis.strides_ if s.side == side) >= 8
    assert "gait.turn_detected" in codes  # the walk goes round a room
    assert {"knee_flexion_l_deg", "knee_flexion_r_deg"} <= set(analysis.angles_deg_)
