"""PPO: advantage estimates and normaliser against hand computations, the initial policy, a 128-step smoke run,
checkpoints and resumption."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from cloud_trainer.envs.registry import make_env
from cloud_trainer.learn.ppo import PPO, PPOArgs, RunningNormalizer, gae
from cloud_trainer.learn.train import (
    CHECKPOINT_NAME,
    LOG_NAME,
    CheckpointError,
    TrainArgs,
    Trainer,
    load_checkpoint,
    read_log,
    summarize_log,
)
from cloud_trainer.motion.synthetic import sinusoidal_gait_reference
from cloud_trainer.twin.model import build_twin

#: 8 environments × 16 steps: one update is 128 samples.
TINY = PPOArgs(
    n_envs=8, n_steps=16, n_epochs=2, n_minibatches=2, policy_hidden=(32, 32), value_hidden=(32,), policy_lr=1e-4
)


@pytest.fixture(scope="module")
def gait():
    return sinusoidal_gait_reference(build_twin().model)


def _trainer(gait, out, **train) -> Trainer:
    def env(n_envs: int, seed: int):
        return make_env("walk", [gait], n_envs=n_envs, n_threads=1, seed=seed)

    return Trainer(env, TINY, TrainArgs(out_dir=out, **train), metadata={"test": True})


def test_gae_matches_hand_computation() -> None:
    rewards = torch.tensor([[1.0], [2.0], [3.0]])
    values = torch.tensor([[0.5], [1.0], [1.5]])
    next_values = torch.tensor([[1.0], [1.5], [4.0]])
    ended = torch.tensor([[False], [False], [False]])
    gamma, lam = 0.9, 0.8
    deltas = [1 + 0.9 * 1.0 - 0.5, 2 + 0.9 * 1.5 - 1.0, 3 + 0.9 * 4.0 - 1.5]
    expected = [
        deltas[0] + gamma * lam * deltas[1] + (gamma * lam) ** 2 * deltas[2],
        deltas[1] + gamma * lam * deltas[2],
        deltas[2],
    ]
    advantages = gae(rewards, values, next_values, ended, gamma, lam)
    np.testing.assert_allclose(advantages[:, 0].numpy(), expected, rtol=1e-6)
    # an episode ending at step 1 cuts the trace there
    ended[1, 0] = True
    next_values[1, 0] = 0.0
    advantages = gae(rewards, values, next_values, ended, gamma, lam)
    assert advantages[1, 0] == pytest.approx(2.0 - 1.0)
    assert advantages[0, 0] == pytest.approx(deltas[0] + gamma * lam * 1.0)


def test_normalizer_matches_numpy_over_batches() -> None:
    rng = np.random.default_rng(0)
    data = rng.normal([1.0, -3.0, 0.0], [2.0, 0.5, 1e-4], size=(1000, 3))
    norm = RunningNormalizer(3, clip=5.0, std_floor=1e-2)
    for chunk in np.array_split(data, 7):
        norm.update(torch.from_numpy(chunk))
    np.testing.assert_allclose(norm.mean.numpy(), data.mean(0), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(norm.var.numpy(), data.var(0), rtol=1e-9, atol=1e-12)
    out = norm(torch.tensor([[1.0 + 4.0, -3.0, 1.0]])).numpy()[0]
    assert out[0] == pytest.approx((5.0 - data[:, 0].mean()) / data[:, 0].std(), rel=1e-3)
    assert out[2] == 5.0  # a nearly constant feature: divided by the floor, then clipped


def test_initial_policy_tracks_the_reference() -> None:
    ppo = PPO(249, 22, PPOArgs())
    obs = np.random.default_rng(0).normal(size=(256, 249)).astype(np.float32)
    mean = ppo.act(obs, deterministic=True)
    assert mean.abs().max() < 0.1  # residuals start near zero: zero actions track the reference
    spread = (ppo.act(obs) - mean).std()
    assert spread == pytest.approx(PPOArgs().init_action_std, rel=0.1)


def test_smoke_run_of_128_steps(gait, tmp_path) -> None:
    trainer = _trainer(gait, tmp_path, budget_samples=128).run()
    assert trainer.counters_.updates == 1
    assert trainer.counters_.samples == 128
    assert trainer.stop_reason_ == "sample budget spent"
    (row,) = read_log(tmp_path / LOG_NAME)
    for key in ("ppo/policy_loss", "ppo/value_loss", "ppo/kl", "ppo/entropy", "step_reward", "samples_per_s"):
        assert math.isfinite(row[key]), key
    assert "imitation/joint_angles" in row
    assert "cost/foot_slide" in row
    assert "termination/fall" in row
    assert row["torch_threads"] == 1  # the first iteration runs on one thread; later ones are chosen by time
    state = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert state["counters"]["samples"] == 128
    assert state["metadata"] == {"test": True}
    for tensor in state["ppo"]["policy"].values():
        assert torch.isfinite(tensor).all()


def test_resume_continues_counters_weights_and_log(gait, tmp_path) -> None:
    first = _trainer(gait, tmp_path, budget_samples=2 * 128, checkpoint_every=1).run()
    saved = {k: v.clone() for k, v in first.ppo_.policy.state_dict().items()}
    saved_lr = first.ppo_.policy_lr
    # a run cut off after logging update 3 but before its checkpoint: that row is stale
    with open(tmp_path / LOG_NAME, "a") as f:
        f.write(json.dumps({"update": 3, "samples": 384, "stale": True}) + "\n")
        f.write('{"update": 4, "sampl')  # and a row cut off mid-write

    with pytest.raises(CheckpointError, match="pass resume"):
        _trainer(gait, tmp_path, budget_samples=4 * 128).run()

    second = _trainer(gait, tmp_path, budget_samples=4 * 128, resume=True)
    env, _ = second._start()  # resumption alone: the weights are the saved ones
    env.close()
    for name, tensor in second.ppo_.policy.state_dict().items():
        assert torch.equal(tensor, saved[name]), name
    assert second.ppo_.policy_lr == saved_lr
    assert second.counters_.updates == 2
    assert second.counters_.invocations == 2

    resumed = _trainer(gait, tmp_path, budget_samples=4 * 128, resume=True).run()
    assert resumed.counters_.updates == 4
    assert resumed.counters_.samples == 4 * 128
    rows = read_log(tmp_path / LOG_NAME)
    assert [r["update"] for r in rows] == [1, 2, 3, 4]
    assert not any(r.get("stale") for r in rows)
    assert [r["samples"] for r in rows] == [128, 256, 384, 512]
    assert load_checkpoint(tmp_path / CHECKPOINT_NAME)["counters"]["updates"] == 4


def test_damaged_checkpoint_is_a_clear_error(gait, tmp_path) -> None:
    (tmp_path / CHECKPOINT_NAME).write_bytes(b"half a checkpoint, cut off")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        _trainer(gait, tmp_path, budget_samples=128, resume=True).run()
    torch.save({"format": "something else"}, tmp_path / CHECKPOINT_NAME)
    with pytest.raises(CheckpointError, match=r"expected a 'stridetwin\.ppo-checkpoint/1' checkpoint"):
        _trainer(gait, tmp_path, budget_samples=128, resume=True).run()


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="divisible"):
        PPOArgs(n_envs=3, n_steps=5, n_minibatches=4)
    with pytest.raises(ValueError, match="activation"):
        PPOArgs(activation="swish")
    with pytest.raises(ValueError, match="budget_samples"):
        TrainArgs(out_dir="x", budget_samples=0)
    with pytest.raises(ValueError, match="torch_threads"):
        TrainArgs(out_dir="x", torch_threads=0)


def test_log_summary_windows() -> None:
    rows = [
        {"update": 1, "samples": 100, "wall_s": 1.0, "episodes": 1, "episode_return": 2.0, "episode_length_steps": 10,
         "step_reward": 0.5, "peak_rss_mb": 10.0},
        {"update": 2, "samples": 200, "wall_s": 2.0, "episodes": 3, "episode_return": 6.0, "episode_length_steps": 30,
         "step_reward": 0.7, "peak_rss_mb": 12.0},
        {"update": 3, "samples": 300, "wall_s": 3.0, "episodes": 0, "episode_return": None,
         "episode_length_steps": None, "step_reward": 0.9, "peak_rss_mb": 11.0},
    ]  # fmt: skip
    first, second = summarize_log(rows, every_samples=200)
    assert (first["update"], first["samples"], first["wall_s"], first["episodes"]) == (2, 200, 2.0, 4)
    assert first["episode_return"] == pytest.approx((2.0 + 3 * 6.0) / 4)  # weighted by episodes
    assert first["step_reward"] == pytest.approx(0.6)
    assert first["peak_rss_mb"] == 12.0
    assert second["episode_return"] is None
    assert second["step_reward"] == pytest.approx(0.9)
