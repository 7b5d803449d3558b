"""Behaviour cloning, the GAIL discriminator and the curriculum on tiny problems: shapes, the α_BC schedule, a
discriminator that learns to separate, the promotion rule, the stair cue's switch and a mastery check that stops at
the fall that fails it."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest
import torch

from cloud_trainer.envs.constants import ACTION_WIDTH, FRAME_WIDTH, OBSERVATION_WIDTH, frame_slices
from cloud_trainer.envs.walk import WalkEnv
from cloud_trainer.learn.ppo import PPO, PPOArgs
from cloud_trainer.motion.synthetic import sinusoidal_gait_reference
from cloud_trainer.pipeline.bc import BC_WEIGHT_START, BCLoss, BehaviourCloning, bc_weight
from cloud_trainer.pipeline.curriculum import Curriculum
from cloud_trainer.pipeline.gail import (
    FEATURE_COLUMNS,
    FEATURE_WIDTH,
    MAX_INTRINSIC_REWARD,
    Discriminator,
    features,
    mixed_reward,
)
from cloud_trainer.pipeline.predict import cue_levels, deterministic_episodes
from cloud_trainer.twin.model import build_twin

SMALL = PPOArgs(n_envs=4, n_steps=4, n_minibatches=1, policy_hidden=(32, 32), value_hidden=(16,))


@pytest.fixture(autouse=True)
def one_torch_thread():
    """As the pipeline trains (docs/learning.md): two OpenMP threads crawl whenever another process holds a core."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# ---------------------------------------------------------------------------------------------------- behaviour cloning


def test_bc_weight_decays_linearly_from_0_2_to_0() -> None:
    assert bc_weight(0, 1000) == pytest.approx(BC_WEIGHT_START) == pytest.approx(0.2)
    assert bc_weight(500, 1000) == pytest.approx(0.1)
    assert bc_weight(1000, 1000) == 0.0
    assert bc_weight(5000, 1000) == 0.0
    assert bc_weight(10, 0) == 0.0
    weights = [bc_weight(s, 1000) for s in range(0, 1200, 100)]
    assert all(a >= b for a, b in itertools.pairwise(weights))


def linear_pairs(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    obs = rng.normal(0, 1, (n, OBSERVATION_WIDTH)).astype(np.float32)
    weights = rng.normal(0, 0.3, (OBSERVATION_WIDTH, ACTION_WIDTH)) / np.sqrt(OBSERVATION_WIDTH)
    return obs, np.tanh(obs @ weights).astype(np.float32)


def test_behaviour_cloning_fits_a_known_map_and_reports_held_out_error() -> None:
    obs, actions = linear_pairs(3000)
    bc = BehaviourCloning(SMALL, n_epochs=30, batch_size=256, lr=3e-3).fit(obs, actions)
    assert bc.n_pairs_ == 3000
    assert bc.holdout_mse_ < 0.3 * bc.baseline_mse_  # explains most of what the mean action does not
    out = bc.policy_(torch.from_numpy(obs[:5]))
    assert out.shape == (5, ACTION_WIDTH)
    assert not any(p.requires_grad for p in bc.policy_.parameters())


def test_behaviour_cloning_refuses_wrong_shapes() -> None:
    with pytest.raises(ValueError, match=r"obs \(n, 249\) and actions \(n, 22\)"):
        BehaviourCloning(SMALL).fit(np.zeros((10, 12)), np.zeros((10, ACTION_WIDTH)))


def test_bc_loss_pulls_the_policy_mean_toward_the_proxy_and_vanishes_at_weight_zero() -> None:
    obs, actions = linear_pairs(500)
    proxy = BehaviourCloning(SMALL, n_epochs=5).fit(obs, actions).policy_
    from cloud_trainer.learn.ppo import GaussianPolicy

    policy = GaussianPolicy(OBSERVATION_WIDTH, ACTION_WIDTH, SMALL)
    policy.normalizer.update(torch.from_numpy(obs))
    loss = BCLoss(proxy)
    x = torch.from_numpy(obs[:64])
    value = loss(x, policy.distribution(x))
    assert value.item() > 0
    value.backward()
    assert policy.mean_net[0].weight.grad is not None
    loss.weight = 0.0
    assert loss(x, policy.distribution(x)).item() == 0.0


# ---------------------------------------------------------------------------------------------------- GAIL


def test_features_are_the_movement_blocks_of_the_two_latest_frames_and_the_action() -> None:
    slices = frame_slices()
    assert FEATURE_WIDTH == 2 * (2 + 15 + 15 + 7) + ACTION_WIDTH
    assert FEATURE_COLUMNS.min() >= FRAME_WIDTH  # the oldest frame is not used
    for left_out in ("goal", "terrain_rays", "root_height", "hip_ground"):
        block = np.arange(slices[left_out].start, slices[left_out].stop)
        for frame in range(3):
            assert not np.isin(frame * FRAME_WIDTH + block, FEATURE_COLUMNS).any(), left_out
    x = features(np.zeros((7, OBSERVATION_WIDTH)), 3 * np.ones((7, ACTION_WIDTH)))
    assert x.shape == (7, FEATURE_WIDTH)
    assert float(x[:, -ACTION_WIDTH:].max()) == 1.0  # actions are clipped to their range


def test_discriminator_learns_to_separate_and_rewards_patient_like_pairs() -> None:
    gen = torch.Generator().manual_seed(0)
    expert = torch.randn(4000, FEATURE_WIDTH, generator=gen) * 0.5
    policy = torch.randn(4000, FEATURE_WIDTH, generator=gen) * 0.5 + 0.8
    d = Discriminator(expert, hidden=(64, 64), lr=1e-3, n_steps=20, batch_size=128, seed=0)
    before = d.update(policy)
    for _ in range(6):
        stats = d.update(policy)
    assert stats["accuracy"] > 0.95
    assert stats["accuracy"] >= before["accuracy"]
    assert stats["d_expert"] > 0.65  # the gradient penalty keeps D from saturating
    assert stats["d_policy"] < 0.35
    r_expert, r_policy = d.intrinsic_reward(expert[:500]), d.intrinsic_reward(policy[:500])
    assert r_expert.mean() > r_policy.mean() + 1.0
    assert float(r_expert.max()) <= MAX_INTRINSIC_REWARD
    # r_in = −log(1 − D)
    p = d.probability(expert[:10])
    np.testing.assert_allclose(d.intrinsic_reward(expert[:10]), -torch.log1p(-p).clamp(max=MAX_INTRINSIC_REWARD),
                               rtol=1e-4, atol=1e-5)  # fmt: skip
    # its state survives a checkpoint
    other = Discriminator(expert, hidden=(64, 64), seed=1)
    other.load_state_dict(d.state_dict())
    np.testing.assert_allclose(other.probability(policy[:50]), d.probability(policy[:50]))


def test_external_and_intrinsic_rewards_mix_0_9_to_0_1() -> None:
    mixed = mixed_reward(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]))
    np.testing.assert_allclose(mixed, [0.9, 0.1])


# ---------------------------------------------------------------------------------------------------- curriculum


def test_promotion_needs_enough_episodes_and_90_percent_of_the_flat_return() -> None:
    c = Curriculum(reference_return=100.0, min_episodes=10, window_episodes=5)
    assert c.observe([95.0] * 9, samples=900, wall_s=9.0) == ""  # good returns, too few episodes
    assert c.observe([95.0], samples=1000, wall_s=10.0) == "promoted"
    assert c.level == 2
    assert c.levels_mastered == 1
    assert c.records[0].samples_mastered == 1000
    assert c.records[0].wall_mastered_s == 10.0
    assert c.observe([80.0] * 20, samples=3000, wall_s=30.0) == ""  # below 90 %
    assert c.observe([89.9] * 20, samples=4000, wall_s=40.0) == ""
    assert c.observe([91.0] * 5, samples=4500, wall_s=45.0) == "promoted"  # the window: last 5 episodes
    assert c.records[1].samples_mastered == 4500


def test_a_level_where_more_than_10_percent_of_the_window_falls_is_not_mastered() -> None:
    # a walker that falls as early on the task as on flat ground meets the return rule but walks nothing
    c = Curriculum(reference_return=20.0, min_episodes=10, window_episodes=10)
    assert c.observe([20.0] * 10, samples=100, wall_s=1.0, fell=[True] * 10) == ""
    assert c.fall_fraction == 1.0
    assert c.observe([20.0] * 8, samples=200, wall_s=2.0, fell=[False] * 8) == ""  # 2 of the last 10 fell
    assert c.fall_fraction == 0.2
    assert c.observe([20.0], samples=300, wall_s=3.0, fell=[False]) == "promoted"  # 1 of 10: at most 10 %
    with pytest.raises(ValueError, match="2 returns but 1 fall flags"):
        c.observe([20.0, 20.0], samples=400, wall_s=4.0, fell=[False])


def test_the_last_level_completes_the_curriculum() -> None:
    c = Curriculum(reference_return=10.0, min_episodes=1, window_episodes=1)
    events = [c.observe([10.0], samples=i, wall_s=i) for i in range(1, 7)]
    assert events == ["promoted", "promoted", "promoted", "promoted", "complete", ""]
    assert c.complete
    assert c.levels_mastered == 5


def test_the_stair_cue_is_switched_off_before_a_level_counts_as_mastered() -> None:
    c = Curriculum(reference_return=100.0, min_episodes=2, window_episodes=2, guided_levels=(1, 2, 3, 4, 5))
    assert c.cue_on
    assert c.observe([95.0, 95.0], samples=100, wall_s=1.0) == "cue_off"
    assert not c.cue_on
    assert c.levels_mastered == 0
    assert c.records[0].cue_off_samples == 100
    assert c.observe([95.0], samples=150, wall_s=1.5) == ""  # the window starts again without the cue
    assert c.observe([95.0], samples=200, wall_s=2.0) == "promoted"
    assert c.cue_on
    assert c.level == 2


def test_only_levels_with_risers_are_guided_by_the_stair_cue() -> None:
    assert cue_levels("stairs") == (2, 3, 4, 5)  # level 1 is flat: nothing to cue
    assert cue_levels("slope") == ()
    c = Curriculum(reference_return=100.0, min_episodes=2, window_episodes=2, guided_levels=cue_levels("stairs"))
    assert not c.cue_on
    assert c.observe([95.0, 95.0], samples=100, wall_s=1.0) == "promoted"  # one mastery, no cue phase
    assert c.records[0].cue_off_samples is None
    assert c.cue_on
    assert c.level == 2
    assert c.to_json()["guided_levels"] == [2, 3, 4, 5]


def test_curriculum_state_round_trips() -> None:
    c = Curriculum(reference_return=50.0, min_episodes=3, window_episodes=3, guided_levels=(1, 2, 3, 4, 5))
    c.observe([48.0, 49.0, 50.0], samples=10, wall_s=1.0)
    c.observe([10.0], samples=20, wall_s=2.0)
    restored = Curriculum(min_episodes=3, window_episodes=3, guided_levels=(1, 2, 3, 4, 5))
    restored.load_state_dict(c.state_dict())
    assert restored.to_json() == c.to_json()
    assert restored.observe([50.0, 50.0], samples=30, wall_s=3.0) == c.observe([50.0, 50.0], samples=30, wall_s=3.0)


def test_with_mastery_checks_the_training_episodes_only_say_when_a_check_is_due() -> None:
    c = Curriculum(reference_return=100.0, min_episodes=4, window_episodes=4, check_every_samples=1000)
    assert c.observe([95.0] * 3, samples=100, wall_s=1.0) == ""  # too few training episodes at the level
    assert c.observe([10.0], samples=200, wall_s=2.0, fell=[True]) == "check"  # training returns do not matter
    # the check's deterministic episodes are judged by the same rule: 90 % of the reference, at most 10 % falls
    assert c.judge([95.0] * 9 + [20.0], [False] * 9 + [True], samples=200, wall_s=2.5) == ""  # mean 87.5
    assert c.observe([95.0] * 4, samples=700, wall_s=7.0) == ""  # the next check waits check_every_samples
    assert c.observe([95.0], samples=1200, wall_s=12.0) == "check"
    assert c.judge([95.0] * 10, [False] * 10, samples=1200, wall_s=12.5) == "promoted"
    assert c.level == 2
    assert c.records[0].samples_mastered == 1200
    assert c.observe([95.0] * 3, samples=1300, wall_s=13.0) == ""  # a new level needs its own training episodes


def test_a_check_with_more_than_10_percent_falls_fails_and_the_cue_goes_off_before_mastery() -> None:
    c = Curriculum(
        reference_return=10.0, min_episodes=1, window_episodes=8, guided_levels=(1, 2, 3, 4, 5), check_every_samples=1
    )
    assert c.observe([10.0], samples=1, wall_s=0.1) == "check"
    assert c.judge([10.0] * 10, [True] * 2 + [False] * 8, samples=1, wall_s=0.2) == ""  # 2 of 10 fell
    assert c.observe([10.0], samples=2, wall_s=0.3) == "check"
    assert c.judge([10.0] * 10, [False] * 10, samples=2, wall_s=0.4) == "cue_off"
    assert c.observe([10.0], samples=3, wall_s=0.5) == "check"
    assert c.judge([10.0] * 10, [False] * 10, samples=3, wall_s=0.6) == "promoted"
    assert c.records[0].cue_off_samples == 2
    assert c.records[0].samples_mastered == 3


def test_judge_needs_a_curriculum_with_checks_and_checks_survive_a_restore() -> None:
    with pytest.raises(RuntimeError, match="mastery checks"):
        Curriculum(reference_return=1.0).judge([1.0], [False], samples=1, wall_s=1.0)
    c = Curriculum(reference_return=100.0, min_episodes=1, window_episodes=4, check_every_samples=500)
    assert c.observe([1.0], samples=100, wall_s=1.0) == "check"
    c.judge([1.0], [False], samples=100, wall_s=1.0)
    restored = Curriculum(min_episodes=1, window_episodes=4, check_every_samples=500)
    restored.load_state_dict(c.state_dict())
    assert restored.observe([1.0], samples=400, wall_s=2.0) == ""  # 300 samples since the last check
    assert restored.observe([1.0], samples=600, wall_s=3.0) == "check"
    assert restored.to_json()["judged"] == "mastery checks, deterministic actions"


def test_allowed_falls_are_the_most_the_rule_passes_and_only_checks_within_them_set_the_best_return() -> None:
    c = Curriculum(reference_return=10.0, min_episodes=1, window_episodes=8, check_every_samples=1)
    assert [c.allowed_falls(n) for n in (5, 10, 20, 64)] == [0, 1, 2, 6]
    for n in (10, 64):
        allowed = c.allowed_falls(n)
        for falls, verdict in ((allowed, "promoted"), (allowed + 1, "")):
            judged = Curriculum(reference_return=10.0, min_episodes=1, window_episodes=8, check_every_samples=1)
            assert judged.observe([10.0], samples=1, wall_s=0.1) == "check"
            assert judged.judge([10.0] * n, [True] * falls + [False] * (n - falls), samples=1, wall_s=0.2) == verdict
    # the best return counts only checks within the fall limit: a stopped check judges mostly falls
    c = Curriculum(reference_return=100.0, min_episodes=1, window_episodes=8, check_every_samples=1)
    assert c.observe([1.0], samples=1, wall_s=0.1) == "check"
    c.judge([50.0] * 2, [True] * 2, samples=1, wall_s=0.2)
    assert c.records[-1].best_mean_return is None
    assert c.observe([1.0], samples=2, wall_s=0.3) == "check"
    c.judge([40.0] * 10, [False] * 10, samples=2, wall_s=0.4)
    assert c.records[-1].best_mean_return == 40.0


def test_a_check_stops_at_the_fall_beyond_those_allowed_and_returns_the_episodes_ended_by_then() -> None:
    """An untrained policy's deterministic walks (PD towards the reference pose) fall one after another; stopped at
    the third fall, the check hands over exactly the walks that had ended, with the returns the full check gives."""
    reference = sinusoidal_gait_reference(build_twin().model, speed_m_s=1.0, stride_length_m=1.2)
    torch.manual_seed(0)
    ppo = PPO(OBSERVATION_WIDTH, ACTION_WIDTH, SMALL)

    def episodes(**kwargs):
        env = WalkEnv([reference], n_envs=12, n_threads=1, seed=5)
        try:
            return deterministic_episodes(env, ppo, **kwargs)
        finally:
            env.close()

    returns, fell = episodes()
    assert len(returns) == 12  # the full check walks every simulation to its end
    assert sum(fell) > 3
    cut_returns, cut_fell = episodes(max_falls=2)
    assert sum(cut_fell) >= 3
    assert len(cut_returns) < 12
    assert not Counter(np.round(cut_returns, 9)) - Counter(np.round(returns, 9))  # the same walks, ended earlier
    assert episodes(max_falls=12) == (returns, fell)  # a limit that is never passed changes nothing
