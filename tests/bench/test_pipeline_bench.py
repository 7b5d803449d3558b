"""The "pipeline" benchmark suite is registered; its milestone timing and the hybrid-versus-baseline comparison read
run folders as the pipeline writes them (the runs themselves are the benchmark, not a test)."""

from __future__ import annotations

import json
from pathlib import Path

from bench import pipeline
from stridetwin.commands.bench import SUITES


def write_log(path: Path, values: list[float | None], key: str = "episode_length_steps") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{"update": i + 1, "samples": 2048 * (i + 1), "wall_s": 0.5 * (i + 1), key: v} for i, v in enumerate(values)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_suite_is_registered() -> None:
    assert SUITES["pipeline"] == "bench.pipeline"


def test_time_to_a_threshold_uses_a_rolling_mean(tmp_path: Path) -> None:
    log = tmp_path / "train_log.jsonl"
    write_log(log, [100.0] * 5 + [None] + [400.0] * 20)
    n = pipeline.ROLLING_UPDATES
    hit = pipeline.time_to(log, "episode_length_steps", 250.0)
    # 5 rows of 100 then 400s: the mean of the last n known values reaches 250 once at least n/2 of them are 400
    first = next(k for k in range(n, 26) if (sum(([100.0] * 5 + [400.0] * 20)[k - n : k]) / n) >= 250.0)
    assert hit == {"samples": 2048 * (first + 1), "training_wall_s": 0.5 * (first + 1)}
    assert pipeline.time_to(log, "episode_length_steps", 500.0) is None
    assert pipeline.time_to(tmp_path / "missing.jsonl", "episode_length_steps", 1.0) is None


def test_comparison_sets_the_hybrid_beside_the_baseline() -> None:
    def figures(levels: dict, wall: float, adapted: dict) -> dict:
        return {
            "levels": {"slope": levels}, "levels_reached": {"slope": len(levels)}, "adaptation": adapted,
            "stage_wall_s": {"reference": 1.0, "adaptation": wall, "prediction/slope": wall, "export": 99.0},
            "adaptation_time_to_walk": {"samples": 10}, "adaptation_time_to_imitation": None,
        }  # fmt: skip

    hybrid = figures({"1": {"samples": 100}, "2": {"samples": 300}}, 10.0, {"fall_rate": 0.0})
    baseline = figures({"1": {"samples": 900}}, 40.0, {"fall_rate": 1.0})
    out = pipeline.compare(hybrid, baseline)
    assert out["slope level 1"] == {"hybrid_samples": 100, "physics_only_samples": 900}
    assert out["slope level 2"] == {"hybrid_samples": 300, "physics_only_samples": None}
    assert out["training_wall_s"] == {"hybrid": 21.0, "physics_only": 81.0}  # the export is not training
    assert out["levels_reached"] == {"hybrid": {"slope": 2}, "physics_only": {"slope": 1}}
    assert out["adaptation_time_to_walk"] == {"hybrid": {"samples": 10}, "physics_only": {"samples": 10}}
