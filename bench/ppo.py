"""PPO training throughput on this machine's 2 cores, end to end (issue 4: "PPO samples/s on 2 cores").

One PPO iteration is a rollout (the environment stepped ``n_steps`` times with actions sampled from the policy:
physics, observation, reward, autoreset, policy inference) followed by the update (normaliser, GAE, epochs of
minibatch gradient steps on the policy and the value function), exactly as :mod:`cloud_trainer.learn.train` runs
them, with the atlas's PPO arguments (policy 3×256, value 2×128) on the walk task with the synthetic gait.

Four splits of the 2 cores are measured, alternating iteration by iteration so that all see the same load on a shared
machine: MuJoCo batch threads × torch threads in {1, 2} × {1, 2}. Reported per split: samples/s end to end, of the
rollout alone and of the update alone; and the peak resident memory of the process.
"""

from __future__ import annotations

import dataclasses
import time

import torch

from bench.memory import peak_rss_mb
from cloud_trainer.atlas.train import ATLAS_PPO_ARGS
from cloud_trainer.envs.registry import make_env
from cloud_trainer.learn.ppo import PPO
from cloud_trainer.learn.train import collect_rollout
from cloud_trainer.motion.synthetic import sinusoidal_gait_reference
from cloud_trainer.twin.model import build_twin

#: (MuJoCo batch threads, torch threads) splits of the 2 cores.
SPLITS = ((2, 1), (2, 2), (1, 1), (1, 2))


def run(quick: bool = False) -> dict:
    """Measure; ``quick`` uses 64 environments × 4 steps and one iteration per split (rough figures)."""
    if quick:
        args = dataclasses.replace(ATLAS_PPO_ARGS, n_envs=64, n_steps=4)
        rounds = 1
    else:
        args, rounds = ATLAS_PPO_ARGS, 8
    reference = sinusoidal_gait_reference(build_twin().model)
    envs = {n: make_env("walk", [reference], n_envs=args.n_envs, n_threads=n, seed=0) for n in (1, 2)}
    obs = {n: env.reset(seed=0)[0] for n, env in envs.items()}
    ppo = PPO(obs[1].shape[1], envs[1].single_action_space.shape[0], args)
    threads_before = torch.get_num_threads()
    rollout_s = {split: 0.0 for split in SPLITS}
    update_s = {split: 0.0 for split in SPLITS}
    try:
        torch.set_num_threads(1)
        collect_rollout(envs[2], ppo, obs[2])  # warm-up: first calls bind fields and fault in memory
        for _ in range(rounds):
            for split in SPLITS:
                env_threads, torch_threads = split
                torch.set_num_threads(torch_threads)
                start = time.perf_counter()
                rollout, obs[env_threads], *_ = collect_rollout(envs[env_threads], ppo, obs[env_threads])
                middle = time.perf_counter()
                ppo.update(rollout)
                rollout_s[split] += middle - start
                update_s[split] += time.perf_counter() - middle
    finally:
        torch.set_num_threads(threads_before)
        for env in envs.values():
            env.close()
    samples = rounds * args.batch_size
    results: dict = {
        "n_envs": args.n_envs,
        "n_steps": args.n_steps,
        "n_epochs": args.n_epochs,
        "n_minibatches": args.n_minibatches,
        "policy_hidden": list(args.policy_hidden),
        "value_hidden": list(args.value_hidden),
        "iterations_per_split": rounds,
    }
    for env_threads, torch_threads in SPLITS:
        key = f"mj{env_threads}_torch{torch_threads}"
        r, u = rollout_s[(env_threads, torch_threads)], update_s[(env_threads, torch_threads)]
        results[f"{key}_samples_per_s"] = round(samples / (r + u))
        results[f"{key}_rollout_samples_per_s"] = round(samples / r)
        results[f"{key}_update_samples_per_s"] = round(samples / u)
    results["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return results
