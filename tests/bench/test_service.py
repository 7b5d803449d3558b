"""The service benchmark runs end to end on small sizes and reports every figure."""

from __future__ import annotations

import pytest

from bench import service


@pytest.mark.slow
def test_small_run_reports_throughput_latency_and_memory() -> None:
    figures = service.measure(4 * service.MIB)
    for mode in ("plaintext", "tls"):
        assert figures[f"upload_mb_s_{mode}"] > 0
        assert 0 < figures[f"idle_trainer_rss_mb_{mode}"] < 300
        assert figures[f"server_peak_rss_mb_end_{mode}"] >= figures[f"idle_trainer_rss_mb_{mode}"]
    latency = [v for k, v in figures.items() if k.startswith("job_end_to_artifacts_verified_s_")]
    assert len(latency) == 2
    assert all(0 <= v < 30 for v in latency)
