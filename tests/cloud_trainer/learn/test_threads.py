"""The torch thread count of training iterations, chosen by measured time (cloud_trainer/learn/threads.py)."""

from __future__ import annotations

import copy

import pytest
import torch

from cloud_trainer.envs.registry import make_env
from cloud_trainer.learn.ppo import PPO, PPOArgs
from cloud_trainer.learn.threads import ThreadChooser, thread_candidates
from cloud_trainer.learn.train import collect_rollout
from cloud_trainer.motion.synthetic import sinusoidal_gait_reference
from cloud_trainer.twin.model import build_twin

#: Seconds per iteration measured on the 2-core development VM (docs/learning.md): idle, and with one other busy
#: process.
IDLE_S = {1: 0.645, 2: 0.555}
BUSY_S = {1: 0.736, 2: 1.261}


def _drive(chooser: ThreadChooser, seconds: dict[int, float], n: int) -> list[int]:
    """Run ``n`` iterations whose time depends only on the thread count; returns the counts used."""
    used = []
    for _ in range(n):
        threads = chooser.next()
        used.append(threads)
        chooser.record(threads, seconds[threads])
    return used


def test_candidates_are_powers_of_two_within_the_cores() -> None:
    assert thread_candidates(1) == (1,)
    assert thread_candidates(2) == (1, 2)
    assert thread_candidates(3) == (1, 2)
    assert thread_candidates(16) == (1, 2, 4, 8)
    assert thread_candidates(16, max_threads=2) == (1, 2)
    assert thread_candidates()[0] == 1


def test_it_settles_on_two_threads_when_they_are_faster() -> None:
    chooser = ThreadChooser((1, 2), probe_every=25)
    used = _drive(chooser, IDLE_S, 100)
    assert used[:3] == [1, 1, 2]  # warm-up (not counted), one measured, then the other tried
    assert chooser.current == 2
    assert used[3:].count(1) <= 100 // 25  # only the periodic tries of one thread
    assert chooser.iterations == {1: used.count(1), 2: used.count(2)}


def test_it_falls_back_to_one_thread_when_the_machine_gets_busy_and_returns_when_it_is_idle() -> None:
    chooser = ThreadChooser((1, 2), probe_every=10)
    _drive(chooser, IDLE_S, 30)
    assert chooser.current == 2
    busy = _drive(chooser, BUSY_S, 60)
    assert busy[:2] == [2, 1]  # one slow iteration is enough: 1.26 s against 0.645 s
    assert chooser.current == 1
    assert busy[2:].count(2) <= 60 // 10  # tried again now and then, never kept
    idle = _drive(chooser, IDLE_S, 30)
    assert chooser.current == 2
    assert idle[-10:].count(2) >= 9


def test_one_candidate_is_always_used() -> None:
    chooser = ThreadChooser((1,))
    assert set(_drive(chooser, IDLE_S, 20)) == {1}
    assert chooser.iterations == {1: 20}
    assert chooser.mean_s == pytest.approx({1: 0.645})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"candidates": ()}, "thread candidates"),
        ({"candidates": (0, 1)}, "thread candidates"),
        ({"candidates": (1, 2), "probe_every": 0}, "probe_every"),
        ({"candidates": (1, 2), "smoothing": 0.0}, "smoothing"),
    ],
)
def test_arguments_are_checked(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        ThreadChooser(**kwargs)


def test_the_update_is_bit_identical_on_one_and_two_threads() -> None:
    """The chooser's premise: switching threads does not change what is learnt (runs stay reproducible). Sizes are
    the `quick` budget's (256 × 8 samples, 3×256 policy), large enough for torch to split its work across threads."""
    args = PPOArgs(n_envs=256, n_steps=8, n_minibatches=2)
    env = make_env("walk", [sinusoidal_gait_reference(build_twin().model)], n_envs=args.n_envs, n_threads=2, seed=0)
    before = torch.get_num_threads()
    try:
        torch.manual_seed(0)
        ppo = PPO(env.single_observation_space.shape[0], env.single_action_space.shape[0], args)
        rollout, *_ = collect_rollout(env, ppo, env.reset(seed=0)[0])
        weights = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            torch.manual_seed(1)  # minibatch order
            trained = copy.deepcopy(ppo)
            trained.update(copy.deepcopy(rollout))
            weights.append(torch.cat([p.detach().flatten() for p in trained.policy.parameters()]))
    finally:
        torch.set_num_threads(before)
        env.close()
    assert torch.equal(weights[0], weights[1])
    assert not torch.equal(weights[0], torch.cat([p.detach().flatten() for p in ppo.policy.parameters()]))
