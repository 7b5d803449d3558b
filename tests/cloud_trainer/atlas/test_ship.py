"""Shipping a run's atlas into the project: the weights as trained, the flat-ground evaluation, and for a
terrain-aware atlas its course walks and starting weights in TRAINING.md."""

from __future__ import annotations

import dataclasses
import json

from cloud_trainer.atlas.ship import COURSES_NAME, EVAL_NAME, NOTES_NAME, SUMMARY_NAME
from cloud_trainer.atlas.terrain import COURSES_EVAL_SCHEMA, TERRAIN_MIX
from cloud_trainer.atlas.train import ATLAS_PPO_ARGS, WEIGHTS_NAME, train_atlas
from cloud_trainer.atlas.weights import SHIPPED_WEIGHTS
from cloud_trainer.hashing import file_sha256
from stridetwin.cli import main


def test_ship_copies_the_weights_and_walks_a_terrain_atlas_on_its_courses(tmp_path, walk_reference, capsys) -> None:
    args = dataclasses.replace(ATLAS_PPO_ARGS, n_envs=len(TERRAIN_MIX))
    terrain_run, flat_run, dest = tmp_path / "terrain", tmp_path / "flat", tmp_path / "shipped"
    train_atlas(terrain_run, ppo_args=args, references=[walk_reference], mix=TERRAIN_MIX, init_from=SHIPPED_WEIGHTS,
                env_threads=1, budget_samples=len(TERRAIN_MIX))  # fmt: skip
    ship = ["atlas", "ship", "--to", str(dest), "--repeats", "1", "--course-repeats", "1"]
    assert main([*ship, "--run", str(terrain_run)]) == 0
    assert file_sha256(dest / WEIGHTS_NAME) == file_sha256(terrain_run / WEIGHTS_NAME)
    assert (dest / SUMMARY_NAME).exists()
    assert json.loads((dest / EVAL_NAME).read_text())["n_repeats"] == 1
    courses = json.loads((dest / COURSES_NAME).read_text())
    assert courses["schema"] == COURSES_EVAL_SCHEMA
    assert [c["course"] for c in courses["courses"]] == [c.name for c in TERRAIN_MIX]
    notes = (dest / NOTES_NAME).read_text()
    assert f"started from: `{SHIPPED_WEIGHTS.name}` (SHA-256 `{file_sha256(SHIPPED_WEIGHTS)}`)" in notes
    assert "stairs:5 6.25 %" in notes
    assert "| stairs:5 |" in notes

    train_atlas(flat_run, ppo_args=dataclasses.replace(args, n_envs=2), references=[walk_reference], env_threads=1,
                budget_samples=2)  # fmt: skip
    assert main([*ship, "--run", str(flat_run)]) == 0  # a flat atlas over a terrain-aware one: no stale courses
    assert not (dest / COURSES_NAME).exists()
    assert "started from" not in (dest / NOTES_NAME).read_text()
    assert main([*ship, "--run", str(flat_run), "--course-repeats", "0"]) == 2
    assert "--course-repeats must be ≥ 1" in capsys.readouterr().err
