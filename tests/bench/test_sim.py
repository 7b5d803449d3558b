"""The "sim" benchmark suite is registered and runs (figures themselves are for the bench, not for a test)."""

from __future__ import annotations

from bench import sim
from stridetwin.commands.bench import SUITES


def test_sim_suite_runs_quick() -> None:
    assert SUITES["sim"] == "bench.sim"
    result = sim.run(quick=True)
    for task in ("walk", "stairs"):
        assert result[f"{task}_env_control_steps_per_s"] > 0
        assert result[f"{task}_raw_control_steps_per_s"] > 0
        assert result[f"{task}_ratio"] > 0
