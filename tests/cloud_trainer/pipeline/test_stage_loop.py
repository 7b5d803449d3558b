"""The stage loop's stopping rules: the sample budget and the time limit, each recorded as the reason it stopped."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cloud_trainer.envs.constants import ACTION_WIDTH, OBSERVATION_WIDTH
from cloud_trainer.envs.walk import WalkEnv
from cloud_trainer.learn.ppo import PPO, PPOArgs
from cloud_trainer.learn.threads import ThreadChooser
from cloud_trainer.learn.train import read_log
from cloud_trainer.motion.synthetic import sinusoidal_gait_reference
from cloud_trainer.pipeline.loop import StageTrainer, load_checkpoint_stage
from cloud_trainer.twin.model import build_twin

SMALL = PPOArgs(n_envs=4, n_steps=4, n_minibatches=1, policy_hidden=(32, 32), value_hidden=(16,))


@pytest.fixture(scope="module")
def gait():
    return sinusoidal_gait_reference(build_twin().model, speed_m_s=1.0, stride_length_m=1.2)


def _trainer(stage_dir: Path, gait, **kwargs) -> StageTrainer:
    def make_env(level, cue, seed):
        return WalkEnv([gait], n_envs=SMALL.n_envs, n_threads=1, seed=seed)

    torch.manual_seed(0)
    return StageTrainer(stage_dir, PPO(OBSERVATION_WIDTH, ACTION_WIDTH, SMALL), make_env, checkpoint_every_s=0.0,
                        **kwargs)  # fmt: skip


def test_a_stage_stops_when_its_samples_are_spent(tmp_path: Path, gait) -> None:
    trainer = _trainer(tmp_path, gait, budget_samples=3 * SMALL.batch_size, time_limit_s=3600.0).run()
    assert trainer.counters_.updates == 3
    assert trainer.counters_.stopped == "sample budget spent"


def test_a_stage_stops_at_its_time_limit_and_says_so(tmp_path: Path, gait) -> None:
    # a limit shorter than one update: the stage stops after its first
    trainer = _trainer(tmp_path, gait, budget_samples=100 * SMALL.batch_size, time_limit_s=1e-6).run()
    assert trainer.counters_.updates == 1
    assert trainer.counters_.stopped == "time limit reached"
    assert load_checkpoint_stage(trainer.checkpoint_path)["counters"]["stopped"] == "time limit reached"


def test_a_stage_with_no_time_left_does_not_train_and_says_so(tmp_path: Path, gait) -> None:
    trainer = _trainer(tmp_path, gait, budget_samples=100 * SMALL.batch_size, time_limit_s=0.0).run()
    assert trainer.counters_.updates == 0
    assert trainer.counters_.stopped == "time limit reached"
    assert trainer.checkpoint_path.is_file()  # what a resumed run reads


def test_a_stage_chooses_its_torch_threads_counts_them_and_restores_the_setting(tmp_path: Path, gait) -> None:
    before = torch.get_num_threads()
    chooser = ThreadChooser((1, 2), probe_every=2)
    trainer = _trainer(tmp_path, gait, budget_samples=6 * SMALL.batch_size, threads=chooser).run()
    used = [row["torch_threads"] for row in read_log(trainer.log_path)]
    assert set(used) == {1, 2}  # both measured within six updates
    assert trainer.counters_.updates_by_torch_threads == {"1": used.count(1), "2": used.count(2)}
    assert chooser.iterations == {1: used.count(1), 2: used.count(2)}
    assert torch.get_num_threads() == before
    saved = load_checkpoint_stage(trainer.checkpoint_path)["counters"]["updates_by_torch_threads"]
    assert saved == trainer.counters_.updates_by_torch_threads
