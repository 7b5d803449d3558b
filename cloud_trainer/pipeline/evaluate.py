"""Per-task, per-level evaluation of a patient's policy: everything ``report.json`` says about one level.

```python
setting = EvalSetting("stairs", 3, references, anthropometry=patient, affected_side="left", goal=(0.7, 0.6))
level = evaluate_level(policy, setting, EvalProtocol(n_episodes=4, push=PushProtocol()))
level.document            # JSON-ready (docs/patient-outputs.md, "Level document")
level.write_angles_csv(out_dir / "angles_stairs_3.csv")   # the representative episode, analyze's columns
```

The patient's own level-ground gait, which posture similarity compares with, is the reference motion the goal
picks (the first of ``setting.references`` for a single-clip patient).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cloud_trainer.pipeline import metrics
from cloud_trainer.pipeline.angles import write_angles_csv
from cloud_trainer.pipeline.push import PushProtocol, push_robustness
from cloud_trainer.pipeline.rollout import EvalSetting, PolicyLike, RolloutRecord, default_duration_s, run_rollouts
from cloud_trainer.twin.terrain import RAMP_LENGTH_M, STAIR_TREAD_M, get_terrain


@dataclass(frozen=True)
class EvalProtocol:
    """How much evaluation a level gets."""

    #: Episodes side by side, each from another phase of the reference.
    n_episodes: int = 4
    #: Time limit per episode, s; None: twice what the goal speed needs to the goal, plus 2 s (≤ 60 s).
    duration_s: float | None = None
    #: The push test; None leaves it out.
    push: PushProtocol | None = field(default_factory=PushProtocol)
    n_threads: int = 2


@dataclass
class LevelEvaluation:
    """One task level: the rollouts, the patient's mean cycles and the JSON document."""

    setting: EvalSetting
    record: RolloutRecord
    #: JSON-ready document of the level (docs/patient-outputs.md, "Level document").
    document: dict
    #: Predicted mean gait cycle per angle column (cycle foot: paretic, else right), or None without cycles.
    cycle_angles: dict[str, np.ndarray] | None
    #: The patient's level-ground gait cycle (the reference motion), same columns and cycle foot.
    reference_cycle_angles: dict[str, np.ndarray]
    #: Angles of every row and episode, (T, n) per column.
    angles: dict[str, np.ndarray]

    @property
    def representative_episode(self) -> int:
        """The first episode with the most common outcome (the one the CSV and the video show)."""
        common, _ = Counter(self.record.outcome).most_common(1)[0]
        return self.record.outcome.index(common)

    def write_angles_csv(self, path: Path) -> int:
        """The representative episode's joint angles over time, ``stridetwin analyze --angles-csv`` columns."""
        i = self.representative_episode
        rows = self.record.episode(i)
        return write_angles_csv(
            path, self.record.time_s[rows], {name: values[rows, i] for name, values in self.angles.items()}
        )


def evaluate_level(policy: PolicyLike, setting: EvalSetting, protocol: EvalProtocol | None = None) -> LevelEvaluation:
    """Roll the deterministic policy out on the setting's course and compute every metric of the level."""
    protocol = protocol or EvalProtocol()
    started = time.perf_counter()
    record = run_rollouts(
        policy, setting, n_episodes=protocol.n_episodes, duration_s=protocol.duration_s, n_threads=protocol.n_threads
    )
    angles = metrics.angles_for_record(record)
    side = setting.affected_side or "right"
    cycle = metrics.predicted_cycle_angles(record, angles)
    reference = setting.references[_reference_index(setting)]
    ref_cycle = metrics.reference_cycle_angles(reference, side, setting.anthropometry)
    similarity = metrics.posture_similarity(cycle, ref_cycle) if cycle is not None else None
    push = None
    if protocol.push is not None:
        push = push_robustness(policy, setting, protocol.push, n_threads=protocol.n_threads)
    speed, stride = setting.resolved_goal()
    document = {
        "task": setting.task,
        "level": setting.level,
        "label": setting.label,
        "terrain": setting.terrain,
        "course": course_description(setting.terrain),
        "goal": {"speed_m_s": round(speed, 4), "stride_length_m": round(stride, 4), "goal_x_m": record.goal_x_m},
        "episode_limit_s": round(protocol.duration_s or default_duration_s(setting), 2),
        **metrics.outcome(record),
        "trunk_sway": metrics.trunk_sway(record),
        "posture_similarity": similarity,
        "compensation": metrics.compensation(record, angles),
        "activation": metrics.activation(record),
        "push_robustness": push,
        "representative_episode": None,
        "eval_wall_s": None,
    }
    evaluation = LevelEvaluation(setting, record, document, cycle, ref_cycle, angles)
    document["representative_episode"] = evaluation.representative_episode
    document["eval_wall_s"] = round(time.perf_counter() - started, 2)
    return evaluation


def course_description(terrain_name: str) -> dict:
    """The course in numbers and in words."""
    terrain = get_terrain(terrain_name)
    out = {"kind": terrain.kind, "rise_m": terrain.rise_m}
    if terrain.rise_m == 0.0:
        flat = {"flat": "level ground", "slope": "flat, no ramp", "stairs": "flat, no steps"}
        out.update(text=flat[terrain.kind])
    elif terrain.kind == "slope":
        grade = terrain.rise_m / RAMP_LENGTH_M
        ratio = f"1:{1 / grade:.0f}" if grade > 0 else "flat"
        out.update(
            grade_pct=round(100 * grade, 2), text=f"{RAMP_LENGTH_M:.0f} m ramp rising {terrain.rise_m:.2f} m ({ratio})"
        )
    elif terrain.kind == "stairs":
        n = round((terrain.feature_end_x_m - terrain.feature_start_x_m) / STAIR_TREAD_M) + 1
        out.update(
            step_height_m=terrain.step_height_m,
            text=f"{n} steps of {100 * terrain.step_height_m:.2f} cm, {100 * STAIR_TREAD_M:.0f} cm treads",
        )
    return out


def _reference_index(setting: EvalSetting) -> int:
    """The reference the goal picks (as the environment does: nearest in speed and stride among travelling ones)."""
    speed, stride = setting.resolved_goal()
    best, best_d = 0, np.inf
    for i, ref in enumerate(setting.references):
        if ref.speed_m_s <= 0:
            continue
        d = (ref.speed_m_s - speed) ** 2 + (ref.stride_length_m - stride) ** 2
        if d < best_d:
            best, best_d = i, d
    return best
