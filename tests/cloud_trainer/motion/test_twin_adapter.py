"""The adapter to the MuJoCo twin: same joints, the same body in the light chain, and ReferenceMotion conversion."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from cloud_trainer.motion.joints import JOINT_AXES, JOINT_NAMES
from cloud_trainer.motion.kinematics import FOOT_POINTS, LightKinematics
from cloud_trainer.motion.library import HealthyMotionLibrary
from cloud_trainer.motion.twin_adapter import to_reference_motion, twin_skeleton
from cloud_trainer.twin import constants
from cloud_trainer.twin.anthropometry import Anthropometry
from cloud_trainer.twin.model import build_twin

from .gait_fixtures import synthetic_gait


@pytest.fixture(scope="module")
def twin():
    return build_twin()


def test_joint_names_order_and_axes_are_the_twins() -> None:
    assert constants.JOINT_NAMES == JOINT_NAMES
    for name in JOINT_NAMES:
        np.testing.assert_array_equal(constants.JOINT_AXES[name], JOINT_AXES[name])


def _capsule_bottoms(model: mujoco.MjModel, data: mujoco.MjData) -> np.ndarray:
    """Heel and forefoot contact points of the MuJoCo model: each sole capsule's centre, one radius down the foot."""
    points = []
    for name in FOOT_POINTS:
        side = name[-1]
        geom = model.geom(f"{'heel' if name.startswith('heel') else 'forefoot'}_{side}")
        foot = data.xmat[model.body(f"foot_{side}").id].reshape(3, 3)
        points.append(data.geom_xpos[geom.id] - foot @ np.array([0.0, 0.0, model.geom_size[geom.id, 0]]))
    return np.array(points)


@pytest.mark.parametrize("anthropometry", [Anthropometry(), Anthropometry(height_m=1.55, mass_kg=52.0, sex="female")])
def test_light_chain_with_the_twins_skeleton_matches_mujoco(anthropometry: Anthropometry) -> None:
    twin = build_twin(anthropometry)
    data = mujoco.MjData(twin.model)
    kin = LightKinematics(twin_skeleton(anthropometry))
    rng = np.random.default_rng(2)
    for _ in range(25):
        q = twin.stand_qpos()
        q[:3] = rng.normal(size=3)
        quat = rng.normal(size=4)
        q[3:7] = quat / np.linalg.norm(quat)
        q[7:] = rng.uniform(-0.8, 0.8, 15)
        data.qpos[:] = q
        mujoco.mj_kinematics(twin.model, data)
        mine = kin.foot_points(q[None, :3], q[None, 3:7], q[None, 7:])[0]
        np.testing.assert_allclose(mine, _capsule_bottoms(twin.model, data), atol=1e-9)
    assert kin.leg_length_m == pytest.approx(twin.dimensions.standing_hip_height_m)


def test_a_library_cycle_becomes_a_cyclic_reference_motion(twin) -> None:
    clip = HealthyMotionLibrary.load().clips[0]
    ref = to_reference_motion(clip.trajectory, twin.model, name=clip.clip_id)
    assert ref.cyclic
    assert ref.n_frames == clip.trajectory.n_frames - 1
    assert ref.dt_s == pytest.approx(clip.trajectory.dt_s)
    assert ref.cycle_period_s == pytest.approx(clip.period_s)
    assert ref.stride_length_m == pytest.approx(clip.stride_length_m, abs=1e-5)
    assert ref.speed_m_s == pytest.approx(clip.speed_m_s, rel=1e-5)
    np.testing.assert_allclose(ref.qpos[:, 7:], clip.trajectory.joint_angles_rad[:-1])
    assert ref.com_rel_m.shape == (ref.n_frames, 3)
    # The loop closes: frame N (frame 0 moved by the offset) is the trajectory's closing frame.
    np.testing.assert_allclose(ref.qpos[0, :3] + ref.cycle_offset_m, clip.trajectory.root_pos_m[-1], atol=1e-5)
    # On the twin itself no sole capsule goes below the ground.
    data = mujoco.MjData(twin.model)
    lowest = []
    for q in ref.qpos:
        data.qpos[:] = q
        mujoco.mj_kinematics(twin.model, data)
        lowest.append(_capsule_bottoms(twin.model, data)[:, 2].min())
    assert min(lowest) > -1e-4


def test_an_imu_style_trajectory_keeps_its_weights_and_notes(twin) -> None:
    gait = synthetic_gait(n_cycles=1.0, sampling_rate_hz=30.0)
    weights = np.where(np.arange(15) < 3, 0.2, 1.0)
    measured = weights == 1.0
    traj = gait.with_values(joint_weights=weights, joints_measured=measured, meta={"period_s": 1.1})
    ref = to_reference_motion(traj, twin.model)
    assert not ref.cyclic
    np.testing.assert_allclose(ref.joint_weights, weights)
    assert ref.notes["lumbar_extension"] == "filled from healthy pattern"
    assert ref.notes["knee_flexion_r"] == "measured"
    assert ref.cycle_period_s == pytest.approx(1.1)
