"""Stage 1: clip angles ↔ model joints (a round trip through the capture core's own JCS code), the patient's reference
from a virtual hemiparetic clip (asymmetry kept, unmeasured joints filled at low weight), and clear refusals."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from capture_app.core.orientation.joint_angles import joint_angles_deg
from cloud_trainer.motion.joints import IMU_MEASURED_JOINTS, JOINT_INDEX, JOINT_NAMES, N_JOINTS
from cloud_trainer.motion.kinematics import LightKinematics
from cloud_trainer.motion.pipeline import MIN_STRIDES
from cloud_trainer.motion.rotations import matrix_from_wxyz
from cloud_trainer.motion.trajectory import FILLED_WEIGHT
from cloud_trainer.pipeline.errors import PatientDataError
from cloud_trainer.pipeline.reference import (
    CLIP_TO_MODEL,
    PatientReferenceBuilder,
    clip_angles_to_model,
    load_reference,
    model_to_clip_angles,
    save_reference,
)
from sensor_drivers.recording.clipfile import ClipWriter, read_clip

from .clips import PATIENT_FILE_STEM, analysed_clip, identity_leaks

SEGMENTS = ("pelvis", "thigh_r", "thigh_l", "shank_r", "shank_l")


def random_poses(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Model joint angles within walking ranges and a pelvis orientation (tilt, obliquity, rotation ≤ 15°)."""
    rng = np.random.default_rng(seed)
    angles = np.zeros((n, N_JOINTS))
    for side in ("r", "l"):
        angles[:, JOINT_INDEX[f"hip_flexion_{side}"]] = np.radians(rng.uniform(-25, 45, n))
        angles[:, JOINT_INDEX[f"hip_adduction_{side}"]] = np.radians(rng.uniform(-20, 15, n))
        angles[:, JOINT_INDEX[f"hip_rotation_{side}"]] = np.radians(rng.uniform(-20, 20, n))
        angles[:, JOINT_INDEX[f"knee_flexion_{side}"]] = np.radians(rng.uniform(0, 80, n))
    tilt, obliquity, rotation = (np.radians(rng.uniform(-15, 15, n)) for _ in range(3))
    _, quat, _ = clip_angles_to_model(
        {"pelvis_tilt_deg": np.degrees(tilt), "pelvis_obliquity_deg": np.degrees(obliquity),
         "pelvis_rotation_deg": np.degrees(rotation)}
    )  # fmt: skip
    return angles, quat


def test_model_angles_survive_a_round_trip_through_the_capture_cores_joint_angles() -> None:
    angles, quat = random_poses(200)
    pose = LightKinematics().pose(np.zeros((200, 3)), quat, angles)  # the model's own chain: segment rotations
    clip_columns, verdicts = joint_angles_deg({s: pose.rotations[s] for s in SEGMENTS})  # the capture core's ISB JCS
    assert not verdicts
    assert set(CLIP_TO_MODEL) <= set(clip_columns)
    back, back_quat, measured = clip_angles_to_model(clip_columns)
    cols = [JOINT_INDEX[j] for j in IMU_MEASURED_JOINTS]
    np.testing.assert_allclose(back[:, cols], angles[:, cols], atol=1e-9)
    np.testing.assert_allclose(matrix_from_wxyz(back_quat), matrix_from_wxyz(quat), atol=1e-9)
    assert {JOINT_NAMES[i] for i in np.flatnonzero(measured)} == set(IMU_MEASURED_JOINTS)
    # and the inverse gives the capture core's columns again (predicted angles in the --angles-csv names)
    again = model_to_clip_angles(back, back_quat)
    for name, values in clip_columns.items():
        np.testing.assert_allclose(again[name], values, atol=1e-7, err_msg=name)


def test_signs_follow_the_clinical_conventions() -> None:
    """Hip flexion moves the thigh forward, knee flexion the shank back, on the model as in the clip."""
    columns = {c: np.zeros(1) for c in CLIP_TO_MODEL} | {"hip_flexion_r_deg": np.array([30.0]),
                                                          "knee_flexion_l_deg": np.array([40.0])}  # fmt: skip
    angles, quat, _ = clip_angles_to_model(columns)
    pose = LightKinematics().pose(np.zeros((1, 3)), quat, angles)
    thigh_axis = pose.rotations["thigh_r"][0] @ np.array([0.0, 0.0, -1.0])  # hip → knee
    shank_axis = pose.rotations["shank_l"][0] @ np.array([0.0, 0.0, -1.0])
    assert thigh_axis[0] > 0.4  # knee ahead of the hip
    assert shank_axis[0] < -0.5  # ankle behind the knee


@pytest.fixture(scope="module")
def patient_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return analysed_clip(tmp_path_factory.mktemp("patient"), PATIENT_FILE_STEM)


@pytest.fixture(scope="module")
def raw_patient_clip(patient_clip: Path) -> Path:
    return patient_clip.with_name(f"{PATIENT_FILE_STEM}.raw.stclip")


@pytest.fixture(scope="module")
def built(patient_clip: Path) -> PatientReferenceBuilder:
    return PatientReferenceBuilder(n_cycle_frames=32, max_walk_s=12.0).build(patient_clip)


def test_reference_from_a_hemiparetic_clip_keeps_its_asymmetry(built: PatientReferenceBuilder) -> None:
    summary = built.summary_
    assert summary["strides_used"] >= MIN_STRIDES
    assert summary["patient"]["affected_side"] == "left"
    assert summary["patient"]["height_m"] == 1.75
    assert any("sex" in note for note in summary["notes"])  # the default sex is stated, not silent
    assert built.gait_.source == "clip metrics"
    assert built.gait_.speed_m_s == pytest.approx(0.5, abs=0.05)
    # the paretic (left) knee flexes far less in swing than the other: a symmetrised cycle would lose it
    asym = summary["asymmetry"]
    assert asym["knee_flexion_range_r_deg"] - asym["knee_flexion_range_l_deg"] > 10.0
    ref = built.reference_
    assert ref.cyclic
    assert ref.cycle_period_s == pytest.approx(1 / built.gait_.stride_frequency_hz, rel=0.15)
    for joint in ("lumbar_extension", "ankle_dorsiflexion_r", "ankle_inversion_l"):
        assert ref.joint_weights[JOINT_INDEX[joint]] == pytest.approx(FILLED_WEIGHT)
        assert ref.notes[joint] == "filled from healthy pattern"
    assert ref.joint_weights[JOINT_INDEX["knee_flexion_l"]] == 1.0


def test_the_reference_names_its_input_by_content_never_by_its_file_name(
    built: PatientReferenceBuilder, patient_clip: Path
) -> None:
    sha256 = hashlib.sha256(patient_clip.read_bytes()).hexdigest()
    assert built.reference_.source.startswith(f"patient clip stclip sha256:{sha256[:16]}")
    assert built.summary_["input_sha256"] == sha256
    for text in (built.reference_.name, built.reference_.source, json.dumps(built.summary_)):
        assert not identity_leaks(text)


def test_reference_files_round_trip(built: PatientReferenceBuilder, tmp_path: Path) -> None:
    save_reference(built.reference_, tmp_path / "ref.npz")
    loaded = load_reference(tmp_path / "ref.npz")
    np.testing.assert_array_equal(loaded.qpos, built.reference_.qpos)
    assert loaded.notes == built.reference_.notes
    assert dataclasses.asdict(loaded).keys() == dataclasses.asdict(built.reference_).keys()


def test_a_clip_without_analysis_sections_is_refused_naming_what_is_missing(raw_patient_clip: Path) -> None:
    with pytest.raises(PatientDataError, match=r"no joint_angles section .* at least 3 strides"):
        PatientReferenceBuilder().build(raw_patient_clip)


def test_a_too_short_clip_is_refused_naming_the_minimum(tmp_path: Path) -> None:
    short = analysed_clip(tmp_path, "short", walkway="2.5", still_start="1.5", still_end="1.5")
    with pytest.raises(PatientDataError, match=rf"at least {MIN_STRIDES} (straight, consistent )?strides"):
        PatientReferenceBuilder().build(short)


def test_nans_throughout_the_walk_are_refused(patient_clip: Path, tmp_path: Path) -> None:
    clip = read_clip(patient_clip)
    angles = {k: v.copy() for k, v in clip.sections["joint_angles"].items()}
    angles["knee_flexion_l_deg"][:] = np.nan
    path = tmp_path / "nan.stclip"
    with ClipWriter(path, metadata={k: v for k, v in clip.metadata.items() if k != "schema_version"}) as writer:
        for name, value in clip.sections.items():
            writer.write_section(name, angles if name == "joint_angles" else value)
    with pytest.raises(PatientDataError, match=r"NaN throughout the walk .* at least 3 strides"):
        PatientReferenceBuilder().build(path)


def test_a_file_that_is_not_a_clip_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.stclip"
    bad.write_bytes(b"not a clip at all")
    with pytest.raises(PatientDataError, match=r"bad\.stclip"):
        PatientReferenceBuilder().build(bad)
    with pytest.raises(PatientDataError, match="no such file"):
        PatientReferenceBuilder().build(tmp_path / "missing.stclip")
    motion = tmp_path / "walk.xyz"
    motion.write_text("1 2 3")
    with pytest.raises(PatientDataError, match="unknown motion file type"):
        PatientReferenceBuilder().build(motion)
