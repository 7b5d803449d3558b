"""Walking up a ramp: the walk task's goals and reward on ``slope:<level>`` (level 1 flat … 5 rising 1:12).

The paper keeps the reward's structure for its tasks and changes only the goals (Dai et al. 2025, Methods, "Personalized
Locomotion Prediction Framework"); the course starts with a 3 m flat run-in, so episodes start on level ground.
"""

from __future__ import annotations

from dataclasses import replace

from cloud_trainer.envs.base import LocomotionConfig
from cloud_trainer.envs.walk import WalkEnv
from cloud_trainer.envs.walk import default_config as walk_config
from cloud_trainer.twin.terrain import SLOPE_RISES_M

LEVELS = tuple(range(1, len(SLOPE_RISES_M) + 1))


def default_config(level: int = len(SLOPE_RISES_M)) -> LocomotionConfig:
    """The walk task on the ramp of curriculum level ``level`` (1-5).

    Raises:
        ValueError: a level outside 1-5.
    """
    if level not in LEVELS:
        raise ValueError(f"slope level must be one of {LEVELS}, got {level!r}")
    return replace(walk_config(), terrain=f"slope:{level}")


class SlopeEnv(WalkEnv):
    """Goal-conditioned imitation on a ramp."""

    default_config = staticmethod(default_config)
