"""Timing: device clocks mapped to host time, and all sensors resampled onto one time grid.

- :mod:`~sensor_drivers.timing.envelope`: the lower-envelope geometry (convex hull, Moon et al. 1999).
- :mod:`~sensor_drivers.timing.clock`: :class:`ClockSync`, the per-sensor drift model (streaming and batch).
- :mod:`~sensor_drivers.timing.sample_timer`: :class:`SampleTimer`, sample times from a clock, a counter or arrival.
- :mod:`~sensor_drivers.timing.resample`: :class:`GridResampler` / :class:`StreamingResampler`, one grid, gaps kept.
- :mod:`~sensor_drivers.timing.assembler`: :class:`GridAssembler`, the live path from stream items to grid rows.
- :mod:`~sensor_drivers.timing.transport_sim`: BLE and USB-serial latency models for tests and benchmarks.

See ``docs/timing.md`` for the models, their parameters and defaults.
"""

from sensor_drivers.timing.assembler import GridAssembler
from sensor_drivers.timing.clock import ClockEstimate, ClockReset, ClockSync, LostSamples
from sensor_drivers.timing.resample import GridBlock, GridResampler, SensorGrid, SensorSeries, StreamingResampler
from sensor_drivers.timing.sample_timer import SampleTimer, SequenceUnwrapper

__all__ = [
    "ClockEstimate",
    "ClockReset",
    "ClockSync",
    "GridAssembler",
    "GridBlock",
    "GridResampler",
    "LostSamples",
    "SampleTimer",
    "SensorGrid",
    "SensorSeries",
    "SequenceUnwrapper",
    "StreamingResampler",
]
