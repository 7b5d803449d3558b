"""The check classes follow the house pattern (STYLE.md): parameters stored as given with defaults, one action verb
returning self, results in documented attributes ending in ``_``."""

from __future__ import annotations

import numpy as np
import pytest

from capture_app.core.checks import (
    DeviceClass,
    IdentificationThresholds,
    PlacementCheck,
    QualityMonitor,
    QualityThresholds,
    SensorIdentification,
    StaticCheck,
    StaticThresholds,
)
from capture_app.core.checks.placement import EXPECTED_ROTATION_SEGMENT_SENSOR
from capture_app.core.signals import KitSignals, SiteSignals
from tests.conformance import constructed_and_run, documentation


def _still_kit() -> KitSignals:
    n = 300
    rng = np.random.default_rng(0)
    sites = {}
    for site, R in EXPECTED_ROTATION_SEGMENT_SENSOR.items():
        acc = R.T @ np.array([0.0, 0.0, 9.80665]) + 0.02 * rng.standard_normal((n, 3))
        sites[site] = SiteSignals(f"id-{site.value}", np.ones(n, bool), acc, 0.001 * rng.standard_normal((n, 3)))
    return KitSignals(100.0, np.arange(n) / 100.0, sites)


KIT = _still_kit()
CASES = [
    (
        StaticCheck,
        {
            "expected": dict(EXPECTED_ROTATION_SEGMENT_SENSOR),
            "device": DeviceClass(),
            "thresholds": StaticThresholds(tilt_warn_deg=20.0),
            "uses_magnetometer": True,
        },
        "check",
        (KIT, (0.0, 3.0)),
        ("verdicts_", "is_still_", "stats_", "up_sensor_", "tilt_error_deg_", "gyr_bias_rad_s_", "reference_"),
    ),
    (
        SensorIdentification,
        {
            "expected": dict(EXPECTED_ROTATION_SEGMENT_SENSOR),
            "thresholds": IdentificationThresholds(rotation_warn_deg=20.0),
            "check_heading": False,
        },
        "identify",
        (KIT, (0.0, 3.0)),
        (
            "verdicts_",
            "assignment_",
            "site_of_sensor_",
            "confirmed_",
            "stride_period_s_",
            "rotation_segment_sensor_",
            "heading_known_",
            "twist_deg_",
            "loose_vibration_dps_",
            "evidence_",
        ),
    ),
    (
        PlacementCheck,
        {"check_heading": False, "uses_magnetometer": True, "device": DeviceClass(name="x")},
        "check",
        (KIT, (0.0, 1.5), (1.5, 3.0)),
        ("verdicts_", "problems_", "level_", "assignment_", "static_", "identification_"),
    ),
    (
        QualityMonitor,
        {
            "window_s": 2.0,
            "nominal_rate_hz": 100.0,
            "uses_magnetometer": True,
            "thresholds": QualityThresholds(loss_warn_pct=2.0),
        },
        "update",
        (KIT,),
        ("verdicts_", "stats_"),
    ),
]


@pytest.mark.parametrize(("cls", "params", "verb", "args", "results"), CASES, ids=lambda c: getattr(c, "__name__", ""))
def test_algorithm_conformance(cls: type, params: dict, verb: str, args: tuple, results: tuple[str, ...]) -> None:
    algo = constructed_and_run(cls, params, verb, args)
    for name in results:
        assert hasattr(algo, name)
        assert name in documentation(cls, verb)
    assert cls().__class__ is cls  # constructible with defaults only


def test_quality_monitor_reset_forgets_everything() -> None:
    monitor = QualityMonitor(nominal_rate_hz=100.0).update(KIT)
    assert monitor.stats_
    assert monitor.reset() is monitor
    assert monitor.stats_ == {}
    assert monitor.verdicts_ == []
