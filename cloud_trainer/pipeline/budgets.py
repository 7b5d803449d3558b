"""The pipeline's compute budgets, in one place: ``smoke``, ``quick``, ``full`` (issue 5; docs/pipeline.md).

- ``smoke`` proves the plumbing end to end in well under a minute of training on 2 cores (tests and the service's
  tests run it; its predictions mean nothing).
- ``quick`` gives meaningful predictions within 30 minutes on a 2-core CPU, export included.
- ``full`` trains far longer (the reference system needed ≈ 23 M steps for the slope task alone); it is not run in
  tests or benchmarks here.

Sample counts are environment samples (control steps summed over simulations), the unit of the training logs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from cloud_trainer.atlas.train import ATLAS_PPO_ARGS
from cloud_trainer.learn.ppo import PPOArgs


@dataclass(frozen=True)
class Budget:
    """Every size and count a pipeline run uses."""

    name: str
    # --- reference
    #: Seconds of the walking stretch that are segmented and cleaned (clean-up costs time per frame).
    max_walk_s: float
    #: Frames per reference cycle.
    n_cycle_frames: int
    # --- training (all stages)
    #: Simulations per stage and control steps per update (a PPO update every ``n_envs × n_steps`` samples).
    n_envs: int
    n_steps: int
    n_minibatches: int
    #: Checkpoint at least this often, s of wall-clock (0: after every update).
    checkpoint_every_s: float
    # --- adaptation
    adaptation_samples: int
    #: Evaluation of the adapted policy: episodes and their length.
    adaptation_eval_repeats: int
    adaptation_eval_s: float
    # --- prediction (per task)
    prediction_samples: int
    task_episode_steps: int
    curriculum_min_episodes: int
    curriculum_window_episodes: int
    #: Episodes measuring the patient's flat-ground return (the curriculum's reference).
    reference_return_episodes: int
    #: Patient pairs for behaviour cloning and the discriminator: simulations × control steps of flat walking.
    pairs_envs: int
    pairs_steps: int
    bc_epochs: int
    #: Mastery checks (:mod:`cloud_trainer.pipeline.curriculum`): deterministic episodes per check (one per
    #: simulation), and the least number of samples between two checks.
    mastery_check_envs: int
    mastery_check_every_samples: int
    # --- wall-clock
    #: The run's time goal, s (None: none). The task stages share what the stages before them left of it, less
    #: ``export_reserve_s``, and stop when their share is spent: the goal holds on a slower or busier machine, which
    #: then trains fewer samples (reported as ``stopped: "time limit reached"``). Tasks that stop early pass their time
    #: on, as they pass on samples.
    time_limit_s: float | None = None
    #: Time kept for the export (evaluation, ONNX, videos, report) after the last task, s.
    export_reserve_s: float = 0.0

    @property
    def total_samples(self) -> int:
        """Training samples of a run with ``n_tasks`` = 2 (for progress estimates use :meth:`samples_for`)."""
        return self.samples_for(2)

    def samples_for(self, n_tasks: int) -> int:
        return self.adaptation_samples + n_tasks * self.prediction_samples

    def ppo_args(self, base: PPOArgs = ATLAS_PPO_ARGS) -> PPOArgs:
        """The stages' PPO arguments: the atlas's networks and step sizes (the policy starts from it), this budget's
        rollout sizes."""
        return dataclasses.replace(base, n_envs=self.n_envs, n_steps=self.n_steps, n_minibatches=self.n_minibatches)


BUDGETS: dict[str, Budget] = {
    "smoke": Budget(
        name="smoke", max_walk_s=10.0, n_cycle_frames=32,
        n_envs=16, n_steps=16, n_minibatches=1, checkpoint_every_s=0.0,
        adaptation_samples=1_024, adaptation_eval_repeats=2, adaptation_eval_s=2.0,
        prediction_samples=1_024, task_episode_steps=40, curriculum_min_episodes=8, curriculum_window_episodes=8,
        reference_return_episodes=8, pairs_envs=16, pairs_steps=16, bc_epochs=2,
        mastery_check_envs=8, mastery_check_every_samples=256,
    ),
    "quick": Budget(
        name="quick", max_walk_s=30.0, n_cycle_frames=64,
        n_envs=256, n_steps=8, n_minibatches=2, checkpoint_every_s=30.0,
        adaptation_samples=1_000_000, adaptation_eval_repeats=16, adaptation_eval_s=10.0,
        prediction_samples=2_000_000, task_episode_steps=500, curriculum_min_episodes=256,
        curriculum_window_episodes=256, reference_return_episodes=256, pairs_envs=64, pairs_steps=300,
        bc_epochs=20, mastery_check_envs=64, mastery_check_every_samples=100_000,
        # the export took 68-115 s in the benchmark runs (docs/pipeline.md)
        time_limit_s=30 * 60.0, export_reserve_s=180.0,
    ),
    "full": Budget(
        name="full", max_walk_s=60.0, n_cycle_frames=96,
        n_envs=512, n_steps=8, n_minibatches=4, checkpoint_every_s=60.0,
        adaptation_samples=10_000_000, adaptation_eval_repeats=64, adaptation_eval_s=10.0,
        prediction_samples=30_000_000, task_episode_steps=500, curriculum_min_episodes=500,
        curriculum_window_episodes=500, reference_return_episodes=512, pairs_envs=128, pairs_steps=500,
        bc_epochs=30, mastery_check_envs=128, mastery_check_every_samples=500_000,
    ),
}  # fmt: skip


def get_budget(name: str) -> Budget:
    """The budget called ``name``.

    Raises:
        ValueError: another name (the accepted ones are listed).
    """
    try:
        return BUDGETS[name]
    except KeyError:
        raise ValueError(f"budget {name!r}: accepted {', '.join(BUDGETS)}") from None
