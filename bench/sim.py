"""Environment throughput versus raw physics (issue 4 goal: ≥ 0.6).

Steps an environment (the twin imitating the synthetic gait, PD targets from small random residual actions;
observation, reward, termination and autoreset included) and records the physics state of every simulation before
each control step. Then, in the same run, replays exactly those states through a bare ``mujoco.batch`` of the same
model: set the state rows and torque limits, step 6 substeps. The two alternate in chunks of ``CHUNK_STEPS`` control
steps so that both see the same load on a shared machine. Both on ``N_THREADS`` threads. The ratio of control
steps per second compares the two on identical states (a bare batch left to itself would fall over and lie on the
ground, which is a different, contact-heavier workload). The recording's copy is charged to the environment.
Also reported: the cost of the 13 terrain rays and of writing per-simulation torque limits, per control step.
"""

from __future__ import annotations

import time

import numpy as np
from mujoco import batch as mjbatch

from cloud_trainer.envs.constants import N_SUBSTEPS
from cloud_trainer.envs.registry import make_env
from cloud_trainer.motion.synthetic import sinusoidal_gait_reference
from cloud_trainer.twin.model import build_twin

N_THREADS = 2
#: Control steps per alternation between the environment and the bare batch.
CHUNK_STEPS = 10


def run(quick: bool = False) -> dict:
    """Measure; ``quick`` uses fewer environments and steps (rough figures)."""
    n_envs, n_steps = (64, 20) if quick else (512, 300)
    results: dict = {"n_envs": n_envs, "n_threads": N_THREADS, "control_steps": n_steps}
    for task in ("walk", "stairs"):
        results.update({f"{task}_{k}": v for k, v in _measure(task, n_envs, n_steps).items()})
    return results


def _measure(task: str, n_envs: int, n_steps: int) -> dict:
    reference = sinusoidal_gait_reference(build_twin().model)
    env = make_env(task, [reference], n_envs=n_envs, n_threads=N_THREADS, seed=0)
    rng = np.random.default_rng(0)
    env.reset()
    actions = 0.1 * rng.standard_normal((n_steps + 5, n_envs, env.single_action_space.shape[0]))
    for k in range(5):  # warm-up: first calls bind fields and fault in memory
        env.step(actions[k])
    states = np.empty((CHUNK_STEPS, *env.batch.state.shape))
    limits = np.empty((CHUNK_STEPS, *env.batch.expanded("actuator_forcerange").shape))
    physics_step = env.batch.step
    recorded = 0

    def recording_step(*args, **kwargs):
        nonlocal recorded
        states[recorded] = env.batch.state
        limits[recorded] = env.batch.expanded("actuator_forcerange")
        recorded += 1
        physics_step(*args, **kwargs)

    env.batch.step = recording_step
    raw = mjbatch.Batch(env.model, n_envs, nthread=N_THREADS)
    forcerange = raw.expand("actuator_forcerange")
    env_s = raw_s = 0.0
    # alternate short chunks of the two, so that both see the same load on a shared machine
    for chunk in range(n_steps // CHUNK_STEPS):
        recorded = 0
        start = time.perf_counter()
        for k in range(CHUNK_STEPS):
            env.step(actions[5 + chunk * CHUNK_STEPS + k])
        env_s += time.perf_counter() - start
        start = time.perf_counter()
        for k in range(CHUNK_STEPS):
            raw.state[:] = states[k]
            forcerange[:] = limits[k]
            raw.step(nstep=N_SUBSTEPS)
        raw_s += time.perf_counter() - start

    # the two per-step costs the batch API adds to the environment
    probe = env._measure(slice(None), env._reference(env._time_s(), kinematic_targets=False))
    start = time.perf_counter()
    for _ in range(20):
        env._terrain_rays(slice(None), probe)
    rays_s = (time.perf_counter() - start) / 20
    start = time.perf_counter()
    for _ in range(20):
        env._apply_torque_limits(slice(None))
    limits_s = (time.perf_counter() - start) / 20
    env.close()
    env_rate = n_envs * n_steps / env_s
    raw_rate = n_envs * n_steps / raw_s
    return {
        "env_control_steps_per_s": round(env_rate),
        "raw_control_steps_per_s": round(raw_rate),
        "ratio": round(env_rate / raw_rate, 3),
        "terrain_rays_ms_per_step": round(rays_s * 1e3, 2),
        "torque_limit_write_ms_per_step": round(limits_s * 1e3, 3),
    }
