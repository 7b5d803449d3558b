"""The Healthy Motion Atlas: the shipped weights walk, damaged weights give clear errors, the evaluation document has
its documented keys, and the train command runs and resumes on a tiny budget."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from cloud_trainer.atlas.evaluate import EVAL_SCHEMA, GoalGridWalkEnv, evaluate_atlas, goal_grid
from cloud_trainer.atlas.references import atlas_references
from cloud_trainer.atlas.train import WEIGHTS_NAME, atlas_config
from cloud_trainer.atlas.weights import SHIPPED_WEIGHTS, AtlasWeightsError, load_atlas
from cloud_trainer.learn.train import CHECKPOINT_NAME, LOG_NAME, read_log
from cloud_trainer.twin.model import build_twin
from stridetwin.cli import main

#: A goal in the middle of the atlas's range (speed m/s, stride length m).
MID_GOAL = (0.9, 1.1)

SUMMARY_KEYS = {
    "joint_angle_error_deg",
    "joint_angle_error_hips_knees_deg",
    "com_error_cm",
    "limb_end_error_cm",
    "speed_achieved_m_s",
    "speed_error_m_s",
    "stride_length_achieved_m",
    "stride_length_error_m",
    "fall_rate",
    "episode_length_s",
}
DOCUMENT_KEYS = {
    "schema",
    "weights",
    "training_samples",
    "deterministic_policy",
    "terrain",
    "episode_duration_s",
    "n_goals",
    "n_repeats",
    "n_episodes",
    "summary",
    "per_joint_error_deg",
    "per_limb_end_error_cm",
    "goals",
    "reference_atlas",
}


@pytest.fixture(scope="module")
def references():
    return atlas_references(build_twin().model)


@pytest.fixture(scope="module")
def atlas():
    return load_atlas()


def test_shipped_atlas_walks_10_s_on_flat_ground(atlas, references) -> None:
    config = dataclasses.replace(atlas_config(), episode_steps=400)
    env = GoalGridWalkEnv(references, [MID_GOAL] * 4, config=config, n_threads=1, seed=1)
    obs, _ = env.reset()
    start_x = env.tracking()["root_x_m"]
    for _ in range(300):  # 10 s at 30 Hz
        obs, _, terminated, truncated, _ = env.step(atlas.act(obs).numpy())
        assert not (terminated | truncated).any()
    walked_m = env.tracking()["root_x_m"] - start_x
    env.close()
    assert np.all(walked_m > 0.5 * MID_GOAL[0] * 10.0)  # it walks, not stands


def test_missing_and_damaged_weights_are_clear_errors(tmp_path) -> None:
    with pytest.raises(AtlasWeightsError, match="no such weights file"):
        load_atlas(tmp_path / "absent.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(AtlasWeightsError, match="not a readable atlas weights file"):
        load_atlas(garbage)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(SHIPPED_WEIGHTS.read_bytes()[:20000])
    with pytest.raises(AtlasWeightsError, match="not a readable atlas weights file"):
        load_atlas(truncated)
    other = tmp_path / "other.pt"
    torch.save({"format": "stridetwin.ppo-checkpoint/1"}, other)
    with pytest.raises(AtlasWeightsError, match=r"expected a 'stridetwin\.atlas/1' atlas weights file"):
        load_atlas(other)
    state = torch.load(SHIPPED_WEIGHTS, weights_only=True)
    state["manifest"]["observation_layout"] = state["manifest"]["observation_layout"][:-1]
    stale = tmp_path / "stale.pt"
    torch.save(state, stale)
    with pytest.raises(AtlasWeightsError, match="observation_layout"):
        load_atlas(stale)


def test_cli_reports_damaged_weights_in_one_line(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not torch")
    assert main(["atlas", "eval", "--weights", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("stridetwin atlas: error:")
    assert "bad.pt" in err
    assert "\n" not in err


def test_evaluation_document_has_the_documented_keys(atlas, references) -> None:
    goals = [MID_GOAL, (1.2, 1.3)]
    doc = evaluate_atlas(atlas, references, goals, n_repeats=1, duration_s=1.5, n_threads=1)
    assert set(doc) == DOCUMENT_KEYS
    assert doc["schema"] == EVAL_SCHEMA
    assert doc["n_episodes"] == 2
    assert set(doc["summary"]) == SUMMARY_KEYS
    assert len(doc["per_joint_error_deg"]) == 15
    assert len(doc["per_limb_end_error_cm"]) == 3
    assert [(g["speed_m_s"], g["stride_length_m"]) for g in doc["goals"]] == goals
    for g in doc["goals"]:
        assert set(g) >= SUMMARY_KEYS
    assert doc["summary"]["joint_angle_error_deg"] > 0


def test_goal_grid_keeps_walkable_stride_frequencies() -> None:
    grid = goal_grid()
    lo, hi = atlas_config().stride_frequency_range_hz
    assert grid
    assert all(lo <= v / s <= hi for v, s in grid)
    assert (0.5, 1.4) not in grid  # 0.36 strides per second: not a walk


def test_train_command_runs_resumes_and_exports(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    args = ["atlas", "train", "--out", str(out), "--n-envs", "8", "--budget-samples", "64"]  # 8 × 4 steps per update
    assert main(args) == 0
    assert "stopped (sample budget spent) after 2 updates, 64 samples" in capsys.readouterr().out
    assert (out / CHECKPOINT_NAME).is_file()
    assert (out / WEIGHTS_NAME).is_file()
    assert main(args) == 2  # the directory holds a run: --resume or another directory
    assert "pass resume" in capsys.readouterr().err
    assert main([*args[:-1], "128", "--resume"]) == 0
    assert "after 4 updates, 128 samples" in capsys.readouterr().out
    assert [r["update"] for r in read_log(out / LOG_NAME)] == [1, 2, 3, 4]
    exported = load_atlas(out / WEIGHTS_NAME)
    assert exported.manifest["training"]["samples"] == 128
    assert exported.manifest["data"]["library_sha256"]
    assert main(["atlas", "eval", "--weights", str(out / WEIGHTS_NAME), "--repeats", "1", "--duration-s", "0.3",
                 "--json"]) == 0  # fmt: skip
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == EVAL_SCHEMA
    assert doc["training_samples"] == 128

    shipped = tmp_path / "shipped"
    assert main(["atlas", "ship", "--run", str(out), "--to", str(shipped), "--repeats", "1"]) == 0
    assert load_atlas(shipped / WEIGHTS_NAME).manifest["training"]["samples"] == 128
    assert json.loads((shipped / "eval.json").read_text())["schema"] == EVAL_SCHEMA
    notes = (shipped / "TRAINING.md").read_text()
    assert "128 samples in 4 updates" in notes
    assert "| mean single-axis joint-angle error, deg |" in notes
    assert (shipped / "train_log_summary.csv").read_text().startswith("update,samples,wall_s")
