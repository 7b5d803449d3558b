"""Training the Healthy Motion Atlas (Dai et al. 2025, Methods, Stage I).

The task is the ``walk`` environment with its default configuration: every episode draws a goal, a target speed
in 0.4-1.4 m/s and a stride length in 0.5-1.7 m (pairs with a stride frequency outside 0.5-1.3 Hz drawn again), and
imitates the library clip nearest to it in (speed, stride length), time-resampled to the goal. The references are
the healthy motion library's typical clips (:func:`cloud_trainer.atlas.references.atlas_references`). PPO with the
arguments :data:`ATLAS_PPO_ARGS`; the run directory holds the checkpoint, the training log and ``atlas.pt``, the
exported weights, rewritten at every checkpoint.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from cloud_trainer.atlas.references import atlas_references, library_path
from cloud_trainer.atlas.terrain import Course, make_terrain_atlas_env
from cloud_trainer.atlas.weights import load_atlas, manifest, save_atlas
from cloud_trainer.envs.base import LocomotionConfig
from cloud_trainer.envs.mixed import MixedVecEnv
from cloud_trainer.envs.walk import WalkEnv, default_config
from cloud_trainer.hashing import file_sha256
from cloud_trainer.learn.ppo import PPO, PPOArgs
from cloud_trainer.learn.terrain_view import blind_to_terrain, reads_terrain
from cloud_trainer.learn.train import CHECKPOINT_NAME, CheckpointError, TrainArgs, Trainer, load_checkpoint
from cloud_trainer.motion.reference import ReferenceMotion
from cloud_trainer.twin.anthropometry import Anthropometry
from cloud_trainer.twin.model import build_twin

log = logging.getLogger(__name__)

#: PPO arguments of the atlas: the paper's policy 3×256 and value 2×128; short rollouts (512 × 4 steps, an update
#: every 2 048 samples), a wider initial action spread and KL target than the defaults (measured: docs/atlas.md).
ATLAS_PPO_ARGS = PPOArgs(
    n_envs=512, n_steps=4, n_minibatches=2, init_action_std=0.2, policy_lr=1e-4, kl_target=0.03
)
#: Threads of the MuJoCo batch (the caller's included) and of torch during training (docs/learning.md); None:
#: torch's chosen per iteration by measured time (:mod:`cloud_trainer.learn.threads`).
ENV_THREADS = 2
TORCH_THREADS: int | None = None
#: Weights exported beside the checkpoint in a run directory.
WEIGHTS_NAME = "atlas.pt"


def atlas_config() -> LocomotionConfig:
    """The atlas task: flat ground, the paper's goal ranges (the walk task's defaults)."""
    return default_config()


def make_atlas_env(
    references: list[ReferenceMotion],
    n_envs: int,
    seed: int | None = None,
    *,
    n_threads: int = ENV_THREADS,
    config: LocomotionConfig | None = None,
    anthropometry: Anthropometry | None = None,
) -> WalkEnv:
    """The atlas's vectorised environment."""
    return WalkEnv(
        references,
        n_envs=n_envs,
        config=config or atlas_config(),
        anthropometry=anthropometry,
        n_threads=n_threads,
        seed=seed,
    )


def train_atlas(
    out_dir: Path,
    *,
    budget_samples: int | None = None,
    budget_s: float | None = None,
    resume: bool = False,
    ppo_args: PPOArgs = ATLAS_PPO_ARGS,
    references: list[ReferenceMotion] | None = None,
    config: LocomotionConfig | None = None,
    checkpoint_every: int = 50,
    torch_threads: int | None = TORCH_THREADS,
    env_threads: int = ENV_THREADS,
    seed: int = 0,
    command: str = "",
    data: dict | None = None,
    mix: tuple[Course, ...] | None = None,
    init_from: Path | None = None,
) -> Trainer:
    """Train (or continue training) the atlas in ``out_dir`` until a budget is spent; returns the finished
    :class:`Trainer` (``counters_``, ``stop_reason_``). ``references`` default to the healthy motion library's
    (its file name and checksum are then recorded); ``data`` describes given references for the manifest.

    ``mix`` trains the terrain-aware atlas on those courses (:mod:`cloud_trainer.atlas.terrain`; ``config`` is then
    its flat-ground part). ``init_from`` starts a fresh run from the atlas weights in that file; with ``mix``, weights
    from a flat atlas are first made blind to the terrain rays (it reads them as pelvis height), a terrain-aware
    atlas's keep them. A resumed run ignores it.
    """
    out_dir = Path(out_dir)
    config = config or atlas_config()
    twin = build_twin(None, config.terrain)
    data = dict(data or {})
    if references is None:
        references = atlas_references(twin.model)
        path = library_path()
        data = {"library": path.name, "library_sha256": file_sha256(path)}
    extra = {
        "task": "walk" if mix is None else "terrain mix",
        "terrain_mix": None if mix is None else [dataclasses.asdict(c) for c in mix],
        "anthropometry": dataclasses.asdict(twin.anthropometry),
        "references": [
            {"name": r.name, "speed_m_s": r.speed_m_s, "stride_length_m": r.stride_length_m, "source": r.source}
            for r in references
        ],
        "data": data,
        "command": command,
    }
    if resume and (out_dir / CHECKPOINT_NAME).is_file():
        extra["initialised_from"] = _continued_run_start(out_dir, extra["task"])
    else:
        extra["initialised_from"] = None if init_from is None else {
            "file": Path(init_from).name, "sha256": file_sha256(Path(init_from))
        }  # fmt: skip

    def make_env(n_envs: int, env_seed: int) -> WalkEnv | MixedVecEnv:
        if mix is not None:
            return make_terrain_atlas_env(references, n_envs, env_seed, n_threads=env_threads, flat=config, mix=mix)
        return make_atlas_env(references, n_envs, env_seed, n_threads=env_threads, config=config)

    def initialise(ppo: PPO) -> None:
        start = load_atlas(init_from)
        start.load_into(ppo)
        if mix is not None and not reads_terrain(start.manifest):
            blind_to_terrain(ppo.policy, ppo.value)
        log.info("initialised from %s", init_from)

    def export(trainer: Trainer) -> None:
        counters = dataclasses.asdict(trainer.counters_)
        save_atlas(trainer.ppo_, out_dir / WEIGHTS_NAME, manifest(config, {**extra, "training": counters}))

    train_args = TrainArgs(
        out_dir=out_dir,
        budget_samples=budget_samples,
        budget_s=budget_s,
        checkpoint_every=checkpoint_every,
        resume=resume,
        torch_threads=torch_threads,
        seed=seed,
    )
    return Trainer(
        make_env, ppo_args, train_args, metadata=extra, on_checkpoint=export,
        initialise=None if init_from is None else initialise,
    ).run()  # fmt: skip


def _continued_run_start(out_dir: Path, task: str) -> dict | None:
    """The record of the starting weights of the run in ``out_dir``, after checking that it trains ``task``.

    Raises:
        CheckpointError: the run trains the other task (flat ground or the terrain mix).
    """
    previous = load_checkpoint(out_dir / CHECKPOINT_NAME).get("metadata", {})
    theirs = previous.get("task", "walk")
    if theirs != task:
        flag = "with" if theirs == "terrain mix" else "without"
        raise CheckpointError(f"{out_dir} trains the atlas on {theirs!r}: resume it {flag} --terrain")
    return previous.get("initialised_from")
