"""Evaluating the atlas over a grid of goals: tracking errors, goal tracking and falls (JSON in docs/atlas.md).

Every goal (target speed, stride length) of the grid is run ``n_repeats`` times from different random phases of
its reference, all episodes in one batch, with the deterministic policy (the Gaussian's mean), on flat ground, for
``duration_s``. An episode ends early only by a fall (the environment's termination: a non-foot body on the ground,
the pelvis below 0.6 of the reference's height, or a diverged simulation).

Per control step of every episode still walking (the step an episode ends on is not counted):

- joint-angle error: mean over the 15 hinges of |angle − reference angle|, degrees ("single-axis": each hinge on
  its own, as the paper's mean single-axis joint-angle error); also per hinge and over hips and knees only (the
  joints the five IMUs measure);
- centre-of-mass error: distance between the whole-body centre of mass and the reference's, both relative to the
  pelvis in its heading frame, cm;
- limb-end error: distance between each sole centre and the spine top and the reference's, relative to the pelvis
  in its heading frame, mean over the three, cm.

The relative form is what the imitation reward compares; an absolute position error would add the drift of the
whole body along the course (a speed 2 % slow is 20 cm behind after 10 m).

Per episode: the achieved speed, the mean pelvis speed along the course after the first second; the achieved stride
length, the mean over both feet of the distance along the course between successive touchdowns of the same foot (a
touchdown is a contact after at least ``min_swing_s`` in the air, the environment's rule); the episode length; fall.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from cloud_trainer.atlas.train import atlas_config
from cloud_trainer.atlas.weights import AtlasPolicy
from cloud_trainer.envs.base import LocomotionConfig
from cloud_trainer.envs.constants import CONTROL_PERIOD_S
from cloud_trainer.envs.walk import WalkEnv
from cloud_trainer.motion.reference import ReferenceMotion
from cloud_trainer.twin.anthropometry import Anthropometry
from cloud_trainer.twin.constants import END_EFFECTOR_SITES, JOINT_NAMES, N_ROOT_QPOS

EVAL_SCHEMA = "stridetwin.atlas-eval/1"
#: The reference system's atlas (Dai et al. 2025, Results, "Healthy Motion Atlas Performance Evaluation").
REFERENCE_ATLAS = {
    "joint_angle_error_deg": 11.61,
    "com_error_cm": 2.69,
    "limb_end_error_cm": 12.32,
    "source": "Dai et al. 2025, Healthy Motion Atlas performance evaluation (Figure S3)",
}
#: Default grid: speeds and stride lengths; pairs outside the training stride-frequency range are skipped.
DEFAULT_SPEEDS_M_S = (0.5, 0.7, 0.9, 1.1, 1.3)
DEFAULT_STRIDES_M = (0.8, 1.0, 1.2, 1.4)
MEASURED_JOINTS = tuple(j for j in JOINT_NAMES if j.startswith(("hip", "knee")))
#: Speed is measured after this settling time, s.
SPEED_SETTLE_S = 1.0


def goal_grid(
    speeds_m_s=DEFAULT_SPEEDS_M_S, strides_m=DEFAULT_STRIDES_M, frequency_range_hz: tuple[float, float] | None = None
) -> list[tuple[float, float]]:
    """(speed, stride) pairs of the grid whose stride frequency lies in the atlas's training range."""
    lo, hi = frequency_range_hz or atlas_config().stride_frequency_range_hz
    return [(v, s) for v in speeds_m_s for s in strides_m if lo - 1e-9 <= v / s <= hi + 1e-9]


class GoalGridWalkEnv(WalkEnv):
    """The walk task with each simulation's goal fixed by the caller (simulation i: ``goals[i]``) instead of drawn.

    Episodes that start after one has ended (autoreset) reuse the goals in order; an evaluation counts only each
    simulation's first episode.
    """

    def __init__(self, references, goals: list[tuple[float, float]], **kwargs) -> None:
        self._goals = np.asarray(goals, dtype=float).reshape(-1, 2)
        self._next_goal = 0
        super().__init__(references, n_envs=len(self._goals), **kwargs)

    def _sample_goals(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rows = (self._next_goal + np.arange(n)) % len(self._goals)
        self._next_goal = (self._next_goal + n) % len(self._goals)
        speed, stride = self._goals[rows, 0].copy(), self._goals[rows, 1].copy()
        bank = self.bank
        travelling = np.flatnonzero(bank.speed_m_s > 0)
        d = (bank.speed_m_s[travelling][None] - speed[:, None]) ** 2 + (
            bank.stride_length_m[travelling][None] - stride[:, None]
        ) ** 2
        return speed, stride, travelling[np.argmin(d, axis=1)]

    def tracking(self) -> dict[str, np.ndarray]:
        """The current pose versus the resampled reference, per simulation: hinge-angle errors (rad, (N, 15)),
        centre-of-mass and limb-end position errors relative to the pelvis (m, (N,) and (N, 3)), pelvis x (m),
        foot contacts (N, 2) and sole x positions (m, (N, 2))."""
        ref = self._reference(self._time_s(), kinematic_targets=False)
        m = self._measure(slice(None), ref)
        return {
            "joint_error_rad": m.qpos[:, N_ROOT_QPOS:] - ref.qpos[:, N_ROOT_QPOS:],
            "com_error_m": np.linalg.norm(m.com_rel - m.ref_kin.com_rel_m, axis=1),
            "end_error_m": np.linalg.norm(m.ends_rel - m.ref_kin.ends_rel_m, axis=2),
            "root_x_m": m.qpos[:, 0].copy(),
            "contact": m.contact.copy(),
            "foot_x_m": m.foot_xy[:, :, 0].copy(),
        }


@dataclass
class _Episode:
    """Accumulators of one simulation's first episode."""

    n_steps: int = 0
    fell: bool = False
    ended: bool = False
    joint_abs_sum_rad: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(len(JOINT_NAMES)))
    com_sum_m: float = 0.0
    end_sum_m: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(len(END_EFFECTOR_SITES)))
    n_measured: int = 0
    x_settled_m: float = np.nan
    x_last_m: float = np.nan
    strides_m: list = dataclasses.field(default_factory=list)


def evaluate_atlas(
    atlas: AtlasPolicy,
    references: list[ReferenceMotion],
    goals: list[tuple[float, float]] | None = None,
    *,
    n_repeats: int = 4,
    duration_s: float = 10.0,
    seed: int = 0,
    n_threads: int = 2,
    config: LocomotionConfig | None = None,
    anthropometry: Anthropometry | None = None,
) -> dict:
    """Run the deterministic atlas policy over ``goals`` (default :func:`goal_grid`) and return the evaluation
    document (schema ``stridetwin.atlas-eval/1``, docs/atlas.md).

    ``config`` (default: the atlas task) and ``anthropometry`` (default: the atlas body) let the same evaluation
    score any policy of this layout on its own task and body, e.g. a patient's adapted policy (its episode length is
    replaced by ``duration_s``; goals still come from ``goals``).
    """
    goals = goals if goals is not None else goal_grid()
    if not goals:
        raise ValueError("no goals to evaluate")
    n_steps = max(1, round(duration_s / CONTROL_PERIOD_S))
    config = dataclasses.replace(config or atlas_config(), episode_steps=n_steps)
    runs = [g for g in goals for _ in range(n_repeats)]
    env = GoalGridWalkEnv(
        references, runs, config=config, n_threads=n_threads, seed=seed, anthropometry=anthropometry
    )
    n = env.num_envs
    episodes = [_Episode() for _ in range(n)]
    min_swing_steps = config.min_swing_s / CONTROL_PERIOD_S
    airborne = np.zeros((n, 2))
    last_touchdown_x = np.full((n, 2), np.nan)
    settle_steps = round(SPEED_SETTLE_S / CONTROL_PERIOD_S)
    try:
        obs, _ = env.reset()
        first = env.tracking()
        prev_contact = first["contact"]
        for step in range(1, n_steps + 1):
            obs, _, terminated, truncated, _ = env.step(atlas.act(obs).numpy())
            done = terminated | truncated
            t = env.tracking()
            for i, e in enumerate(episodes):
                if e.ended:
                    continue
                e.n_steps = step
                if done[i]:  # the state is already the next episode's: nothing of this step is measured
                    e.ended, e.fell = True, bool(terminated[i])
                    continue
                e.joint_abs_sum_rad += np.abs(t["joint_error_rad"][i])
                e.com_sum_m += t["com_error_m"][i]
                e.end_sum_m += t["end_error_m"][i]
                e.n_measured += 1
                if step == settle_steps:
                    e.x_settled_m = t["root_x_m"][i]
                e.x_last_m = t["root_x_m"][i]
                for foot in range(2):
                    if t["contact"][i, foot] and not prev_contact[i, foot] and airborne[i, foot] >= min_swing_steps:
                        if np.isfinite(last_touchdown_x[i, foot]):
                            e.strides_m.append(t["foot_x_m"][i, foot] - last_touchdown_x[i, foot])
                        last_touchdown_x[i, foot] = t["foot_x_m"][i, foot]
            airborne = np.where(t["contact"], 0.0, airborne + 1.0)
            prev_contact = t["contact"]
    finally:
        env.close()
    return _document(atlas, goals, runs, episodes, n_repeats, duration_s, settle_steps, config.terrain)


def _document(atlas, goals, runs, episodes, n_repeats, duration_s, settle_steps, terrain) -> dict:
    def per_episode(e: _Episode, goal) -> dict:
        measured = max(e.n_measured, 1)
        walked_steps = e.n_measured - settle_steps
        speed = (e.x_last_m - e.x_settled_m) / (walked_steps * CONTROL_PERIOD_S) if walked_steps > 0 else np.nan
        return {
            "joint_abs_deg": np.rad2deg(e.joint_abs_sum_rad / measured),
            "com_cm": 100 * e.com_sum_m / measured,
            "end_cm": 100 * e.end_sum_m / measured,
            "weight": e.n_measured,
            "speed": speed,
            "stride": float(np.mean(e.strides_m)) if e.strides_m else np.nan,
            "fell": e.fell,
            "length_s": e.n_steps * CONTROL_PERIOD_S if e.ended else duration_s,
            "goal": goal,
        }

    rows = [per_episode(e, g) for e, g in zip(episodes, runs, strict=True)]
    measured_joints = [JOINT_NAMES.index(j) for j in MEASURED_JOINTS]

    def pooled(selected: list[dict]) -> dict:
        w = np.array([r["weight"] for r in selected], dtype=float)
        total = max(w.sum(), 1.0)
        joint = sum(r["joint_abs_deg"] * r["weight"] for r in selected) / total
        speeds = np.array([r["speed"] for r in selected])
        strides = np.array([r["stride"] for r in selected])
        target_v = np.array([r["goal"][0] for r in selected])
        target_s = np.array([r["goal"][1] for r in selected])
        return {
            "joint_angle_error_deg": _r(joint.mean()),
            "joint_angle_error_hips_knees_deg": _r(joint[measured_joints].mean()),
            "com_error_cm": _r(sum(r["com_cm"] * r["weight"] for r in selected) / total),
            "limb_end_error_cm": _r(sum(r["end_cm"].mean() * r["weight"] for r in selected) / total),
            "speed_achieved_m_s": _r(_nanmean(speeds)),
            "speed_error_m_s": _r(_nanmean(np.abs(speeds - target_v))),
            "stride_length_achieved_m": _r(_nanmean(strides)),
            "stride_length_error_m": _r(_nanmean(np.abs(strides - target_s))),
            "fall_rate": _r(float(np.mean([r["fell"] for r in selected]))),
            "episode_length_s": _r(float(np.mean([r["length_s"] for r in selected]))),
            "_joint": joint,
            "_end": sum(r["end_cm"] * r["weight"] for r in selected) / total,
        }

    summary = pooled(rows)
    per_joint = {name: _r(v) for name, v in zip(JOINT_NAMES, summary.pop("_joint"), strict=True)}
    per_end = {name: _r(v) for name, v in zip(END_EFFECTOR_SITES, summary.pop("_end"), strict=True)}
    per_goal = []
    for goal in goals:
        g = pooled([r for r in rows if r["goal"] == goal])
        g.pop("_joint"), g.pop("_end")
        per_goal.append({"speed_m_s": goal[0], "stride_length_m": goal[1], **g})
    training = atlas.manifest.get("training", {})
    return {
        "schema": EVAL_SCHEMA,
        "weights": str(atlas.path),
        "training_samples": training.get("samples"),
        "deterministic_policy": True,
        "terrain": terrain,
        "episode_duration_s": duration_s,
        "n_goals": len(goals),
        "n_repeats": n_repeats,
        "n_episodes": len(rows),
        "summary": summary,
        "per_joint_error_deg": per_joint,
        "per_limb_end_error_cm": per_end,
        "goals": per_goal,
        "reference_atlas": REFERENCE_ATLAS,
    }


def _nanmean(values: np.ndarray) -> float:
    values = np.asarray(values, dtype=float)
    return float(np.nanmean(values)) if np.isfinite(values).any() else np.nan


def _r(value: float, digits: int = 4) -> float | None:
    value = float(value)
    return round(value, digits) if np.isfinite(value) else None
