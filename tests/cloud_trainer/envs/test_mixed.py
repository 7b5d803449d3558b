"""Several task environments stepped as one batch: each part steps as it would alone, ended episodes keep their
simulation's place, one random generator drives every part, and parts that do not fit together are refused."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest

from cloud_trainer.envs import stairs
from cloud_trainer.envs.constants import ACTION_WIDTH, OBSERVATION_WIDTH
from cloud_trainer.envs.mixed import MixedVecEnv
from cloud_trainer.envs.registry import make_env
from cloud_trainer.motion.synthetic import sinusoidal_gait_reference
from cloud_trainer.twin.model import build_twin


@pytest.fixture(scope="module")
def gait():
    return sinusoidal_gait_reference(build_twin().model, speed_m_s=0.8, stride_length_m=0.6)


def parts(gait, seed: int, stairs_episode_steps: int = 500):
    """A flat part of 3 simulations and a stairs part of 2 with the stair cue on (a term only it computes)."""
    stairs_config = dataclasses.replace(
        stairs.default_config(2), guidance_terms={"step_cue": stairs.STEP_CUE_WEIGHT},
        episode_steps=stairs_episode_steps,
    )  # fmt: skip
    return [
        make_env("walk", [gait], n_envs=3, n_threads=1, seed=seed),
        make_env("stairs", [gait], config=stairs_config, n_envs=2, n_threads=1, seed=seed),
    ]


def test_each_part_steps_as_it_would_alone(gait) -> None:
    mixed = MixedVecEnv(parts(gait, 0), ["walk", "stairs:2"], seed=5)
    alone = parts(gait, 0)
    shared = np.random.default_rng(5)  # the mixed parts draw from one generator, part after part
    for part in alone:
        part._np_random = shared
    obs, _ = mixed.reset()
    assert obs.shape == (5, OBSERVATION_WIDTH)
    np.testing.assert_array_equal(obs[mixed.part_slice("walk")], alone[0].reset()[0])
    np.testing.assert_array_equal(obs[mixed.part_slice("stairs:2")], alone[1].reset()[0])
    actions = np.random.default_rng(1).uniform(-0.3, 0.3, (5, ACTION_WIDTH))
    got = mixed.step(actions)
    expected = [part.step(actions[mixed.part_slice(name)]) for part, name in zip(alone, mixed.names, strict=True)]
    for k in range(4):  # observations, rewards, terminated, truncated
        np.testing.assert_array_equal(got[k], np.concatenate([e[k] for e in expected]))
    infos = got[4]
    assert infos["log"]["part/stairs:2/step_reward"] == pytest.approx(float(np.mean(expected[1][1])))
    assert infos["log"]["part/walk/fall"] == expected[0][4]["log"]["termination/fall"]
    walk_log, stairs_log = (e[4]["log"] for e in expected)
    assert infos["log"]["goal/speed"] == pytest.approx((3 * walk_log["goal/speed"] + 2 * stairs_log["goal/speed"]) / 5)
    # a term only the stairs compute is their mean alone
    assert infos["log"]["guidance/step_cue"] == pytest.approx(stairs_log["guidance/step_cue"])


def test_ended_episodes_keep_their_simulations_place(gait) -> None:
    mixed = MixedVecEnv(parts(gait, 0, stairs_episode_steps=2), ["walk", "stairs:2"], seed=0)  # only they end
    mixed.reset()
    infos = {}
    for _ in range(2):
        *_, infos = mixed.step(np.zeros((5, ACTION_WIDTH)))
    assert infos["_episode"].tolist() == [False, False, False, True, True]
    assert infos["episode_length"].tolist() == [0, 0, 0, 2, 2]
    assert infos["final_obs"].shape == (5, OBSERVATION_WIDTH)
    assert not infos["final_obs"][:3].any()
    assert infos["final_obs"][3:].any()


def test_one_generator_drives_every_part(gait) -> None:
    mixed = MixedVecEnv(parts(gait, 0), ["walk", "stairs:2"], seed=3)
    assert all(part.np_random is mixed.np_random for part in mixed.parts)
    state = mixed.np_random.bit_generator.state
    first, _ = mixed.reset()
    mixed.np_random.bit_generator.state = state  # what a resumed trainer does
    again, _ = mixed.reset()
    np.testing.assert_array_equal(first, again)


def test_parts_must_fit_together(gait) -> None:
    with pytest.raises(ValueError, match="at least one part"):
        MixedVecEnv([], [])
    with pytest.raises(ValueError, match="2 parts need 2 names"):
        MixedVecEnv(parts(gait, 0), ["walk"])
    narrow = make_env("walk", [gait], n_envs=1, n_threads=1)
    narrow.single_observation_space = gym.spaces.Box(-np.inf, np.inf, (10,), np.float32)
    with pytest.raises(ValueError, match="part 'narrow': its observation or action layout differs from 'walk'"):
        MixedVecEnv([parts(gait, 0)[0], narrow], ["walk", "narrow"])
    walk = make_env("walk", [gait], n_envs=1, n_threads=1)
    with pytest.raises(ValueError, match="rows"):
        MixedVecEnv([walk], ["walk"]).step(np.zeros((2, ACTION_WIDTH)))
