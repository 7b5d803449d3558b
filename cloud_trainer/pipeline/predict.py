"""Stage 3 of the patient pipeline: task prediction on slopes and stairs (Dai et al. 2025, Methods, "Personalized
Locomotion Prediction Framework").

For each task:

1. **Tasks' goals.** The reward keeps its structure; only the goals change (Methods: "only update the global targets
   in r_goal"). Slope: the patient's own speed and stride length ("maintaining the patient's nominal speed and step
   length"). Stairs: the paper trains "without preset speed targets"; the environment keeps a speed goal so that
   progress is rewarded (docs/environments.md), set here to two treads per stride (step-over-step) at the patient's
   own stride frequency, i.e. ``0.6 m × speed / stride length``. Episodes last ``episode_steps`` and start 0.5-1.5 m
   before the first riser, or anywhere from 1.5 m before the ramp to 4 m up it (reference-state initialisation on a
   1:12 ramp makes no one fall in the first half second, measured), so that training covers the whole 9 m ramp a
   slow walker would not climb within one episode. The stairs imitate the patient's reference walked at the stairs'
   goal with its hip swing made consistent with the shorter stride (:mod:`cloud_trainer.motion.stride`): merely
   resampled to 0.6 m, its legs still reach as for the patient's own stride and its stance foot slides backwards at
   about the walking speed. Its stance feet are then held where they land (:mod:`cloud_trainer.motion.planting`):
   on a tread a foot has one place to stand.
2. **Initialisation** (Stage I, BPD): the observation spaces of flat walking and the tasks are the same, so the
   task policy starts from the adapted patient policy (π' = π, which the paper allows when s' = s); the
   behaviour-cloning proxy π_BC is fitted to the patient pairs (:mod:`cloud_trainer.pipeline.bc` says what they are).
3. **GATP** (Stage II): PPO with ``α_BC · L_BC`` (α_BC 0.2 → 0 over the first quarter of the task's budget) and the
   GAIL intrinsic reward mixed 0.9 / 0.1 with the environment's (:mod:`cloud_trainer.pipeline.gail`).
4. **Curriculum** over the five levels (:mod:`cloud_trainer.pipeline.curriculum`), the stair cue switched on at each
   stairs level until it is mastered. The reference return is the patient's flat-ground performance (the paper's):
   the adapted policy walking flat ground at the patient's own goals, episodes as long as the tasks' (one figure for
   both tasks; under the stairs goals level 1 alone would be a lower bar).

The physics-only baseline runs the same curriculum from its own (atlas-free) adapted policy, with neither BC nor
GAIL. Each task writes ``policy.pt`` (final), ``level_<L>.pt`` (the policy when level L was mastered) and
``curriculum.json`` into its stage folder.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from cloud_trainer.envs import slope, stairs
from cloud_trainer.envs.base import LocomotionConfig, TwinVecEnv
from cloud_trainer.envs.registry import make_env
from cloud_trainer.learn.ppo import PPO
from cloud_trainer.motion.planting import planted
from cloud_trainer.motion.reference import ReferenceMotion
from cloud_trainer.motion.stride import with_stride
from cloud_trainer.pipeline.adapt import (
    adaptation_config,
    make_adaptation_env,
    patient_goal_config,
    patient_walk_config,
)
from cloud_trainer.pipeline.reference import ObservedGait
from cloud_trainer.twin.anthropometry import Anthropometry
from cloud_trainer.twin.model import build_twin
from cloud_trainer.twin.terrain import RUN_IN_M, RUN_IN_START_X_M, STAIR_HEIGHTS_M

#: Where task episodes start along the course, m (see the module docstring).
TASK_START_X_M = {"slope": (RUN_IN_M - 1.5, RUN_IN_M + 4.0), "stairs": RUN_IN_START_X_M}
TASK_MODULES = {"slope": slope, "stairs": stairs}


@dataclass(frozen=True)
class TaskGoal:
    """The goal of a task for this patient."""

    task: str
    speed_m_s: float
    stride_length_m: float
    why: str


def task_goal(task: str, gait: ObservedGait) -> TaskGoal:
    """The patient's goal on ``task`` (see the module docstring)."""
    if task == "slope":
        return TaskGoal(task, gait.speed_m_s, gait.stride_length_m, "the patient's level-ground speed and stride")
    if task == "stairs":
        stride_m = stairs.STAIR_STRIDE_M
        return TaskGoal(task, stride_m * gait.stride_frequency_hz, stride_m,
                        "two treads per stride at the patient's own stride frequency")  # fmt: skip
    raise ValueError(f"unknown task {task!r}; accepted: {', '.join(TASK_MODULES)}")


def cue_levels(task: str) -> tuple[int, ...]:
    """The curriculum levels of ``task`` trained first with the stair cue: the stairs levels that have risers (on the
    flat first level the cue would add a constant; docs/pipeline.md, "Stair cue")."""
    if task != "stairs":
        return ()
    return tuple(level for level, riser_m in enumerate(STAIR_HEIGHTS_M, start=1) if riser_m > 0.0)


def task_reference(
    task: str, reference: ReferenceMotion, anthropometry: Anthropometry, gait: ObservedGait
) -> ReferenceMotion:
    """The motion ``task`` imitates: on slopes the patient's reference (walked at the patient's own goals), on stairs
    the reference walked at the stairs' goal, its hip swing made consistent with that stride and its stance feet
    planted (module docstring)."""
    if task == "slope":
        return reference
    goal = task_goal(task, gait)
    model = build_twin(anthropometry).model
    return planted(with_stride(reference, model, goal.speed_m_s, goal.stride_length_m), model)


def task_config(task: str, level: int, gait: ObservedGait, *, episode_steps: int, cue_on: bool = False):
    """The task's environment configuration at ``level`` for this patient, the stair cue on or off."""
    goal = task_goal(task, gait)
    changes: dict = {"episode_steps": episode_steps, "start_x_range_m": TASK_START_X_M[task]}
    if task == "stairs" and cue_on:
        changes["guidance_terms"] = {"step_cue": stairs.STEP_CUE_WEIGHT}
    base = TASK_MODULES[task].default_config(level)
    return patient_goal_config(base, goal.speed_m_s, goal.stride_length_m, **changes)


def make_task_env(
    task: str,
    level: int,
    cue_on: bool,
    reference: ReferenceMotion,
    anthropometry: Anthropometry,
    gait: ObservedGait,
    *,
    n_envs: int,
    episode_steps: int,
    seed: int,
    n_threads: int = 2,
) -> TwinVecEnv:
    """The task's environment for the patient at a curriculum level, imitating ``reference`` (the task's own:
    :func:`task_reference`)."""
    config = task_config(task, level, gait, episode_steps=episode_steps, cue_on=cue_on)
    return make_env(
        task, [reference], config=config, n_envs=n_envs, anthropometry=anthropometry, n_threads=n_threads, seed=seed
    )


def flat_ground_config(gait: ObservedGait, episode_steps: int) -> LocomotionConfig:
    """Flat ground at the patient's own goals, episodes as long as the tasks': where the curriculum's reference
    return is measured. Its rewards are the walk task's (the slope task's kernels, not the adaptation's narrower
    joint-angle kernel), so that the tasks' returns compare with it."""
    return patient_walk_config(gait, episode_steps)


@torch.no_grad()
def deterministic_episodes(
    env: TwinVecEnv, ppo: PPO, *, max_falls: int | None = None
) -> tuple[list[float], list[bool]]:
    """The first episode of every simulation of ``env`` with ``ppo``'s deterministic actions (the policy that is
    evaluated and exported): their returns (environment reward, without guidance) and whether each ended in a fall.

    With ``max_falls``, stops at the fall that exceeds it and returns only the episodes that had ended by then: a
    mastery check that allows that many falls has failed whatever the others do. On a level the policy cannot yet
    walk, that fall comes within the first fifth of the check's steps (docs/pipeline.md).

    Raises:
        RuntimeError: an episode still running after the environment's episode length (it truncates them there).
    """
    n = env.num_envs
    max_steps = env.config.episode_steps + 1  # one step of slack beyond the truncation
    returns, fell, ended = np.zeros(n), np.zeros(n, bool), np.zeros(n, bool)
    obs, _ = env.reset()
    for _ in range(max_steps):
        obs, _, _, _, infos = env.step(ppo.act(obs, deterministic=True).numpy())
        if "_episode" in infos:
            new = infos["_episode"] & ~ended
            returns[new] = (infos["episode_return"] - infos.get("episode_guidance", 0.0))[new]
            fell[new] = infos["episode_terminated"][new]
            ended |= new
            if ended.all() or (max_falls is not None and fell.sum() > max_falls):
                return returns[ended].tolist(), fell[ended].tolist()
    raise RuntimeError(f"{int((~ended).sum())} of {n} episodes still running after {max_steps} control steps")


@dataclass
class PatientPairs:
    """(observation, action) pairs of the adapted patient policy walking the patient's reference on flat ground."""

    obs: np.ndarray  # (n, 249)
    #: The actions it sampled (what it does; GAIL's patient pairs).
    actions: np.ndarray  # (n, 22)
    #: Its deterministic actions on the same states (the activations behaviour cloning fits).
    mean_actions: np.ndarray  # (n, 22)


@torch.no_grad()
def collect_patient_pairs(
    ppo: PPO,
    reference: ReferenceMotion,
    anthropometry: Anthropometry,
    gait: ObservedGait,
    *,
    n_envs: int,
    n_steps: int,
    seed: int,
    skip_steps: int = 10,
) -> PatientPairs:
    """Roll the adapted policy out on flat ground at the patient's goals (``n_envs`` × ``n_steps`` control steps,
    the first ``skip_steps`` of each simulation dropped: their stacked frames still repeat the initial one)."""
    env = make_adaptation_env(reference, anthropometry, adaptation_config(gait), n_envs, seed)
    obs_list, act_list, mean_list = [], [], []
    try:
        obs, _ = env.reset()
        for step in range(n_steps + skip_steps):
            mean = ppo.act(obs, deterministic=True)
            action = ppo.policy.distribution(torch.from_numpy(obs)).sample()
            if step >= skip_steps:
                obs_list.append(obs.copy())
                act_list.append(action.numpy())
                mean_list.append(mean.numpy())
            obs, _, _, _, _ = env.step(action.numpy())
    finally:
        env.close()
    return PatientPairs(np.concatenate(obs_list), np.concatenate(act_list), np.concatenate(mean_list))


def level_config_summary(task: str, gait: ObservedGait, episode_steps: int) -> dict:
    """The task's goals and course per level, for the report."""
    goal = task_goal(task, gait)
    levels = []
    for level in TASK_MODULES[task].LEVELS:
        config: LocomotionConfig = task_config(task, level, gait, episode_steps=episode_steps)
        levels.append({"level": level, "terrain": config.terrain})
    return {"goal": dataclasses.asdict(goal), "episode_steps": episode_steps, "levels": levels}
