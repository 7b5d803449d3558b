"""The "ppo" benchmark suite is registered and runs (figures themselves are for the bench, not for a test)."""

from __future__ import annotations

from bench import ppo
from bench.ppo import SPLITS
from stridetwin.commands.bench import SUITES


def test_ppo_suite_runs_quick() -> None:
    assert SUITES["ppo"] == "bench.ppo"
    result = ppo.run(quick=True)
    for env_threads, torch_threads in SPLITS:
        key = f"mj{env_threads}_torch{torch_threads}"
        assert result[f"{key}_samples_per_s"] > 0
        assert result[f"{key}_rollout_samples_per_s"] > result[f"{key}_samples_per_s"]
    assert 0 < result["peak_rss_mb"] < 4096
