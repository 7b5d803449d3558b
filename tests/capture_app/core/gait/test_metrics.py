"""Metric definitions: formulas, the ≥ 10-stride rule for variability, reasons for what is missing, the docs list."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from capture_app.core.gait.metrics import METRICS, SpatiotemporalMetrics, symmetry_index_pct, symmetry_ratio
from capture_app.core.gait.strides import Stride
from capture_app.core.verdict import Level, Verdict

DOCS = Path(__file__).resolve().parents[4] / "docs" / "gait-metrics.md"


def _strides(n: int, side: str, stride_s: float, stance_s: float, offset_s: float = 0.0, jitter: float = 0.0,
             length_m: float = 1.2) -> list[Stride]:
    rng = np.random.default_rng(len(side) + n)
    out, t = [], offset_s
    for _ in range(n):
        duration = stride_s * (1 + jitter * rng.standard_normal())
        out.append(Stride(side, t, t + duration, t + stance_s, t + stance_s + 0.2, contra_fc_s=t + 0.1 * stride_s,
                          contra_ic_s=t + 0.5 * stride_s, previous_contra_ic_s=t - 0.5 * stride_s,
                          length_m=length_m, step_length_m=length_m / 2, steady=True))  # fmt: skip
        t += duration
    return out


def _compute(strides: list[Stride], **kwargs) -> SpatiotemporalMetrics:
    args = {"walking_time_s": 20.0, "walkway_length_m": 20.0, "side_reasons": {"left": None, "right": None}}
    return SpatiotemporalMetrics().compute(strides, **{**args, **kwargs})


def test_documented_metric_list_equals_the_produced_names() -> None:
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("## Metrics", 1)[1].split("\n## ", 1)[0]
    documented = re.findall(r"^\| `([a-z0-9_]+)` \|", section, flags=re.MULTILINE)
    assert documented == list(METRICS)
    both = _compute(_strides(12, "left", 1.2, 0.72) + _strides(12, "right", 1.2, 0.72, offset_s=0.6))
    assert set(both.metrics_) == set(METRICS)
    assert not both.missing_


def test_symmetry_and_timing_formulas() -> None:
    assert symmetry_index_pct(0.6, 0.4) == pytest.approx(40.0)
    assert symmetry_ratio(0.4, 0.6) == pytest.approx(1.5)
    m = _compute(_strides(4, "left", 1.2, 0.72) + _strides(4, "right", 1.5, 0.6, offset_s=0.6)).metrics_
    assert m["stride_time_l_s"] == pytest.approx(1.2)
    assert m["stance_pct_l"] == pytest.approx(60.0)
    assert m["stance_pct_r"] == pytest.approx(40.0)
    assert m["swing_time_ratio"] == pytest.approx(0.9 / 0.48)
    assert m["cadence_steps_min"] == pytest.approx(120.0 / 1.35)
    assert m["gait_speed_m_s"] == pytest.approx(8 * 1.2 / (4 * 1.2 + 4 * 1.5))
    # right strides end their stance before the other foot lands: no valid double support, so only the left counts
    assert m["double_support_pct"] == pytest.approx(100 * (0.12 + 0.12) / 1.2)


def test_variability_needs_ten_steady_strides() -> None:
    nine = _compute(_strides(9, "left", 1.2, 0.7, jitter=0.03) + _strides(12, "right", 1.2, 0.7, 0.6, jitter=0.03))
    assert "stride_time_cv_pct_l" not in nine.metrics_
    assert "stride_time_cv_pct_r" in nine.metrics_
    reason = nine.missing_["stride_time_cv_pct_l"]
    assert reason.code == "gait.too_few_strides_for_cv"
    assert reason.details["n_steady_strides"] == 9
    assert nine.metrics_["stride_time_cv_pct_r"] == pytest.approx(3.0, abs=1.5)


def test_every_missing_metric_has_a_reason_a_therapist_can_read() -> None:
    lost = Verdict(Level.FAIL, "gait.sensor_missing", "There is no left shank sensor.", "Strap one on.", "shank_l")
    result = _compute(_strides(4, "right", 1.2, 0.7), side_reasons={"left": lost, "right": None}, walkway_length_m=None)
    assert set(result.metrics_) | set(result.missing_) == set(METRICS)
    assert result.missing_["stride_time_l_s"].code == "gait.sensor_missing"
    assert result.missing_["step_time_symmetry_index_pct"].code == "gait.sensor_missing"
    assert result.missing_["gait_speed_m_s"].code == "gait.no_walkway_length"
    for name, verdict in result.missing_.items():
        assert verdict.subject == name
        assert verdict.message
        assert verdict.level in (Level.WARNING, Level.FAIL)


def test_too_few_steady_strides() -> None:
    strides = _strides(1, "left", 1.2, 0.7) + _strides(5, "right", 1.2, 0.7, 0.6)
    result = _compute(strides)
    assert result.missing_["stride_time_l_s"].code == "gait.too_few_strides"
    assert "stride_time_r_s" in result.metrics_
