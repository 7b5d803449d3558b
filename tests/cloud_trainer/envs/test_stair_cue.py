"""The stair cue (Dai et al. 2025, "Task II"): 1 unless a riser is within 5 cm ahead of a stepping foot that is not
raised over it; reported as a guidance term apart from the paper's reward, and absent unless a configuration switches
it on."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import mujoco
import numpy as np
import pytest

from cloud_trainer.envs import stairs
from cloud_trainer.envs.constants import ACTION_WIDTH
from cloud_trainer.envs.registry import make_env
from cloud_trainer.motion.synthetic import standing_reference
from cloud_trainer.twin.model import build_twin
from cloud_trainer.twin.terrain import RUN_IN_M

CUE = {"step_cue": stairs.STEP_CUE_WEIGHT}


@pytest.fixture(scope="module")
def stand():
    return standing_reference(build_twin().model)


def standing_env(stand, level: int, n_envs: int, **changes):
    config = dataclasses.replace(
        stairs.default_config(level), speed_range_m_s=None, stride_length_range_m=None, **changes
    )
    return make_env("stairs", [stand], config=config, n_envs=n_envs, n_threads=1, seed=0)


def place(env, root_x_m: list[float], lift_m: list[float], forward_m_s: list[float] | None = None) -> SimpleNamespace:
    """Put each simulation's standing twin at ``root_x_m``, standing on the ground under it and lifted by ``lift_m``;
    the cue's inputs (feet on the ground where not lifted, moving forward at ``forward_m_s``, default still)."""
    qpos = env._qpos
    for i, (x, lift) in enumerate(zip(root_x_m, lift_m, strict=True)):
        qpos[i, 0] = x
        qpos[i, 1] = 0.0
        qpos[i, 2] = env.model.key("stand").qpos[2] + env.terrain.ground_height_m(x + 0.05) + lift
    env.batch.forward(np.arange(env.num_envs, dtype=np.int32), stage=mujoco.mjtStage.mjSTAGE_POS)
    contact = np.repeat((np.asarray(lift_m) == 0.0)[:, None], 2, axis=1)
    forward = np.zeros(env.num_envs) if forward_m_s is None else np.asarray(forward_m_s, dtype=float)
    return SimpleNamespace(
        ids=slice(None), qpos=qpos.copy(), contact=contact, foot_forward_m_s=np.repeat(forward[:, None], 2, axis=1)
    )


def forefoot_front_offset_m(env) -> float:
    """Forefoot front (the cue's foot point) ahead of the root at the standing pose."""
    m = place(env, [0.0] * env.num_envs, [0.0] * env.num_envs)
    centre_x = env._geom_xpos[0, env._forefoot_ids, 0]
    return float(centre_x.max() + env._forefoot_radius_m.max() - m.qpos[0, 0])


def test_cue_asks_a_stepping_foot_to_rise_just_before_a_riser(stand) -> None:
    env = standing_env(stand, level=3, n_envs=5, guidance_terms=CUE)
    try:
        env.reset()
        front = forefoot_front_offset_m(env)
        riser = RUN_IN_M
        at_riser = riser - front - 0.03  # the foot's front 3 cm before the first riser
        swing = 2 * stairs.STEP_CUE_SWING_SPEED_M_S
        m = place(
            env,
            [at_riser, at_riser, at_riser, 1.0, riser + 0.13 - front],
            [0.0, 0.2, 0.0, 0.0, 0.0],
            [swing, swing, 0.0, swing, swing],
        )
        cue = env._guidance_step_cue(m)
        # 0: moving into the riser at ground level; 1: lifted above it; 1: standing still against it (stance is not
        # asked to rise); 1: far from it; 1: mid-tread (17 cm before the next)
        np.testing.assert_allclose(cue, [0.0, 1.0, 1.0, 1.0, 1.0])
    finally:
        env.close()


def test_level_one_has_no_risers_and_the_cue_is_always_one(stand) -> None:
    env = standing_env(stand, level=1, n_envs=2, guidance_terms=CUE)
    try:
        env.reset()
        front = forefoot_front_offset_m(env)
        m = place(env, [RUN_IN_M - front - 0.02] * 2, [0.0, 0.0])
        np.testing.assert_allclose(env._guidance_step_cue(m), [1.0, 1.0])
    finally:
        env.close()


def test_cue_is_reported_apart_and_only_when_switched_on(stand) -> None:
    env = standing_env(stand, level=3, n_envs=2, guidance_terms=CUE, episode_steps=3)
    plain = standing_env(stand, level=3, n_envs=2, episode_steps=3)
    try:
        for e in (env, plain):
            e.reset(seed=0)
        zeros = np.zeros((2, ACTION_WIDTH))
        total = np.zeros(2)
        for _ in range(3):
            _, reward, _, _, infos = env.step(zeros)
            _, plain_reward, _, _, plain_infos = plain.step(zeros)
            guidance = infos["reward_terms"]["reward/guidance"]
            np.testing.assert_allclose(guidance, stairs.STEP_CUE_WEIGHT * infos["reward_terms"]["guidance/step_cue"])
            np.testing.assert_allclose(reward - guidance, plain_reward, atol=1e-9)  # the paper's reward, unchanged
            assert "guidance/step_cue" not in plain_infos["log"]
            assert plain_infos["log"]["reward/guidance"] == 0.0
            total += guidance
        assert infos["_episode"].all()  # the 3-step episodes ended: their cue sum is reported apart
        np.testing.assert_allclose(infos["episode_guidance"], total)
    finally:
        env.close()
        plain.close()


def test_an_unknown_guidance_term_is_refused(stand) -> None:
    with pytest.raises(ValueError, match="no reward term '_guidance_nonsense'"):
        standing_env(stand, level=2, n_envs=1, guidance_terms={"nonsense": 1.0})
