"""Several task environments stepped as one vectorised environment: the terrain-aware atlas trains one policy on
flat ground, ramps and stairs at once (docs/atlas.md, "Terrain-aware atlas").

Every part is a :class:`~cloud_trainer.envs.base.TwinVecEnv` with its own course, configuration and references; all
share the observation and action layout, so one policy acts in all. Simulation ``i`` of the whole is simulation
``i - offset`` of the part it falls in, parts in the order given. The parts draw from one random generator (this
environment's ``np_random``), so a checkpoint of that generator's state resumes every part.

What ``step`` reports is what a single environment reports, concatenated over the parts: rewards, terminations,
the ended episodes' figures (zero or false where a part had none end). ``infos["log"]`` holds each term's mean over
the simulations whose part computes it, and ``part/<name>/step_reward`` and ``part/<name>/fall`` each part's mean reward
and share of simulations that fell in this step (about one over the episode length where episodes end by falls).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import gymnasium as gym
import numpy as np
from gymnasium.vector import VectorEnv
from gymnasium.vector.utils import batch_space

from cloud_trainer.envs.base import TwinVecEnv

#: Per-simulation figures of the episodes that ended (present when any ended), with their value where none did
#: (``final_obs``: zero observations).
_EPISODE_KEYS = {
    "final_obs": 0.0,
    "_final_obs": False,
    "episode_return": 0.0,
    "episode_guidance": 0.0,
    "episode_length": 0,
    "episode_terminated": False,
    "_episode": False,
}


class MixedVecEnv(VectorEnv):
    """``parts`` stepped as one batch (module docstring); ``names`` label them in the log.

    Raises:
        ValueError: no parts, names not one per part, or parts whose observation or action layouts differ.
    """

    def __init__(self, parts: Sequence[TwinVecEnv], names: Sequence[str], seed: int | None = None) -> None:
        if not parts:
            raise ValueError("a mixed environment needs at least one part")
        if len(names) != len(parts):
            raise ValueError(f"{len(parts)} parts need {len(parts)} names, got {len(names)}")
        first = parts[0]
        for name, part in zip(names, parts, strict=True):
            if (part.single_observation_space.shape, part.single_action_space.shape) != (
                first.single_observation_space.shape, first.single_action_space.shape,
            ):  # fmt: skip
                raise ValueError(f"part {name!r}: its observation or action layout differs from {names[0]!r}'s")
        self.parts = list(parts)
        self.names = list(names)
        self.sizes = [part.num_envs for part in parts]
        bounds = np.cumsum([0, *self.sizes]).tolist()
        self._slices = [slice(lo, hi) for lo, hi in pairwise(bounds)]
        self.num_envs = bounds[-1]
        self.single_observation_space: gym.spaces.Box = first.single_observation_space
        self.single_action_space: gym.spaces.Box = first.single_action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.np_random = np.random.default_rng(seed)

    @property
    def np_random(self) -> np.random.Generator:
        return self._np_random

    @np_random.setter
    def np_random(self, generator: np.random.Generator) -> None:
        self._np_random = generator
        for part in self.parts:
            part._np_random = generator

    def part_slice(self, name: str) -> slice:
        """The simulations of the part called ``name``."""
        return self._slices[self.names.index(name)]

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        """Start a new episode in every simulation of every part."""
        if seed is not None:
            self.np_random = np.random.default_rng(seed)
        return np.concatenate([part.reset()[0] for part in self.parts]), {}

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        """One control step of every part, ``actions`` (N, 22) split between them in order."""
        actions = np.asarray(actions)
        if actions.shape[0] != self.num_envs:
            raise ValueError(f"actions must have {self.num_envs} rows (one per simulation), got {actions.shape[0]}")
        results = [part.step(actions[rows]) for part, rows in zip(self.parts, self._slices, strict=True)]
        obs, reward, terminated, truncated = (np.concatenate([r[k] for r in results]) for k in range(4))
        part_infos = [r[4] for r in results]
        infos: dict = {"log": self._merged_log(part_infos, reward)}
        if any("_episode" in info for info in part_infos):
            for key in _EPISODE_KEYS:
                infos[key] = np.concatenate([
                    info[key] if "_episode" in info else self._no_episode(key, size)
                    for info, size in zip(part_infos, self.sizes, strict=True)
                ])  # fmt: skip
        return obs, reward, terminated, truncated, infos

    def _no_episode(self, key: str, size: int) -> np.ndarray:
        """``key``'s figures for ``size`` simulations none of whose episodes ended."""
        if key == "final_obs":
            return np.zeros((size, self.single_observation_space.shape[0]), np.float32)
        return np.full(size, _EPISODE_KEYS[key])

    def _merged_log(self, part_infos: list[dict], reward: np.ndarray) -> dict[str, float]:
        """Each term's mean over the simulations whose part logs it, and each part's mean reward and falls."""
        totals: dict[str, float] = {}
        counts: dict[str, int] = {}
        for info, size in zip(part_infos, self.sizes, strict=True):
            for name, value in info["log"].items():
                totals[name] = totals.get(name, 0.0) + value * size
                counts[name] = counts.get(name, 0) + size
        log = {name: totals[name] / counts[name] for name in totals}
        for name, rows, info in zip(self.names, self._slices, part_infos, strict=True):
            log[f"part/{name}/step_reward"] = float(np.mean(reward[rows]))
            log[f"part/{name}/fall"] = info["log"]["termination/fall"]
        return log

    @property
    def root_x_m(self) -> np.ndarray:
        """Each simulation's pelvis position along its course (world x), m."""
        return np.concatenate([part.root_x_m for part in self.parts])

    def close_extras(self, **kwargs) -> None:
        for part in self.parts:
            part.close()
