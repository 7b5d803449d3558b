"""Proximal Policy Optimization (Schulman et al. 2017, arXiv:1707.06347) for the twin's vectorised environments.

One readable module in the manner of CleanRL: the arguments are a typed dataclass (:class:`PPOArgs`), the networks
are small modules, and :class:`PPO` holds the policy, the value function, their two optimisers and the observation
normaliser, with two verbs: :meth:`PPO.act` (sample actions during a rollout) and :meth:`PPO.update` (one PPO update
from a filled :class:`Rollout`). The training loop (environment, logging, checkpoints, budgets) is
:mod:`cloud_trainer.learn.train`.

The algorithm, with the choices that mattered in the feasibility run on this class of machine
(``docs/learning.md``):

- Gaussian policy ``a ~ N(μ(s), diag(σ²))`` with a state-independent, learned log-σ that starts small
  (Dai et al. 2025, Methods "Policy Representation": a Gaussian whose covariance is a hyperparameter; we learn it).
- Actions are residuals on the reference pose (the environment adds them): the mean's last layer starts near zero,
  so the untrained policy tracks the reference.
- Observation normalisation with running mean and variance; the statistics live in the policy's state and are saved
  with the weights.
- Generalised advantage estimation (Schulman et al. 2016, arXiv:1506.02438, eq. 16), with the value of the last
  observation bootstrapped where an episode was truncated (time limit, end of course) rather than terminated.
- Clipped surrogate objective (PPO eq. 7), optional value clipping, separate policy and value optimisers (Adam),
  gradient-norm clipping, shuffled minibatches over several epochs.
- The policy's learning rate is adapted once per update from the mean KL divergence between the rollout policy and
  the updated one: divided by ``lr_factor`` above ``2·kl_target``, multiplied below ``kl_target/2``
  (the adaptive rule of Schulman et al. 2017, §4, applied to the step size as in rsl_rl).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

#: Activation functions by name.
ACTIVATIONS: dict[str, type[nn.Module]] = {"elu": nn.ELU, "relu": nn.ReLU, "tanh": nn.Tanh}


@dataclass(frozen=True)
class PPOArgs:
    """Arguments of PPO. Derived sizes are properties, computed once from these."""

    #: Parallel environments (simulations in one ``mujoco.batch``).
    n_envs: int = 512
    #: Control steps collected per environment between updates; a rollout holds ``n_envs * n_steps`` samples.
    n_steps: int = 24
    #: Passes over the rollout per update.
    n_epochs: int = 4
    #: Minibatches per epoch.
    n_minibatches: int = 4
    #: Discount per control step (30 Hz: 0.95 looks ≈ 0.7 s ahead, DeepMimic's value; the paper uses 0.995).
    gamma: float = 0.95
    #: GAE λ.
    gae_lambda: float = 0.95
    #: PPO clip range ε of the probability ratio.
    clip_ratio: float = 0.2
    #: Clip value predictions to ±``value_clip`` around the rollout's values (None: no value clipping).
    value_clip: float | None = None
    #: Hidden layer widths of the policy (the paper's 3×256).
    policy_hidden: tuple[int, ...] = (256, 256, 256)
    #: Hidden layer widths of the value function (the paper's 2×128).
    value_hidden: tuple[int, ...] = (128, 128)
    #: Hidden activation, a key of ``ACTIVATIONS``.
    activation: str = "elu"
    #: Initial standard deviation of every action component (actions are in [-1, 1]; 0.1 of the residual scale
    #: 0.5 rad is ≈ 3°).
    init_action_std: float = 0.1
    #: The learned log-σ stays within these bounds.
    log_std_bounds: tuple[float, float] = (math.log(0.01), math.log(1.0))
    #: Orthogonal-init gain of the policy's last layer: small, so the initial mean action is ≈ 0 (track the reference).
    last_layer_gain: float = 0.01
    #: Initial learning rate of the policy (adapted on the KL target).
    policy_lr: float = 3e-4
    #: Learning rate of the value function (fixed).
    value_lr: float = 1e-3
    #: Target mean KL divergence per update (None: fixed policy learning rate).
    kl_target: float | None = 0.01
    #: Factor by which the policy learning rate changes when the KL is off target.
    lr_factor: float = 1.5
    #: Bounds of the adapted policy learning rate.
    lr_bounds: tuple[float, float] = (1e-6, 1e-3)
    #: Weight of the value loss is 1 (separate optimiser); gradient norms are clipped to this.
    max_grad_norm: float = 1.0
    #: Entropy bonus coefficient (0: the log-σ learns from the surrogate alone).
    entropy_coef: float = 0.0
    #: Normalised advantages per minibatch.
    normalize_advantages: bool = True
    #: Normalised observations are clipped to ±this.
    obs_clip: float = 5.0
    #: Smallest standard deviation the normaliser divides by (features that are constant for a while).
    obs_std_floor: float = 1e-2

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; known: {sorted(ACTIVATIONS)}")
        for name in ("n_envs", "n_steps", "n_epochs", "n_minibatches"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        if self.batch_size % self.n_minibatches:
            raise ValueError(
                f"n_envs × n_steps = {self.batch_size} must be divisible by n_minibatches = {self.n_minibatches}"
            )
        if not (0 < self.gamma <= 1 and 0 <= self.gae_lambda <= 1):
            raise ValueError(f"gamma must be in (0, 1] and gae_lambda in [0, 1], got {self.gamma}, {self.gae_lambda}")

    @property
    def batch_size(self) -> int:
        """Samples per rollout."""
        return self.n_envs * self.n_steps

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.n_minibatches


# ---------------------------------------------------------------------------------------------------- networks


class RunningNormalizer(nn.Module):
    """Running mean and variance of observations (Chan et al.'s parallel update), applied as
    ``clip((x − mean) / max(std, floor), ±clip)``. The statistics are buffers: saved and loaded with the module."""

    def __init__(self, width: int, clip: float = 5.0, std_floor: float = 1e-2) -> None:
        super().__init__()
        self.clip, self.std_floor = clip, std_floor
        self.register_buffer("mean", torch.zeros(width, dtype=torch.float64))
        self.register_buffer("var", torch.ones(width, dtype=torch.float64))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        """Fold a batch of observations (N, width) into the statistics."""
        x = x.reshape(-1, self.mean.shape[0]).to(torch.float64)
        n = x.shape[0]
        if n == 0:
            return
        batch_mean, batch_var = x.mean(0), x.var(0, unbiased=False)
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean += delta * n / total
        self.var.copy_((self.var * self.count + batch_var * n + delta**2 * self.count * n / total) / total)
        self.count.copy_(total)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        std = torch.sqrt(self.var).clamp_min(self.std_floor).to(x.dtype)
        return ((x - self.mean.to(x.dtype)) / std).clamp(-self.clip, self.clip)


def mlp(n_in: int, hidden: tuple[int, ...], n_out: int, activation: str, last_gain: float) -> nn.Sequential:
    """A feed-forward network, orthogonal initialisation (gain √2 hidden, ``last_gain`` out), zero biases."""
    layers: list[nn.Module] = []
    width = n_in
    for h in hidden:
        layer = nn.Linear(width, h)
        nn.init.orthogonal_(layer.weight, math.sqrt(2.0))
        nn.init.zeros_(layer.bias)
        layers += [layer, ACTIVATIONS[activation]()]
        width = h
    out = nn.Linear(width, n_out)
    nn.init.orthogonal_(out.weight, last_gain)
    nn.init.zeros_(out.bias)
    layers.append(out)
    return nn.Sequential(*layers)


class GaussianPolicy(nn.Module):
    """Observation normaliser → MLP mean; state-independent learned log-σ."""

    def __init__(self, obs_width: int, action_width: int, args: PPOArgs) -> None:
        super().__init__()
        self.normalizer = RunningNormalizer(obs_width, args.obs_clip, args.obs_std_floor)
        self.mean_net = mlp(obs_width, args.policy_hidden, action_width, args.activation, args.last_layer_gain)
        self.log_std = nn.Parameter(torch.full((action_width,), math.log(args.init_action_std)))
        self.log_std_bounds = args.log_std_bounds

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """The deterministic action (the Gaussian's mean) for raw observations."""
        return self.mean_net(self.normalizer(obs))

    def distribution(self, obs: torch.Tensor) -> torch.distributions.Normal:
        mean = self.forward(obs)
        log_std = self.log_std.clamp(*self.log_std_bounds)
        return torch.distributions.Normal(mean, log_std.exp().expand_as(mean))


class ValueFunction(nn.Module):
    """MLP state value; it reads the policy's normaliser (shared statistics, not shared weights)."""

    def __init__(self, obs_width: int, args: PPOArgs, normalizer: RunningNormalizer) -> None:
        super().__init__()
        self.net = mlp(obs_width, args.value_hidden, 1, args.activation, 1.0)
        self._normalizer = (normalizer,)  # a tuple: not registered as a submodule, saved once with the policy

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(self._normalizer[0](obs)).squeeze(-1)


#: An extra policy loss for :meth:`PPO.update`: (minibatch observations, the policy's distribution on them) → scalar.
AuxiliaryLoss = Callable[[torch.Tensor, torch.distributions.Normal], torch.Tensor]


# ---------------------------------------------------------------------------------------------------- rollout storage


class Rollout:
    """One rollout, (n_steps, n_envs, …) tensors filled step by step, then advantages and returns."""

    def __init__(self, args: PPOArgs, obs_width: int, action_width: int) -> None:
        t, n = args.n_steps, args.n_envs
        self.args = args
        self.obs = torch.zeros((t, n, obs_width))
        self.actions = torch.zeros((t, n, action_width))
        self.rewards = torch.zeros((t, n))
        self.terminated = torch.zeros((t, n), dtype=torch.bool)  # ended by a fall: no future
        self.truncated = torch.zeros((t, n), dtype=torch.bool)  # ended by a limit: future bootstrapped
        self.final_obs: list[tuple[int, torch.Tensor, torch.Tensor]] = []  # (step, env rows, obs) where truncated
        self.next_obs = torch.zeros((n, obs_width))  # the observation after the last step
        self.step = 0
        # filled by PPO.prepare
        self.log_prob = torch.zeros((t, n))
        self.values = torch.zeros((t, n))
        self.advantages = torch.zeros((t, n))
        self.returns = torch.zeros((t, n))

    def add(
        self,
        obs: np.ndarray,
        actions: torch.Tensor,
        rewards: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        final_obs: np.ndarray | None,
    ) -> None:
        """Store one control step; ``final_obs`` (n_envs, obs) holds the last observation of ended episodes."""
        k = self.step
        self.obs[k] = torch.from_numpy(obs)
        self.actions[k] = actions
        self.rewards[k] = torch.from_numpy(np.asarray(rewards, dtype=np.float32))
        self.terminated[k] = torch.from_numpy(np.asarray(terminated, dtype=bool))
        self.truncated[k] = torch.from_numpy(np.asarray(truncated, dtype=bool) & ~np.asarray(terminated, dtype=bool))
        rows = torch.nonzero(self.truncated[k]).squeeze(1)
        if len(rows):
            self.final_obs.append((k, rows, torch.from_numpy(final_obs[rows.numpy()]).float()))
        self.step += 1

    @property
    def full(self) -> bool:
        return self.step == self.args.n_steps


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    ended: torch.Tensor,
    gamma: float,
    lam: float,
) -> torch.Tensor:
    """Generalised advantage estimates (Schulman et al. 2016, eq. 16), backwards over (T, N) tensors.

    ``next_values[t]`` is the value of the state after step t (0 after a termination; the final observation's value
    already folded into ``rewards`` after a truncation), ``ended[t]`` whether an episode ended at step t (the trace
    does not run across it).
    """
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        not_ended = (~ended[t]).float()
        delta = rewards[t] + gamma * next_values[t] - values[t]
        running = delta + gamma * lam * not_ended * running
        advantages[t] = running
    return advantages


# ---------------------------------------------------------------------------------------------------- the algorithm


class PPO:
    """Policy, value function, optimisers and normaliser; see the module docstring.

    Args:
        obs_width, action_width: sizes of one observation and one action.
        args: the algorithm's arguments.
    """

    def __init__(self, obs_width: int, action_width: int, args: PPOArgs | None = None) -> None:
        self.args = args or PPOArgs()
        self.obs_width, self.action_width = obs_width, action_width
        self.policy = GaussianPolicy(obs_width, action_width, self.args)
        self.value = ValueFunction(obs_width, self.args, self.policy.normalizer)
        self.policy_lr = self.args.policy_lr
        self.policy_optimizer = torch.optim.Adam(self.policy.parameters(), lr=self.policy_lr)
        self.value_optimizer = torch.optim.Adam(self.value.parameters(), lr=self.args.value_lr)

    def new_rollout(self) -> Rollout:
        return Rollout(self.args, self.obs_width, self.action_width)

    @torch.inference_mode()
    def act(self, obs: np.ndarray, deterministic: bool = False) -> torch.Tensor:
        """Actions (n, action_width) for raw observations (n, obs_width): sampled, or the mean."""
        x = torch.from_numpy(obs)
        if deterministic:
            return self.policy(x)
        return self.policy.distribution(x).sample()

    # --- after a rollout: statistics, old log-probabilities, values, advantages

    @torch.no_grad()
    def prepare(self, rollout: Rollout) -> None:
        """Fold the rollout's observations into the normaliser, then evaluate the rollout under it: log-probabilities
        of the taken actions (the "old" policy of the ratio), values, GAE advantages and returns.

        The normaliser changes before the update rather than during the rollout, so that the first minibatch's ratio
        is exactly 1 and the measured KL is that of the update alone.
        """
        a = self.args
        self.policy.normalizer.update(rollout.obs)
        flat_obs = rollout.obs.reshape(-1, self.obs_width)
        dist = self.policy.distribution(flat_obs)
        rollout.log_prob = dist.log_prob(rollout.actions.reshape(-1, self.action_width)).sum(-1).view_as(
            rollout.rewards
        )
        rollout.values = self.value(flat_obs).view_as(rollout.rewards)
        rewards = rollout.rewards.clone()
        for k, rows, final in rollout.final_obs:  # truncated: the future is the final observation's value
            rewards[k, rows] += a.gamma * self.value(final)
        next_values = torch.empty_like(rollout.values)
        next_values[:-1] = rollout.values[1:]
        next_values[-1] = self.value(rollout.next_obs)
        ended = rollout.terminated | rollout.truncated
        next_values[ended] = 0.0
        rollout.advantages = gae(rewards, rollout.values, next_values, ended, a.gamma, a.gae_lambda)
        rollout.returns = rollout.advantages + rollout.values

    # --- the update

    def update(
        self,
        rollout: Rollout,
        generator: torch.Generator | None = None,
        auxiliary_loss: AuxiliaryLoss | None = None,
    ) -> dict[str, float]:
        """One PPO update over ``n_epochs`` × ``n_minibatches``; returns the update's statistics (losses, KL,
        clip fraction, learning rate, action σ, explained variance).

        ``auxiliary_loss(obs, distribution)`` (optional) is added to every minibatch's policy loss, e.g. a weighted
        behaviour-cloning term (Dai et al. 2025, GATP); its mean is reported as ``auxiliary_loss``.
        """
        a = self.args
        if not rollout.full:
            raise ValueError(f"the rollout holds {rollout.step} of {a.n_steps} steps")
        self.prepare(rollout)
        obs = rollout.obs.reshape(-1, self.obs_width)
        actions = rollout.actions.reshape(-1, self.action_width)
        old_log_prob = rollout.log_prob.reshape(-1)
        old_values = rollout.values.reshape(-1)
        advantages = rollout.advantages.reshape(-1)
        returns = rollout.returns.reshape(-1)

        sums = {"policy_loss": 0.0, "value_loss": 0.0, "entropy": 0.0, "clip_fraction": 0.0, "auxiliary_loss": 0.0}
        n_minibatches = 0
        for _ in range(a.n_epochs):
            order = torch.randperm(a.batch_size, generator=generator)
            for start in range(0, a.batch_size, a.minibatch_size):
                idx = order[start : start + a.minibatch_size]
                adv = advantages[idx]
                if a.normalize_advantages:
                    adv = (adv - adv.mean()) / (adv.std() + 1e-8)

                # policy: clipped surrogate (PPO eq. 7)
                dist = self.policy.distribution(obs[idx])
                log_prob = dist.log_prob(actions[idx]).sum(-1)
                ratio = torch.exp(log_prob - old_log_prob[idx])
                surrogate = torch.min(ratio * adv, ratio.clamp(1 - a.clip_ratio, 1 + a.clip_ratio) * adv)
                entropy = dist.entropy().sum(-1).mean()
                policy_loss = -surrogate.mean() - a.entropy_coef * entropy
                if auxiliary_loss is not None:
                    extra = auxiliary_loss(obs[idx], dist)
                    policy_loss = policy_loss + extra
                    sums["auxiliary_loss"] += extra.item()
                self.policy_optimizer.zero_grad(set_to_none=True)
                policy_loss.backward()
                nn.utils.clip_grad_norm_(self.policy.parameters(), a.max_grad_norm)
                self.policy_optimizer.step()

                # value: squared error to the GAE returns, optionally clipped around the rollout's values
                value = self.value(obs[idx])
                value_loss = (value - returns[idx]) ** 2
                if a.value_clip is not None:
                    clipped = old_values[idx] + (value - old_values[idx]).clamp(-a.value_clip, a.value_clip)
                    value_loss = torch.max(value_loss, (clipped - returns[idx]) ** 2)
                value_loss = 0.5 * value_loss.mean()
                self.value_optimizer.zero_grad(set_to_none=True)
                value_loss.backward()
                nn.utils.clip_grad_norm_(self.value.parameters(), a.max_grad_norm)
                self.value_optimizer.step()

                sums["policy_loss"] += policy_loss.item()
                sums["value_loss"] += value_loss.item()
                sums["entropy"] += entropy.item()
                sums["clip_fraction"] += float(((ratio - 1).abs() > a.clip_ratio).float().mean())
                n_minibatches += 1

        # KL between the rollout policy and the updated one, over the whole rollout; adapt the step size once
        with torch.no_grad():
            log_prob = self.policy.distribution(obs).log_prob(actions).sum(-1)
            log_ratio = log_prob - old_log_prob
            kl = float(((log_ratio.exp() - 1) - log_ratio).mean())  # Schulman's low-variance estimator k3
            explained = 1.0 - float((returns - old_values).var() / returns.var().clamp_min(1e-8))
        lr_used = self.policy_lr
        if a.kl_target is not None:
            if kl > 2.0 * a.kl_target:
                self.policy_lr = max(self.policy_lr / a.lr_factor, a.lr_bounds[0])
            elif kl < 0.5 * a.kl_target:
                self.policy_lr = min(self.policy_lr * a.lr_factor, a.lr_bounds[1])
            for group in self.policy_optimizer.param_groups:
                group["lr"] = self.policy_lr
        stats = {k: v / n_minibatches for k, v in sums.items()}
        stats.update(
            kl=kl,
            policy_lr=lr_used,
            action_std=self.policy.log_std.detach().clamp(*a.log_std_bounds).exp().mean().item(),
            explained_variance=explained,
            value_mean=float(old_values.mean()),
            advantage_std=float(advantages.std()),
        )
        return stats

    # --- state for checkpoints

    def state_dict(self) -> dict:
        """Networks (the normaliser inside the policy), optimisers and the adapted learning rate."""
        return {
            "policy": self.policy.state_dict(),
            "value": self.value.state_dict(),
            "policy_optimizer": self.policy_optimizer.state_dict(),
            "value_optimizer": self.value_optimizer.state_dict(),
            "policy_lr": self.policy_lr,
        }

    def load_state_dict(self, state: dict) -> None:
        self.policy.load_state_dict(state["policy"])
        self.value.load_state_dict(state["value"])
        self.policy_optimizer.load_state_dict(state["policy_optimizer"])
        self.value_optimizer.load_state_dict(state["value_optimizer"])
        self.policy_lr = float(state["policy_lr"])
        for group in self.policy_optimizer.param_groups:
            group["lr"] = self.policy_lr
