"""A flat-ground policy's first view of terrain: task policies start blind to the terrain rays.

The atlas and the adapted patient policy walked only on flat ground. There the 13 terrain rays (pelvis to ground)
vary only with the pelvis's height and pitch, by about 3 cm, so the observation normaliser divides them by about
3 cm and the network reads them as a second pelvis-height signal. On a ramp or stairs the rays ahead shorten by the
terrain's rise: a 3.75 cm riser already reads as a pelvis several of those units too low, clipped at the
normaliser's ±5, inputs the network never saw, and it answers with movements it never learnt. Measured on the
healthy virtual patient (docs/pipeline.md): its policy that had mastered level 1 of the stairs (flat) fell on the
flat run-in of level 2 as soon as the first riser came into view (return 40 in 500 steps); with its ray weights
zeroed the same policy walked on to the stairs (return 80) and on flat ground its return hardly moved.

:func:`blind_to_terrain` therefore zeroes the weights that read the rays in the first layer of the policy and of the
value function (so that a task policy starts out walking exactly as on flat ground, apart from the pelvis signal
the rays duplicated: ``root_height`` and ``hip_ground`` still carry it), and widens the rays' normaliser scale to
:data:`TERRAIN_RAY_SCALE_M`, a scale of real terrain, so that risers and ramps reach the network as graded inputs
from which training learns the weights.

A policy that has learnt to read terrain (the terrain-aware atlas, docs/atlas.md, and what is adapted from it) says
so in its manifest (:func:`reads_terrain`) and keeps its ray weights.
"""

from __future__ import annotations

import numpy as np
import torch

from cloud_trainer.envs.constants import stacked_columns
from cloud_trainer.learn.ppo import GaussianPolicy, ValueFunction

#: Normaliser scale of the terrain rays at the start of a task, m: a 15 cm riser reads as 1.5.
TERRAIN_RAY_SCALE_M = 0.1


def terrain_ray_columns() -> np.ndarray:
    """Indices of the terrain rays in the stacked observation (every frame)."""
    return stacked_columns(["terrain_rays"])


@torch.no_grad()
def blind_to_terrain(
    policy: GaussianPolicy, value: ValueFunction | None = None, scale_m: float = TERRAIN_RAY_SCALE_M
) -> None:
    """Zero the first-layer weights that read the terrain rays (``policy`` and, when given, ``value``) and widen
    the rays' normaliser scale to at least ``scale_m``, in place. ``value`` reads ``policy``'s normaliser."""
    columns = torch.as_tensor(terrain_ray_columns())
    networks = [policy.mean_net] if value is None else [policy.mean_net, value.net]
    for network in networks:
        network[0].weight[:, columns] = 0.0
    var = policy.normalizer.var
    var[columns] = var[columns].clamp_min(scale_m**2)


def reads_terrain(manifest: dict) -> bool:
    """Whether a policy file's manifest says the policy learnt to read terrain: an atlas trained on a terrain mix
    (``terrain_mix``), or a policy adapted from one (``reads_terrain``)."""
    return bool(manifest.get("reads_terrain") or manifest.get("terrain_mix"))
