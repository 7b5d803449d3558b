"""The algorithm classes of the timing package follow the house pattern: parameters stored as given, one action
verb returning self, results in attributes ending in ``_``."""

from __future__ import annotations

import numpy as np
import pytest

from sensor_drivers.timing.clock import ClockSync
from sensor_drivers.timing.resample import GridResampler, SensorSeries
from tests.conformance import constructed_and_run, documentation

CASES = [
    (
        ClockSync,
        {"segment_s": 0.25, "window_s": 60.0, "fixed_latency_s": 0.001, "step_quantum_s": 0.005},
        "fit",
        (np.arange(2000) / 200.0, 5.0 + np.arange(2000) / 200.0 + 0.001),
        ("mapped_s_", "epoch_", "estimates_", "offset_s_", "drift_ppm_", "envelope_rms_s_", "uncertainty_s_"),
    ),
    (
        GridResampler,
        {"rate_hz": 50.0, "gap_factor": 2.0, "start_s": 1.0, "end_s": 2.0},
        "resample",
        ({"a": SensorSeries(np.linspace(0.0, 3.0, 601), np.zeros((601, 3)), np.zeros((601, 3)), 200.0)},),
        ("grid_", "n_dropped_"),
    ),
]


@pytest.mark.parametrize(("cls", "params", "verb", "args", "results"), CASES, ids=lambda c: getattr(c, "__name__", ""))
def test_algorithm_conformance(cls: type, params: dict, verb: str, args: tuple, results: tuple[str, ...]) -> None:
    algo = constructed_and_run(cls, params, verb, args)
    for name in results:
        assert hasattr(algo, name)
        assert name in documentation(cls, verb)
