"""Stage 2 of the patient pipeline: Atlas-to-Patient Clinical Adaptation (Dai et al. 2025, Methods, "Stage II").

The shipped Healthy Motion Atlas initialises the controller; the imitation reference is replaced by the patient's
reference cycle, the twin is scaled to the patient, and the goals (target speed and stride length in the state) are
fixed to the patient's observed values. PPO then fine-tunes policy and value function on flat ground.

The physics-only baseline (``method="physics-only"``) runs the same stage from a freshly initialised policy (no
atlas), with the same reference, body, goals and sample budget.

:func:`evaluate_adapted` scores the result as the paper does (Results, "Atlas-to-Patient Clinical Adaptation"):
repeated episodes with the deterministic policy at the patient's goals, the atlas evaluation's measures (joint-angle
error, centre-of-mass error, limb-end error, achieved speed and stride length; ``docs/atlas.md``), beside the
reference system's figures.
"""

from __future__ import annotations

import dataclasses

from cloud_trainer.envs.base import LocomotionConfig
from cloud_trainer.envs.walk import WalkEnv
from cloud_trainer.envs.walk import default_config as walk_config
from cloud_trainer.motion.reference import ReferenceMotion
from cloud_trainer.pipeline.reference import ObservedGait
from cloud_trainer.twin.anthropometry import Anthropometry

#: The reference system's adapted controller (Dai et al. 2025, Results, "Atlas-to-Patient Clinical Adaptation
#: Performance Evaluation", Fig. 4c-d: 500 trials at a prescribed 1.02 m/s).
REFERENCE_ADAPTATION = {
    "joint_angle_error_deg": 5.48,
    "com_error_cm": 1.67,
    "limb_end_error_cm": 6.35,
    "speed_goal_m_s": 1.02,
    "speed_achieved_m_s": 0.98,
    "source": "Dai et al. 2025, Atlas-to-Patient Clinical Adaptation Performance Evaluation (Figure 4c, d)",
}
#: Width of the adaptation's joint-angle imitation kernel, rad: half the walk task's (0.25 rad), which the atlas
#: learnt with. The atlas imitates many gaits at many goals and a wide kernel keeps them all rewarding; adaptation
#: refines one patient's cycle, where at 0.25 rad a 4° error still earns 93 % of the term and better tracking earns
#: almost nothing more. Measured in docs/pipeline.md ("Stage 2"): the joint-angle and limb-end errors fall.
ADAPTATION_JOINT_ANGLE_SCALE_RAD = walk_config().joint_angle_scale_rad / 2
#: Goal frequency tolerance: the walk task redraws goals whose stride frequency falls outside its range; the range is
#: set around the patient's own frequency so that the fixed goal is always accepted.
_FREQUENCY_MARGIN = 0.01


def patient_goal_config(
    base: LocomotionConfig, speed_m_s: float, stride_length_m: float, **changes
) -> LocomotionConfig:
    """``base`` with its goal fixed to (``speed_m_s``, ``stride_length_m``) and other fields changed."""
    frequency = speed_m_s / stride_length_m
    return dataclasses.replace(
        base,
        speed_range_m_s=(speed_m_s, speed_m_s),
        stride_length_range_m=(stride_length_m, stride_length_m),
        stride_frequency_range_hz=(frequency * (1 - _FREQUENCY_MARGIN), frequency * (1 + _FREQUENCY_MARGIN)),
        **changes,
    )


def patient_walk_config(gait: ObservedGait, episode_steps: int = 500, **changes) -> LocomotionConfig:
    """The walk task on flat ground with the goal fixed to the patient's observed speed and stride length."""
    return patient_goal_config(
        walk_config(), gait.speed_m_s, gait.stride_length_m, episode_steps=episode_steps, **changes
    )


def adaptation_config(gait: ObservedGait, episode_steps: int = 500) -> LocomotionConfig:
    """What the adaptation trains on: :func:`patient_walk_config` with the narrower joint-angle kernel
    (:data:`ADAPTATION_JOINT_ANGLE_SCALE_RAD`)."""
    return patient_walk_config(gait, episode_steps, joint_angle_scale_rad=ADAPTATION_JOINT_ANGLE_SCALE_RAD)


def make_adaptation_env(
    reference: ReferenceMotion,
    anthropometry: Anthropometry,
    config: LocomotionConfig,
    n_envs: int,
    seed: int,
    n_threads: int = 2,
) -> WalkEnv:
    """The adaptation environment: the patient's twin on flat ground imitating the patient's cycle."""
    return WalkEnv(
        [reference], n_envs=n_envs, config=config, anthropometry=anthropometry, n_threads=n_threads, seed=seed
    )


def evaluate_adapted(
    policy,
    reference: ReferenceMotion,
    anthropometry: Anthropometry,
    gait: ObservedGait,
    *,
    n_repeats: int,
    duration_s: float = 10.0,
    seed: int = 0,
    n_threads: int = 2,
) -> dict:
    """The atlas evaluation document (``docs/atlas.md``) for ``policy`` (an :class:`AtlasPolicy`-like object with
    ``act``, ``manifest`` and ``path``) at the patient's goal, ``n_repeats`` episodes, plus the reference system's
    adaptation figures under ``reference_adaptation``."""
    from cloud_trainer.atlas.evaluate import evaluate_atlas

    doc = evaluate_atlas(
        policy,
        [reference],
        [(gait.speed_m_s, gait.stride_length_m)],
        n_repeats=n_repeats,
        duration_s=duration_s,
        seed=seed,
        n_threads=n_threads,
        config=adaptation_config(gait),
        anthropometry=anthropometry,
    )
    doc.pop("reference_atlas", None)
    doc["reference_adaptation"] = REFERENCE_ADAPTATION
    return doc
