"""The budgets: every budget caps the prediction stage's exploration noise, and the cap reaches the policy."""

from __future__ import annotations

import math

import pytest
import torch

from cloud_trainer.envs.constants import ACTION_WIDTH, OBSERVATION_WIDTH
from cloud_trainer.learn.ppo import PPO
from cloud_trainer.pipeline.budgets import BUDGETS, get_budget


@pytest.mark.parametrize("name", sorted(BUDGETS))
def test_task_args_cap_the_action_sigma_and_keep_everything_else(name: str) -> None:
    budget = get_budget(name)
    base, task = budget.ppo_args(), budget.task_ppo_args()
    assert task.log_std_bounds == (base.log_std_bounds[0], pytest.approx(math.log(budget.task_action_std)))
    assert task.log_std_bounds[1] < base.log_std_bounds[1]
    assert {k: v for k, v in vars(task).items() if k != "log_std_bounds"} == {
        k: v for k, v in vars(base).items() if k != "log_std_bounds"
    }


def test_a_policy_built_with_the_task_args_samples_within_the_cap() -> None:
    budget = get_budget("quick")
    ppo = PPO(OBSERVATION_WIDTH, ACTION_WIDTH, budget.task_ppo_args())
    ppo.policy.log_std.data[:] = math.log(0.2)  # what an atlas-sized σ would be
    obs = torch.zeros(4, OBSERVATION_WIDTH)
    sigma = ppo.policy.distribution(obs).stddev
    assert torch.allclose(sigma, torch.full_like(sigma, budget.task_action_std))
