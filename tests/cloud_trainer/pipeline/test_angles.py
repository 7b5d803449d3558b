"""Predicted joint angles use the bedside analysis's names, order, signs and units: checked through MuJoCo's forward
kinematics and the capture core's own joint-angle code on random poses."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from capture_app.core.orientation.joint_angles import ANGLE_NAMES, joint_angles_deg
from cloud_trainer.pipeline.angles import (
    ANALYZE_ANGLE_COLUMNS,
    ANGLE_COLUMNS,
    angles_deg_from_qpos,
    read_angles_csv,
    write_angles_csv,
)
from cloud_trainer.twin.constants import JOINT_NAMES, JOINT_RANGES_DEG, N_ROOT_QPOS
from cloud_trainer.twin.model import build_twin
from sensor_drivers.sim.truth import joint_angles_deg as truth_joint_angles_deg


def _random_poses(model, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    qpos = np.tile(model.key("stand").qpos, (n, 1))
    axis = rng.normal(size=(n, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    angle = np.deg2rad(rng.uniform(-25, 25, n))  # pelvis tilts, obliquities and rotations of walking and more
    qpos[:, 3:7] = np.column_stack([np.cos(angle / 2), np.sin(angle / 2)[:, None] * axis])
    for j, name in enumerate(JOINT_NAMES):
        lo, hi = JOINT_RANGES_DEG[name.rsplit("_", 1)[0] if name.endswith(("_r", "_l")) else name]
        qpos[:, N_ROOT_QPOS + j] = np.deg2rad(rng.uniform(max(lo, -60), min(hi, 60), n))
    return qpos


def _segment_rotations(model, qpos: np.ndarray) -> dict[str, np.ndarray]:
    data = mujoco.MjData(model)
    names = ("pelvis", "thigh_l", "thigh_r", "shank_l", "shank_r", "foot_l", "foot_r")
    out = {name: np.empty((len(qpos), 3, 3)) for name in names}
    for i, q in enumerate(qpos):
        data.qpos[:] = q
        mujoco.mj_kinematics(model, data)
        for name in names:
            out[name][i] = data.xmat[model.body(name).id].reshape(3, 3)
    return out


def test_columns_are_those_of_analyze():
    assert ANALYZE_ANGLE_COLUMNS == ANGLE_NAMES
    assert ANGLE_COLUMNS[: len(ANGLE_NAMES)] == ANGLE_NAMES
    assert all(c.endswith("_deg") for c in ANGLE_COLUMNS)


def test_random_poses_match_the_capture_core_and_the_virtual_patient_truth():
    model = build_twin().model
    qpos = _random_poses(model, 200)
    rotations = _segment_rotations(model, qpos)
    ours = angles_deg_from_qpos(qpos)
    capture, verdicts = joint_angles_deg({k: v for k, v in rotations.items() if not k.startswith("foot")})
    assert not verdicts
    for name in ANGLE_NAMES:
        np.testing.assert_allclose(ours[name], capture[name], atol=1e-9, err_msg=name)
    truth = truth_joint_angles_deg(rotations)
    for name in ANGLE_COLUMNS:
        np.testing.assert_allclose(ours[name], truth[name], atol=1e-9, err_msg=name)


@pytest.mark.parametrize(
    ("hinge", "column", "degrees"),
    [
        ("hip_flexion_r", "hip_flexion_r_deg", 30.0),
        ("hip_adduction_l", "hip_adduction_l_deg", 8.0),
        ("hip_rotation_r", "hip_rotation_r_deg", -12.0),
        ("knee_flexion_l", "knee_flexion_l_deg", 55.0),
        ("ankle_dorsiflexion_r", "ankle_dorsiflexion_r_deg", 10.0),
    ],
)
def test_a_hinge_angle_is_its_column_in_degrees(hinge, column, degrees):
    qpos = build_twin().model.key("stand").qpos.copy()
    qpos[N_ROOT_QPOS + JOINT_NAMES.index(hinge)] = np.deg2rad(degrees)
    angles = angles_deg_from_qpos(qpos)
    assert angles[column][0] == pytest.approx(degrees, abs=1e-9)
    others = [c for c in ANGLE_COLUMNS if c != column]
    assert all(abs(angles[c][0]) < 1e-9 for c in others)


def test_pelvis_tipped_forward_is_anterior_tilt_and_left_side_up_is_positive_obliquity():
    qpos = np.tile(build_twin().model.key("stand").qpos, (2, 1))
    a = np.deg2rad(10.0)
    qpos[0, 3:7] = [np.cos(a / 2), 0.0, np.sin(a / 2), 0.0]  # +10° about +y: the pelvis's front goes down
    qpos[1, 3:7] = [np.cos(a / 2), np.sin(a / 2), 0.0, 0.0]  # +10° about +x (forward): the left side goes up
    angles = angles_deg_from_qpos(qpos)
    assert angles["pelvis_tilt_deg"][0] == pytest.approx(10.0)
    assert angles["pelvis_obliquity_deg"][1] == pytest.approx(10.0)


def test_csv_has_analyze_format_and_round_trips(tmp_path):
    qpos = _random_poses(build_twin().model, 5, seed=3)
    angles = angles_deg_from_qpos(qpos)
    angles["knee_flexion_l_deg"][2] = np.nan
    time_s = np.arange(5) / 30.0
    path = tmp_path / "angles.csv"
    assert write_angles_csv(path, time_s, angles) == 5
    lines = path.read_text().splitlines()
    assert lines[0] == ",".join(["time_s", *ANGLE_COLUMNS])
    first = lines[1].split(",")
    assert first[0] == "0.0000"
    assert len(first[1].split(".")[1]) == 3
    assert lines[3].split(",")[1 + ANGLE_COLUMNS.index("knee_flexion_l_deg")] == ""
    t, back = read_angles_csv(path)
    np.testing.assert_allclose(t, np.round(time_s, 4))
    np.testing.assert_allclose(back["hip_flexion_r_deg"], angles["hip_flexion_r_deg"], atol=5e-4)
    assert np.isnan(back["knee_flexion_l_deg"][2])


def test_bad_shapes_are_refused(tmp_path):
    with pytest.raises(ValueError, match="qpos must be"):
        angles_deg_from_qpos(np.zeros((3, 7)))
    with pytest.raises(ValueError, match="lack the columns"):
        write_angles_csv(tmp_path / "x.csv", np.zeros(2), {"time_s": np.zeros(2)})
