"""The protocol benchmark runs and reports a figure per protocol (the figures are for ``stridetwin bench``)."""

from __future__ import annotations

from bench import protocols


def test_quick_run_reports_every_protocol() -> None:
    figures = protocols.run(quick=True)
    per_sample = {k: v for k, v in figures.items() if k.endswith("_us_per_sample")}
    expected = {"witmotion", "witmotion_ble", "stridetwin", "stridetwin_blocks"}
    assert {f"{name}_us_per_sample" for name in expected} <= set(per_sample)
    assert all(0 < v < 1000 for v in per_sample.values())
