"""The gait package's algorithm classes follow the house pattern (STYLE.md): every parameter has a default and is
stored as given, one action verb returns self, and every result (attributes ending in ``_``) is documented."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from capture_app.core.gait.analysis import GaitAnalysis, LiveGait
from capture_app.core.gait.axis import FixedAxis, SagittalAxis
from capture_app.core.gait.distance import WalkwayScaledLengths
from capture_app.core.gait.events import LiveShankEvents, ShankEventDetector, SwingDetector
from capture_app.core.gait.metrics import SpatiotemporalMetrics
from capture_app.core.gait.steps import ShankInclination
from capture_app.core.gait.strides import HeadingChange, StrideSegmentation
from capture_app.core.signals import KitSignals, SiteSignals
from sensor_drivers.sites import Site
from tests.conformance import constructed_and_run, documentation

from .synthetic import synthetic_shank


def _shank():
    return synthetic_shank(n_swings=6)


def _kit() -> KitSignals:
    left, right = synthetic_shank(n_swings=6, seed=1), synthetic_shank(n_swings=6, seed=2, start_s=0.0)
    sites = {site: SiteSignals(site.value, s.valid, s.acc_m_s2, s.gyr_rad_s)
             for site, s in ((Site.SHANK_L, left), (Site.SHANK_R, right))}  # fmt: skip
    return KitSignals(100.0, left.time_s, sites)


def _swings():
    s = _shank()
    return {"left": ShankEventDetector().detect(s.time_s, s.gyr_rad_s, s.acc_m_s2, s.valid, 100.0, "left").swings_,
            "right": []}  # fmt: skip


CASES: list[tuple[type, dict[str, Any], str, Callable[[], tuple], dict[str, Any]]] = [
    (SagittalAxis, {"min_skew": 0.3, "prior_axis": (0.0, 1.0, 0.0)}, "fit", lambda: (_shank().gyr_rad_s,), {}),
    (FixedAxis, {"axis_sensor": (0.0, 0.0, 1.0)}, "fit", lambda: (_shank().gyr_rad_s,), {}),
    (
        ShankEventDetector,
        {"swing_detector": SwingDetector(min_peak_rad_s=0.5), "max_bridge_s": 0.08},
        "detect",
        lambda: (lambda s: (s.time_s, s.gyr_rad_s, s.acc_m_s2, s.valid, 100.0, "left"))(_shank()),
        {},
    ),
    (
        LiveShankEvents,
        {"side": "right", "buffer_s": 6.0, "max_kept": 10},
        "update",
        lambda: (lambda s: (s.time_s[:50], s.gyr_rad_s[:50], s.acc_m_s2[:50], s.valid[:50]))(_shank()),
        {},
    ),
    (StrideSegmentation, {"n_transition_strides": 1, "turn_threshold_deg": 30.0}, "segment", lambda: (_swings(),), {}),
    (HeadingChange, {"min_coverage": 0.8}, "estimate", lambda: (_kit(),), {}),
    (
        WalkwayScaledLengths,
        {"max_imputed_fraction": 0.2},
        "estimate",
        lambda: (_swings(), 8.0, {"left": True, "right": False}),
        {},
    ),
    (
        ShankInclination,
        {"still_gyr_rad_s": 0.2},
        "estimate",
        lambda: (lambda s: (s.time_s, s.gyr_rad_s, s.acc_m_s2, s.valid, s.axis, [(s.ic_s[0], s.ic_s[1])]))(_shank()),
        {},
    ),
    (
        SpatiotemporalMetrics,
        {"min_cv_strides": 12},
        "compute",
        lambda: ([],),
        {"walking_time_s": None, "walkway_length_m": None, "side_reasons": {"left": None, "right": None}},
    ),
    (GaitAnalysis, {"min_strides": 4, "report_loss_s": 1.0}, "analyze", lambda: (_kit(), 8.0), {}),
    (LiveGait, {"buffer_s": 6.0, "n_cadence_strides": 4}, "update", lambda: (_kit(),), {}),
]


@pytest.mark.parametrize(("cls", "params", "verb", "args", "kwargs"), CASES, ids=[c[0].__name__ for c in CASES])
def test_algorithm_conformance(cls: type, params: dict, verb: str, args: Callable[[], tuple], kwargs: dict) -> None:
    algo = constructed_and_run(cls, params, verb, args(), kwargs)
    documented = documentation(cls, verb)
    results = [name for name in vars(algo) if name.endswith("_") and not name.startswith("_")]
    assert results
    for name in results:
        assert name in documented, f"{cls.__name__}.{name} is not documented"
    assert np.all([not name.endswith("__") for name in results])
