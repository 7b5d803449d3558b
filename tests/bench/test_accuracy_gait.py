"""The "accuracy-gait" benchmark suite is registered and runs (the figures themselves are for the bench)."""

from __future__ import annotations

import pytest

from bench import accuracy_gait
from stridetwin.commands.bench import SUITES


@pytest.mark.slow
def test_accuracy_gait_suite_runs_quick() -> None:
    assert SUITES["accuracy-gait"] == "bench.accuracy_gait"
    result = accuracy_gait.run(quick=True)
    for walk in accuracy_gait.QUICK_WALKS:
        assert result[f"vp_{walk}_ic_n"] > 0
        assert abs(result[f"vp_{walk}_speed_error_pct"]) < 10
    assert result["live_gait_2_shanks_100hz_cpu_pct_of_core"] > 0
    # the burst study runs: events under a short loss burst are found and marked estimated
    for kind in ("ic", "fc"):
        assert result[f"vp_burst_{kind}_30ms_estimated"] > 0
        assert result[f"vp_burst_{kind}_30ms_missed"] == 0
