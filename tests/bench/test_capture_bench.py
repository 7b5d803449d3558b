"""The capture benchmark's pty path: the virtual patient's five sensors over real pseudo-terminals, read by the serial
drivers, timed onto the grid; nothing lost, and the goal's parts measured inside the process total."""

from __future__ import annotations

import pytest

from bench.capture import pty_path
from stridetwin.commands.bench import SUITES


@pytest.mark.slow
def test_a_short_pty_run_loses_nothing_and_measures_its_parts() -> None:
    assert SUITES["capture"] == "bench.capture"
    run = pty_path(4.0, with_timing=True)
    assert run["n_sent"] > 5 * 200 * 3
    assert run["n_received"] == run["n_sent"]
    assert run["grid_rows"] > 0
    assert 0 < run["reader_thread_pct_of_one_core"] < run["cpu_pct_of_one_core"]
    assert 0 < run["timing_pct_of_one_core"] < run["cpu_pct_of_one_core"]
