"""Evaluation on short rollouts: a standing model sways little and survives no push but a large one; the atlas walking
on flat ground gives finite, plausible metrics; settings refuse what they cannot evaluate."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from cloud_trainer.envs import stairs
from cloud_trainer.errors import UnknownNameError
from cloud_trainer.pipeline import metrics
from cloud_trainer.pipeline.evaluate import EvalProtocol, evaluate_level
from cloud_trainer.pipeline.push import PushProtocol, push_robustness
from cloud_trainer.pipeline.rollout import EvalSetting, goal_x_m, make_eval_env, run_rollouts
from cloud_trainer.twin.constants import GROUP_NAMES
from cloud_trainer.twin.terrain import STAIR_TREAD_M
from tests.cloud_trainer.pipeline.conftest import hold_pose


def _finite_numbers(value) -> bool:
    if isinstance(value, dict):
        return all(_finite_numbers(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(_finite_numbers(v) for v in value)
    if isinstance(value, float):
        return math.isfinite(value)
    return True


def test_a_standing_model_sways_little_and_does_not_fall(stand_reference):
    setting = EvalSetting("walk", None, (stand_reference,))
    record = run_rollouts(hold_pose, setting, n_episodes=2, duration_s=3.0)
    assert record.outcome == ["time_limit", "time_limit"]
    assert record.alive.all()
    sway = metrics.trunk_sway(record)
    assert sway["peak_to_peak_deg"] < 1.0
    assert sway["rms_deg"] < 0.5
    assert metrics.outcome(record)["falls"]["n"] == 0


def test_push_of_zero_is_survived_and_a_huge_push_is_not(stand_reference):
    setting = EvalSetting("walk", None, (stand_reference,))
    # push point at the start (3 m before the run-in's end), one round: 0 N and 3000 N (600 N·s on 70 kg)
    protocol = PushProtocol(into_feature_m=-3.05, max_force_n=3000.0, n_per_round=1, n_rounds=1, recovery_s=2.0,
                            directions=("forward", "left"))  # fmt: skip
    result = push_robustness(hold_pose, setting, protocol)
    for direction in ("forward", "left"):
        assert result["directions"][direction]["largest_survived_n"] == 0.0
        assert result["directions"][direction]["smallest_failed_n"] == 3000.0
    assert result["forward_n"] == 0.0
    assert result["reached_push_point"] == ["forward", "left"]
    assert result["start_phase"] == 0.0  # the first start tried: it stands from there


def test_a_walker_that_falls_from_every_start_gets_no_push_figure(stand_reference):
    setting = EvalSetting("walk", None, (stand_reference,))
    protocol = PushProtocol(into_feature_m=-3.05, max_force_n=3000.0, n_per_round=1, n_rounds=1, recovery_s=2.0,
                            directions=("forward",))  # fmt: skip

    def limp(obs: np.ndarray) -> np.ndarray:  # the lowest torque limits, PD targets off the pose: falls in 1 s
        return -np.ones((len(obs), 22), np.float32)

    result = push_robustness(limp, setting, protocol)
    assert result["start_phase"] is None
    assert result["reached_push_point"] == []
    assert result["forward_n"] is None
    assert result["directions"]["forward"]["n_probes"] == 0


def test_push_search_narrows_the_bracket(stand_reference):
    setting = EvalSetting("walk", None, (stand_reference,))
    # a model standing on its PD gains survives 148 N forward and fails at 152 N (pushes of 0.2 s)
    protocol = PushProtocol(into_feature_m=-3.05, max_force_n=400.0, n_per_round=3, n_rounds=2, recovery_s=1.5,
                            directions=("forward",))  # fmt: skip
    result = push_robustness(hold_pose, setting, protocol)["directions"]["forward"]
    low, high = result["largest_survived_n"], result["smallest_failed_n"]
    assert 0.0 < low < high <= 400.0
    assert low <= 150.0 <= high
    assert high - low == pytest.approx(400.0 / 3 / 4, abs=0.2)  # round 1: thirds of 400 N; round 2: quarters of a third


def test_atlas_walking_on_flat_ground_gives_plausible_metrics(atlas, walk_reference):
    setting = EvalSetting("walk", None, (walk_reference,), affected_side="left", goal=(1.0, 1.28))
    level = evaluate_level(atlas, setting, EvalProtocol(n_episodes=2, duration_s=5.0, push=None))
    doc = level.document
    assert _finite_numbers(doc)
    assert doc["falls"]["n"] == 0
    assert 0.8 < doc["speed_m_s"] < 1.2
    assert 2.0 < doc["trunk_sway"]["peak_to_peak_deg"] < 20.0
    assert doc["posture_similarity"]["similarity_pct"] > 60.0
    for side in ("left", "right"):
        assert 40.0 < doc["compensation"]["sides"][side]["knee_flexion_range_deg"] < 90.0
    assert 1.0 <= doc["compensation"]["swing_time_ratio"] < 1.3
    activation = doc["activation"]
    assert activation["n_cycles"] >= 4
    assert activation["cycle_side"] == "left"
    for group in GROUP_NAMES:
        curve = np.array(activation["torque_limit_fraction"][group])
        assert curve.shape == (metrics.N_CYCLE_POINTS,)
        assert np.all((curve >= 0.2 - 1e-9) & (curve <= 1.0 + 1e-9))  # the action maps onto 20-100 % of the ceiling
        assert 0.0 < activation["mean_torque_used_fraction"][group] <= 1.0


def test_reaching_the_top_ends_an_episode(atlas, walk_reference):
    setting = EvalSetting("slope", 1, (walk_reference,), goal=(1.0, 1.28))
    record = run_rollouts(atlas, setting, n_episodes=1)
    assert record.outcome == ["reached"]
    assert record.qpos[record.last_row[0], 0, 0] >= goal_x_m("slope:1")
    assert record.qpos[record.last_row[0] - 1, 0, 0] < goal_x_m("slope:1")


def test_posture_similarity_is_100_for_identical_cycles_and_falls_with_error(walk_reference):
    cycle = metrics.reference_cycle_angles(walk_reference, "right")
    assert metrics.posture_similarity(cycle, cycle)["similarity_pct"] == 100.0
    shifted = {k: v + 5.0 for k, v in cycle.items()}
    result = metrics.posture_similarity(shifted, cycle)
    assert result["rmse_deg"] == pytest.approx(5.0)
    assert result["similarity_pct"] == pytest.approx(100 * (1 - 5.0 / result["reference_rom_deg"]), abs=0.01)


def test_reference_cycle_starts_at_the_initial_contact_of_the_side(walk_reference):
    right = metrics.reference_cycle_angles(walk_reference, "right")
    left = metrics.reference_cycle_angles(walk_reference, "left")
    # a healthy cycle: the left initial contact is about half a cycle after the right one, so the left knee's curve
    # from the left contact resembles the right knee's from the right contact
    error = np.sqrt(np.mean((left["knee_flexion_l_deg"] - right["knee_flexion_r_deg"]) ** 2))
    assert error < 8.0


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"task": "ramp", "level": 1}, UnknownNameError, "known tasks"),
        ({"task": "walk", "level": 2}, ValueError, "has no levels"),
        ({"task": "stairs", "level": 6}, ValueError, "needs a level 1-5"),
        ({"task": "slope", "level": 2, "affected_side": "both"}, ValueError, "affected_side"),
    ],
)
def test_settings_refuse_what_they_cannot_evaluate(stand_reference, kwargs, error, match):
    with pytest.raises(error, match=match):
        EvalSetting(references=(stand_reference,), **kwargs)


def test_stairs_goal_is_clipped_into_the_task_ranges(walk_reference):
    setting = EvalSetting("stairs", 3, (walk_reference,))
    speed, stride = setting.resolved_goal()
    assert 0.4 <= speed <= 0.8
    assert stride == pytest.approx(0.6)


def test_evaluation_starts_at_the_longest_approach_training_saw(walk_reference):
    trained = dataclasses.replace(stairs.default_config(2), start_x_range_m=(1.5, 2.5))
    for config, start_x_m in ((None, 0.0), (trained, 1.5)):
        env = make_eval_env(EvalSetting("stairs", 2, (walk_reference,), config=config), n_envs=2, max_steps=10)
        try:
            env.reset()
            # at most half a tread away: in step with the treads, as in training
            np.testing.assert_allclose(env._qpos[:, 0], start_x_m, atol=STAIR_TREAD_M / 2)
        finally:
            env.close()
