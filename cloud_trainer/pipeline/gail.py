"""The GAIL discriminator of task prediction (Dai et al. 2025, "Stage II — GATP"; Ho & Ermon 2016) and its intrinsic
reward ``r_in = −log(1 − D(s, a))``, mixed with the environment's reward as ``0.9 · r_ex + 0.1 · r_in``.

**Features.** D sees a window of the two latest observation frames restricted to the patient's own movement — gait
phase, joint angles, joint rates, torque limits — and the activation (the 22 actions: PD target residuals on the
reference and torque limits). Goals, terrain rays, root height and orientation are left out: they differ between
flat ground and a ramp by construction, and a discriminator that sees them separates the two without judging the
movement.

**Data.** A single clip is thin data for a discriminator: one cycle of a 20 m walk is ~60 distinct states at 30 Hz.
The expert pairs are therefore windows of the adapted patient policy's own rollouts on flat ground (thousands of
states around the patient's cycle, as motion-prior methods train their discriminator on motion windows: Peng et al.
2021, AMP), with the actions it sampled. The pipeline measures whether this helps (``docs/pipeline.md``).

**Training.** Binary cross-entropy with the expert pairs labelled 1 and the policy's 0, plus a gradient penalty on
the expert pairs (R1, Mescheder et al. 2018, as AMP uses) that keeps D smooth so the reward stays informative;
``n_steps`` minibatches after every PPO rollout. ``−log(1 − σ(x)) = softplus(x)`` computes the reward stably.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from cloud_trainer.envs.constants import ACTION_WIDTH, N_STACKED_FRAMES, stacked_columns
from cloud_trainer.learn.ppo import RunningNormalizer, mlp

#: Observation blocks the discriminator sees, per frame.
FEATURE_BLOCKS = ("phase", "joint_angle", "joint_velocity", "torque_limit")
#: Frames of the stacked observation it sees (the latest ``N_WINDOW_FRAMES``).
N_WINDOW_FRAMES = 2
#: Weights of the environment's (external) and the discriminator's (intrinsic) reward (Dai et al. 2025: 0.9 / 0.1).
EXTERNAL_WEIGHT, INTRINSIC_WEIGHT = 0.9, 0.1
#: The intrinsic reward is clipped here (D → 1 would make it unbounded).
MAX_INTRINSIC_REWARD = 5.0


def feature_columns() -> np.ndarray:
    """Indices of the discriminator's observation features in the stacked observation (oldest frame first)."""
    return stacked_columns(FEATURE_BLOCKS, range(N_STACKED_FRAMES - N_WINDOW_FRAMES, N_STACKED_FRAMES))


FEATURE_COLUMNS = feature_columns()
FEATURE_WIDTH = len(FEATURE_COLUMNS) + ACTION_WIDTH


def features(obs: torch.Tensor | np.ndarray, actions: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Discriminator inputs (n, FEATURE_WIDTH) from stacked observations (n, 249) and actions (n, 22)."""
    obs_t = torch.as_tensor(obs, dtype=torch.float32)
    act_t = torch.as_tensor(actions, dtype=torch.float32).clamp(-1.0, 1.0)
    return torch.cat([obs_t[..., torch.as_tensor(FEATURE_COLUMNS)], act_t], dim=-1)


class Discriminator:
    """D(s, a) ∈ (0, 1): the probability that a pair is the patient's.

    Parameters:
        expert_features: the patient's pairs, (n, FEATURE_WIDTH) (:func:`features`); fixes the input normaliser.
        hidden: hidden widths (the paper: 2×128, ReLU).
        lr: Adam step size.
        n_steps: minibatches per :meth:`update`.
        batch_size: pairs of each kind per minibatch.
        grad_penalty: weight of the R1 gradient penalty on expert pairs.
        seed: seed of the initialisation and of the expert minibatches.
    """

    def __init__(
        self,
        expert_features: torch.Tensor,
        hidden: tuple[int, ...] = (128, 128),
        lr: float = 1e-4,
        n_steps: int = 4,
        batch_size: int = 512,
        grad_penalty: float = 5.0,
        seed: int = 0,
    ) -> None:
        expert = torch.as_tensor(expert_features, dtype=torch.float32)
        if expert.ndim != 2 or expert.shape[1] != FEATURE_WIDTH or len(expert) < 2:
            raise ValueError(f"expert features must be (n ≥ 2, {FEATURE_WIDTH}), got {tuple(expert.shape)}")
        torch.manual_seed(seed)
        self.expert = expert
        self.normalizer = RunningNormalizer(FEATURE_WIDTH)
        self.normalizer.update(expert)
        self.net = mlp(FEATURE_WIDTH, hidden, 1, "relu", 1.0)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=lr)
        self.n_steps, self.batch_size, self.grad_penalty = n_steps, batch_size, grad_penalty
        self.generator = torch.Generator().manual_seed(seed)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalizer(x)).squeeze(-1)

    @torch.no_grad()
    def probability(self, x: torch.Tensor) -> torch.Tensor:
        """D for features ``x``."""
        return torch.sigmoid(self.logits(x))

    @torch.no_grad()
    def intrinsic_reward(self, x: torch.Tensor) -> torch.Tensor:
        """``r_in = −log(1 − D)`` (= softplus of the logit), clipped at ``MAX_INTRINSIC_REWARD``."""
        return nn.functional.softplus(self.logits(x)).clamp(max=MAX_INTRINSIC_REWARD)

    def update(self, policy_features: torch.Tensor) -> dict[str, float]:
        """``n_steps`` minibatches of the policy's pairs against the patient's; returns loss, accuracy and mean D
        on each kind (after the update)."""
        policy = torch.as_tensor(policy_features, dtype=torch.float32).reshape(-1, FEATURE_WIDTH)
        bce = nn.functional.binary_cross_entropy_with_logits
        for _ in range(self.n_steps):
            p_idx = torch.randint(len(policy), (self.batch_size,), generator=self.generator)
            e_idx = torch.randint(len(self.expert), (self.batch_size,), generator=self.generator)
            expert = self.expert[e_idx].clone().requires_grad_(True)
            expert_logits = self.net(self.normalizer(expert)).squeeze(-1)
            policy_logits = self.logits(policy[p_idx])
            loss = bce(expert_logits, torch.ones_like(expert_logits))
            loss = loss + bce(policy_logits, torch.zeros_like(policy_logits))
            if self.grad_penalty > 0:
                (grad,) = torch.autograd.grad(expert_logits.sum(), expert, create_graph=True)
                loss = loss + 0.5 * self.grad_penalty * grad.pow(2).sum(-1).mean()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        with torch.no_grad():
            n = min(len(policy), 4096)
            d_policy = self.probability(policy[:n])
            d_expert = self.probability(self.expert[torch.randint(len(self.expert), (n,), generator=self.generator)])
        return {
            "loss": float(loss.detach()),
            "d_expert": float(d_expert.mean()),
            "d_policy": float(d_policy.mean()),
            "accuracy": float(0.5 * ((d_expert > 0.5).float().mean() + (d_policy < 0.5).float().mean())),
        }

    def state_dict(self) -> dict:
        return {
            "net": self.net.state_dict(),
            "normalizer": self.normalizer.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state["net"])
        self.normalizer.load_state_dict(state["normalizer"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])


def mixed_reward(external: torch.Tensor, intrinsic: torch.Tensor) -> torch.Tensor:
    """``0.9 · r_ex + 0.1 · r_in`` (Dai et al. 2025, GATP)."""
    return EXTERNAL_WEIGHT * external + INTRINSIC_WEIGHT * intrinsic
