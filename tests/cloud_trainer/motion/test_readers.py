"""Readers: small files written here with known content, bad files, and the real examples in ../shared/data."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud_trainer.motion.errors import MotionError, MotionFileError, MotionQualityError
from cloud_trainer.motion.joints import JOINT_INDEX, N_JOINTS
from cloud_trainer.motion.kinematics import Skeleton
from cloud_trainer.motion.readers import read_bvh, read_deepmimic, read_locomujoco, read_mot, read_motion, write_bvh
from cloud_trainer.motion.readers.deepmimic import HUMANOID3D_FRAME_WIDTH
from cloud_trainer.motion.rotations import matrix_from_wxyz
from cloud_trainer.motion.trajectory import JointTrajectory

from .gait_fixtures import synthetic_gait

# --- OpenSim .mot --------------------------------------------------------------------------------------------------

MOT_COLUMNS = ("time", "pelvis_tilt", "pelvis_tx", "pelvis_ty", "pelvis_tz", "hip_flexion_r", "knee_angle_r",
               "ankle_angle_r", "subtalar_angle_r", "lumbar_bending", "mtp_angle_r")  # fmt: skip


def write_mot(path: Path, rows: list[list[float]], *, in_degrees: str | None = "yes", columns=MOT_COLUMNS) -> Path:
    header = ["test_motion", "version=1", f"nRows={len(rows)}", f"nColumns={len(columns)}"]
    if in_degrees is not None:
        header.append(f"inDegrees={in_degrees}")
    lines = [*header, "endheader", "\t".join(columns)] + ["\t".join(f"{v:.6f}" for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def mot_rows(n: int = 5) -> list[list[float]]:
    # time, tilt, tx, ty, tz, hip, knee (OpenSim: − = flexion), ankle, subtalar, bending (OpenSim: + = right), mtp
    # Every column moves a little except subtalar (locked at 3°, as in gait2392's IK results).
    return [
        [i / 100, 0.1 * i, 0.5 + i * 0.01, 0.95, 0.02, 20.0 + i, -40.0 - i, 5.0 + i, 3.0, 4.0 + i, 10.0 + i]
        for i in range(n)
    ]


def test_mot_maps_columns_units_and_signs(tmp_path: Path) -> None:
    traj = read_mot(write_mot(tmp_path / "a.mot", mot_rows()))
    assert traj.sampling_rate_hz == pytest.approx(100.0)
    assert np.degrees(traj.angle("hip_flexion_r")[0]) == pytest.approx(20.0)
    np.testing.assert_allclose(np.degrees(traj.angle("knee_flexion_r")), [40, 41, 42, 43, 44])
    assert np.degrees(traj.angle("ankle_dorsiflexion_r")[0]) == pytest.approx(5.0)
    assert np.degrees(traj.angle("ankle_inversion_r")[0]) == pytest.approx(3.0)
    assert np.degrees(traj.angle("lumbar_bending")[0]) == pytest.approx(-4.0)
    # OpenSim (x forward, y up, z right) → ours (x forward, y left, z up).
    np.testing.assert_allclose(traj.root_pos_m[0], [0.5, -0.02, 0.95])
    assert traj.root_pos_measured.all()
    measured = {n for n, m in zip(JOINT_INDEX, traj.joints_measured, strict=True) if m}
    assert measured == {"hip_flexion_r", "knee_flexion_r", "ankle_dorsiflexion_r", "lumbar_bending"}
    # A column that never moves was locked in the source model: its value is kept, but it counts as unmeasured.
    assert traj.meta["constant_columns"] == ["pelvis_ty", "pelvis_tz", "subtalar_angle_r"]
    assert traj.meta["ignored_columns"] == ["mtp_angle_r"]


def test_mot_pelvis_tilt_turns_the_root_about_the_left_right_axis(tmp_path: Path) -> None:
    rows = mot_rows(3)
    for row in rows:
        row[1] = 10.0  # pelvis_tilt about OpenSim +z (right): the pelvis's forward axis tips up
    traj = read_mot(write_mot(tmp_path / "tilt.mot", rows))
    forward = matrix_from_wxyz(traj.root_quat_wxyz[0])[:, 0]
    np.testing.assert_allclose(forward, [np.cos(np.radians(10)), 0.0, np.sin(np.radians(10))], atol=1e-9)


def test_mot_in_radians_and_a_positive_flexion_knee(tmp_path: Path) -> None:
    rows = [[i / 50, 0, 0, 0.9, 0, 0.2, 0.7 + 0.01 * i, 0, 0, 0, 0] for i in range(6)]
    traj = read_mot(write_mot(tmp_path / "rad.mot", rows, in_degrees="no"))
    assert traj.meta["knee_convention"] == "positive_flexion"
    np.testing.assert_allclose(traj.angle("knee_flexion_r"), [0.7 + 0.01 * i for i in range(6)])
    assert traj.angle("hip_flexion_r")[0] == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda text: text.replace("endheader", "end"), "no 'endheader' line"),
        (lambda text: text.replace("inDegrees=yes\n", ""), "no 'inDegrees=yes|no'"),
        (lambda text: text.replace("inDegrees=yes", "inDegrees=maybe"), "inDegrees='maybe'; accepted: yes, no"),
        (lambda text: text.replace("nColumns=11", "nColumns=ten"), "header nColumns='ten' is not an integer"),
        (
            lambda text: text.replace("0.020000\t", "0.020000\tabc\t", 1),
            "data row 1 has 12 values; the header names 11 columns",
        ),
        (lambda text: text.replace("0.030000", "x.03", 1), "row 4 holds a value that is not a number"),
        (lambda text: text.replace("time\t", "frame\t"), "the first column must be 'time'"),
    ],
)
def test_bad_mot_files_name_the_file_and_the_problem(tmp_path: Path, mutate, message: str) -> None:
    path = write_mot(tmp_path / "bad.mot", mot_rows())
    path.write_text(mutate(path.read_text()))
    with pytest.raises(MotionFileError, match=r"bad\.mot") as info:
        read_mot(path)
    assert message in str(info.value)


def test_mot_with_nan_is_refused_naming_the_frame(tmp_path: Path) -> None:
    rows = mot_rows()
    rows[2][5] = float("nan")
    with pytest.raises(MotionQualityError, match=r"NaN or infinite values in 1 of 5 frames \(first at frame 2"):
        read_mot(write_mot(tmp_path / "nan.mot", rows))


def test_mot_without_joint_columns(tmp_path: Path) -> None:
    path = write_mot(tmp_path / "grf.mot", [[0, 1.0], [0.01, 2.0]], columns=("time", "ground_force_vx"))
    with pytest.raises(MotionFileError, match="no joint coordinates found"):
        read_mot(path)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(garbage=st.binary(max_size=400))
def test_mot_reader_fuzz_only_raises_motion_errors(tmp_path: Path, garbage: bytes) -> None:
    path = tmp_path / "fuzz.mot"
    path.write_bytes(b"x\ninDegrees=yes\nendheader\ntime\thip_flexion_r\n" + garbage)
    with contextlib.suppress(MotionError):
        read_mot(path)


# --- DeepMimic JSON ---------------------------------------------------------------------------------------------------


def deepmimic_frame(dt: float, hip_r_flexion: float = 0.0, knee_r: float = 0.0, chest_x: float = 0.0) -> list[float]:
    identity = [1.0, 0.0, 0.0, 0.0]
    # DeepMimic: x forward, y up, z right; our hip flexion turns about DeepMimic's +z.
    hip = [np.cos(hip_r_flexion / 2), 0.0, 0.0, np.sin(hip_r_flexion / 2)]
    chest = [np.cos(chest_x / 2), np.sin(chest_x / 2), 0.0, 0.0]
    frame = [dt, 1.0, 0.9, 0.2, *identity, *chest, *identity, *hip, knee_r, *identity, *identity, 0.0,
             *identity, 0.0, *identity, *identity, 0.0]  # fmt: skip
    assert len(frame) == HUMANOID3D_FRAME_WIDTH
    return [float(v) for v in frame]


def test_deepmimic_maps_frames_onto_our_joints(tmp_path: Path) -> None:
    frames = [deepmimic_frame(1 / 30, hip_r_flexion=0.5, knee_r=-0.7, chest_x=0.2) for _ in range(4)]
    frames[-1][0] = 0.0
    path = tmp_path / "walk.txt"
    path.write_text(json.dumps({"Loop": "wrap", "Frames": frames}))
    traj = read_deepmimic(path)
    assert traj.sampling_rate_hz == pytest.approx(30.0)
    assert traj.angle("hip_flexion_r")[0] == pytest.approx(0.5)
    assert traj.angle("knee_flexion_r")[0] == pytest.approx(0.7)
    assert traj.angle("lumbar_bending")[0] == pytest.approx(-0.2)  # turning about forward bends the trunk right
    np.testing.assert_allclose(traj.root_pos_m[0], [1.0, -0.2, 0.9])
    assert traj.meta["loop"] == "wrap"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"Loop": "none"}), "a DeepMimic motion is a JSON object with 'Frames'"),
        (json.dumps({"Frames": [[0.1] * 44]}), "at least 2 frames"),
        (json.dumps({"Frames": [[0.1] * 44, [0.1] * 43]}), "frame 1 has 43 values; the humanoid3d character needs 44"),
        (json.dumps({"Frames": [[0.1] * 44, [0.1] * 43 + ["a"]]}), "frame 1 holds a value that is not a number"),
    ],
)
def test_bad_deepmimic_files(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(content)
    with pytest.raises(MotionFileError, match=r"bad\.txt") as info:
        read_deepmimic(path)
    assert message in str(info.value)


# --- BVH ------------------------------------------------------------------------------------------------------------

HAND_WRITTEN_BVH = """HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT Spine
  {
    OFFSET 0 10 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 0 40 0
    }
  }
  JOINT RHipJoint
  {
    OFFSET -4 0 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    JOINT RightUpLeg
    {
      OFFSET -5 -3 0
      CHANNELS 3 Zrotation Xrotation Yrotation
      JOINT RightLeg
      {
        OFFSET 0 -42 0
        CHANNELS 3 Zrotation Xrotation Yrotation
        JOINT RightFoot
        {
          OFFSET 0 -42 0
          CHANNELS 3 Zrotation Xrotation Yrotation
          End Site
          {
            OFFSET 0 -6 12
          }
        }
      }
    }
  }
  JOINT LeftUpLeg
  {
    OFFSET 9 -3 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    JOINT LeftLeg
    {
      OFFSET 0 -42 0
      CHANNELS 3 Zrotation Xrotation Yrotation
      JOINT LeftFoot
      {
        OFFSET 0 -42 0
        CHANNELS 3 Zrotation Xrotation Yrotation
        End Site
        {
          OFFSET 0 -6 12
        }
      }
    }
  }
}
MOTION
Frames: 2
Frame Time: 0.008333
10 95 200  0 0 0  0 0 0  0 -20 0  0 0 0  0 30 0  0 0 0  10 0 0  0 0 0  0 0 0
10 95 201  0 0 0  0 5 0  0 -10 0  0 0 0  0 60 0  0 -15 0  0 0 0  0 0 0  0 0 0
"""


def test_bvh_hand_written_file_means_what_it_says(tmp_path: Path) -> None:
    # Y up, facing +Z, X to the left (CMU/Mixamo), centimetres, an intermediate RHipJoint as in CMU files.
    path = tmp_path / "walk.bvh"
    path.write_text(HAND_WRITTEN_BVH)
    traj = read_bvh(path)
    assert traj.meta["length_unit"] == "cm"
    assert traj.sampling_rate_hz == pytest.approx(120.0, rel=1e-3)
    np.testing.assert_allclose(traj.root_pos_m[0], [2.0, 0.1, 0.95])
    deg = np.degrees(traj.joint_angles_rad)
    assert deg[0, JOINT_INDEX["hip_flexion_r"]] == pytest.approx(20.0)  # Xrotation −20 about the left axis
    assert deg[0, JOINT_INDEX["knee_flexion_r"]] == pytest.approx(30.0)
    assert deg[0, JOINT_INDEX["hip_adduction_l"]] == pytest.approx(-10.0)  # Zrotation +10 about forward: abduction
    assert deg[1, JOINT_INDEX["hip_flexion_r"]] == pytest.approx(10.0)  # from the intermediate RHipJoint
    assert deg[1, JOINT_INDEX["knee_flexion_r"]] == pytest.approx(60.0)
    assert deg[1, JOINT_INDEX["ankle_dorsiflexion_r"]] == pytest.approx(15.0)  # Xrotation −15: toes up
    assert deg[1, JOINT_INDEX["lumbar_extension"]] == pytest.approx(-5.0)  # Spine Xrotation +5: leaning forward
    assert traj.meta["segments"]["thigh_r"] == "RightUpLeg"


def test_bvh_write_read_round_trip_for_every_channel_order(tmp_path: Path) -> None:
    traj = synthetic_gait(n_cycles=1.0, sampling_rate_hz=30.0)
    rng = np.random.default_rng(5)
    angles = traj.joint_angles_rad + rng.uniform(-0.3, 0.3, traj.joint_angles_rad.shape)
    traj = traj.with_values(joint_angles_rad=angles)
    for order in ("ZXY", "XYZ", "YZX", "ZYX"):
        path = tmp_path / f"{order}.bvh"
        write_bvh(path, traj, Skeleton.from_height(1.8), channel_order=order)
        back = read_bvh(path)
        np.testing.assert_allclose(back.joint_angles_rad, traj.joint_angles_rad, atol=1e-6)
        np.testing.assert_allclose(back.root_pos_m, traj.root_pos_m, atol=1e-6)
        assert max(back.meta["dropped_rad"].values()) < 1e-6


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda t: t.replace("MOTION", "MOTTION"), "no MOTION section"),
        (lambda t: t.replace("Frames: 2", "Frames: 3"), "'Frames: 3' but 2 motion lines follow"),
        (lambda t: t.replace("}\nMOTION", "MOTION"), "expected '}' in the hierarchy, got 'end of hierarchy'"),
        (lambda t: t.replace("Yrotation\n    JOINT LeftLeg", "Yrot\n    JOINT LeftLeg"),
         "channel 'Yrot' of LeftUpLeg"),
        (lambda t: t.replace("10 95 201", "10 95"), "motion line 2 has 29 values; the hierarchy has 30 channels"),
        (lambda t: t.replace("RightUpLeg", "RightThighBone").replace("LeftUpLeg", "LeftThighBone"),
         "no joint for thigh_r, thigh_l"),
        (lambda t: t.replace("Frame Time: 0.008333", "Frame Time: 0"), "Frame Time must be positive"),
    ],
)  # fmt: skip
def test_bad_bvh_files_name_the_file_and_the_problem(tmp_path: Path, mutate, message: str) -> None:
    path = tmp_path / "bad.bvh"
    path.write_text(mutate(HAND_WRITTEN_BVH))
    with pytest.raises(MotionFileError, match=r"bad\.bvh") as info:
        read_bvh(path)
    assert message in str(info.value)


def test_bvh_of_unknown_length_unit_asks_for_one(tmp_path: Path) -> None:
    path = tmp_path / "tiny.bvh"
    path.write_text(HAND_WRITTEN_BVH.replace("-42", "-4.2").replace("OFFSET 0 -6 12", "OFFSET 0 -0.6 1.2"))
    with pytest.raises(MotionFileError, match="cannot tell the length unit"):
        read_bvh(path)
    assert read_bvh(path, length_unit_m=0.1).meta["length_unit_m"] == 0.1


# --- LocoMuJoCo npz ---------------------------------------------------------------------------------------------------


def write_locomujoco(path: Path, rate_hz: float = 200.0, n: int = 100) -> Path:
    t = np.arange(n) / rate_hz
    q = {
        "pelvis_tx": 1.3 * t, "pelvis_ty": -0.05 + 0 * t, "pelvis_tz": 0.1 + 0 * t,
        "hip_flexion_r": 0.3 * np.sin(2 * np.pi * t), "knee_angle_r": 0.6 + 0.4 * np.sin(2 * np.pi * t),
        "subtalar_angle_r": 0 * t, "arm_flex_r": 0 * t,
    }  # fmt: skip
    dq = {k: np.gradient(v, t) for k, v in q.items()}
    np.savez(path, **{f"q_{k}": v for k, v in q.items()}, **{f"dq_{k}": v for k, v in dq.items()})
    return path


def test_locomujoco_estimates_rate_and_maps_coordinates(tmp_path: Path) -> None:
    traj = read_locomujoco(write_locomujoco(tmp_path / "walk.npz"))
    assert traj.meta["sampling_rate_hz"] == 200.0
    assert traj.meta["knee_convention"] == "positive_flexion"
    np.testing.assert_allclose(traj.root_pos_m[0], [0.0, -0.1, 0.9])
    assert not traj.joints_measured[JOINT_INDEX["ankle_inversion_r"]]  # subtalar locked at 0 in the source
    assert traj.meta["ignored_arrays"] == ["arm_flex_r"]
    assert read_locomujoco(tmp_path / "walk.npz", sampling_rate_hz=100.0).sampling_rate_hz == pytest.approx(100.0)


def test_bad_locomujoco_files(tmp_path: Path) -> None:
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(MotionFileError, match=r"junk\.npz: not a readable \.npz"):
        read_locomujoco(tmp_path / "junk.npz")
    np.savez(tmp_path / "empty.npz", x=np.zeros(3))
    with pytest.raises(MotionFileError, match=r"empty\.npz: no 'q_<coordinate>' arrays"):
        read_locomujoco(tmp_path / "empty.npz")
    np.savez(tmp_path / "norate.npz", q_hip_flexion_r=np.zeros(5))
    with pytest.raises(MotionFileError, match="pass sampling_rate_hz"):
        read_locomujoco(tmp_path / "norate.npz")


def test_read_motion_dispatches_and_refuses_unknown_types(tmp_path: Path) -> None:
    assert isinstance(read_motion(write_mot(tmp_path / "a.mot", mot_rows())), JointTrajectory)
    (tmp_path / "a.c3d").write_bytes(b"")
    with pytest.raises(MotionFileError, match=r"unknown motion file type '.c3d'; accepted: .mot"):
        read_motion(tmp_path / "a.c3d")
    with pytest.raises(MotionFileError, match="no such file"):
        read_motion(tmp_path / "missing.bvh")


# --- the real examples ------------------------------------------------------------------------------------------------


@pytest.mark.shared_data
@pytest.mark.parametrize(
    ("relative", "rate_hz", "knee_max_deg"),
    [
        ("deepmimic/humanoid3d_walk.txt", 30.0, (60, 85)),
        ("deepmimic/humanoid3d_long_walk1.txt", 120.0, (60, 85)),
        ("opensim/gait2392_walk/subject01_walk1_ik.mot", 60.0, (60, 80)),
        ("opensim/gait10dof_walk/subject01_walk_IK.mot", 60.0, (60, 80)),
        ("opensim/crouch_gait/normal.mot", 50.0, (50, 70)),
        ("opensim/crouch_gait/crouch1.mot", None, (60, 80)),  # crouch: the knee stays flexed 57-69°
        ("locomujoco/02-constspeed_full_humanoid.npz", 500.0, (50, 70)),
    ],
)
def test_real_example_files_read_with_plausible_gait(
    shared_data_dir: Path, relative: str, rate_hz, knee_max_deg
) -> None:
    traj = read_motion(shared_data_dir / "motions" / relative)
    if rate_hz is not None:
        assert traj.sampling_rate_hz == pytest.approx(rate_hz, rel=1e-3)
    deg = np.degrees(traj.joint_angles_rad)
    knee = deg[:, JOINT_INDEX["knee_flexion_r"]]
    assert knee_max_deg[0] < knee.max() < knee_max_deg[1]
    assert knee.min() > -10.0  # flexion positive: never much hyperextension
    hip = deg[:, JOINT_INDEX["hip_flexion_r"]]
    assert hip.max() - hip.min() > 25.0


@pytest.mark.shared_data
def test_ground_reaction_file_is_not_a_motion(shared_data_dir: Path) -> None:
    with pytest.raises(MotionFileError, match="no joint coordinates found"):
        read_mot(shared_data_dir / "motions/opensim/gait2392_walk/subject01_walk1_grf.mot")


@pytest.mark.shared_data
def test_deepmimic_walk_survives_a_bvh_round_trip(shared_data_dir: Path, tmp_path: Path) -> None:
    traj = read_deepmimic(shared_data_dir / "motions/deepmimic/humanoid3d_walk.txt")
    write_bvh(tmp_path / "walk.bvh", traj, Skeleton.deepmimic_humanoid3d())
    back = read_bvh(tmp_path / "walk.bvh")
    np.testing.assert_allclose(back.joint_angles_rad, traj.joint_angles_rad, atol=1e-6)
    assert back.joint_angles_rad.shape == (39, N_JOINTS)
