"""The "link" benchmark suite is registered and runs end to end (its figures are for the bench, not for a test)."""

from __future__ import annotations

import pytest

from bench import link
from stridetwin.commands.bench import SUITES


@pytest.mark.slow
def test_link_suite_runs_quick() -> None:
    assert SUITES["link"] == "bench.link"
    figures = link.run(quick=True)
    assert figures["outbox_clips_per_s"] > 0
    assert figures["submit_ms_median"] > 0
    assert 0 < figures["job_finished_to_artifacts_verified_s_small_median"] < 30
    assert any(k.startswith("fetch_peak_rss_mb_") for k in figures)
