"""Deterministic evaluation rollouts of a policy on one task and level, recorded step by step.

What goes in is small and explicit: a policy (:data:`PolicyLike`) and an :class:`EvalSetting` (task, level, the
patient's twin and reference motions, the goal). What comes out is a :class:`RolloutRecord`: every control instant
of every episode (poses, the policy's activations, contacts, sole and trunk positions, the reference's phase and the
reference pose "ghost"), from which :mod:`cloud_trainer.pipeline.metrics` computes everything the report shows.

Protocol (docs/patient-outputs.md, "Evaluation"):

- ``n_episodes`` episodes run side by side in one ``mujoco.batch``, each from a different phase of the reference
  (evenly spread: episode i starts at phase (i + 0.5) / n), deterministic policy (the Gaussian's mean), at a fixed
  goal (speed, stride length): the setting's, else the reference's own clipped into the task's goal ranges.
- An episode ends when the pelvis passes :func:`goal_x_m` (reached: the end of the ramp or the top of the stairs,
  both feet on the landing), by a fall (the environment's termination: a non-foot body on the ground, the pelvis
  below 0.6 of the reference's height, a diverged simulation), or at the time limit.
- An optional :class:`PushPlan` pushes each simulation's pelvis with its own horizontal force
  (``mujoco``'s ``xfrc_applied`` at the pelvis's centre of mass) when it first passes a point of the course at a
  given phase of the gait cycle, and ends the episode ``recovery_s`` after the push (survived) unless it fell.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cloud_trainer.envs.base import LocomotionConfig, TwinVecEnv
from cloud_trainer.envs.constants import CONTROL_PERIOD_S
from cloud_trainer.envs.registry import ENV_NAMES, ENVIRONMENTS
from cloud_trainer.errors import UnknownNameError
from cloud_trainer.motion.reference import ReferenceMotion
from cloud_trainer.twin.anthropometry import Anthropometry
from cloud_trainer.twin.constants import HEAD_TOP_SITE
from cloud_trainer.twin.kinematics import quat_yaw_rad
from cloud_trainer.twin.terrain import get_terrain

#: A policy: a ``GaussianPolicy`` (normaliser inside), anything holding one as ``.policy`` (``PPO``,
#: ``AtlasPolicy``), anything with ``.act(obs) -> actions`` in numpy (``OnnxPolicy``), or a callable obs → actions.
PolicyLike = Any
#: Sides as the clip's metadata names them.
SIDES = ("left", "right")
#: The walker has reached the top when its pelvis is this far onto the landing (both feet are on it by then).
REACH_MARGIN_M = 0.5
#: Flat ground (the ``walk`` task, level 1 of slope and stairs): "reached" is walking the ramp's run-in and length.
FLAT_GOAL_X_M = 12.5


def as_actor(policy: PolicyLike) -> Callable[[np.ndarray], np.ndarray]:
    """A deterministic numpy function obs (n, 249) → actions (n, 22) for any :data:`PolicyLike`.

    Raises:
        TypeError: ``policy`` is none of the accepted kinds.
    """
    import torch

    inner = getattr(policy, "policy", policy)
    if isinstance(inner, torch.nn.Module):
        inner.eval()

        def act(obs: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return inner(torch.as_tensor(obs, dtype=torch.float32)).numpy()

        return act
    if hasattr(policy, "act") and not isinstance(policy, torch.nn.Module):
        return lambda obs: np.asarray(policy.act(obs), dtype=np.float32)
    if callable(policy):
        return lambda obs: np.asarray(policy(obs), dtype=np.float32)
    raise TypeError(
        f"cannot act with a {type(policy).__name__}; expected a GaussianPolicy, a PPO or AtlasPolicy (.policy), an "
        "OnnxPolicy (.act) or a callable obs → actions"
    )


@dataclass(frozen=True)
class EvalSetting:
    """Where a policy is evaluated: the task and level, the patient's twin and reference, the goal.

    Raises:
        UnknownNameError: an unknown task.
        ValueError: a level for ``walk``, a slope or stairs level outside 1-5, no reference, an unknown side.
    """

    #: ``walk`` (flat ground), ``slope`` or ``stairs``.
    task: str
    #: 1-5 for slope and stairs; None for walk.
    level: int | None
    #: The patient's reference motions (the one nearest to the goal is played).
    references: tuple[ReferenceMotion, ...]
    #: The patient's measurements; None: the twin's default body.
    anthropometry: Anthropometry | None = None
    #: ``"left"``, ``"right"``, or None (none or both): which side the compensation indicators call paretic.
    affected_side: str | None = None
    #: (speed m/s, stride length m); None: the reference's own, clipped into the task's goal ranges.
    goal: tuple[float, float] | None = None
    #: The task configuration the policy was trained with; None: the task's ``default_config(level)``.
    config: LocomotionConfig | None = None

    def __post_init__(self) -> None:
        if self.task not in ENVIRONMENTS:
            raise UnknownNameError(f"unknown task {self.task!r}; known tasks: {', '.join(ENV_NAMES)}")
        has_levels = ENVIRONMENTS[self.task][2]
        if has_levels and self.level not in range(1, 6):
            raise ValueError(f"task {self.task!r} needs a level 1-5, got {self.level!r}")
        if not has_levels and self.level is not None:
            raise ValueError(f"task {self.task!r} has no levels, got level {self.level!r}")
        object.__setattr__(self, "references", tuple(self.references))
        if not self.references:
            raise ValueError("an evaluation needs at least one reference motion")
        if self.affected_side not in (*SIDES, None):
            raise ValueError(f"affected_side must be 'left', 'right' or None, got {self.affected_side!r}")

    def task_config(self) -> LocomotionConfig:
        if self.config is not None:
            return self.config
        module = ENVIRONMENTS[self.task][1]
        return module.default_config() if self.level is None else module.default_config(self.level)

    @property
    def terrain(self) -> str:
        return self.task_config().terrain

    @property
    def label(self) -> str:
        """``slope 3``, ``stairs 5``, ``level ground``."""
        return "level ground" if self.level is None else f"{self.task} {self.level}"

    def resolved_goal(self) -> tuple[float, float]:
        """The goal the evaluation walks at (see the class docstring)."""
        if self.goal is not None:
            return float(self.goal[0]), float(self.goal[1])
        ref = self.references[0]
        speed, stride = ref.speed_m_s, ref.stride_length_m
        cfg = self.task_config()
        if cfg.speed_range_m_s is not None:
            speed = float(np.clip(speed, *cfg.speed_range_m_s))
            stride = float(np.clip(stride, *cfg.stride_length_range_m))
        return float(speed), float(stride)


def goal_x_m(terrain_name: str) -> float:
    """Pelvis x beyond which a walker has reached the goal: the landing plus :data:`REACH_MARGIN_M` on a ramp or
    stairs with a rise, :data:`FLAT_GOAL_X_M` on flat ground (the same 3 m run-in and 9 m as the ramp)."""
    terrain = get_terrain(terrain_name)
    if terrain.rise_m == 0.0:
        return FLAT_GOAL_X_M
    return terrain.feature_end_x_m + REACH_MARGIN_M


@dataclass(frozen=True)
class PushPlan:
    """Per-simulation pushes of one rollout (the protocol is :class:`cloud_trainer.pipeline.push.PushProtocol`)."""

    #: Horizontal force per simulation in the walker's heading frame (forward, left), N, (n, 2).
    force_heading_n: np.ndarray
    #: The push starts at the first control instant at which the pelvis is past ``at_x_m`` and the phase of the
    #: reference cycle lies in [phase, phase + phase_window).
    at_x_m: float
    phase: float
    duration_s: float = 0.2
    recovery_s: float = 3.0
    phase_window: float = 0.1


@dataclass
class RolloutRecord:
    """Every control instant of ``n`` episodes; row 0 is the state after reset, row t after t control steps.

    Rows after an episode ended hold the next (ignored) episode: ``alive[t, i]`` says whether row t belongs to
    episode i.
    """

    setting: EvalSetting
    goal_speed_m_s: float
    goal_stride_length_m: float
    goal_x_m: float
    time_s: np.ndarray  # (T,)
    alive: np.ndarray  # (T, n) bool
    qpos: np.ndarray  # (T, n, 22)
    #: The goal-resampled reference pose at the same time, moved under the walker's pelvis (the "ghost").
    ghost_qpos: np.ndarray  # (T, n, 22)
    #: Actions as applied (clipped to [-1, 1]), (T, n, 22); row 0 is zero (no action yet).
    action: np.ndarray
    #: Torque limit per joint group as a fraction of its ceiling, (T, n, 7): the policy's activation.
    torque_fraction: np.ndarray
    #: |actuator torque| / ceiling per hinge, (T, n, 15): the effort actually used.
    torque_used_fraction: np.ndarray
    contact: np.ndarray  # (T, n, 2) right, left
    sole_m: np.ndarray  # (T, n, 2, 3) right, left sole centres, world
    spine_top_m: np.ndarray  # (T, n, 3) world
    head_top_m: np.ndarray  # (T, n, 3) world
    phase: np.ndarray  # (T, n) reference cycle phase
    obs: np.ndarray | None  # (T, n, 249) float32, what the policy saw
    #: Per episode: "reached", "fell", "time_limit", or with a push plan "survived" (recovery window over).
    outcome: list[str]
    #: Per episode: the last row that belongs to it.
    last_row: np.ndarray
    #: Per episode: the row at which the push started (-1: not pushed).
    push_row: np.ndarray
    wall_s: float = 0.0

    @property
    def n_episodes(self) -> int:
        return self.alive.shape[1]

    @property
    def dt_s(self) -> float:
        return CONTROL_PERIOD_S

    def episode(self, i: int) -> slice:
        """Rows of episode ``i``."""
        return slice(0, int(self.last_row[i]) + 1)


# ---------------------------------------------------------------------------------------------------- environment


class _ScriptedUniform:
    """Stands in for the environment's random generator during a reset: ``uniform(low, high, n)`` returns
    ``low + fraction · (high − low)`` with one fixed fraction per simulation being reset (the start phase; the start
    position's range is a single point in evaluation). Any other draw goes to the real generator."""

    def __init__(self, fractions: np.ndarray, generator: np.random.Generator) -> None:
        self._fractions = fractions
        self._generator = generator

    def uniform(self, low, high, size=None):
        return low + self._fractions * (high - low)

    def __getattr__(self, name: str):
        return getattr(self._generator, name)


class _EvalEnvMixin:
    """Fixed goal, scripted start phases and an external push for any task environment."""

    def _setup_eval(self, goal: tuple[float, float], start_phases: np.ndarray) -> None:
        self._eval_goal = goal
        self._start_phases = np.asarray(start_phases, dtype=float)
        self._xfrc = self.batch.bind("xfrc_applied")
        self._actuator_force = self.batch.bind("actuator_force")
        self._pelvis_body = self.model.body("pelvis").id
        self._spine_site = self.model.site("spine_top").id
        self._head_site = self.model.site(HEAD_TOP_SITE).id

    def _sample_goals(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        speed, stride = self._eval_goal
        bank = self.bank
        travelling = np.flatnonzero(bank.speed_m_s > 0)
        if len(travelling) == 0 or speed <= 0:
            ref = 0
        else:
            d = (bank.speed_m_s[travelling] - speed) ** 2 + (bank.stride_length_m[travelling] - stride) ** 2
            ref = int(travelling[np.argmin(d)])
        return np.full(n, speed), np.full(n, stride), np.full(n, ref, np.intp)

    def _reset_envs(self, ids: np.ndarray) -> None:
        real = self._np_random
        self._np_random = _ScriptedUniform(self._start_phases[ids], real)
        try:
            super()._reset_envs(ids)
        finally:
            self._np_random = real

    def set_push_world(self, force_world_n: np.ndarray) -> None:
        """Horizontal force on the pelvis (world frame, N, (n, 3)) for the next control step."""
        self._xfrc[:] = 0.0
        self._xfrc[:, self._pelvis_body, :3] = force_world_n

    def snapshot(self) -> dict[str, np.ndarray]:
        """What a record row holds, for every simulation (copies)."""
        time_s = self._time_s()
        ghost = self._reference(time_s, kinematic_targets=False).qpos
        # the ghost is drawn over the walker: its pelvis where the walker's is, as high above the surface under it
        # (on stairs the pitch line) as the reference above flat ground
        ghost[:, :2] = self._qpos[:, :2]
        ghost[:, 2] += self.terrain.pitch_line_height_m(self._qpos[:, 0], self._qpos[:, 1])
        sites = self._site_xpos
        ceiling = self._ceiling_nm
        return {
            "qpos": self._qpos.copy(),
            "ghost_qpos": ghost,
            "torque_fraction": self._torque_fraction.copy(),
            "torque_used_fraction": np.abs(self._actuator_force) / ceiling,
            "contact": self._contact.copy(),
            "sole_m": sites[:, self._end_site_ids[:2]].copy(),
            "spine_top_m": sites[:, self._spine_site].copy(),
            "head_top_m": sites[:, self._head_site].copy(),
            "phase": self.bank.phase(self._ref, self._clip_time_s(time_s)),
        }


_EVAL_CLASSES: dict[type, type] = {}


def _eval_class(cls: type[TwinVecEnv]) -> type[TwinVecEnv]:
    if cls not in _EVAL_CLASSES:
        _EVAL_CLASSES[cls] = type(f"Eval{cls.__name__}", (_EvalEnvMixin, cls), {})
    return _EVAL_CLASSES[cls]


def make_eval_env(
    setting: EvalSetting, n_envs: int, max_steps: int, *, start_phases: np.ndarray | None = None, n_threads: int = 2
) -> TwinVecEnv:
    """The setting's task environment with the evaluation's fixed goal, start phases and push input.

    Episodes start at the low end of the configuration's start range (x = 0 for the tasks' defaults), the longest
    approach to the ramp or stairs that training saw. From further back a policy meets states it never trained in
    (no riser in its terrain rays yet), and stair policies trained at level 2 fell there on flat ground. On stairs with
    risers the start then moves by up to half a tread, as in training, so that the reference lands mid-tread
    (:meth:`~cloud_trainer.envs.stairs.StairsEnv._start_x_m`)."""
    cls = ENVIRONMENTS[setting.task][0]
    base = setting.task_config()
    start_x_m = base.start_x_range_m[0]
    config = dataclasses.replace(base, episode_steps=max_steps + 2, start_x_range_m=(start_x_m, start_x_m))
    env = _eval_class(cls)(
        list(setting.references), n_envs=n_envs, config=config, anthropometry=setting.anthropometry,
        n_threads=n_threads, seed=0,
    )  # fmt: skip
    phases = (np.arange(n_envs) + 0.5) / n_envs if start_phases is None else start_phases
    env._setup_eval(setting.resolved_goal(), np.broadcast_to(np.asarray(phases, dtype=float), (n_envs,)).copy())
    return env


def default_duration_s(setting: EvalSetting, push_at_x_m: float | None = None) -> float:
    """Time limit of an episode: twice the time the goal speed needs to the goal (or the push point, then 3 s of
    recovery), plus 2 s, at most 60 s."""
    speed, _ = setting.resolved_goal()
    distance = goal_x_m(setting.terrain) if push_at_x_m is None else push_at_x_m
    extra = 2.0 if push_at_x_m is None else 5.0
    return float(min(60.0, 2.0 * distance / max(speed, 0.2) + extra))


# ---------------------------------------------------------------------------------------------------- rollout


def run_rollouts(
    policy: PolicyLike,
    setting: EvalSetting,
    *,
    n_episodes: int = 4,
    duration_s: float | None = None,
    start_phases: Sequence[float] | None = None,
    push: PushPlan | None = None,
    record_obs: bool = True,
    n_threads: int = 2,
) -> RolloutRecord:
    """Run ``n_episodes`` deterministic episodes side by side and record them (see the module docstring)."""
    import time

    if n_episodes < 1:
        raise ValueError(f"n_episodes must be ≥ 1, got {n_episodes}")
    act = as_actor(policy)
    at_x = None if push is None else push.at_x_m
    duration_s = duration_s if duration_s is not None else default_duration_s(setting, at_x)
    n_steps = max(1, int(np.ceil(duration_s / CONTROL_PERIOD_S)))
    target_x = goal_x_m(setting.terrain)
    started = time.perf_counter()
    env = make_eval_env(setting, n_episodes, n_steps, start_phases=start_phases, n_threads=n_threads)
    n = n_episodes
    rows: list[dict[str, np.ndarray]] = []
    alive_rows: list[np.ndarray] = []
    actions: list[np.ndarray] = []
    observations: list[np.ndarray] = []
    outcome = ["time_limit"] * n
    last_row = np.zeros(n, np.int64)
    push_row = np.full(n, -1, np.int64)
    push_steps = 0 if push is None else max(1, round(push.duration_s / CONTROL_PERIOD_S))
    recovery_steps = 0 if push is None else round(push.recovery_s / CONTROL_PERIOD_S)
    try:
        obs, _ = env.reset()
        alive = np.ones(n, bool)
        rows.append(env.snapshot())
        alive_rows.append(alive.copy())
        actions.append(np.zeros((n, env.single_action_space.shape[0]), np.float32))
        observations.append(obs if record_obs else obs[:0])
        for step in range(1, n_steps + 1):
            a = np.clip(act(obs), -1.0, 1.0)
            if push is not None:
                env.set_push_world(_push_force_world(push, env, push_row, step, push_steps, alive))
            obs, _, terminated, truncated, _ = env.step(a)
            snap = env.snapshot()
            done = terminated | truncated
            for i in np.flatnonzero(alive):
                if done[i]:  # the simulation already holds the next episode: nothing of this row is episode i's
                    alive[i] = False
                    outcome[i] = "fell" if terminated[i] else "time_limit"
                    continue
                last_row[i] = step
                if push is None and snap["qpos"][i, 0] >= target_x:
                    alive[i], outcome[i] = False, "reached"
                elif push is not None and push_row[i] >= 0 and step >= push_row[i] + push_steps + recovery_steps:
                    alive[i], outcome[i] = False, "survived"
            rows.append(snap)
            alive_rows.append(alive.copy() | (last_row == step))
            actions.append(a.astype(np.float32))
            observations.append(obs if record_obs else obs[:0])
            if not alive.any():
                break
    finally:
        env.close()
    stacked = {key: np.stack([r[key] for r in rows]) for key in rows[0]}
    speed, stride = setting.resolved_goal()
    return RolloutRecord(
        setting=setting,
        goal_speed_m_s=speed,
        goal_stride_length_m=stride,
        goal_x_m=target_x,
        time_s=np.arange(len(rows)) * CONTROL_PERIOD_S,
        alive=np.stack(alive_rows),
        action=np.stack(actions),
        obs=np.stack(observations) if record_obs else None,
        outcome=outcome,
        last_row=last_row,
        push_row=push_row,
        wall_s=time.perf_counter() - started,
        **stacked,
    )


def _push_force_world(
    plan: PushPlan, env: TwinVecEnv, push_row: np.ndarray, step: int, push_steps: int, alive: np.ndarray
) -> np.ndarray:
    """The pelvis force of the coming control step (world frame); starts pushes whose onset condition holds now."""
    qpos = env._qpos
    phase = env.bank.phase(env._ref, env._clip_time_s(env._time_s()))
    in_window = np.mod(phase - plan.phase, 1.0) < plan.phase_window
    start = alive & (push_row < 0) & (qpos[:, 0] >= plan.at_x_m) & in_window
    push_row[start] = step - 1  # the force acts during the step from row step-1 to row step
    pushing = (push_row >= 0) & (step - 1 - push_row < push_steps) & alive
    yaw = quat_yaw_rad(qpos[:, 3:7])
    c, s = np.cos(yaw), np.sin(yaw)
    fx = plan.force_heading_n[:, 0] * c - plan.force_heading_n[:, 1] * s
    fy = plan.force_heading_n[:, 0] * s + plan.force_heading_n[:, 1] * c
    force = np.zeros((len(qpos), 3))
    force[pushing, 0], force[pushing, 1] = fx[pushing], fy[pushing]
    return force
