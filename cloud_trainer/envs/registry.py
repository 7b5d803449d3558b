"""Environments by name: ``make_env("walk" | "slope" | "stairs", references, ...)``."""

from __future__ import annotations

from collections.abc import Sequence

from cloud_trainer.envs import slope, stairs, walk
from cloud_trainer.envs.base import LocomotionConfig, TwinVecEnv
from cloud_trainer.errors import UnknownNameError
from cloud_trainer.motion.reference import ReferenceMotion

#: Environment name → (class, its task module, whether it takes a curriculum level).
ENVIRONMENTS: dict[str, tuple[type[TwinVecEnv], object, bool]] = {
    "walk": (walk.WalkEnv, walk, False),
    "slope": (slope.SlopeEnv, slope, True),
    "stairs": (stairs.StairsEnv, stairs, True),
}
ENV_NAMES: tuple[str, ...] = tuple(ENVIRONMENTS)


def make_env(
    name: str,
    references: Sequence[ReferenceMotion],
    *,
    level: int | None = None,
    config: LocomotionConfig | None = None,
    **kwargs,
) -> TwinVecEnv:
    """The environment called ``name``; ``level`` (1-5) picks a slope or stairs curriculum level (default: 5), and
    ``config`` replaces the task's default configuration entirely. Other arguments go to :class:`TwinVecEnv`.

    Raises:
        UnknownNameError: ``name`` is not one of ``ENV_NAMES`` (listed in the message).
        ValueError: a level for a task without levels, or a level outside 1-5.
    """
    try:
        cls, module, has_levels = ENVIRONMENTS[name]
    except (KeyError, TypeError):
        raise UnknownNameError(f"unknown environment {name!r}; known environments: {', '.join(ENV_NAMES)}") from None
    if config is None:
        if level is not None and not has_levels:
            raise ValueError(f"environment {name!r} has no levels; levels exist for slope and stairs")
        config = module.default_config() if level is None else module.default_config(level)
    elif level is not None:
        raise ValueError("give either a level or a whole config, not both")
    return cls(references, config=config, **kwargs)
