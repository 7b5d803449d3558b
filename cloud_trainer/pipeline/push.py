"""Push robustness: the largest horizontal push on the pelvis the policy survives, forward and sideways.

Protocol (docs/patient-outputs.md, "Push robustness"), after DeepMimic's perturbation test (Peng et al. 2018:
forces on the pelvis for 0.2 s), which Dai et al. 2025 (Results, Table S6) report as 980 N forward and 320-360 N
lateral for their controller:

1. The walker starts at the course start at the evaluation goal and walks to the push point, ``into_feature_m`` past
   the start of the ramp or stairs (on the ramp, over the stairs; the same x on flat ground). Every probe starts at
   the same phase of the reference cycle, the first of ``START_PHASES`` from which the walker, not pushed, reaches
   the push point and stays up through the recovery (one batch of unpushed walks finds it): a deterministic walker
   from one start walks the same way to the push, and a start from which it falls on the way says nothing about
   pushes (stair policies that reach the top from most starts fell on the way from phase 0).
2. At the first control instant past the push point at which the reference cycle's phase is ``phase`` (default: mid
   single support of the paretic leg, else the right: 0.3 of the cycle for the right leg, 0.8 for the left; phase 0 is
   the right initial contact), a constant horizontal force in the walker's heading frame (forward, left or right)
   acts on the pelvis's centre of mass for ``duration_s``.
3. Survived: no fall (the environment's termination) within ``recovery_s`` after the push ends.
4. Magnitudes are searched by k-section, all in one batch: the 0 N control is the start search's walk (step 1);
   round 1 tries ``n_per_round`` magnitudes evenly up to ``max_force_n``; each later round tries ``n_per_round``
   magnitudes evenly inside the bracket (largest magnitude survived with every smaller one survived, smallest
   magnitude failed). The result is the bracket's lower end; its width is the resolution.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from cloud_trainer.pipeline.metrics import course_location
from cloud_trainer.pipeline.rollout import EvalSetting, PolicyLike, PushPlan, run_rollouts
from cloud_trainer.twin.terrain import RUN_IN_M, get_terrain

#: Start phases tried for the probes' common start, in this order (phase 0 first: the start before this search).
START_PHASES = (0.0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875)
#: Horizontal unit vectors in the heading frame (forward, left).
DIRECTIONS: dict[str, tuple[float, float]] = {
    "forward": (1.0, 0.0),
    "backward": (-1.0, 0.0),
    "left": (0.0, 1.0),
    "right": (0.0, -1.0),
}


@dataclass(frozen=True)
class PushProtocol:
    """Parameters of the push test (see the module docstring)."""

    duration_s: float = 0.2
    recovery_s: float = 3.0
    #: Onset phase of the reference cycle; None: mid single support of the paretic (else right) leg.
    phase: float | None = None
    #: Push point: this far past the start of the ramp or stairs, m (1.35 m: over step 5 of the stairs).
    into_feature_m: float = 1.35
    max_force_n: float = 1200.0
    n_per_round: int = 7
    n_rounds: int = 3
    directions: tuple[str, ...] = ("forward", "left", "right")

    def __post_init__(self) -> None:
        unknown = [d for d in self.directions if d not in DIRECTIONS]
        if unknown or not self.directions:
            raise ValueError(f"push directions {list(self.directions)}: each must be one of {list(DIRECTIONS)}")
        if self.n_per_round < 1 or self.n_rounds < 1:
            raise ValueError("n_per_round and n_rounds must be ≥ 1")
        if not (self.duration_s > 0 and self.recovery_s >= 0 and self.max_force_n > 0):
            raise ValueError("duration_s and max_force_n must be > 0, recovery_s ≥ 0")

    def onset_phase(self, affected_side: str | None) -> float:
        if self.phase is not None:
            return float(self.phase)
        return 0.8 if affected_side == "left" else 0.3


def push_point_x_m(terrain_name: str, protocol: PushProtocol) -> float:
    """x of the push point on a course."""
    terrain = get_terrain(terrain_name)
    start = terrain.feature_start_x_m if terrain.rise_m > 0 else RUN_IN_M
    return start + protocol.into_feature_m


def _start_phase(
    policy: PolicyLike, setting: EvalSetting, at_x_m: float, phase: float, protocol: PushProtocol, n_threads: int
) -> float | None:
    """The first of ``START_PHASES`` from which the walker, not pushed, reaches the push point and stays up through
    the recovery (None: from none)."""
    plan = PushPlan(np.zeros((len(START_PHASES), 2)), at_x_m, phase, protocol.duration_s, protocol.recovery_s)
    rec = run_rollouts(
        policy, setting, n_episodes=len(START_PHASES), push=plan, record_obs=False, n_threads=n_threads,
        start_phases=np.array(START_PHASES),
    )  # fmt: skip
    for start, outcome, pushed in zip(START_PHASES, rec.outcome, rec.push_row, strict=True):
        if pushed >= 0 and outcome == "survived":
            return start
    return None


def push_robustness(
    policy: PolicyLike, setting: EvalSetting, protocol: PushProtocol | None = None, *, n_threads: int = 2
) -> dict:
    """The largest push survived per direction (N) and how it was found (JSON-ready; see the module docstring)."""
    protocol = protocol or PushProtocol()
    started = time.perf_counter()
    at_x = push_point_x_m(setting.terrain, protocol)
    phase = protocol.onset_phase(setting.affected_side)
    tried: dict[str, dict[float, bool]] = {d: {} for d in protocol.directions}
    start_phase = _start_phase(policy, setting, at_x, phase, protocol, n_threads)
    if start_phase is not None:  # the start search's unpushed walk from there is every direction's 0 N control
        for d in protocol.directions:
            tried[d][0.0] = True
    k = protocol.n_per_round
    for round_index in range(protocol.n_rounds if start_phase is not None else 0):
        probes: list[tuple[str, float]] = []
        for d in protocol.directions:
            if round_index == 0:
                probes += [(d, f) for f in np.linspace(0.0, protocol.max_force_n, k + 1)[1:]]
                continue
            low, high = _bracket(tried[d])
            if high is None:
                continue
            probes += [(d, low + (high - low) * j / (k + 1)) for j in range(1, k + 1)]
        if not probes:
            break
        forces = np.array([np.array(DIRECTIONS[d]) * f for d, f in probes])
        plan = PushPlan(forces, at_x, phase, protocol.duration_s, protocol.recovery_s)
        rec = run_rollouts(
            policy, setting, n_episodes=len(probes), push=plan, record_obs=False, n_threads=n_threads,
            start_phases=np.full(len(probes), start_phase),
        )  # fmt: skip
        for (d, f), outcome, pushed in zip(probes, rec.outcome, rec.push_row, strict=True):
            if pushed < 0:  # fell or timed out before the push point: no verdict on this magnitude
                continue
            tried[d][float(f)] = outcome == "survived"
    result: dict = {}
    for d in protocol.directions:
        low, high = _bracket(tried[d])
        survived_zero = tried[d].get(0.0, False)
        result[d] = {
            "largest_survived_n": round(low, 1) if survived_zero else None,
            "smallest_failed_n": None if high is None else round(high, 1),
            "at_least": high is None and survived_zero,
            "n_probes": len(tried[d]),
        }
    lateral = [result[d]["largest_survived_n"] for d in ("left", "right") if d in result]
    return {
        "forward_n": result.get("forward", {}).get("largest_survived_n"),
        "lateral_n": min(lateral) if lateral and None not in lateral else None,
        "directions": result,
        "push_point_x_m": round(at_x, 3),
        "push_point": course_location(setting.terrain, at_x),
        "onset_phase": phase,
        "start_phase": start_phase,
        "reached_push_point": sorted(protocol.directions) if start_phase is not None else [],
        "protocol": asdict(protocol),
        "wall_s": round(time.perf_counter() - started, 2),
    }


def _bracket(tried: dict[float, bool]) -> tuple[float, float | None]:
    """(largest magnitude survived with all smaller ones survived, smallest magnitude failed above it or None)."""
    low, high = 0.0, None
    for force in sorted(tried):
        if tried[force]:
            if high is None:
                low = force
        elif high is None:
            high = force
    return low, high
