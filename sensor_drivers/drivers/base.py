"""The async driver interface every transport implements.

Usage::

    async with build_driver("serial:/dev/ttyUSB0?protocol=witmotion&site=pelvis") as driver:
        async for item in driver.stream():
            ...  # ImuSample or LinkEvent

A driver may serve one sensor (a serial port, a BLE peripheral) or a whole kit (the virtual patient, or a
:class:`~sensor_drivers.drivers.kit.KitDriver` merging several). ``stream()`` is an async generator fed by a queue and
closed in ``finally``; it ends when the driver is closed or the source is exhausted (a finite simulation).
Connection drops are reported in the stream as :class:`~sensor_drivers.sample.LinkEvent` items, never as exceptions;
only a failure to connect at all (after the allowed retries) raises from ``__aenter__``.

``stream_blocks()`` is the same stream with samples in blocks (:class:`~sensor_drivers.blocks.SampleBlock`: one
sensor's consecutive samples as arrays), for consumers that work on arrays (clock mapping and resampling,
:class:`~sensor_drivers.timing.assembler.GridAssembler`). A driver that receives samples in batches (serial reads,
BLE notifications, a kit of those) hands its batches on as blocks; the default makes one block per sample.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from sensor_drivers.blocks import BlockStreamItem, SampleBlock
from sensor_drivers.sample import ImuSample, StreamItem
from sensor_drivers.sites import Site


@dataclass
class SensorInfo:
    """What is known about one sensor of a driver. Device fields fill in once connected."""

    sensor_id: str
    site: Site
    #: "serial", "ble" or "sim".
    transport: str
    #: Protocol name ("witmotion", "witmotion-ble", "dot", "stridetwin").
    protocol: str
    #: Port path or BLE address.
    address: str = ""
    nominal_rate_hz: float = 200.0
    device_model: str = ""
    firmware: str = ""
    extra: dict[str, str] = field(default_factory=dict)


class Driver(abc.ABC):
    """An async context that connects to its device(s) and streams samples and link events."""

    @property
    @abc.abstractmethod
    def sensors(self) -> list[SensorInfo]:
        """The sensors this driver serves."""

    @abc.abstractmethod
    async def connect(self) -> None:
        """Connect (with the transport's retry policy); raises DeviceUnavailableError if that fails."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop streaming and disconnect. Safe to call twice."""

    @abc.abstractmethod
    def stream(self) -> AsyncIterator[StreamItem]:
        """Samples and link events, in arrival order per sensor, until closed or exhausted."""

    async def stream_blocks(self) -> AsyncIterator[BlockStreamItem]:
        """The items of :meth:`stream` with samples in blocks, in the same order (here: one block per sample)."""
        async for item in self.stream():
            yield SampleBlock.from_samples([item]) if type(item) is ImuSample else item  # type: ignore[misc]

    def clip_metadata(self) -> dict[str, Any]:
        """What a recording made with this driver should carry in its metadata (after connecting); default none."""
        return {}

    async def __aenter__(self) -> Driver:
        await self.connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
