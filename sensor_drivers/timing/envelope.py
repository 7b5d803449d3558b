"""The lower envelope of (device time, host time) points: the geometry under the clock model.

A sample taken at device time ``x`` reaches the host at ``y = offset + slope·x + latency`` with ``latency ≥ 0``, so
every point lies on or above the line ``offset + slope·x`` and the points of least latency touch it. Least squares
would fit the mean latency, not the line; instead the line is taken from the lower convex hull of the points, as in
Moon, Skelly & Towsley, "Estimation and removal of clock skew from network delay measurements", IEEE INFOCOM 1999:
their linear programme (minimise the summed vertical distance of the points above a line that lies below all of them)
is solved by the lower-hull edge above the centroid of the points' x (Moon et al. 1999, section III-B). Everything
here is plain float arithmetic: the hulls are small and built incrementally, so numpy's per-call cost would dominate.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Line:
    """``y = y0 + slope·(x − x0)``, anchored at a point near the data so that offsets stay well conditioned."""

    x0: float
    y0: float
    slope: float

    def at(self, x: float) -> float:
        """The line's value at ``x``."""
        return self.y0 + self.slope * (x - self.x0)


class LowerHull:
    """Lower convex hull of points appended in strictly increasing ``x`` (Andrew's monotone chain).

    Appending is amortised O(1); :meth:`rebuild` starts over from a point set (used when old points leave a window).
    """

    __slots__ = ("xs", "ys")

    def __init__(self) -> None:
        self.xs: list[float] = []
        self.ys: list[float] = []

    def __len__(self) -> int:
        return len(self.xs)

    def append(self, x: float, y: float) -> None:
        """Add a point right of every point so far; drops hull vertices that it makes non-convex."""
        xs, ys = self.xs, self.ys
        while len(xs) >= 2:
            x1, y1, x2, y2 = xs[-2], ys[-2], xs[-1], ys[-1]
            # Keep the last vertex only if (x1,y1) → (x2,y2) → (x,y) turns left (counter-clockwise).
            if (x2 - x1) * (y - y1) - (y2 - y1) * (x - x1) > 0.0:
                break
            xs.pop()
            ys.pop()
        xs.append(x)
        ys.append(y)

    def rebuild(self, xs: Sequence[float], ys: Sequence[float]) -> None:
        """Replace the hull by the hull of the given points (sorted by strictly increasing ``x``)."""
        self.xs = []
        self.ys = []
        for x, y in zip(xs, ys, strict=True):
            self.append(x, y)

    def support_line(self, x_target: float) -> Line | None:
        """The hull edge above ``x_target`` (clamped into the hull's span); ``None`` with fewer than two vertices.

        With ``x_target`` the centroid of the points' x this is the solution of Moon et al.'s linear programme.
        """
        xs, ys = self.xs, self.ys
        n = len(xs)
        if n < 2:
            return None
        j = bisect.bisect_right(xs, x_target) - 1
        j = min(max(j, 0), n - 2)
        x1, y1, x2, y2 = xs[j], ys[j], xs[j + 1], ys[j + 1]
        return Line(x0=x1, y0=y1, slope=(y2 - y1) / (x2 - x1))


def lowest_line(xs: Sequence[float], ys: Sequence[float], slope: float) -> Line:
    """The line of the given slope that touches the points from below (used when the slope is fixed or clamped)."""
    best = min(range(len(xs)), key=lambda i: ys[i] - slope * xs[i])
    return Line(x0=xs[best], y0=ys[best], slope=slope)


def envelope_line(
    xs: Sequence[float], ys: Sequence[float], min_slope: float, max_slope: float, x_target: float | None = None
) -> Line | None:
    """The lower-envelope line of points sorted by increasing ``x`` (Moon et al. 1999), its slope kept in bounds.

    ``x_target`` defaults to the centroid of ``xs`` (the linear programme's optimum). Returns ``None`` for no points;
    with one point, or a hull slope outside ``[min_slope, max_slope]``, the line through the lowest point at the
    nearest admissible slope.
    """
    if len(xs) == 0:
        return None
    hull = LowerHull()
    hull.rebuild(xs, ys)
    target = sum(xs) / len(xs) if x_target is None else x_target
    line = hull.support_line(target)
    if line is None:
        return lowest_line(xs, ys, min(max(1.0, min_slope), max_slope))
    if not min_slope <= line.slope <= max_slope:
        return lowest_line(xs, ys, min(max(line.slope, min_slope), max_slope))
    return line


def dip_outliers(residuals_s: Sequence[float], outlier_s: float) -> list[int]:
    """Indices of envelope points that sit more than ``outlier_s`` below both neighbours.

    Latency cannot be negative, so a lone point far below its neighbours is a timestamp glitch, not a fast packet;
    a lasting drop (several low points in a row) is a clock step and is left for the step detector.
    """
    r = residuals_s
    return [j for j in range(1, len(r) - 1) if r[j] < min(r[j - 1], r[j + 1]) - outlier_s]
