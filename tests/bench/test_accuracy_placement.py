"""The "accuracy-placement" benchmark is registered and its pieces run (figures are for the bench, not a test)."""

from __future__ import annotations

from bench import accuracy_placement
from stridetwin.commands.bench import SUITES


def test_suite_is_registered_and_one_clip_is_scored() -> None:
    assert SUITES["accuracy-placement"] == "bench.accuracy_placement"
    result = accuracy_placement.run_case("healthy", {"walkway": "5", "still_start": "2.5"}, 1, "swap_lr")
    assert result["detected"] is True
    assert result["false_alarms"] == []


def test_quality_cost_is_measured() -> None:
    result = accuracy_placement.quality_cpu(2.0)
    assert result["quality_samples_per_s"] > 900
    assert result["quality_cpu_pct_of_core_read_every_0.5s"] > 0
