"""Devices only: IMU samples from hardware (or the virtual patient) into the program.

Drivers yield immutable, timestamped :class:`~sensor_drivers.sample.ImuSample` objects (or, from ``stream_blocks()``,
:class:`~sensor_drivers.blocks.SampleBlock` s of the samples that arrived together) and know nothing of fusion or
gait. See ``docs/architecture.md`` for where this package sits.
"""

from sensor_drivers.blocks import ReadingBlock, SampleBlock
from sensor_drivers.sample import DeviceReading, DeviceStatus, ImuSample, LinkEvent, LinkState
from sensor_drivers.sites import Site

__all__ = [
    "DeviceReading",
    "DeviceStatus",
    "ImuSample",
    "LinkEvent",
    "LinkState",
    "ReadingBlock",
    "SampleBlock",
    "Site",
]
