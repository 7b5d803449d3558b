"""The lower-envelope geometry: hull, the Moon et al. line, dip outliers."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sensor_drivers.timing.envelope import LowerHull, dip_outliers, envelope_line, lowest_line


@settings(max_examples=200, deadline=None)
@given(
    ys=st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=60),
    gaps=st.lists(st.floats(1e-3, 10.0), min_size=60, max_size=60),
)
def test_lower_hull_is_below_every_point_and_made_of_points(ys: list[float], gaps: list[float]) -> None:
    xs = np.cumsum(gaps[: len(ys)]).tolist()
    hull = LowerHull()
    for x, y in zip(xs, ys, strict=True):
        hull.append(x, y)
    points = set(zip(xs, ys, strict=True))
    assert all(p in points for p in zip(hull.xs, hull.ys, strict=True))
    assert hull.xs[0] == xs[0]
    assert hull.xs[-1] == xs[-1]
    for k in range(len(hull) - 1):
        slope = (hull.ys[k + 1] - hull.ys[k]) / (hull.xs[k + 1] - hull.xs[k])
        below = [y - (hull.ys[k] + slope * (x - hull.xs[k])) for x, y in zip(xs, ys, strict=True)]
        assert min(below) >= -1e-9 * (1 + max(abs(v) for v in ys))
    rebuilt = LowerHull()
    rebuilt.rebuild(xs, ys)
    assert (rebuilt.xs, rebuilt.ys) == (hull.xs, hull.ys)


def test_envelope_line_recovers_a_line_under_one_sided_noise() -> None:
    rng = np.random.default_rng(1)
    x = np.sort(rng.uniform(0, 100, 500))
    y = 3.0 + 1.0005 * x + rng.exponential(0.01, x.size)
    y[[10, 490]] = 3.0 + 1.0005 * x[[10, 490]]  # two points with no latency at all
    line = envelope_line(x.tolist(), y.tolist(), 0.9, 1.1)
    assert line is not None
    assert math.isclose(line.slope, 1.0005, abs_tol=1e-6)
    assert math.isclose(line.at(50.0), 3.0 + 1.0005 * 50.0, abs_tol=1e-6)


def test_least_squares_would_be_biased_where_the_envelope_is_not() -> None:
    rng = np.random.default_rng(2)
    x = np.arange(0.0, 60.0, 0.005)
    y = 1.00002 * x + rng.uniform(0.001, 0.016, x.size)  # USB-like buffering delay
    ls_offset = np.polyfit(x, y, 1)[1]
    line = envelope_line(x.tolist(), y.tolist(), 0.99, 1.01)
    assert line is not None
    assert ls_offset > 0.008  # the mean latency
    assert abs(line.at(0.0) - 0.001) < 2e-4  # the latency floor


def test_slope_out_of_bounds_is_clamped_to_the_lowest_line_at_the_bound() -> None:
    line = envelope_line([0.0, 1.0, 2.0], [0.0, 2.0, 4.0], 0.98, 1.02)
    assert line is not None
    assert line.slope == 1.02
    assert min(y - line.at(x) for x, y in [(0.0, 0.0), (1.0, 2.0), (2.0, 4.0)]) == 0.0
    assert lowest_line([0.0, 1.0], [5.0, 1.0], 1.0).at(0.0) == 0.0


def test_single_point_gives_a_line_at_the_admissible_slope_nearest_one() -> None:
    line = envelope_line([2.0], [7.0], 0.99, 1.01)
    assert line is not None
    assert (line.slope, line.at(2.0)) == (1.0, 7.0)
    assert envelope_line([], [], 0.99, 1.01) is None


def test_dip_outliers_only_lone_dips_below_both_neighbours() -> None:
    r = [0.001, 0.0005, -0.01, 0.0008, 0.001, -0.01, -0.011, 0.001]
    assert dip_outliers(r, 0.002) == [2]  # the run of two low points at 5-6 is a step, not a dip
