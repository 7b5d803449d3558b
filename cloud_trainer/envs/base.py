"""The vectorised locomotion environment: N twins stepped together on ``mujoco.batch`` (C threads, no GIL).

This module is the plumbing every task shares: the model and its sensors, reference playback with goal-conditioned
time resampling, reference-state initialisation, the goal window, observations, termination and autoreset. A task
module (:mod:`cloud_trainer.envs.walk` and its subclasses) adds ``default_config()`` and one small ``_reward_*`` or
``_cost_*`` method per reward term; the config says which terms are used and with what weight.

Reward (Dai et al. 2025, Methods "Reward"): ``r = w_goal·r_goal + w_imitation·r_imitation − p_physics``, where
``r_goal`` and ``r_imitation`` are the weighted means of their terms (each in [0, 1]) and ``p_physics`` the weighted sum
of the cost terms. Goal terms are evaluated over a sliding window of ``goal_window_s``.

Gymnasium: a :class:`gymnasium.vector.VectorEnv` with same-step autoreset: when an episode ends, ``step`` returns the
first observation of the next one, and ``infos["final_obs"]`` (N, obs) holds the last observation of the one that
ended where ``infos["_final_obs"]`` is true. ``infos["reward_terms"]`` holds every term per environment and
``infos["log"]`` their means over the environments.

Timing of what the policy sees: joint and root state (``qpos``, ``qvel``) are those at the control instant; quantities
MuJoCo derives (body and site positions, the centre of mass, contacts) are those computed at the start of the last
physics substep, 1/180 s earlier, as ``mj_step`` leaves them, and are compared with the reference at that same time.
Recomputing them at the control instant would cost a further forward pass per control step (≈ 14 % of the physics).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import ClassVar

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from mujoco import batch as mjbatch

from cloud_trainer.envs.constants import (
    ACTION_WIDTH,
    CONTROL_PERIOD_S,
    FRAME_WIDTH,
    N_STACKED_FRAMES,
    N_SUBSTEPS,
    OBSERVATION_WIDTH,
    RAY_ANGLES_RAD,
    RAY_MAX_M,
    frame_slices,
)
from cloud_trainer.motion.reference import ReferenceBank, ReferenceFrames, ReferenceMotion
from cloud_trainer.twin.anthropometry import Anthropometry
from cloud_trainer.twin.constants import (
    END_EFFECTOR_SITES,
    FOOT_BODIES,
    HIP_SITES,
    JOINT_GROUP_INDEX,
    N_GROUPS,
    N_JOINTS,
    N_ROOT_QPOS,
    N_ROOT_QVEL,
    NON_FOOT_BODIES,
)
from cloud_trainer.twin.kinematics import quat_yaw_rad, rotate_into_heading
from cloud_trainer.twin.model import CONTACT_SENSOR, PHYSICS_TIMESTEP_S, build_twin
from cloud_trainer.twin.terrain import TERRAIN_GEOM_GROUP, Terrain, get_terrain

#: Slowest goal speed a reference clock that follows the walker divides its pelvis gap by, m/s (the stairs' goals
#: are 0.4-0.8 m/s, ``stairs.STAIR_SPEED_RANGE_M_S``; a goal of 0 would otherwise divide by zero).
_CLOCK_MIN_SPEED_M_S = 0.1


@dataclass(frozen=True)
class LocomotionConfig:
    """Parameters of a locomotion task. Ranges are ``(low, high)``; kernel scales are the error at which a reward
    term has fallen to exp(−1)."""

    #: Course, a name from ``cloud_trainer.twin.terrain.TERRAIN_NAMES``.
    terrain: str = "flat"
    #: Episode length cap in control steps (the paper's 500).
    episode_steps: int = 500
    #: Goal sampling per episode (Dai et al. 2025, Stage I: 0.4-1.4 m/s, 0.5-1.7 m); None for both: the goal is the
    #: reference's own speed and stride length, played as recorded (patient adaptation, standing).
    speed_range_m_s: tuple[float, float] | None = (0.4, 1.4)
    stride_length_range_m: tuple[float, float] | None = (0.5, 1.7)
    #: Goals whose stride frequency (speed / stride length) falls outside this range are drawn again: independent
    #: draws from the two ranges above give pairs no one walks (0.4 m/s with 1.7 m strides is a 4.3 s stride).
    stride_frequency_range_hz: tuple[float, float] = (0.5, 1.3)
    #: Where the pelvis starts along the course, m (drawn uniformly).
    start_x_range_m: tuple[float, float] = (0.0, 0.0)
    #: Target angle = reference angle + residual_scale_rad × action, clipped to the joint's range.
    residual_scale_rad: float = 0.5
    #: Torque limit = ceiling × fraction, the action mapped linearly from [-1, 1] onto this range.
    torque_fraction_range: tuple[float, float] = (0.2, 1.0)
    #: Sliding window of the goal terms, s.
    goal_window_s: float = 1.0
    #: A foot must be off the ground this long before its next contact counts as a touchdown, s: shorter than any
    #: swing phase (≈ 0.35 s at 1.4 m/s, longer when slower), longer than a toe scuff or a mid-stance lift.
    min_swing_s: float = 0.2
    #: Without a touchdown for this long the measured stride length is 0 (the walker stopped stepping), s.
    stride_timeout_s: float = 2.0
    #: Fall: pelvis height above the surface (on stairs the pitch line) below this fraction of the reference's.
    fall_height_fraction: float = 0.6
    terminate_on_non_foot_contact: bool = True
    goal_reward_weight: float = 0.5
    imitation_reward_weight: float = 0.5
    #: Terms (method ``_reward_<name>``) and their weights within r_goal and r_imitation; cost terms (``_cost_<name>``)
    #: and their weights within p_physics.
    goal_terms: Mapping[str, float] = field(
        default_factory=lambda: {"speed": 0.4, "stride_length": 0.2, "heading": 0.2, "root_stability": 0.2}
    )
    imitation_terms: Mapping[str, float] = field(
        default_factory=lambda: {"joint_angles": 0.65, "joint_velocities": 0.1, "com": 0.1, "limb_ends": 0.15}
    )
    cost_terms: Mapping[str, float] = field(default_factory=lambda: {"foot_slide": 0.5, "floating": 0.2})
    #: Shaping terms (method ``_guidance_<name>``, each in [0, 1]) added to the reward with these weights, outside
    #: the paper's structure: sparse cues for early training that a curriculum switches off (e.g. the stair cue,
    #: Dai et al. 2025, "Task II"). Their per-episode sum is reported apart (``infos["episode_guidance"]``) so that
    #: returns can be judged without them. Empty by default.
    guidance_terms: Mapping[str, float] = field(default_factory=dict)
    speed_scale_m_s: float = 0.2
    stride_length_scale_m: float = 0.2
    heading_scale_rad: float = 0.3
    root_height_scale_m: float = 0.05
    root_tilt_scale_rad: float = 0.2
    joint_angle_scale_rad: float = 0.25
    joint_velocity_scale_rad_s: float = 2.0
    com_scale_m: float = 0.05
    limb_end_scale_m: float = 0.1

    def __post_init__(self) -> None:
        get_terrain(self.terrain)  # an unknown name fails here, listing the known ones
        for name in ("speed_range_m_s", "stride_length_range_m", "stride_frequency_range_hz", "torque_fraction_range"):
            bounds = getattr(self, name)
            if bounds is not None and not (0 <= bounds[0] <= bounds[1]):
                raise ValueError(f"{name} must be (low, high) with 0 ≤ low ≤ high, got {bounds}")
        if not 0 < self.torque_fraction_range[1] <= 1:
            raise ValueError(f"torque_fraction_range must lie within (0, 1], got {self.torque_fraction_range}")
        if (self.speed_range_m_s is None) != (self.stride_length_range_m is None):
            raise ValueError("speed_range_m_s and stride_length_range_m must both be given or both be None")
        if self.episode_steps < 1:
            raise ValueError(f"episode_steps must be ≥ 1, got {self.episode_steps}")


class TwinVecEnv(VectorEnv):
    """N simulations of the patient's twin imitating reference motions on one course (see the module docstring).

    Args:
        references: the reference motions an episode draws from (the one nearest to its goal).
        n_envs: number of simulations.
        config: task parameters; the task's ``default_config()`` if None.
        anthropometry: the patient's measurements (default: 1.75 m, 70 kg, male).
        n_threads: threads of the MuJoCo batch (the caller's thread included).
        seed: seed of the environment's random generator (goals, phases, start positions).
    """

    metadata: ClassVar[dict] = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    @staticmethod
    def default_config() -> LocomotionConfig:
        return LocomotionConfig()

    def __init__(
        self,
        references: Sequence[ReferenceMotion],
        *,
        n_envs: int = 64,
        config: LocomotionConfig | None = None,
        anthropometry: Anthropometry | None = None,
        n_threads: int = 2,
        seed: int | None = None,
    ) -> None:
        if n_envs < 1:
            raise ValueError(f"n_envs must be ≥ 1, got {n_envs}")
        self.config = config or self.default_config()
        self.twin = build_twin(anthropometry, self.config.terrain)
        self.terrain = self.twin.terrain
        self.bank = ReferenceBank(references)
        for group in ("goal_terms", "imitation_terms"):
            for term in getattr(self.config, group):
                self._term_method(f"_reward_{term}")
        for term in self.config.cost_terms:
            self._term_method(f"_cost_{term}")
        for term in self.config.guidance_terms:
            self._term_method(f"_guidance_{term}")
        self.num_envs = n_envs
        self.single_observation_space = gym.spaces.Box(-np.inf, np.inf, (OBSERVATION_WIDTH,), np.float32)
        self.single_action_space = gym.spaces.Box(-1.0, 1.0, (ACTION_WIDTH,), np.float32)
        self.observation_space = batch_space(self.single_observation_space, n_envs)
        self.action_space = batch_space(self.single_action_space, n_envs)
        self._np_random = np.random.default_rng(seed)

        model = self.twin.model
        self.model = model
        self.batch = mjbatch.Batch(model, n_envs, nthread=n_threads)
        self._qpos, self._qvel, self._ctrl = self.batch.bind("qpos"), self.batch.bind("qvel"), self.batch.bind("ctrl")
        self._xpos, self._xquat = self.batch.bind("xpos"), self.batch.bind("xquat")
        self._site_xpos = self.batch.bind("site_xpos")
        self._subtree_com = self.batch.bind("subtree_com")
        self._sensordata = self.batch.bind("sensordata")
        self._forcerange = self.batch.expand("actuator_forcerange")
        self._pelvis_id = model.body("pelvis").id
        self._end_site_ids = np.array([model.site(s).id for s in END_EFFECTOR_SITES])
        self._hip_site_ids = np.array([model.site(s).id for s in HIP_SITES])
        self._foot_sensor_adr = np.array([model.sensor(CONTACT_SENSOR.format(b)).adr[0] for b in FOOT_BODIES])
        self._non_foot_sensor_adr = np.array([model.sensor(CONTACT_SENSOR.format(b)).adr[0] for b in NON_FOOT_BODIES])
        self._ray_groups = np.zeros(6, np.uint8)
        self._ray_groups[TERRAIN_GEOM_GROUP] = 1
        self._ceiling_nm = self.twin.torque_ceiling_nm
        self._joint_lo, self._joint_hi = self.twin.joint_range_rad[:, 0], self.twin.joint_range_rad[:, 1]
        self._slices = frame_slices()

        n, w = n_envs, max(1, round(self.config.goal_window_s / CONTROL_PERIOD_S))
        self._window_steps = w
        # per-episode state
        self._ref = np.zeros(n, np.intp)
        self._clip_time0_s = np.zeros(n)
        self._clock_lag_s = np.zeros(n)  # how far the reference's clock is behind the episode's (_advance_clock)
        self._clock_rate_range = self.clock_rate_range(self.terrain)  # None: the reference plays in real time
        self._clock_rate = np.ones(n)  # the rate (of real time) at which that clock ran over the last control step
        self._time_scale = np.ones(n)
        self._stride_scale = np.ones(n)
        self._root_shift_xy = np.zeros((n, 2))
        self._goal_speed = np.zeros(n)
        self._goal_stride = np.zeros(n)
        self._steps = np.zeros(n, np.int64)
        self._episode_return = np.zeros(n)
        self._episode_guidance = np.zeros(n)
        self._torque_fraction = np.zeros((n, N_GROUPS))
        # goal window: pelvis xy and heading for the last w+1 control instants, root error for the last w
        self._pos_hist = np.zeros((n, w + 1, 2))
        self._yaw_hist = np.zeros((n, w, 2))
        self._root_err_hist = np.zeros((n, w))
        # feet: contact, airborne time, last touchdown x and time, measured strides
        self._contact = np.zeros((n, 2), bool)
        self._foot_xy = np.zeros((n, 2, 2))
        self._airborne_s = np.zeros((n, 2))
        self._touchdown_x = np.full((n, 2), np.nan)
        self._touchdown_time_s = np.full((n, 2), -np.inf)
        self._stride_measured = np.full((n, 2), np.nan)
        self._obs = np.zeros((n, N_STACKED_FRAMES, FRAME_WIDTH), np.float32)
        self._warnings = np.zeros(n, np.int64)

    # ------------------------------------------------------------------ gymnasium API

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        """Start a new episode in every simulation (reference-state initialisation at a random phase)."""
        if seed is not None:
            self._np_random = np.random.default_rng(seed)
        self._reset_envs(np.arange(self.num_envs))
        return self._obs.reshape(self.num_envs, -1).copy(), {}

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        """Apply one control step's actions (N, 22) in [-1, 1]; see ``cloud_trainer.envs.constants``."""
        actions = np.asarray(actions, dtype=float)
        if actions.shape != (self.num_envs, ACTION_WIDTH):
            raise ValueError(f"actions must have shape {(self.num_envs, ACTION_WIDTH)}, got {actions.shape}")
        a = np.clip(np.nan_to_num(actions), -1.0, 1.0)
        cfg = self.config

        # --- actuation: PD targets around the reference at the end of this control step, torque limits
        self._steps += 1
        target_ref = self._reference(self._time_s(), kinematic_targets=False)
        self._ctrl[:] = np.clip(
            target_ref.qpos[:, N_ROOT_QPOS:] + cfg.residual_scale_rad * a[:, :N_JOINTS], self._joint_lo, self._joint_hi
        )
        lo, hi = cfg.torque_fraction_range
        self._torque_fraction[:] = lo + (a[:, N_JOINTS:] + 1.0) * 0.5 * (hi - lo)
        self._apply_torque_limits(slice(None))

        # --- physics
        failed = np.zeros(self.num_envs, bool)
        try:
            self.batch.step(nstep=N_SUBSTEPS)
        except mjbatch.SimulationError as error:
            failed[error.ids] = True
        warnings = self.batch.warning[:, :, 1].sum(axis=1)
        failed |= warnings > self._warnings
        self._warnings = warnings

        # --- measurements, reward, termination
        m = self._measure(slice(None), target_ref)
        self._update_goal_window(m)
        self._advance_clock(m)
        terms, reward = self._reward(m)
        self._episode_return += reward
        self._episode_guidance += terms["reward/guidance"]
        non_foot = (self._sensordata[:, self._non_foot_sensor_adr] > 0).any(axis=1)
        fallen = m.root_height_m < cfg.fall_height_fraction * m.ref.qpos[:, 2]
        unstable = failed | ~np.isfinite(self._qpos).all(axis=1) | ~np.isfinite(self._qvel).all(axis=1)
        terminated = fallen | unstable | (non_foot & cfg.terminate_on_non_foot_contact)
        truncated = ~terminated & (
            (self._steps >= cfg.episode_steps) | (self._qpos[:, 0] > self.terrain.course_end_x_m - 1.0)
        )
        if unstable.any():  # a diverged simulation reports nothing meaningful; it is reset below
            reward = np.where(unstable, 0.0, reward)
            terms = {name: np.where(unstable, 0.0, value) for name, value in terms.items()}
        self._push_frame(np.nan_to_num(self._frame(slice(None), m), nan=0.0, posinf=0.0, neginf=0.0))

        infos: dict = {"reward_terms": terms, "log": {name: float(np.mean(v)) for name, v in terms.items()}}
        infos["log"].update(
            {
                "termination/non_foot_contact": float(np.mean(non_foot)),
                "termination/fall": float(np.mean(fallen)),
                "termination/unstable": float(np.mean(unstable)),
            }
        )
        done = terminated | truncated
        if done.any():
            ids = np.flatnonzero(done)
            infos["final_obs"] = self._obs.reshape(self.num_envs, -1).copy()
            infos["_final_obs"] = done
            infos["episode_return"] = self._episode_return.copy()
            infos["episode_guidance"] = self._episode_guidance.copy()
            infos["episode_length"] = self._steps.copy()
            # ended by a fall, a non-foot contact or an unstable simulation (not by the time limit or the course end)
            infos["episode_terminated"] = terminated.copy()
            infos["_episode"] = done
            self._reset_envs(ids)
        obs = self._obs.reshape(self.num_envs, -1).copy()
        return obs, reward.astype(np.float32), terminated, truncated, infos

    def close_extras(self, **kwargs) -> None:
        self.batch = None

    @property
    def root_x_m(self) -> np.ndarray:
        """Each simulation's pelvis position along the course (world x), m."""
        return self._qpos[:, 0].copy()

    # ------------------------------------------------------------------ episodes

    def _time_s(self, ids=slice(None)) -> np.ndarray:
        return self._steps[ids] * CONTROL_PERIOD_S

    def _clip_time_s(self, time_s: np.ndarray, ids=slice(None)) -> np.ndarray:
        return self._clip_time0_s[ids] + (time_s - self._clock_lag_s[ids]) * self._time_scale[ids]

    def _advance_clock(self, m: SimpleNamespace) -> None:
        """After a control step measured in ``m``, on a course where the reference's clock follows the walker
        (:meth:`clock_rate_range`), hold each reference back by the time its pelvis is ahead of the walker's at the
        goal speed (run it on by the time it is behind), its clock's rate kept within that range: the reference's
        pose, and the phase the policy observes, then follow where the walker is, not how long it has walked
        (docs/environments.md, stairs). The reference's velocities are read at the rate the clock ran
        (:meth:`_placed`): a reference held back moves more slowly, and its joint-velocity term asks for that."""
        if self._clock_rate_range is None:
            return
        ahead_m = m.ref.qpos[:, 0] - m.qpos[:, 0]
        catch_up_s = ahead_m / np.maximum(self._goal_speed, _CLOCK_MIN_SPEED_M_S)
        lo, hi = self._clock_rate_range
        held_back_s = np.clip(catch_up_s, (1.0 - hi) * CONTROL_PERIOD_S, (1.0 - lo) * CONTROL_PERIOD_S)
        self._clock_lag_s += held_back_s
        self._clock_rate = 1.0 - held_back_s / CONTROL_PERIOD_S

    def _reference(
        self, time_s: np.ndarray, ids=slice(None), *, kinematic_targets: bool = True, root_x_m: np.ndarray | None = None
    ) -> ReferenceFrames:
        """The (goal-resampled) reference of each environment at its episode time, placed on the course.

        ``root_x_m`` (default: where each simulation's pelvis is) is for a task whose reference depends on where on
        the course the walker is (:class:`~cloud_trainer.envs.stairs.StairsEnv`); here it is not read."""
        return self._placed(self.bank, time_s, ids, kinematic_targets)

    def _placed(self, bank: ReferenceBank, time_s: np.ndarray, ids, kinematic_targets: bool) -> ReferenceFrames:
        """The motions of ``bank`` at the episodes' references, goals and times, placed on the course; their
        velocities at the rate each reference's clock runs (:meth:`_advance_clock`)."""
        frames = bank.sample(
            self._ref[ids],
            self._clip_time_s(time_s, ids),
            self._time_scale[ids] * self._clock_rate[ids],
            self._stride_scale[ids],
            kinematic_targets=kinematic_targets,
        )
        frames.qpos[:, :2] += self._root_shift_xy[ids]
        return frames

    def _sample_goals(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Goals (speed, stride) for n episodes and the index of the reference nearest to each."""
        cfg, rng, bank = self.config, self._np_random, self.bank
        travelling = np.flatnonzero(bank.speed_m_s > 0)
        if cfg.speed_range_m_s is None or len(travelling) == 0:
            ref = rng.integers(0, len(bank), n)
            return bank.speed_m_s[ref].copy(), bank.stride_length_m[ref].copy(), ref
        speed, stride = np.empty(n), np.empty(n)
        todo = np.arange(n)
        f_lo, f_hi = cfg.stride_frequency_range_hz
        for _ in range(100):
            speed[todo] = rng.uniform(*cfg.speed_range_m_s, len(todo))
            stride[todo] = rng.uniform(*cfg.stride_length_range_m, len(todo))
            frequency = speed[todo] / np.maximum(stride[todo], 1e-9)
            todo = todo[(frequency < f_lo) | (frequency > f_hi)]
            if len(todo) == 0:
                break
        else:
            raise ValueError(
                f"no goal in speed {cfg.speed_range_m_s} m/s × stride {cfg.stride_length_range_m} m has a stride "
                f"frequency within {cfg.stride_frequency_range_hz} Hz"
            )
        # the nearest travelling reference in (speed, stride length), as the paper picks its clip
        d = (bank.speed_m_s[travelling][None] - speed[:, None]) ** 2 + (
            bank.stride_length_m[travelling][None] - stride[:, None]
        ) ** 2
        ref = travelling[np.argmin(d, axis=1)]
        return speed, stride, ref

    def _reset_envs(self, ids: np.ndarray) -> None:
        cfg, rng, bank = self.config, self._np_random, self.bank
        n = len(ids)
        speed, stride, ref = self._sample_goals(n)
        self._ref[ids], self._goal_speed[ids], self._goal_stride[ids] = ref, speed, stride
        travels = (bank.speed_m_s[ref] > 0) & (speed > 0) & (stride > 0)
        # time resampling (Dai et al. 2025, Stage I): period → stride/speed, root path scaled to the stride
        self._time_scale[ids] = np.where(
            travels, bank.cycle_period_s[ref] * speed / np.where(travels, stride, 1.0), 1.0
        )
        self._stride_scale[ids] = np.where(
            travels, stride / np.where(travels, bank.stride_length_m[ref], 1.0), 1.0
        )
        span = np.where(bank.cyclic[ref], bank.cycle_period_s[ref], bank.duration_s[ref])
        self._clip_time0_s[ids] = rng.uniform(0.0, 1.0, n) * span
        self._clock_lag_s[ids] = 0.0
        self._clock_rate[ids] = 1.0
        self._steps[ids] = 0
        self._episode_return[ids] = 0.0
        self._episode_guidance[ids] = 0.0
        self._root_shift_xy[ids] = 0.0
        start_x = self._start_x_m(ids)
        start = self._reference(np.zeros(n), ids, kinematic_targets=False, root_x_m=start_x)
        shift = np.stack([start_x, np.zeros(n)], axis=1) - start.qpos[:, :2]
        self._root_shift_xy[ids] = shift
        start.qpos[:, :2] += shift
        start.qpos[:, 2] += self.terrain.pitch_line_height_m(start.qpos[:, 0], start.qpos[:, 1])

        self.batch.reset(ids.astype(np.int32), stage=mujoco.mjtStage.mjSTAGE_NONE)
        self._qpos[ids] = start.qpos
        self._qvel[ids] = start.qvel
        self._ctrl[ids] = np.clip(start.qpos[:, N_ROOT_QPOS:], self._joint_lo, self._joint_hi)
        lo, hi = cfg.torque_fraction_range
        self._torque_fraction[ids] = 0.5 * (lo + hi)
        self._apply_torque_limits(ids)
        self.batch.forward(ids.astype(np.int32), stage=mujoco.mjtStage.mjSTAGE_POS)
        self._warnings[ids] = self.batch.warning[ids, :, 1].sum(axis=1)

        ref_now = self._reference(np.zeros(n), ids, kinematic_targets=False)
        m = self._measure(ids, ref_now)
        self._pos_hist[ids] = self._qpos[ids, None, :2]
        yaw = quat_yaw_rad(self._qpos[ids, 3:7])
        self._yaw_hist[ids] = np.stack([np.sin(yaw), np.cos(yaw)], axis=1)[:, None]
        self._root_err_hist[ids] = 0.0
        self._contact[ids] = m.contact
        self._foot_xy[ids] = m.foot_xy
        self._airborne_s[ids] = 0.0
        self._touchdown_x[ids] = np.nan
        self._touchdown_time_s[ids] = 0.0
        self._stride_measured[ids] = np.nan
        frame = self._frame(ids, m)
        self._obs[ids] = frame[:, None, :]

    def _start_x_m(self, ids: np.ndarray) -> np.ndarray:
        """Where the pelvises of new episodes ``ids`` start along the course (their references, goals and clip times
        are drawn): uniform over ``start_x_range_m``."""
        return self._np_random.uniform(*self.config.start_x_range_m, len(ids))

    def _apply_torque_limits(self, ids) -> None:
        limit = self._ceiling_nm * self._torque_fraction[ids][:, JOINT_GROUP_INDEX]
        self._forcerange[ids, :, 0] = -limit
        self._forcerange[ids, :, 1] = limit

    # ------------------------------------------------------------------ measurements and observations

    def _measure(self, ids, ref: ReferenceFrames) -> SimpleNamespace:
        """Everything the reward and the observation read, for environments ``ids`` (an index array or a slice)."""
        qpos, qvel = self._qpos[ids], self._qvel[ids]
        time_s = self._time_s(ids)
        # derived quantities are one physics substep old: compare them with the reference at that time
        lagged = np.maximum(time_s - PHYSICS_TIMESTEP_S, 0.0)
        ref_kin = self._reference(lagged, ids)
        pelvis_pos = self._xpos[ids, self._pelvis_id]
        pelvis_yaw = quat_yaw_rad(self._xquat[ids, self._pelvis_id])
        com_rel = rotate_into_heading(self._subtree_com[ids, self._pelvis_id] - pelvis_pos, pelvis_yaw)
        ends = self._site_xpos[ids][:, self._end_site_ids]
        ends_rel = rotate_into_heading(ends - pelvis_pos[:, None], pelvis_yaw)
        yaw = quat_yaw_rad(qpos[:, 3:7])
        surface_under_root = self.terrain.pitch_line_height_m(qpos[:, 0], qpos[:, 1])  # on stairs: the pitch line
        hips = self._site_xpos[ids][:, self._hip_site_ids]
        sensors = self._sensordata[ids]
        return SimpleNamespace(
            ids=ids,
            qpos=qpos,
            qvel=qvel,
            ref=ref,
            ref_kin=ref_kin,
            yaw=yaw,
            root_height_m=qpos[:, 2] - surface_under_root,
            ref_root_height_m=ref.qpos[:, 2],
            root_linvel_heading=rotate_into_heading(qvel[:, :3], yaw),
            com_rel=com_rel,
            ends_rel=ends_rel,
            contact=sensors[:, self._foot_sensor_adr] > 0,
            foot_xy=ends[:, :2, :2],
            hip_ground_m=hips[:, :, 2] - self.terrain.ground_height_m(hips[:, :, 0], hips[:, :, 1]),
        )

    def _update_goal_window(self, m: SimpleNamespace) -> None:
        """Slide the goal window by one control step and register touchdowns (all environments)."""
        cfg = self.config
        self._pos_hist = np.roll(self._pos_hist, -1, axis=1)
        self._pos_hist[:, -1] = m.qpos[:, :2]
        self._yaw_hist = np.roll(self._yaw_hist, -1, axis=1)
        self._yaw_hist[:, -1, 0], self._yaw_hist[:, -1, 1] = np.sin(m.yaw), np.cos(m.yaw)
        self._root_err_hist = np.roll(self._root_err_hist, -1, axis=1)
        self._root_err_hist[:, -1] = self._root_error(m)
        # touchdown: contact after at least min_swing_s in the air; the stride is the distance since the same
        # foot's previous touchdown, along the course
        now = self._time_s()
        touchdown = m.contact & ~self._contact & (self._airborne_s >= cfg.min_swing_s)
        foot_x = m.foot_xy[:, :, 0]
        self._stride_measured = np.where(touchdown, foot_x - self._touchdown_x, self._stride_measured)
        self._touchdown_x = np.where(touchdown, foot_x, self._touchdown_x)
        self._touchdown_time_s = np.where(touchdown, now[:, None], self._touchdown_time_s)
        self._airborne_s = np.where(m.contact, 0.0, self._airborne_s + CONTROL_PERIOD_S)
        in_contact_both = m.contact & self._contact
        foot_velocity = (m.foot_xy - self._foot_xy) / CONTROL_PERIOD_S
        m.foot_forward_m_s = foot_velocity[:, :, 0]
        m.slip_m_s = np.where(in_contact_both, np.linalg.norm(foot_velocity, axis=2), 0.0)
        self._contact = m.contact
        self._foot_xy = m.foot_xy
        m.speed_measured_m_s = self._window_speed()
        m.lateral_speed_m_s = self._window_speed(axis=1)
        m.stride_measured_m = self._window_stride()
        m.heading_error_rad = np.arctan2(self._yaw_hist[:, :, 0].mean(axis=1), self._yaw_hist[:, :, 1].mean(axis=1))

    def _window_steps_filled(self, ids=slice(None)) -> np.ndarray:
        return np.minimum(self._steps[ids], self._window_steps)

    def _window_root_error(self) -> np.ndarray:
        """Mean root pose error over the filled part of the goal window (all environments)."""
        filled = np.maximum(self._window_steps_filled(), 1)
        valid = np.arange(self._window_steps)[None, :] >= self._window_steps - filled[:, None]
        return np.where(valid, self._root_err_hist, 0.0).sum(axis=1) / filled

    def _window_speed(self, ids=slice(None), axis: int = 0) -> np.ndarray:
        """Mean speed along the course (``axis`` 0, world x) or across it (1, world y) over the goal window (the
        root's velocity before one control step)."""
        filled = self._window_steps_filled(ids)
        hist = self._pos_hist[ids]
        rows = np.arange(len(filled))
        past = hist[rows, self._window_steps - filled, axis]
        return np.where(
            filled > 0, (hist[:, -1, axis] - past) / np.maximum(filled, 1) / CONTROL_PERIOD_S, self._qvel[ids, axis]
        )

    def _window_stride(self, ids=slice(None)) -> np.ndarray:
        """Stride length from the latest touchdowns; the target while none is known yet, 0 once stepping stopped."""
        strides = self._stride_measured[ids]
        known = np.isfinite(strides)
        mean = np.where(known.any(axis=1), np.nansum(strides, axis=1) / np.maximum(known.sum(axis=1), 1), np.nan)
        since = self._time_s(ids)[:, None] - self._touchdown_time_s[ids]
        stopped = (since > self.config.stride_timeout_s).all(axis=1)
        return np.where(stopped, 0.0, np.where(np.isnan(mean), self._goal_stride[ids], mean))

    def _root_error(self, m: SimpleNamespace) -> np.ndarray:
        """Squared, scaled deviation of the pelvis height and tilt from the reference's (root pose stability)."""
        cfg = self.config
        up_sim = _up_in_heading(m.qpos[:, 3:7])
        up_ref = _up_in_heading(m.ref.qpos[:, 3:7])
        tilt_err = np.linalg.norm(up_sim - up_ref, axis=1)
        height_err = m.root_height_m - m.ref_root_height_m
        return (height_err / cfg.root_height_scale_m) ** 2 + (tilt_err / cfg.root_tilt_scale_rad) ** 2

    def _frame(self, ids, m: SimpleNamespace) -> np.ndarray:
        """One observation frame per environment in ``ids`` (layout: ``cloud_trainer.envs.constants``)."""
        s = self._slices
        n = len(m.qpos)
        frame = np.empty((n, FRAME_WIDTH), np.float32)
        phase = self.bank.phase(self._ref[ids], self._clip_time_s(self._time_s(ids), ids))
        frame[:, s["phase"]] = np.stack([np.sin(2 * np.pi * phase), np.cos(2 * np.pi * phase)], axis=1)
        frame[:, s["goal"]] = np.stack([self._goal_speed[ids], self._goal_stride[ids]], axis=1)
        speed = self._window_speed(ids)
        stride = self._window_stride(ids)
        frame[:, s["goal_error"]] = np.stack([speed - self._goal_speed[ids], stride - self._goal_stride[ids]], axis=1)
        frame[:, s["torque_limit"]] = self._torque_fraction[ids]
        frame[:, s["root_height"]] = m.root_height_m[:, None]
        quat = m.qpos[:, 3:7]
        frame[:, s["root_quat"]] = quat * np.where(quat[:, :1] < 0, -1.0, 1.0)
        frame[:, s["joint_angle"]] = m.qpos[:, N_ROOT_QPOS:]
        frame[:, s["root_linvel"]] = m.root_linvel_heading
        frame[:, s["root_angvel"]] = m.qvel[:, 3:N_ROOT_QVEL]
        frame[:, s["joint_velocity"]] = m.qvel[:, N_ROOT_QVEL:]
        frame[:, s["com"]] = m.com_rel
        frame[:, s["limb_ends"]] = m.ends_rel.reshape(n, -1)
        frame[:, s["foot_contact"]] = m.contact
        frame[:, s["hip_ground"]] = m.hip_ground_m
        frame[:, s["terrain_rays"]] = self._terrain_rays(ids, m)
        return frame

    def _terrain_rays(self, ids, m: SimpleNamespace) -> np.ndarray:
        """Distances from the pelvis to the terrain along the 13 sagittal rays (``mujoco.batch`` ray casting)."""
        n = len(m.qpos)
        direction = np.zeros((n, len(RAY_ANGLES_RAD), 3))
        forward = np.sin(RAY_ANGLES_RAD)[None, :]
        direction[:, :, 0] = forward * np.cos(m.yaw)[:, None]
        direction[:, :, 1] = forward * np.sin(m.yaw)[:, None]
        direction[:, :, 2] = -np.cos(RAY_ANGLES_RAD)[None, :]
        origin = np.broadcast_to(m.qpos[:, None, :3], direction.shape)
        sims = None if isinstance(ids, slice) else np.asarray(ids, dtype=np.int32)
        dist, _ = self.batch.ray(origin, direction, geomgroup=self._ray_groups, ids=sims)
        return np.where((dist < 0) | (dist > RAY_MAX_M), RAY_MAX_M, dist)

    def _push_frame(self, frame: np.ndarray) -> None:
        self._obs[:, :-1] = self._obs[:, 1:]
        self._obs[:, -1] = frame

    # ------------------------------------------------------------------ reward

    @classmethod
    def climbing(
        cls, references: Sequence[ReferenceMotion], model: mujoco.MjModel, terrain: Terrain
    ) -> list[ReferenceMotion] | None:
        """Motions that this task's episodes imitate on the stairs of ``terrain`` in place of ``references`` (played
        on ``model``), blended in by the walker's place (:class:`~cloud_trainer.envs.stairs.StairsEnv`); None here:
        the references are imitated all along the course. A runner outside the trainer needs them for its PD targets
        (the ONNX manifest holds them)."""
        return None

    @classmethod
    def clock_rate_range(cls, terrain: Terrain) -> tuple[float, float] | None:
        """The range of rates (of real time) at which this task's reference clock runs on ``terrain`` when it
        follows the walker (:meth:`_advance_clock`); None here: the reference plays in real time
        (:meth:`~cloud_trainer.envs.stairs.StairsEnv.clock_rate_range` says where it does not). A runner outside
        the trainer needs it to read the reference as the policy was trained (the ONNX manifest holds it)."""
        return None

    def _term_method(self, name: str):
        method = getattr(self, name, None)
        if method is None:
            known = sorted(n for n in dir(self) if n.startswith(("_reward_", "_cost_", "_guidance_")))
            raise ValueError(f"{type(self).__name__} has no reward term {name!r}; known terms: {known}")
        return method

    def _reward(self, m: SimpleNamespace) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """All terms (named ``goal/…``, ``imitation/…``, ``cost/…``, ``guidance/…``) and the total reward per
        environment."""
        cfg = self.config
        terms: dict[str, np.ndarray] = {}
        groups = {}
        for group, weights, prefix in (
            ("goal", cfg.goal_terms, "_reward_"),
            ("imitation", cfg.imitation_terms, "_reward_"),
            ("cost", cfg.cost_terms, "_cost_"),
            ("guidance", cfg.guidance_terms, "_guidance_"),
        ):
            total = np.zeros(self.num_envs)
            for name, weight in weights.items():
                value = self._term_method(prefix + name)(m)
                terms[f"{group}/{name}"] = value
                total += weight * value
            if group in ("goal", "imitation"):
                total /= max(sum(weights.values()), 1e-12)
            groups[group] = total
        reward = (
            cfg.goal_reward_weight * groups["goal"]
            + cfg.imitation_reward_weight * groups["imitation"]
            - groups["cost"]
            + groups["guidance"]
        )
        terms.update({"reward/goal": groups["goal"], "reward/imitation": groups["imitation"]})
        terms.update({"reward/physics_penalty": groups["cost"], "reward/guidance": groups["guidance"]})
        terms["reward/total"] = reward
        return terms, reward


def _up_in_heading(quat_wxyz: np.ndarray) -> np.ndarray:
    """The pelvis's z axis expressed in its own heading frame (how it leans forward/sideways), (N, 3)."""
    w, x, y, z = quat_wxyz.T
    up_world = np.stack([2 * (x * z + w * y), 2 * (y * z - w * x), 1 - 2 * (x * x + y * y)], axis=1)
    return rotate_into_heading(up_world, quat_yaw_rad(quat_wxyz))
