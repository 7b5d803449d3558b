"""Task policies start blind to the terrain rays (cloud_trainer.learn.terrain_view)."""

from __future__ import annotations

import numpy as np
import torch

from cloud_trainer.envs.constants import ACTION_WIDTH, FRAME_WIDTH, OBSERVATION_WIDTH, frame_slices
from cloud_trainer.learn.ppo import PPO, PPOArgs
from cloud_trainer.learn.terrain_view import TERRAIN_RAY_SCALE_M, blind_to_terrain, terrain_ray_columns

SMALL = PPOArgs(policy_hidden=(32, 32), value_hidden=(16,))


def _ppo_with_flat_statistics(seed: int = 0) -> PPO:
    torch.manual_seed(seed)
    ppo = PPO(OBSERVATION_WIDTH, ACTION_WIDTH, SMALL)
    obs = torch.randn(512, OBSERVATION_WIDTH, dtype=torch.float64) * 0.03 + 1.0  # flat ground: rays vary by 3 cm
    ppo.policy.normalizer.update(obs)
    return ppo


def test_ray_columns_are_the_rays_of_every_stacked_frame():
    columns = terrain_ray_columns()
    rays = frame_slices()["terrain_rays"]
    assert len(columns) == 3 * (rays.stop - rays.start)
    assert columns.max() < OBSERVATION_WIDTH
    assert sorted({int(c) % FRAME_WIDTH for c in columns}) == list(range(rays.start, rays.stop))


def test_blind_policy_and_value_ignore_the_rays_and_nothing_else():
    ppo = _ppo_with_flat_statistics()
    obs = torch.randn(8, OBSERVATION_WIDTH) * 0.03 + 1.0
    on_stairs = obs.clone()
    on_stairs[:, terrain_ray_columns()] -= 0.3  # terrain 30 cm higher ahead
    assert not torch.allclose(ppo.policy(obs), ppo.policy(on_stairs))  # as given, the rays move the actions

    blind_to_terrain(ppo.policy, ppo.value)
    with torch.no_grad():
        assert torch.equal(ppo.policy(obs), ppo.policy(on_stairs))
        assert torch.equal(ppo.value(obs), ppo.value(on_stairs))
        moved = obs.clone()
        moved[:, frame_slices()["root_height"]] -= 0.3  # other inputs still count
        assert not torch.allclose(ppo.policy(obs), ppo.policy(moved))


def test_ray_scale_widened_to_terrain_other_statistics_kept():
    ppo = _ppo_with_flat_statistics()
    var_before = ppo.policy.normalizer.var.clone()
    blind_to_terrain(ppo.policy)
    var = ppo.policy.normalizer.var
    rays = torch.as_tensor(terrain_ray_columns())
    others = torch.as_tensor(np.setdiff1d(np.arange(OBSERVATION_WIDTH), terrain_ray_columns()))
    assert torch.all(var[rays] >= TERRAIN_RAY_SCALE_M**2 - 1e-15)
    assert torch.equal(var[others], var_before[others])


def test_blind_policy_learns_to_read_the_rays():
    """The zeroed weights are ordinary parameters: a loss that depends on the rays moves them."""
    ppo = _ppo_with_flat_statistics()
    blind_to_terrain(ppo.policy, ppo.value)
    obs = torch.randn(64, OBSERVATION_WIDTH) * 0.03 + 1.0
    obs[:, terrain_ray_columns()] -= torch.rand(64, 1) * 0.3
    target = obs[:, terrain_ray_columns()[:1]].expand(-1, ACTION_WIDTH)
    loss = torch.mean((ppo.policy(obs) - target) ** 2)
    loss.backward()
    assert ppo.policy.mean_net[0].weight.grad[:, terrain_ray_columns()].abs().sum() > 0
