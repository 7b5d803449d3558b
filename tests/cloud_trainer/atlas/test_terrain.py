"""The terrain-aware atlas: its courses and their shares, what each course imitates, and a run started from the
flat atlas (blind to the terrain rays) or from a terrain-aware one (keeping them) that trains, resumes and records
its mix."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest
import torch

from cloud_trainer.atlas.terrain import (
    COURSES_EVAL_SCHEMA,
    TERRAIN_MIX,
    evaluate_courses,
    make_terrain_atlas_env,
    simulations_per_course,
)
from cloud_trainer.atlas.train import ATLAS_PPO_ARGS, WEIGHTS_NAME, train_atlas
from cloud_trainer.atlas.weights import SHIPPED_WEIGHTS, load_atlas
from cloud_trainer.envs import walk
from cloud_trainer.envs.constants import ACTION_WIDTH
from cloud_trainer.envs.stairs import CLIMBING_FROM_RISER_M, STAIR_STRIDE_M
from cloud_trainer.hashing import file_sha256
from cloud_trainer.learn.terrain_view import reads_terrain, terrain_ray_columns
from cloud_trainer.learn.train import CHECKPOINT_NAME, CheckpointError, load_checkpoint
from cloud_trainer.twin.terrain import RUN_IN_START_X_M
from stridetwin.cli import main


def test_simulations_are_split_by_share_with_at_least_one_per_course() -> None:
    assert simulations_per_course(512) == [round(512 * c.share) for c in TERRAIN_MIX]
    for n in (len(TERRAIN_MIX), 8, 14, 100, 513):
        sizes = simulations_per_course(n)
        assert sum(sizes) == n
        assert min(sizes) >= 1
    with pytest.raises(ValueError, match=f"at least {len(TERRAIN_MIX)} simulations"):
        simulations_per_course(len(TERRAIN_MIX) - 1)


def test_each_course_walks_its_own_task_from_its_run_in(walk_reference) -> None:
    env = make_terrain_atlas_env([walk_reference], n_envs=len(TERRAIN_MIX), n_threads=1)
    assert env.names == [c.name for c in TERRAIN_MIX]
    for course, part in zip(TERRAIN_MIX, env.parts, strict=True):
        assert part.terrain.name == ("flat" if course.level is None else course.name)
        motion = part.bank.motions[0]
        if course.task == "walk":
            assert motion is walk_reference
            assert part.config.start_x_range_m == (0.0, 0.0)
            continue
        assert part.config.start_x_range_m == RUN_IN_START_X_M
        if course.task == "stairs":  # two treads a stride at the clip's own cadence, climbing from 7.5 cm
            assert motion.stride_length_m == pytest.approx(STAIR_STRIDE_M, rel=0.01)
            assert motion.cycle_period_s == pytest.approx(walk_reference.cycle_period_s, rel=0.01)
            climbs = part.climbing(part.bank.motions, part.twin.model, part.terrain) is not None
            assert climbs == (part.terrain.step_height_m >= CLIMBING_FROM_RISER_M)
            assert "step_cue" in part.config.guidance_terms


def test_the_slow_flat_course_draws_its_goals_from_its_own_range(walk_reference) -> None:
    slow = next(c for c in TERRAIN_MIX if c.task == "walk" and c.speed_range_m_s is not None)
    assert slow.name == "walk:0.4-0.8m/s"
    env = make_terrain_atlas_env([walk_reference], n_envs=8 * len(TERRAIN_MIX), seed=3, n_threads=1)
    part = env.parts[env.names.index(slow.name)]
    assert part.terrain.name == "flat"
    (speed_lo, speed_hi), (stride_lo, stride_hi) = slow.speed_range_m_s, slow.stride_length_range_m
    for _ in range(3):  # goals are drawn at every reset
        part.reset()
        assert ((part._goal_speed >= speed_lo) & (part._goal_speed <= speed_hi)).all()
        assert ((part._goal_stride >= stride_lo) & (part._goal_stride <= stride_hi)).all()
    full = env.parts[env.names.index("walk")]
    assert full.config.speed_range_m_s == walk.default_config().speed_range_m_s  # the atlas's own, untouched


def test_a_terrain_run_starts_from_a_flat_atlas_blind_to_the_rays_and_resumes(tmp_path, walk_reference) -> None:
    flat_run, out = tmp_path / "flat", tmp_path / "terrain"
    train_atlas(flat_run, ppo_args=dataclasses.replace(ATLAS_PPO_ARGS, n_envs=2), references=[walk_reference],
                env_threads=1, budget_samples=2)  # fmt: skip
    flat = load_atlas(flat_run / WEIGHTS_NAME)
    assert not reads_terrain(flat.manifest)
    args = dataclasses.replace(ATLAS_PPO_ARGS, n_envs=len(TERRAIN_MIX))  # one simulation per course
    one_update = args.batch_size
    run = functools.partial(train_atlas, out, ppo_args=args, references=[walk_reference], mix=TERRAIN_MIX,
                            init_from=flat_run / WEIGHTS_NAME, env_threads=1)  # fmt: skip
    assert run(budget_samples=one_update).counters_.samples == one_update
    trained = load_checkpoint(out / CHECKPOINT_NAME)["ppo"]["policy"]
    first = "mean_net.0.weight"
    rays = torch.as_tensor(terrain_ray_columns())
    others = torch.as_tensor(np.setdiff1d(np.arange(trained[first].shape[1]), terrain_ray_columns()))
    # one small update away from the flat atlas, except the rays' weights, which started from zero
    assert (trained[first][:, others] - flat.state["policy"][first][:, others]).abs().max() < 0.01
    assert flat.state["policy"][first][:, rays].abs().max() > 0.1
    assert trained[first][:, rays].abs().max() < 0.01
    with pytest.raises(CheckpointError, match="resume it with --terrain"):
        train_atlas(out, ppo_args=args, references=[walk_reference], resume=True, budget_samples=2 * one_update)
    resumed = run(budget_samples=2 * one_update, resume=True, init_from=None)  # from the checkpoint, keeping its record
    assert (resumed.counters_.samples, resumed.counters_.invocations) == (2 * one_update, 2)
    manifest = load_atlas(out / WEIGHTS_NAME).manifest
    assert manifest["task"] == "terrain mix"
    assert reads_terrain(manifest)  # what the pipeline adapts from it keeps its ray weights
    assert [c["task"] for c in manifest["terrain_mix"]] == [c.task for c in TERRAIN_MIX]
    assert manifest["initialised_from"] == {"file": WEIGHTS_NAME, "sha256": file_sha256(flat_run / WEIGHTS_NAME)}


def test_a_terrain_run_from_a_terrain_aware_atlas_keeps_its_ray_weights(tmp_path, walk_reference) -> None:
    # a terrain-aware atlas: the shipped weights with ray weights of their own and a terrain mix in the manifest
    start = tmp_path / "terrain_aware.pt"
    state = torch.load(SHIPPED_WEIGHTS, weights_only=True)
    rays = torch.as_tensor(terrain_ray_columns())
    n_units = state["policy"]["mean_net.0.weight"].shape[0]
    learnt = torch.randn(n_units, len(rays), generator=torch.Generator().manual_seed(0))
    state["policy"]["mean_net.0.weight"][:, rays] = 0.05 * learnt
    state["manifest"]["terrain_mix"] = [dataclasses.asdict(c) for c in TERRAIN_MIX]
    torch.save(state, start)
    assert reads_terrain(load_atlas(start).manifest)
    args = dataclasses.replace(ATLAS_PPO_ARGS, n_envs=len(TERRAIN_MIX))
    train_atlas(tmp_path / "terrain", ppo_args=args, references=[walk_reference], mix=TERRAIN_MIX, init_from=start,
                env_threads=1, budget_samples=args.batch_size)  # fmt: skip
    trained = load_checkpoint(tmp_path / "terrain" / CHECKPOINT_NAME)["ppo"]["policy"]["mean_net.0.weight"]
    # one small update away from them (blinded, they would all be 0)
    assert (trained[:, rays] - 0.05 * learnt).abs().max() < 0.01


def test_train_command_takes_the_terrain_mix_and_starting_weights(tmp_path, capsys) -> None:
    out = tmp_path / "terrain"
    n_envs = len(TERRAIN_MIX)
    samples = n_envs * ATLAS_PPO_ARGS.n_steps  # one update
    args = ["atlas", "train", "--terrain", "--out", str(out), "--n-envs", str(n_envs), "--budget-samples", str(samples)]
    assert main([*args, "--init", str(tmp_path / "none.pt")]) == 2
    assert "--init" in capsys.readouterr().err
    assert main([*args, "--init", str(SHIPPED_WEIGHTS)]) == 0
    assert f"after 1 updates, {samples} samples" in capsys.readouterr().out
    manifest = load_atlas(out / WEIGHTS_NAME).manifest
    assert len(manifest["terrain_mix"]) == len(TERRAIN_MIX)
    assert manifest["initialised_from"]["sha256"]
    assert main(["atlas", "eval", "--weights", str(out / WEIGHTS_NAME), "--courses", "--repeats", "1",
                 "--duration-s", "0.3"]) == 0  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(": ")[0].strip() for line in lines] == [c.name for c in TERRAIN_MIX]
    assert "reached the top" in lines[-1]


class LimpPolicy:
    """Every torque limit at its floor and the joints bent to their range's end: the twin collapses."""

    def act(self, obs: np.ndarray) -> np.ndarray:
        return np.full((len(obs), ACTION_WIDTH), -1.0)


def test_course_evaluation_counts_walks_falls_and_the_top(walk_reference) -> None:
    walking = evaluate_courses(load_atlas(), [walk_reference], n_per_course=2, duration_s=1.0, n_threads=1)
    assert walking["schema"] == COURSES_EVAL_SCHEMA
    by_course = {c["course"]: c for c in walking["courses"]}
    assert list(by_course) == [c.name for c in TERRAIN_MIX]
    assert by_course["walk"]["reached_top"] is None  # flat ground has no top
    assert by_course["walk"]["fell"] == 0.0
    assert by_course["walk"]["distance_m"] > 0.3  # goals of 0.4 m/s and more, for a second
    for course, row in zip(TERRAIN_MIX, walking["courses"], strict=True):
        if course.level is None:  # flat ground has no top
            assert row["reached_top"] is None
        else:  # 3 m away
            assert row["reached_top"] == 0.0
    limp = evaluate_courses(LimpPolicy(), [walk_reference], n_per_course=2, duration_s=3.0, n_threads=1)
    assert all(c["fell"] == 1.0 for c in limp["courses"])
