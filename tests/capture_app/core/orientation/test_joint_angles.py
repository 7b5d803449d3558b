"""Joint angles: exact on known rotations, the virtual patient's conventions, missing segments and NaN rows."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from capture_app.core.orientation.joint_angles import ANGLE_NAMES, joint_angles_deg
from sensor_drivers.sim import truth as sim_truth


def _rot(seq: str, angles_deg: list[float]) -> np.ndarray:
    return Rotation.from_euler(seq, angles_deg, degrees=True).as_matrix()[None]


def _identity_body() -> dict[str, np.ndarray]:
    return {seg: np.eye(3)[None] for seg in ("pelvis", "thigh_l", "thigh_r", "shank_l", "shank_r")}


def test_names_match_the_virtual_patient_truth() -> None:
    assert set(ANGLE_NAMES) <= set(sim_truth.JOINT_ANGLE_NAMES)
    assert all(name.endswith("_deg") for name in ANGLE_NAMES)


def test_standing_pose_is_zero() -> None:
    angles, verdicts = joint_angles_deg(_identity_body())
    assert set(angles) == set(ANGLE_NAMES)
    assert not verdicts
    for values in angles.values():
        assert values == pytest.approx([0.0], abs=1e-12)


@pytest.mark.parametrize("side", ["l", "r"])
def test_single_plane_rotations_are_exact_and_signed(side: str) -> None:
    body = _identity_body()
    # Knee flexion: the shank turns about the left-pointing y axis so that the foot goes backwards (+ angle).
    body[f"shank_{side}"] = _rot("y", [40.0])
    angles, _ = joint_angles_deg(body)
    assert angles[f"knee_flexion_{side}_deg"] == pytest.approx([40.0])
    assert angles[f"hip_flexion_{side}_deg"] == pytest.approx([0.0], abs=1e-12)
    # Hip flexion: the thigh turns so that the knee goes forward: a negative rotation about y.
    body = _identity_body()
    body[f"thigh_{side}"] = _rot("y", [-30.0])
    body[f"shank_{side}"] = _rot("y", [-30.0])
    angles, _ = joint_angles_deg(body)
    assert angles[f"hip_flexion_{side}_deg"] == pytest.approx([30.0])
    assert angles[f"knee_flexion_{side}_deg"] == pytest.approx([0.0], abs=1e-12)
    # Hip adduction: the knee moves towards the midline. Left thigh: knee to the right, so the thigh's upward z
    # leans left: a negative rotation about x; the right thigh mirrors it.
    body = _identity_body()
    body[f"thigh_{side}"] = _rot("x", [-10.0 if side == "l" else 10.0])
    assert (body[f"thigh_{side}"][0] @ [0.0, 0.0, -1.0])[1] * (1 if side == "r" else -1) > 0  # knee to midline
    assert joint_angles_deg(body)[0][f"hip_adduction_{side}_deg"] == pytest.approx([10.0])
    # Internal rotation: the thigh's front turns towards the midline (left: clockwise seen from above).
    body = _identity_body()
    body[f"thigh_{side}"] = _rot("z", [-15.0 if side == "l" else 15.0])
    assert joint_angles_deg(body)[0][f"hip_rotation_{side}_deg"] == pytest.approx([15.0])


def test_pelvis_angles_are_exact_and_signed() -> None:
    body = _identity_body()
    body["pelvis"] = _rot("ZXY", [5.0, 4.0, 10.0])  # rotation, then obliquity, then tilt (Baker 2001)
    angles, _ = joint_angles_deg(body)
    assert angles["pelvis_rotation_deg"] == pytest.approx([5.0])
    assert angles["pelvis_obliquity_deg"] == pytest.approx([4.0])
    assert angles["pelvis_tilt_deg"] == pytest.approx([10.0])
    # Anterior tilt: the pelvis's front goes down, a positive rotation about the left-pointing y.
    assert (body["pelvis"][0] @ [1.0, 0.0, 0.0])[2] < 0


def test_compound_rotations_follow_the_jcs_sequence() -> None:
    """flexion (proximal y), then adduction (floating x), then rotation (distal z) recovers each component."""
    body = _identity_body()
    body["pelvis"] = _rot("ZXY", [3.0, -2.0, 8.0])
    hip_r = _rot("YXZ", [-35.0, 8.0, 12.0])[0]  # right hip: 35° flexion, 8° adduction, 12° internal rotation
    body["thigh_r"] = body["pelvis"] @ hip_r
    body["shank_r"] = body["thigh_r"] @ _rot("y", [55.0])
    angles, _ = joint_angles_deg(body)
    assert angles["hip_flexion_r_deg"] == pytest.approx([35.0])
    assert angles["hip_adduction_r_deg"] == pytest.approx([8.0])
    assert angles["hip_rotation_r_deg"] == pytest.approx([12.0])
    assert angles["knee_flexion_r_deg"] == pytest.approx([55.0])


def test_agrees_with_the_virtual_patient_truth_on_random_poses() -> None:
    rng = np.random.default_rng(3)
    n = 200
    rotations = {seg: Rotation.from_rotvec(rng.normal(0.0, 0.5, (n, 3))).as_matrix()
                 for seg in ("pelvis", "thigh_l", "thigh_r", "shank_l", "shank_r", "foot_l", "foot_r")}
    ours, _ = joint_angles_deg({k: v for k, v in rotations.items() if not k.startswith("foot")})
    reference = sim_truth.joint_angles_deg(rotations)
    for name, values in ours.items():
        np.testing.assert_allclose(values, reference[name], atol=1e-9, err_msg=name)


def test_missing_segments_leave_angles_out_with_a_reason() -> None:
    body = _identity_body()
    del body["thigh_l"], body["thigh_r"]
    angles, verdicts = joint_angles_deg(body)
    assert set(angles) == {"pelvis_tilt_deg", "pelvis_obliquity_deg", "pelvis_rotation_deg"}
    codes = {(v.code, v.subject) for v in verdicts}
    assert codes == {("angles.missing_segment", g) for g in ("hip_l", "hip_r", "knee_l", "knee_r")}
    assert all("thigh" in v.message for v in verdicts)


def test_nan_rows_stay_nan() -> None:
    body = {seg: np.repeat(R, 3, axis=0) for seg, R in _identity_body().items()}
    body["shank_l"] = body["shank_l"].copy()
    body["shank_l"][1] = np.nan
    angles, _ = joint_angles_deg(body)
    assert np.isnan(angles["knee_flexion_l_deg"][1])
    assert np.isfinite(angles["knee_flexion_l_deg"][[0, 2]]).all()
    assert np.isfinite(angles["knee_flexion_r_deg"]).all()
