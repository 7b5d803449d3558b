"""Unwrapping of wrapping device counters."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensor_drivers.protocols.counters import CounterUnwrapper

from .strategies import MAX_EXAMPLES


def test_uint16_sequence_wraps_forward() -> None:
    unwrapper = CounterUnwrapper(16)
    assert [unwrapper.unwrap(raw) for raw in (65534, 65535, 0, 1)] == [65534, 65535, 65536, 65537]
    assert unwrapper.n_wraps == 1
    assert unwrapper.n_restarts == 0


def test_gap_across_the_wrap_keeps_its_size() -> None:
    unwrapper = CounterUnwrapper(16)
    unwrapper.unwrap(65530)
    assert unwrapper.unwrap(4) == 65530 + 10


def test_backward_step_is_a_restart_and_stays_monotonic() -> None:
    unwrapper = CounterUnwrapper(32)
    unwrapper.unwrap(5_000_000)
    assert unwrapper.unwrap(200) == 5_000_000 + 1 + 200
    assert unwrapper.n_restarts == 1


def test_reset_forgets_history() -> None:
    unwrapper = CounterUnwrapper(8)
    unwrapper.unwrap(250)
    unwrapper.unwrap(3)
    unwrapper.reset()
    assert unwrapper.unwrap(7) == 7


def test_rejects_impossible_width() -> None:
    with pytest.raises(ValueError, match=r"1\.\.64"):
        CounterUnwrapper(0)


@settings(max_examples=MAX_EXAMPLES, deadline=None)
@given(start=st.integers(0, 2**16 - 1), steps=st.lists(st.integers(0, 2**15 - 1), max_size=50))
def test_unwrapped_equals_cumulative_steps(start: int, steps: list[int]) -> None:
    unwrapper = CounterUnwrapper(16)
    expected = start
    assert unwrapper.unwrap(start) == start
    for step in steps:
        expected += step
        assert unwrapper.unwrap(expected % 2**16) == expected
