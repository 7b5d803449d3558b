"""The "analysis" benchmark suite is registered and its parts run (the figures themselves are for the bench)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import analysis
from stridetwin.commands.bench import SUITES


@pytest.mark.slow
def test_analysis_suite_parts_run(tmp_path: Path) -> None:
    assert SUITES["analysis"] == "bench.analysis"
    clip = analysis.write_walk(tmp_path / "walk.stclip", analysis.QUICK_WALK)
    offline = analysis.offline_cpu(clip, repeats=1)
    assert 0 < offline["offline_analysis_cpu_s"] < 30
    assert offline["offline_n_strides"] > 5
    live = analysis.live_cpu(clip, repeats=1)
    assert 0 < live["live_timing_only_pct_core"] < live["live_pipeline_pct_core"]
    rss = analysis.rss_of_live_session(clip, 0.5)
    assert rss["n_samples"] > 0.9 * 5 * 200 * 30
    assert rss["peak_rss_mb"] > rss["start_rss_mb"] > 0
    assert rss["state"] == "walking"
