"""The training loop of a pipeline stage: PPO iterations on one task's environment, with the optional parts of task
prediction (the behaviour-cloning loss, the GAIL reward, the curriculum and its stair cue), checkpoints after every
batch of updates, resumption, cancellation and a log row per update.

It is not :class:`cloud_trainer.learn.train.Trainer` because a stage needs what that loop does not have (an extra
policy loss, a reward from a discriminator, an environment that changes with the curriculum level, a cancel event
from another thread instead of POSIX signals, which only the main thread may install); it reuses its pieces
(:class:`~cloud_trainer.learn.ppo.PPO`, ``save_atomic``, ``peak_rss_mb``, the log's row layout).

Files in ``stage_dir``: ``checkpoint.pt`` (format ``stridetwin.pipeline-stage/1``: PPO state, counters, curriculum,
discriminator, random-generator states; written atomically) and ``train_log.jsonl`` (one row per update; on
resumption rows after the checkpoint are dropped, so the log describes the weights).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cloud_trainer.envs.base import TwinVecEnv
from cloud_trainer.learn.ppo import PPO, Rollout
from cloud_trainer.learn.threads import INFERENCE_THREADS, ThreadChooser, update_threads
from cloud_trainer.learn.train import collect_rollout, load_checkpoint, peak_rss_mb, ppo_args_from_dict, save_atomic
from cloud_trainer.pipeline.bc import BCLoss, bc_weight
from cloud_trainer.pipeline.curriculum import Curriculum
from cloud_trainer.pipeline.errors import PipelineCancelled, PipelineStateError
from cloud_trainer.pipeline.gail import Discriminator, features, mixed_reward

STAGE_CHECKPOINT_FORMAT = "stridetwin.pipeline-stage/1"
CHECKPOINT_NAME = "checkpoint.pt"
LOG_NAME = "train_log.jsonl"

#: make_env(level, cue_on, seed) → environment (level None for a task without levels).
MakeEnv = Callable[[int | None, bool, int], TwinVecEnv]
#: check(ppo, level, seed) → (returns, fell) of a mastery check's deterministic episodes at the level: those that
#: ended, when the check stopped at a fall that fails it (:meth:`Curriculum.allowed_falls`).
MasteryCheck = Callable[[PPO, int, int], tuple[list[float], list[bool]]]


@dataclass
class StageCounters:
    """Progress of a stage, saved in its checkpoints."""

    updates: int = 0
    samples: int = 0
    episodes: int = 0
    #: Wall-clock time spent in this stage's updates and mastery checks over all invocations, s.
    wall_s: float = 0.0
    invocations: int = 0
    #: Why the stage stopped: "curriculum complete", "sample budget spent" or "time limit reached" ("": running).
    stopped: str = ""
    #: Updates run on each number of torch threads (keys "1", "2", …; JSON keys are strings).
    updates_by_torch_threads: dict[str, int] = dataclasses.field(default_factory=dict)


class StageTrainer:
    """Train ``ppo`` in ``stage_dir`` until ``budget_samples`` (total over resumptions) or the curriculum is complete.

    Args:
        stage_dir: checkpoint and log folder; an existing checkpoint is resumed.
        ppo: the policy to train (its initial weights; replaced by the checkpoint's on resumption).
        make_env: builds the stage's environment for a curriculum level and cue state.
        budget_samples: the stage's sample budget.
        bc: the behaviour-cloning loss (None: none), its weight decaying over ``bc_decay_samples``.
        discriminator: the GAIL discriminator (None: no intrinsic reward).
        curriculum: levels and promotion (None: one environment, ``level`` None).
        check: runs a mastery check when a curriculum with ``check_every_samples`` asks for one.
        checkpoint_every_s: wall-clock time between checkpoints (0: after every update); always at the end.
        time_limit_s: stop once the stage's updates and checks have taken this long over all invocations (None: no
            limit).
        seed: seed of torch and of the environments.
        on_update: called with each log row (progress reporting).
        cancel: when set, the stage checkpoints and raises :class:`PipelineCancelled`.
        threads: chooses the torch threads of each update by the iteration's measured time; rollouts and checks then
            run on ``INFERENCE_THREADS`` (None: the process's setting throughout).

    Results (after :meth:`run`): ``counters_``, ``ppo`` (trained), ``curriculum``, ``resumed_`` (True when a checkpoint
    was loaded), ``last_rows_`` (the last few log rows).
    """

    def __init__(
        self,
        stage_dir: Path,
        ppo: PPO,
        make_env: MakeEnv,
        *,
        budget_samples: int,
        bc: BCLoss | None = None,
        bc_decay_samples: int = 0,
        discriminator: Discriminator | None = None,
        curriculum: Curriculum | None = None,
        check: MasteryCheck | None = None,
        checkpoint_every_s: float = 30.0,
        time_limit_s: float | None = None,
        seed: int = 0,
        on_update: Callable[[dict], None] | None = None,
        cancel: threading.Event | None = None,
        threads: ThreadChooser | None = None,
    ) -> None:
        self.stage_dir = Path(stage_dir)
        self.ppo = ppo
        self.make_env = make_env
        self.budget_samples = budget_samples
        self.bc = bc
        self.bc_decay_samples = bc_decay_samples
        self.discriminator = discriminator
        self.curriculum = curriculum
        if curriculum is not None and curriculum.check_every_samples and check is None:
            raise ValueError("the curriculum asks for mastery checks but no check was given")
        self.check = check
        self.checkpoint_every_s = checkpoint_every_s
        self.time_limit_s = time_limit_s
        self.seed = seed
        self.on_update = on_update
        self.cancel = cancel or threading.Event()
        self.threads = threads
        self.counters_ = StageCounters()
        self.resumed_ = False
        self.last_rows_: list[dict] = []

    @property
    def checkpoint_path(self) -> Path:
        return self.stage_dir / CHECKPOINT_NAME

    @property
    def log_path(self) -> Path:
        return self.stage_dir / LOG_NAME

    @property
    def out_of_time(self) -> bool:
        """The stage's updates and checks have used its time limit (never without one)."""
        return self.time_limit_s is not None and self.counters_.wall_s >= self.time_limit_s

    @property
    def done(self) -> bool:
        c = self.curriculum
        return self.counters_.samples >= self.budget_samples or (c is not None and c.complete) or self.out_of_time

    # ------------------------------------------------------------------ plumbing

    def _resume(self) -> None:
        self.stage_dir.mkdir(parents=True, exist_ok=True)
        if not self.checkpoint_path.exists():
            _trim_log(self.log_path, 0)
            torch.manual_seed(self.seed)
            return
        try:
            state = load_checkpoint_stage(self.checkpoint_path)
        except Exception as exc:
            raise PipelineStateError(f"{self.checkpoint_path}: {exc}") from None
        if ppo_args_from_dict(state["ppo_args"]) != self.ppo.args:
            raise PipelineStateError(f"{self.checkpoint_path}: written with other PPO arguments")
        self.ppo.load_state_dict(state["ppo"])
        self.counters_ = StageCounters(**state["counters"])
        if self.curriculum is not None and state.get("curriculum") is not None:
            self.curriculum.load_state_dict(state["curriculum"])
        if self.discriminator is not None and state.get("discriminator") is not None:
            self.discriminator.load_state_dict(state["discriminator"])
        torch.set_rng_state(state["rng_torch"])
        _trim_log(self.log_path, self.counters_.updates)
        self.resumed_ = True

    def _checkpoint(self) -> None:
        save_atomic(
            {
                "format": STAGE_CHECKPOINT_FORMAT,
                "ppo": self.ppo.state_dict(),
                "ppo_args": dataclasses.asdict(self.ppo.args),
                "counters": dataclasses.asdict(self.counters_),
                "curriculum": self.curriculum.state_dict() if self.curriculum is not None else None,
                "discriminator": self.discriminator.state_dict() if self.discriminator is not None else None,
                "rng_torch": torch.get_rng_state(),
            },
            self.checkpoint_path,
        )

    def _env(self) -> TwinVecEnv:
        level = self.curriculum.level if self.curriculum is not None else None
        cue = self.curriculum.cue_on if self.curriculum is not None else False
        # a new seed per (level, cue, invocation): a resumed run does not replay the episodes it has seen
        seed = self.seed + 1000 * (level or 0) + 100 * int(cue) + 7919 * self.counters_.invocations
        return self.make_env(level, cue, seed)

    # ------------------------------------------------------------------ the loop

    def run(self) -> StageTrainer:
        """Train until the budget or the time limit is spent or the curriculum is complete; returns self."""
        self._resume()
        self.counters_.invocations += 1
        if self.done:
            if not self.counters_.stopped:  # out of time before the first update
                self._stop()
            return self
        env = self._env()
        obs, _ = env.reset()
        last_checkpoint = time.monotonic()
        threads_before = torch.get_num_threads()
        if self.threads is not None:
            torch.set_num_threads(INFERENCE_THREADS)  # rollouts and checks; updates run on the chosen count
        try:
            while not self.done:
                if self.cancel.is_set():
                    self._checkpoint()
                    raise PipelineCancelled(
                        f"cancelled in {self.stage_dir.name} after {self.counters_.samples} samples"
                    )
                row, obs, event = self._iterate(env, obs)
                self._append_log(row)
                if self.on_update is not None:
                    self.on_update(row)
                if event in ("promoted", "cue_off"):
                    env.close()
                    env = self._env()
                    obs, _ = env.reset()
                if event or time.monotonic() - last_checkpoint >= self.checkpoint_every_s:
                    self._checkpoint()
                    last_checkpoint = time.monotonic()
        finally:
            torch.set_num_threads(threads_before)
            env.close()
        self._stop()
        return self

    def _stop(self) -> None:
        """Record why the stage stopped and checkpoint."""
        if self.curriculum is not None and self.curriculum.complete:
            self.counters_.stopped = "curriculum complete"
        elif self.counters_.samples >= self.budget_samples:
            self.counters_.stopped = "sample budget spent"
        else:
            self.counters_.stopped = "time limit reached"
        self._checkpoint()

    def _iterate(self, env: TwinVecEnv, obs: np.ndarray) -> tuple[dict, np.ndarray, str]:
        ppo, c = self.ppo, self.counters_
        t0 = time.perf_counter()
        rollout, obs, terms, returns, lengths, fell = collect_rollout(env, ppo, obs)
        t1 = time.perf_counter()
        with update_threads(self.threads, t0) as n_threads:
            stats, gail_stats, weight = self._learn(rollout)
        t2 = time.perf_counter()
        c.updates += 1
        c.updates_by_torch_threads[str(n_threads)] = c.updates_by_torch_threads.get(str(n_threads), 0) + 1
        c.samples += ppo.args.batch_size
        c.episodes += len(returns)
        c.wall_s += t2 - t0
        event = ""
        curriculum = self.curriculum
        level = curriculum.level if curriculum is not None else None
        cue = curriculum.cue_on if curriculum is not None else False
        checked: dict[str, float] = {}
        if curriculum is not None:
            event = curriculum.observe(returns, c.samples, c.wall_s, fell)
            if event == "check":
                t3 = time.perf_counter()
                check_returns, check_fell = self.check(ppo, level, self.seed + 31 * c.updates)  # a seed per check
                check_s = time.perf_counter() - t3
                c.wall_s += check_s
                event = curriculum.judge(check_returns, check_fell, c.samples, c.wall_s)
                checked = {
                    "check_mean_return": float(np.mean(check_returns)),
                    "check_fall_fraction": float(np.mean(check_fell)),
                    "check_episodes": len(check_returns),  # fewer than the check's walks: stopped at a fall
                    "check_s": round(check_s, 3),
                }
        row = {
            "update": c.updates,
            "samples": c.samples,
            "wall_s": round(c.wall_s, 3),
            "samples_per_s": round(ppo.args.batch_size / (t2 - t0), 1),
            "rollout_s": round(t1 - t0, 3),
            "update_s": round(t2 - t1, 3),
            "torch_threads": n_threads,
            "level": level,
            "cue_on": cue,
            "event": event,
            "episodes": len(returns),
            "episode_return": float(np.mean(returns)) if returns else math.nan,
            "episode_length_steps": float(np.mean(lengths)) if lengths else math.nan,
            "curriculum_mean_return": curriculum.mean_return if curriculum is not None else None,
            "curriculum_fall_fraction": curriculum.fall_fraction if curriculum is not None else None,
            **checked,
            "step_reward": float(rollout.rewards.mean()),
            "bc_weight": weight,
            **{name: round(value, 5) for name, value in sorted(terms.items())},
            **gail_stats,
            **{f"ppo/{k}": v for k, v in stats.items()},
            "peak_rss_mb": round(peak_rss_mb(), 1),
        }
        self.last_rows_ = [*self.last_rows_[-19:], row]
        return row, obs, event

    def _learn(self, rollout: Rollout) -> tuple[dict, dict[str, float], float]:
        """The update from one rollout: the GAIL reward mixed in (its discriminator trained on the rollout), then PPO
        with the behaviour-cloning loss at its current weight; returns PPO's and GAIL's statistics and that weight."""
        ppo = self.ppo
        gail_stats: dict[str, float] = {}
        if self.discriminator is not None:
            x = features(rollout.obs.reshape(-1, rollout.obs.shape[-1]), rollout.actions.reshape(-1, ppo.action_width))
            intrinsic = self.discriminator.intrinsic_reward(x).view_as(rollout.rewards)
            gail_stats = {f"gail/{k}": v for k, v in self.discriminator.update(x).items()}
            gail_stats["gail/intrinsic_reward"] = float(intrinsic.mean())
            rollout.rewards = mixed_reward(rollout.rewards, intrinsic)
        weight = 0.0
        if self.bc is not None:
            weight = bc_weight(self.counters_.samples, self.bc_decay_samples)
            self.bc.weight = weight
        stats = ppo.update(rollout, auxiliary_loss=self.bc if weight > 0 else None)
        return stats, gail_stats, weight

    def _append_log(self, row: dict) -> None:
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
        with open(self.log_path, "a") as f:
            f.write(json.dumps(clean) + "\n")


def load_checkpoint_stage(path: Path) -> dict:
    """A stage checkpoint (format checked); see :func:`cloud_trainer.learn.train.load_checkpoint` for the errors."""
    state = torch.load(path, map_location="cpu", weights_only=True) if Path(path).is_file() else None
    if not isinstance(state, dict) or state.get("format") != STAGE_CHECKPOINT_FORMAT:
        load_checkpoint(path)  # raises CheckpointError naming the problem when the file is missing or damaged
        raise PipelineStateError(f"{path}: not a {STAGE_CHECKPOINT_FORMAT!r} checkpoint")
    return state


def _trim_log(path: Path, last_update: int) -> None:
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if row.get("update", math.inf) <= last_update:
            kept.append(line)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(f"{line}\n" for line in kept))
    os.replace(tmp, path)
