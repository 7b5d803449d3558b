"""Smooth transition functions used to blend motions without kinks in acceleration.

All are C3 (continuous third derivative), so positions built from them have continuous jerk: no steps or kinks in
simulated accelerations.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]


def smoothstep(u: ArrayLike) -> FloatArray:
    """0 for u ≤ 0, 1 for u ≥ 1, and the C3 septic ``35u⁴ − 84u⁵ + 70u⁶ − 20u⁷`` in between."""
    x = np.clip(np.asarray(u, dtype=float), 0.0, 1.0)
    return x**4 * (35.0 + x * (-84.0 + x * (70.0 - 20.0 * x)))


def smoothstep_integral(u: ArrayLike) -> FloatArray:
    """∫₋∞ᵘ smoothstep: 0 for u ≤ 0, ``7u⁵ − 14u⁶ + 10u⁷ − 2.5u⁸`` on [0, 1] (reaching 1/2), then ``u − 1/2``."""
    u = np.asarray(u, dtype=float)
    x = np.clip(u, 0.0, 1.0)
    inside = x**5 * (7.0 + x * (-14.0 + x * (10.0 - 2.5 * x)))
    return np.where(u > 1.0, u - 0.5, inside)


def ramp(x: ArrayLike, start: ArrayLike, width: ArrayLike) -> FloatArray:
    """A smoothstep from 0 at ``start`` to 1 at ``start + width``."""
    return smoothstep((np.asarray(x, dtype=float) - start) / width)


def soft_positive(x: ArrayLike, width: float) -> FloatArray:
    """A smooth ``max(x, 0)`` with ``soft_positive(0) = 0`` and ``soft_positive(x) − soft_positive(−x) = x``.

    ``(x + √(x² + w²))/2 − w/2``: it tends to ``−w/2`` for large negative x and to ``x`` for large positive x.
    """
    x = np.asarray(x, dtype=float)
    return 0.5 * (x + np.sqrt(x * x + width * width)) - 0.5 * width
