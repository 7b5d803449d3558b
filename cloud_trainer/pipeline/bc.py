"""Behavioural prior distillation (Dai et al. 2025, Methods, "Stage I — Behavioral Prior Distillation") and the
behaviour-cloning loss of task prediction ("Stage II — GATP", ``L_BC = ‖a_sim − a_BC‖`` weighted by α_BC decaying
linearly from 0.2 to 0).

**What the patient's "activations" are.** The paper clones a proxy π_BC on (state, activation) pairs of the patient's
reference clip. Five IMUs measure no activation: what they give is kinematics. Here the pairs are defined as the
*adapted patient policy's own* deterministic actions (PD target residuals and torque limits: the activation of
docs/environments.md) on the states it visits walking the patient's reference on flat ground, i.e. the activation
that reproduces the patient's walk in the twin. The proxy is therefore a distillation of the adapted policy on the
patient's own gait, not a measurement; the report says so.

:class:`BehaviourCloning` fits the proxy (supervised, mean squared error on the action mean); :func:`bc_weight` is
the α_BC schedule; :class:`BCLoss` is the term :meth:`cloud_trainer.learn.ppo.PPO.update` adds to the policy loss.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch

from cloud_trainer.envs.constants import ACTION_WIDTH, OBSERVATION_WIDTH
from cloud_trainer.learn.ppo import GaussianPolicy, PPOArgs

#: α_BC at the start of task prediction and the fraction of a task's sample budget over which it decays to 0 (the
#: paper: 0.2 → 0 over the first 5 M of ≈ 23 M steps, about a fifth; we take a quarter of the budget).
BC_WEIGHT_START = 0.2
BC_DECAY_FRACTION = 0.25


def bc_weight(samples: int, decay_samples: int, start: float = BC_WEIGHT_START) -> float:
    """α_BC after ``samples`` task samples: linear from ``start`` to 0 at ``decay_samples``, 0 after."""
    if decay_samples <= 0:
        return 0.0
    return start * max(0.0, 1.0 - samples / decay_samples)


class BehaviourCloning:
    """A behaviour-cloning proxy π_BC fitted to (observation, action) pairs.

    Parameters:
        ppo_args: network sizes of the proxy (the policy's: the proxy can initialise the task policy).
        n_epochs: passes over the data.
        batch_size: samples per gradient step.
        lr: Adam step size.
        holdout_fraction: share of the pairs kept out of training to report generalisation.
        seed: seed of the split, the initialisation and the batches.

    Results (after :meth:`fit`): ``policy_`` (a :class:`~cloud_trainer.learn.ppo.GaussianPolicy` whose normaliser is
    fitted to the observations and whose mean fits the actions; eval mode), ``train_mse_``, ``holdout_mse_`` (mean
    squared action error per component), ``baseline_mse_`` (the same for always answering the mean action: what the
    fit explains), ``n_pairs_``.
    """

    def __init__(
        self,
        ppo_args: PPOArgs | None = None,
        n_epochs: int = 30,
        batch_size: int = 512,
        lr: float = 1e-3,
        holdout_fraction: float = 0.1,
        seed: int = 0,
    ) -> None:
        self.ppo_args = ppo_args or PPOArgs()
        self.n_epochs = n_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.holdout_fraction = holdout_fraction
        self.seed = seed

    def fit(self, obs: np.ndarray, actions: np.ndarray) -> BehaviourCloning:
        """Fit the proxy to ``obs`` (n, 249) → ``actions`` (n, 22)."""
        obs_t = torch.as_tensor(np.asarray(obs, dtype=np.float32))
        act_t = torch.as_tensor(np.asarray(actions, dtype=np.float32))
        if obs_t.ndim != 2 or obs_t.shape[1] != OBSERVATION_WIDTH or act_t.shape != (len(obs_t), ACTION_WIDTH):
            raise ValueError(
                f"behaviour cloning needs obs (n, {OBSERVATION_WIDTH}) and actions (n, {ACTION_WIDTH}), got "
                f"{tuple(obs_t.shape)} and {tuple(act_t.shape)}"
            )
        if len(obs_t) < 2:
            raise ValueError(f"behaviour cloning needs at least 2 pairs, got {len(obs_t)}")
        generator = torch.Generator().manual_seed(self.seed)
        torch.manual_seed(self.seed)
        order = torch.randperm(len(obs_t), generator=generator)
        n_hold = min(len(obs_t) - 1, max(1, round(self.holdout_fraction * len(obs_t))))
        hold, train = order[:n_hold], order[n_hold:]
        policy = GaussianPolicy(OBSERVATION_WIDTH, ACTION_WIDTH, self.ppo_args)
        policy.normalizer.update(obs_t[train])
        optimizer = torch.optim.Adam(policy.mean_net.parameters(), lr=self.lr)
        n_steps = max(1, self.n_epochs * math.ceil(len(train) / self.batch_size))
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, n_steps)
        policy.train()
        for _ in range(self.n_epochs):
            shuffled = train[torch.randperm(len(train), generator=generator)]
            for start in range(0, len(shuffled), self.batch_size):
                idx = shuffled[start : start + self.batch_size]
                loss = torch.mean((policy(obs_t[idx]) - act_t[idx]) ** 2)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
        policy.eval()
        with torch.no_grad():
            self.train_mse_ = float(torch.mean((policy(obs_t[train]) - act_t[train]) ** 2))
            self.holdout_mse_ = float(torch.mean((policy(obs_t[hold]) - act_t[hold]) ** 2))
            self.baseline_mse_ = float(torch.mean((act_t[hold] - act_t[train].mean(0)) ** 2))
        for p in policy.parameters():
            p.requires_grad_(False)
        self.policy_ = policy
        self.n_pairs_ = len(obs_t)
        return self


class BCLoss:
    """``α_BC · mean‖μ_π(s) − μ_BC(s)‖²/d`` on a minibatch of simulated states (the GATP behaviour-cloning term;
    the squared norm per action component, so that its scale does not depend on the action width).

    ``weight`` is set by the caller before each update (:func:`bc_weight`); at 0 the term is skipped.
    """

    def __init__(self, proxy: GaussianPolicy) -> None:
        self.proxy = copy.deepcopy(proxy).eval()
        for p in self.proxy.parameters():
            p.requires_grad_(False)
        self.weight = BC_WEIGHT_START

    def __call__(self, obs: torch.Tensor, distribution: torch.distributions.Normal) -> torch.Tensor:
        if self.weight <= 0.0:
            return torch.zeros((), dtype=distribution.mean.dtype)
        with torch.no_grad():
            target = self.proxy(obs)
        return self.weight * torch.mean((distribution.mean - target) ** 2)
