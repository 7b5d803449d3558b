"""Forward kinematics and the joint sign conventions another helper maps reference motions onto."""

from __future__ import annotations

import numpy as np
import pytest

from cloud_trainer.twin.constants import BODY_NAMES, END_EFFECTOR_SITES, JOINT_NAMES, N_ROOT_QPOS
from cloud_trainer.twin.kinematics import forward_kinematics, imitation_targets, quat_yaw_rad
from cloud_trainer.twin.model import build_twin


@pytest.fixture(scope="module")
def twin():
    return build_twin()


def _pose(twin, **angles_deg) -> np.ndarray:
    qpos = twin.stand_qpos()
    for name, value in angles_deg.items():
        qpos[N_ROOT_QPOS + JOINT_NAMES.index(name)] = np.deg2rad(value)
    return qpos


def _body(kin, name):
    return kin.body_pos_m[0, BODY_NAMES.index(name)]


def _end(kin, name):
    return kin.end_pos_m[0, END_EFFECTOR_SITES.index(name)]


def test_standing_pose(twin) -> None:
    kin = forward_kinematics(twin.model, twin.stand_qpos())
    assert _end(kin, "foot_end_r")[2] == pytest.approx(0.0, abs=1e-9)
    assert _end(kin, "foot_end_l")[1] > 0 > _end(kin, "foot_end_r")[1]  # left is +y
    com = kin.com_m[0]
    assert 0.5 * twin.anthropometry.height_m < com[2] < 0.6 * twin.anthropometry.height_m  # CoM at ~55 % of stature
    assert abs(com[0]) < 0.02
    assert abs(com[1]) < 1e-9


@pytest.mark.parametrize("side", ["r", "l"])
def test_leg_sign_conventions(twin, side: str) -> None:
    medial = 1.0 if side == "r" else -1.0  # towards the midline, in world y
    stand = forward_kinematics(twin.model, twin.stand_qpos())
    flexed = forward_kinematics(twin.model, _pose(twin, **{f"hip_flexion_{side}": 30}))
    assert _body(flexed, f"shank_{side}")[0] > _body(stand, f"shank_{side}")[0] + 0.1  # knee forward
    adducted = forward_kinematics(twin.model, _pose(twin, **{f"hip_adduction_{side}": 20}))
    assert medial * (_body(adducted, f"shank_{side}")[1] - _body(stand, f"shank_{side}")[1]) > 0.1
    knee = forward_kinematics(twin.model, _pose(twin, **{f"knee_flexion_{side}": 60}))
    assert _body(knee, f"foot_{side}")[0] < _body(stand, f"foot_{side}")[0] - 0.2  # ankle goes back
    # internal rotation turns the toes medially (the foot's x axis yaws towards the midline)
    internal = forward_kinematics(twin.model, _pose(twin, **{f"hip_rotation_{side}": 30}))
    foot_yaw = quat_yaw_rad(internal.body_quat_wxyz[0, BODY_NAMES.index(f"foot_{side}")])
    assert medial * foot_yaw == pytest.approx(np.deg2rad(30))
    # dorsiflexion lifts the toes: the sole centre, ahead of the ankle, rises
    dorsi = forward_kinematics(twin.model, _pose(twin, **{f"ankle_dorsiflexion_{side}": 20}))
    assert _end(dorsi, f"foot_end_{side}")[2] > 0.01
    # inversion turns the sole medially: the sole centre, below the ankle, moves towards the midline
    inverted = forward_kinematics(twin.model, _pose(twin, **{f"ankle_inversion_{side}": 20}))
    assert medial * (_end(inverted, f"foot_end_{side}")[1] - _end(stand, f"foot_end_{side}")[1]) > 0.01


def test_lumbar_sign_conventions(twin) -> None:
    stand = forward_kinematics(twin.model, twin.stand_qpos())
    top = _end(stand, "spine_top")
    assert _end(forward_kinematics(twin.model, _pose(twin, lumbar_extension=20)), "spine_top")[0] < top[0] - 0.1
    assert _end(forward_kinematics(twin.model, _pose(twin, lumbar_bending=20)), "spine_top")[1] > top[1] + 0.1
    # rotation to the left: the torso's x axis turns towards +y
    turned = forward_kinematics(twin.model, _pose(twin, lumbar_rotation=30))
    assert quat_yaw_rad(turned.body_quat_wxyz[0, BODY_NAMES.index("torso")]) == pytest.approx(np.deg2rad(30))


def test_imitation_targets_do_not_depend_on_where_the_walker_is_or_faces(twin) -> None:
    pose = _pose(twin, hip_flexion_r=25, knee_flexion_l=40, lumbar_bending=5)
    moved = pose.copy()
    yaw = np.deg2rad(70)
    moved[:3] += [3.0, -1.5, 0.2]
    moved[3:7] = [np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)]
    com, ends = imitation_targets(twin.model, np.stack([pose, moved]))
    np.testing.assert_allclose(com[0], com[1], atol=1e-12)
    np.testing.assert_allclose(ends[0], ends[1], atol=1e-12)


def test_wrong_qpos_width_is_refused(twin) -> None:
    with pytest.raises(ValueError, match="22 columns"):
        forward_kinematics(twin.model, np.zeros(21))
