"""Hypothesis strategies shared by the protocol tests: physically sensible readings within device ranges."""

from __future__ import annotations

import math

from hypothesis import strategies as st

from sensor_drivers.sample import DeviceReading

#: Keep moderate: every decoder is fuzzed, and the whole suite must stay fast.
MAX_EXAMPLES = 60


def _vec(limit: float) -> st.SearchStrategy[tuple[float, float, float]]:
    component = st.floats(-limit, limit, allow_nan=False, allow_infinity=False)
    return st.tuples(component, component, component)


@st.composite
def unit_quaternions(draw: st.DrawFn) -> tuple[float, float, float, float]:
    """A unit quaternion with w ≥ 0 (one of the two equal signs)."""
    q = draw(st.tuples(*[st.floats(-1.0, 1.0, allow_nan=False)] * 4).filter(lambda v: sum(c * c for c in v) > 0.01))
    norm = math.sqrt(sum(c * c for c in q))
    q = tuple(c / norm for c in q)
    return q if q[0] >= 0 else tuple(-c for c in q)  # type: ignore[return-value]


@st.composite
def readings(
    draw: st.DrawFn,
    acc_limit_m_s2: float = 150.0,
    gyr_limit_rad_s: float = 34.0,
    with_mag: bool | None = None,
    with_quat: bool | None = None,
) -> DeviceReading:
    """A reading inside ±16 g and ±2000 °/s by default; magnetometer and quaternion present at random."""
    mag = draw(_vec(500.0)) if (with_mag if with_mag is not None else draw(st.booleans())) else None
    quat = draw(unit_quaternions()) if (with_quat if with_quat is not None else draw(st.booleans())) else None
    return DeviceReading(
        acc_m_s2=draw(_vec(acc_limit_m_s2)),
        gyr_rad_s=draw(_vec(gyr_limit_rad_s)),
        mag_ut=mag,
        quat_wxyz=quat,
    )


def assert_close(actual: tuple[float, ...] | None, expected: tuple[float, ...] | None, tol: float) -> None:
    """Component-wise ``|actual - expected| <= tol`` (both ``None`` passes)."""
    assert (actual is None) == (expected is None), (actual, expected)
    if actual is None or expected is None:
        return
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected, strict=True):
        assert abs(a - e) <= tol, (actual, expected, tol)
