"""The terrain-aware atlas: the Healthy Motion Atlas continued on ramps and stairs beside flat ground.

Why: the shipped atlas walked only on flat ground, so a patient's task policy starts blind to the terrain rays and
learns to read them, to lift its feet over risers and to push up them from zero, within `quick`'s few million
samples; no twin masters stairs of 7.5 cm or more there (docs/pipeline.md, "Stairs above 3.75 cm"). An atlas that has
climbed with the whole healthy library hands the patient's adaptation a policy that already reads terrain.

The task: the atlas's references and PPO arguments, one policy over the courses of :data:`TERRAIN_MIX` at once
(:class:`~cloud_trainer.envs.mixed.MixedVecEnv`), each course with its own task's goals and reward as the patient's
task stages use them (slope: the walk goals on the ramp; stairs: two treads a stride at 0.4-0.8 m/s, the stair cue
on, from 7.5 cm the references climbing, :meth:`~cloud_trainer.envs.stairs.StairsEnv.climbing`). Episodes on
ramps and stairs start on the run-in, at most 1.5 m before the feature, so that most of each reaches it. Three
eighths of the simulations stay on flat ground so that the atlas keeps walking as it did.

Started from the flat atlas, the policy is first made blind to the terrain rays
(:func:`~cloud_trainer.learn.terrain_view.blind_to_terrain`): the flat atlas reads them as a second pelvis-height
signal.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import mujoco
import numpy as np

from cloud_trainer.atlas.weights import AtlasPolicy
from cloud_trainer.envs import slope, stairs, walk
from cloud_trainer.envs.base import LocomotionConfig
from cloud_trainer.envs.constants import CONTROL_PERIOD_S
from cloud_trainer.envs.mixed import MixedVecEnv
from cloud_trainer.envs.registry import make_env
from cloud_trainer.motion.reference import ReferenceMotion
from cloud_trainer.motion.stride import with_stride
from cloud_trainer.twin.model import build_twin
from cloud_trainer.twin.terrain import RUN_IN_START_X_M


@dataclass(frozen=True)
class Course:
    """One part of the mix: a task, its curriculum level (None for ``walk``), its share of the simulations and, on
    flat ground, optionally a narrower goal range than the atlas's own (speed, m/s; stride length, m)."""

    task: str
    level: int | None
    share: float
    speed_range_m_s: tuple[float, float] | None = None
    stride_length_range_m: tuple[float, float] | None = None

    @property
    def name(self) -> str:
        if self.level is not None:
            return f"{self.task}:{self.level}"
        if self.speed_range_m_s is not None:
            return f"{self.task}:{self.speed_range_m_s[0]:g}-{self.speed_range_m_s[1]:g}m/s"
        return self.task


#: The courses of the terrain-aware atlas. Flat ground keeps the atlas's walk, with a third of it at the slow, short
#: strides of hemiparetic gait (the first run, all flat goals over the whole range, fell at 0.5 m/s with 1.0 m strides
#: in every evaluation walk, and the hemiparetic twin adapted from it tracked its own gait worse: docs/atlas.md);
#: ramps at half and full 1:12; every stair height from 3.75 cm, the two highest with half as many simulations, so
#: that the lower steps, which every patient's curriculum meets first, get most of the stair samples.
TERRAIN_MIX: tuple[Course, ...] = (
    Course("walk", None, 0.25),
    Course("walk", None, 0.125, speed_range_m_s=(0.4, 0.8), stride_length_range_m=(0.5, 1.2)),
    Course("slope", 3, 0.125),
    Course("slope", 5, 0.125),
    Course("stairs", 2, 0.125),
    Course("stairs", 3, 0.125),
    Course("stairs", 4, 0.0625),
    Course("stairs", 5, 0.0625),
)


def course_config(course: Course, flat: LocomotionConfig) -> LocomotionConfig:
    """The environment configuration of ``course``; ``flat`` is the atlas's own (flat ground)."""
    if course.task == "walk":
        if course.speed_range_m_s is None:
            return flat
        return dataclasses.replace(flat, speed_range_m_s=tuple(course.speed_range_m_s),
                                   stride_length_range_m=tuple(course.stride_length_range_m))  # fmt: skip
    if course.task == "slope":
        return dataclasses.replace(slope.default_config(course.level), start_x_range_m=RUN_IN_START_X_M)
    if course.task == "stairs":
        return dataclasses.replace(
            stairs.default_config(course.level), start_x_range_m=RUN_IN_START_X_M,
            guidance_terms={"step_cue": stairs.STEP_CUE_WEIGHT},
        )  # fmt: skip
    raise ValueError(f"unknown atlas course task {course.task!r}; known: walk, slope, stairs")


def stairs_references(references: list[ReferenceMotion], model: mujoco.MjModel) -> list[ReferenceMotion]:
    """What the stairs imitate before their environment's own changes (climbing, from 7.5 cm): each travelling clip
    at the stairs' stride with its own cadence, as the patient's stairs task walks the patient's clip."""
    stride_m = stairs.STAIR_STRIDE_M
    return [with_stride(r, model, stride_m / r.cycle_period_s, stride_m) for r in references if r.speed_m_s > 0]


def simulations_per_course(n_envs: int, mix: tuple[Course, ...] = TERRAIN_MIX) -> list[int]:
    """``n_envs`` split between the courses in proportion to their shares (largest remainders), at least one each.

    Raises:
        ValueError: fewer simulations than courses, or shares that are not positive.
    """
    if n_envs < len(mix):
        raise ValueError(f"{len(mix)} courses need at least {len(mix)} simulations, got {n_envs}")
    shares = np.array([c.share for c in mix], dtype=float)
    if (shares <= 0).any():
        raise ValueError(f"every course needs a positive share, got {shares.tolist()}")
    exact = n_envs * shares / shares.sum()
    sizes = np.maximum(np.floor(exact).astype(int), 1)
    while sizes.sum() > n_envs:  # the minimum of one over-allocated: take from the most over-allocated of the rest
        sizes[np.argmax(np.where(sizes > 1, sizes - exact, -np.inf))] -= 1
    for k in np.argsort(exact - sizes)[::-1][: n_envs - sizes.sum()]:  # largest remainders
        sizes[k] += 1
    return sizes.tolist()


def make_terrain_atlas_env(
    references: list[ReferenceMotion],
    n_envs: int,
    seed: int | None = None,
    *,
    n_threads: int = 2,
    flat: LocomotionConfig | None = None,
    mix: tuple[Course, ...] = TERRAIN_MIX,
) -> MixedVecEnv:
    """The terrain-aware atlas's environment: one part per course of ``mix`` (module docstring)."""
    flat = flat or walk.default_config()
    on_stairs = None  # made once for every stairs course
    parts = []
    for course, size in zip(mix, simulations_per_course(n_envs, mix), strict=True):
        imitated = references
        if course.task == "stairs":
            on_stairs = on_stairs or stairs_references(references, build_twin().model)
            imitated = on_stairs
        parts.append(make_env(course.task, imitated, config=course_config(course, flat), n_envs=size,
                              n_threads=n_threads, seed=seed))  # fmt: skip
    return MixedVecEnv(parts, [c.name for c in mix], seed=seed)


#: Schema of :func:`evaluate_courses`'s document.
COURSES_EVAL_SCHEMA = "stridetwin.atlas-courses/1"
#: Default length of an evaluation walk, s: within the tasks' 500-step episodes (16.7 s), so none is cut short.
COURSE_WALK_S = 16.0


def evaluate_courses(
    policy: AtlasPolicy,
    references: list[ReferenceMotion],
    *,
    n_per_course: int = 8,
    duration_s: float = COURSE_WALK_S,
    seed: int = 0,
    mix: tuple[Course, ...] = TERRAIN_MIX,
    n_threads: int = 2,
) -> dict:
    """Walk the deterministic ``policy`` (the Gaussian's mean) on every course of ``mix``, ``n_per_course`` episodes
    each from the course's start range, for ``duration_s`` or until a fall; per course: the share of episodes that
    fell, that reached the feature's end (the ramp's top, the last tread; on flat ground: not applicable), and the
    mean distance walked along the course, m."""
    env = make_terrain_atlas_env(  # equal shares: n_per_course simulations each
        references, n_per_course * len(mix), seed, n_threads=n_threads,
        mix=tuple(dataclasses.replace(c, share=1.0) for c in mix),
    )  # fmt: skip
    obs, _ = env.reset()
    start_x = env.root_x_m
    furthest_x = start_x.copy()
    walking = np.ones(env.num_envs, bool)
    fell = np.zeros(env.num_envs, bool)
    for _ in range(round(duration_s / CONTROL_PERIOD_S)):
        obs, _, terminated, truncated, _ = env.step(np.asarray(policy.act(obs)))
        furthest_x = np.where(walking, np.maximum(furthest_x, env.root_x_m), furthest_x)
        fell |= walking & terminated
        walking &= ~(terminated | truncated)  # an ended episode is reset: what follows is another one
        if not walking.any():
            break
    courses = []
    for course, part in zip(mix, env.parts, strict=True):
        rows = env.part_slice(course.name)
        top = part.terrain.feature_end_x_m if course.level is not None else None
        courses.append({
            "course": course.name,
            "n_episodes": part.num_envs,
            "fell": _share(fell[rows]),
            "reached_top": None if top is None else _share(furthest_x[rows] >= top),
            "distance_m": round(float(np.mean(furthest_x[rows] - start_x[rows])), 3),
        })  # fmt: skip
    env.close()
    return {"schema": COURSES_EVAL_SCHEMA, "duration_s": duration_s, "n_per_course": n_per_course, "seed": seed,
            "deterministic_policy": True, "courses": courses}  # fmt: skip


def _share(flags: np.ndarray) -> float:
    return round(float(np.mean(flags)), 4)
