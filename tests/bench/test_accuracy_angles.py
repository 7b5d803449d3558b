"""The "accuracy-angles" benchmark suite is registered and runs (its figures are for the bench and the docs)."""

from __future__ import annotations

from bench import accuracy_angles
from stridetwin.commands.bench import SUITES


def test_accuracy_angles_suite_runs_quick(monkeypatch) -> None:
    assert SUITES["accuracy-angles"] == "bench.accuracy_angles"
    monkeypatch.setattr(accuracy_angles, "QUICK_SCENARIOS", ("healthy_1.0",))
    monkeypatch.setattr(accuracy_angles, "shared_data_dir", lambda: None)  # the OpenSense run has its own test
    result = accuracy_angles.run(quick=True)
    assert set(result["healthy_1.0"]["rmse_deg"]) == {"batch", "live"}
    assert result["worst_sagittal_rmse_deg"]["batch"] > 0
    assert result["live_cpu_pct_of_core_5_sensors_100hz"] > 0
