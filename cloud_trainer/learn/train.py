"""The training loop around :mod:`cloud_trainer.learn.ppo`: rollouts from a vectorised environment, a training log,
atomic checkpoints, resumption after being cut off at any moment, and sample / wall-clock budgets.

Files in the run directory:

- ``checkpoint.pt``: everything needed to continue (PPO networks, normaliser, optimisers, adapted learning rate,
  torch and environment random states, counters, the arguments), written every ``checkpoint_every`` updates and
  when the run stops, to a temporary file that then replaces the old one (``os.replace``: a reader or a crash sees
  either the old or the new file, never half of one).
- ``train_log.jsonl``: one JSON object per update (format in ``docs/learning.md``): samples, wall time, throughput,
  episode returns and lengths, the mean of every reward term and termination cause over the rollout, the PPO
  statistics (losses, KL, learning rate, action σ) and the peak memory. On resumption the rows after the checkpoint
  (written by the run that was cut off, whose progress is lost) are dropped, so the log matches the weights.

A run stops when its sample budget (total over all resumptions) or its wall-clock budget (this invocation) is spent,
or on SIGINT / SIGTERM (after finishing the update under way and writing a checkpoint).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import resource
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cloud_trainer.envs.base import TwinVecEnv
from cloud_trainer.errors import TrainerError
from cloud_trainer.learn.ppo import PPO, PPOArgs, Rollout
from cloud_trainer.learn.threads import INFERENCE_THREADS, ThreadChooser, thread_candidates, update_threads

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"
LOG_NAME = "train_log.jsonl"
#: Format tag of checkpoints written by this module.
CHECKPOINT_FORMAT = "stridetwin.ppo-checkpoint/1"


class CheckpointError(TrainerError):
    """A checkpoint or weights file that is missing, unreadable, or not what was expected."""


@dataclass(frozen=True)
class TrainArgs:
    """How long and where a training run goes (the algorithm's arguments are :class:`PPOArgs`)."""

    #: Run directory (checkpoint and log).
    out_dir: Path
    #: Stop once this many environment samples (control steps summed over environments) have been collected in
    #: total, resumptions included; None: no sample budget.
    budget_samples: int | None = None
    #: Stop after this much wall-clock time in this invocation, s; None: no time budget.
    budget_s: float | None = None
    #: Write a checkpoint every this many updates (and always when stopping).
    checkpoint_every: int = 10
    #: Continue from ``out_dir/checkpoint.pt`` if it exists (otherwise start a new run).
    resume: bool = False
    #: torch intra-op threads (``torch.set_num_threads``); None: the update's chosen per iteration by measured time,
    #: rollouts on one (:mod:`cloud_trainer.learn.threads`; ``docs/learning.md`` has the measured split).
    torch_threads: int | None = None
    #: Seed of torch (action noise, minibatch order) and of the environment.
    seed: int = 0

    def __post_init__(self) -> None:
        if self.budget_samples is not None and self.budget_samples < 1:
            raise ValueError(f"budget_samples must be ≥ 1, got {self.budget_samples}")
        if self.budget_s is not None and not self.budget_s > 0:
            raise ValueError(f"budget_s must be > 0, got {self.budget_s}")
        if self.checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be ≥ 1, got {self.checkpoint_every}")
        if self.torch_threads is not None and self.torch_threads < 1:
            raise ValueError(f"torch_threads must be ≥ 1 or None (chosen by measurement), got {self.torch_threads}")


@dataclass
class Counters:
    """Progress of a run, saved in its checkpoints."""

    updates: int = 0
    samples: int = 0
    episodes: int = 0
    #: Wall-clock time spent training over all invocations, s.
    wall_s: float = 0.0
    invocations: int = 0


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MiB: ``VmHWM`` of /proc/self/status (``ru_maxrss`` survives
    ``exec`` and would report a large parent's size), ``ru_maxrss`` where there is no /proc."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def save_atomic(obj: dict, path: Path) -> None:
    """``torch.save`` to a temporary file in the same folder, flushed to disk, then renamed over ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict:
    """Read a checkpoint written by :class:`Trainer`.

    Raises:
        CheckpointError: the file is missing, unreadable (truncated, not a torch file), or of another format.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged file
        first_line = (str(exc).strip().splitlines() or [""])[0]  # torch's unpickling errors run to a page
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {first_line})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{path}: expected a {CHECKPOINT_FORMAT!r} checkpoint, found {found!r}")
    return state


def ppo_args_from_dict(values: dict) -> PPOArgs:
    """:class:`PPOArgs` from its ``dataclasses.asdict`` form (tuples come back as lists)."""
    fields = {f.name for f in dataclasses.fields(PPOArgs)}
    clean = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in fields}
    return PPOArgs(**clean)


class Trainer:
    """Trains PPO on one vectorised environment.

    Args:
        make_env: builds the environment for a number of simulations and a seed (called once).
        ppo_args: the algorithm's arguments (on resumption, those in the checkpoint are used).
        train_args: run directory, budgets, checkpoint cadence, threads, seed.
        metadata: JSON-able description of the run (task, references, command), saved in every checkpoint.
        on_checkpoint: called after every checkpoint with the trainer (e.g. to export weights beside it).
        initialise: called once with the new :class:`PPO` of a fresh run (never on resumption, which loads the
            checkpoint), e.g. to start it from trained weights.
    """

    def __init__(
        self,
        make_env: Callable[[int, int], TwinVecEnv],
        ppo_args: PPOArgs,
        train_args: TrainArgs,
        metadata: dict | None = None,
        on_checkpoint: Callable[[Trainer], None] | None = None,
        initialise: Callable[[PPO], None] | None = None,
    ) -> None:
        self.make_env = make_env
        self.ppo_args = ppo_args
        self.train_args = train_args
        self.metadata = dict(metadata or {})
        self.on_checkpoint = on_checkpoint
        self.initialise = initialise
        self.counters_ = Counters()
        self.stop_reason_ = ""
        self.ppo_: PPO | None = None
        self._stop_signal: int | None = None

    @property
    def checkpoint_path(self) -> Path:
        return Path(self.train_args.out_dir) / CHECKPOINT_NAME

    @property
    def log_path(self) -> Path:
        return Path(self.train_args.out_dir) / LOG_NAME

    # ------------------------------------------------------------------ plumbing: set-up, resume, checkpoints, log

    def _start(self) -> tuple[TwinVecEnv, np.ndarray]:
        ta = self.train_args
        out = Path(ta.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        if ta.torch_threads is not None:
            torch.set_num_threads(ta.torch_threads)
        state = None
        if self.checkpoint_path.exists():
            if not ta.resume:
                raise CheckpointError(
                    f"{out} already holds a run ({CHECKPOINT_NAME}); pass resume to continue it or choose another "
                    "directory"
                )
            state = load_checkpoint(self.checkpoint_path)
            self.ppo_args = ppo_args_from_dict(state["ppo_args"])
        elif self.log_path.exists() and not ta.resume:
            raise CheckpointError(f"{out} holds a training log but no checkpoint; choose another directory")
        a = self.ppo_args
        torch.manual_seed(ta.seed)
        env = self.make_env(a.n_envs, ta.seed)
        self.ppo_ = PPO(env.single_observation_space.shape[0], env.single_action_space.shape[0], a)
        if state is not None:
            self.ppo_.load_state_dict(state["ppo"])
            self.counters_ = Counters(**state["counters"])
            torch.set_rng_state(state["rng"]["torch"])
            env.np_random.bit_generator.state = state["rng"]["env"]
            self._trim_log(self.counters_.updates)
            log.info("resumed %s at update %d, %d samples", out, self.counters_.updates, self.counters_.samples)
        else:
            if self.initialise is not None:
                self.initialise(self.ppo_)
            self._trim_log(0)
        self.counters_.invocations += 1
        obs, _ = env.reset()
        return env, obs

    def _checkpoint(self, env: TwinVecEnv) -> None:
        assert self.ppo_ is not None
        save_atomic(
            {
                "format": CHECKPOINT_FORMAT,
                "ppo": self.ppo_.state_dict(),
                "ppo_args": dataclasses.asdict(self.ppo_args),
                "counters": dataclasses.asdict(self.counters_),
                "rng": {"torch": torch.get_rng_state(), "env": env.np_random.bit_generator.state},
                "metadata": self.metadata,
            },
            self.checkpoint_path,
        )
        if self.on_checkpoint is not None:
            self.on_checkpoint(self)

    def _trim_log(self, last_update: int) -> None:
        """Keep only the log rows up to ``last_update`` (rows after it belong to progress that was lost)."""
        if not self.log_path.exists():
            return
        kept = []
        for line in self.log_path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a row cut off mid-write
                continue
            if row.get("update", math.inf) <= last_update:
                kept.append(line)
        tmp = self.log_path.with_name(f".{LOG_NAME}.tmp")
        tmp.write_text("".join(f"{line}\n" for line in kept))
        os.replace(tmp, self.log_path)

    def _append_log(self, row: dict) -> None:
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
        with open(self.log_path, "a") as f:
            f.write(json.dumps(clean) + "\n")

    def _on_signal(self, signum: int, frame) -> None:
        self._stop_signal = signum

    def _budget_left(self, started: float) -> str:
        """Why to stop now, or '' to go on."""
        ta = self.train_args
        if ta.budget_samples is not None and self.counters_.samples >= ta.budget_samples:
            return "sample budget spent"
        if ta.budget_s is not None and time.perf_counter() - started >= ta.budget_s:
            return "time budget spent"
        if self._stop_signal is not None:
            return f"signal {signal.Signals(self._stop_signal).name}"
        return ""

    # ------------------------------------------------------------------ the loop

    def run(self) -> Trainer:
        """Train until a budget is spent or a stop signal arrives; returns self (``counters_``, ``stop_reason_``)."""
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        threads_before = torch.get_num_threads()
        try:
            env, obs = self._start()
            try:
                self._loop(env, obs)
            finally:
                env.close()
        finally:
            torch.set_num_threads(threads_before)
            for s, handler in previous.items():
                signal.signal(s, handler)
        return self

    def _loop(self, env: TwinVecEnv, obs: np.ndarray) -> None:
        assert self.ppo_ is not None
        ppo, a, ta = self.ppo_, self.ppo_args, self.train_args
        started = time.perf_counter()
        since_checkpoint = 0
        chooser = ThreadChooser(thread_candidates()) if ta.torch_threads is None else None
        if chooser is not None:
            torch.set_num_threads(INFERENCE_THREADS)  # rollouts; updates run on the chosen count
        while not (reason := self._budget_left(started)):
            t0 = time.perf_counter()
            rollout, obs, terms, returns, lengths, _ = collect_rollout(env, ppo, obs)
            t1 = time.perf_counter()
            # --- the PPO update
            with update_threads(chooser, t0) as n_threads:
                stats = ppo.update(rollout)
            t2 = time.perf_counter()

            c = self.counters_
            c.updates += 1
            c.samples += a.batch_size
            c.episodes += len(returns)
            c.wall_s += t2 - t0
            self._append_log(
                {
                    "update": c.updates,
                    "samples": c.samples,
                    "wall_s": round(c.wall_s, 3),
                    "samples_per_s": round(a.batch_size / (t2 - t0), 1),
                    "rollout_s": round(t1 - t0, 3),
                    "update_s": round(t2 - t1, 3),
                    "torch_threads": n_threads,
                    "episodes": len(returns),
                    "episode_return": float(np.mean(returns)) if returns else math.nan,
                    "episode_length_steps": float(np.mean(lengths)) if lengths else math.nan,
                    "step_reward": float(rollout.rewards.mean()),
                    **{name: round(value, 5) for name, value in sorted(terms.items())},
                    **{f"ppo/{k}": v for k, v in stats.items()},
                    "peak_rss_mb": round(peak_rss_mb(), 1),
                }
            )
            since_checkpoint += 1
            if since_checkpoint >= ta.checkpoint_every:
                self._checkpoint(env)
                since_checkpoint = 0
        self.stop_reason_ = reason
        if since_checkpoint or not self.checkpoint_path.exists():
            self._checkpoint(env)
        log.info("stopped: %s at update %d, %d samples", reason, self.counters_.updates, self.counters_.samples)


def collect_rollout(
    env: TwinVecEnv, ppo: PPO, obs: np.ndarray
) -> tuple[Rollout, np.ndarray, dict[str, float], list[float], list[int], list[bool]]:
    """Step every environment ``n_steps`` times with sampled actions from ``obs`` on.

    Returns the rollout, the observation to continue from, the mean of every logged term over the steps, and the
    returns, lengths (control steps) and whether they ended in a fall (terminated: a fall, a non-foot contact, an
    unstable simulation) of the episodes that ended. The returns are the task's reward alone: guidance
    terms outside the paper's reward (the stair cue; zero elsewhere) are taken out, so returns compare across cue on
    and off.
    """
    n_steps = ppo.args.n_steps
    rollout = ppo.new_rollout()
    terms: dict[str, float] = {}
    returns: list[float] = []
    lengths: list[int] = []
    fell: list[bool] = []
    for _ in range(n_steps):
        actions = ppo.act(obs)
        next_obs, reward, terminated, truncated, infos = env.step(actions.numpy())
        rollout.add(obs, actions, reward, terminated, truncated, infos.get("final_obs"))
        for name, value in infos["log"].items():
            terms[name] = terms.get(name, 0.0) + value / n_steps
        if "_episode" in infos:
            done = infos["_episode"]
            external = infos["episode_return"] - infos.get("episode_guidance", 0.0)
            returns.extend(external[done].tolist())
            lengths.extend(infos["episode_length"][done].tolist())
            fell.extend(infos["episode_terminated"][done].tolist())
        obs = next_obs
    rollout.next_obs = torch.from_numpy(obs)
    return rollout, obs, terms, returns, lengths, fell


def read_log(path: Path) -> list[dict]:
    """The rows of a training log (rows cut off mid-write are skipped)."""
    rows = []
    for line in Path(path).read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def summarize_log(rows: list[dict], every_samples: int) -> list[dict]:
    """A compact training log: one row per ``every_samples`` samples, each the mean of the window's rows (episode
    returns and lengths weighted by the episodes that ended; counters and wall time at the window's end; peak memory
    the maximum)."""
    windows: dict[int, list[dict]] = {}
    for row in rows:
        windows.setdefault((int(row["samples"]) - 1) // every_samples, []).append(row)
    summary = []
    for _, window in sorted(windows.items()):
        last = window[-1]
        out = {"update": last["update"], "samples": last["samples"], "wall_s": last["wall_s"]}
        episodes = np.array([r.get("episodes") or 0 for r in window], dtype=float)
        for key in ("episode_return", "episode_length_steps"):
            values = np.array([r.get(key) if r.get(key) is not None else np.nan for r in window], dtype=float)
            known = np.isfinite(values) & (episodes > 0)
            out[key] = float(np.average(values[known], weights=episodes[known])) if known.any() else None
        keys = [k for k in last if k not in out and k not in ("episodes", "peak_rss_mb", "update", "samples", "wall_s")]
        for key in keys:
            values = [r[key] for r in window if isinstance(r.get(key), int | float)]
            out[key] = float(np.mean(values)) if values else None
        out["episodes"] = int(episodes.sum())
        out["peak_rss_mb"] = max(r.get("peak_rss_mb") or 0.0 for r in window)
        summary.append(out)
    return summary
