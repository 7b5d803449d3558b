"""Climbing stairs: the walk task's reward on ``stairs:<level>`` (risers 0 … 15 cm, 30 cm treads).

The paper trains stairs "without preset speed targets"; we keep a speed goal so that the reward still asks for
progress (the imitation terms are relative to the pelvis and reward none), but over a slow range, and the stride goal
is two treads: step-over-step climbing puts one foot on every tread.
"""

from __future__ import annotations

from dataclasses import replace

from cloud_trainer.envs.base import LocomotionConfig
from cloud_trainer.envs.walk import WalkEnv
from cloud_trainer.envs.walk import default_config as walk_config
from cloud_trainer.twin.terrain import STAIR_HEIGHTS_M, STAIR_TREAD_M

LEVELS = tuple(range(1, len(STAIR_HEIGHTS_M) + 1))
#: Stair ascent of healthy adults is slower than level walking: about 0.4-0.8 m/s horizontal progress.
STAIR_SPEED_RANGE_M_S = (0.4, 0.8)


def default_config(level: int = len(STAIR_HEIGHTS_M)) -> LocomotionConfig:
    """The walk task on the stairs of curriculum level ``level`` (1-5).

    Raises:
        ValueError: a level outside 1-5.
    """
    if level not in LEVELS:
        raise ValueError(f"stairs level must be one of {LEVELS}, got {level!r}")
    return replace(
        walk_config(),
        terrain=f"stairs:{level}",
        speed_range_m_s=STAIR_SPEED_RANGE_M_S,
        stride_length_range_m=(2 * STAIR_TREAD_M, 2 * STAIR_TREAD_M),
        stride_frequency_range_hz=(0.5, 1.4),
    )


class StairsEnv(WalkEnv):
    """Goal-conditioned imitation on stairs."""

    default_config = staticmethod(default_config)
