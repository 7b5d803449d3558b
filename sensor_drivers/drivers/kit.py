"""A kit: several drivers (typically the five sensors) merged into one stream.

All children connect concurrently; BLE children on one adapter still connect one after another, because every
:class:`~sensor_drivers.drivers.ble.BleDriver` takes its adapter's lock for the set-up. A child that fails to connect
is reported by site, sensor id, source and reason; with ``on_connect_error="abort"`` (the default) the kit closes
the children that did connect and raises, with ``"continue"`` it streams the others and puts a
``LinkEvent(DISCONNECTED, reason="failed to connect: …")`` for each missing sensor in the stream, right after the
connected ones' ``CONNECTED``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Literal

from sensor_drivers.blocks import BlockStreamItem
from sensor_drivers.drivers.base import Driver, SensorInfo
from sensor_drivers.drivers.item_queue import ItemQueue
from sensor_drivers.errors import DeviceUnavailableError
from sensor_drivers.sample import LinkEvent, LinkState, StreamItem

log = logging.getLogger(__name__)

OnConnectError = Literal["abort", "continue"]
ON_CONNECT_ERROR_CHOICES: tuple[str, ...] = ("abort", "continue")


@dataclass(frozen=True)
class ConnectFailure:
    """One child driver that did not connect."""

    #: Position of the driver in the kit.
    index: int
    #: ``"pelvis (serial /dev/ttyUSB0)"``: which sensors, by site and address (and the source string, when known).
    label: str
    error: BaseException

    def __str__(self) -> str:
        return f"{self.label}: {self.error}"


class KitConnectError(DeviceUnavailableError):
    """Some sensors of a kit did not connect (and the policy was to abort, or none connected at all)."""

    def __init__(self, failures: Sequence[ConnectFailure], n_drivers: int) -> None:
        self.failures = list(failures)
        lines = "\n".join(f"  - {f}" for f in self.failures)
        super().__init__(f"{len(self.failures)} of {n_drivers} sensor driver(s) failed to connect:\n{lines}")


class KitDriver(Driver):
    """Merge several drivers into one stream.

    Parameters
    ----------
    drivers
        The children; each may serve one or more sensors. Sensor ids must be unique across the kit, and so must sites.
    on_connect_error
        ``"abort"``: any child failing to connect fails the kit (the others are closed again). ``"continue"``: go on
        with the children that connected (at least one must).
    labels
        Optional description per child for error messages (the registry passes the source strings).
    """

    def __init__(
        self,
        drivers: Sequence[Driver],
        *,
        on_connect_error: OnConnectError = "abort",
        labels: Sequence[str] | None = None,
    ) -> None:
        if not drivers:
            raise ValueError("a kit needs at least one driver")
        if on_connect_error not in ON_CONNECT_ERROR_CHOICES:
            raise ValueError(f"on_connect_error {on_connect_error!r}; accepted: {', '.join(ON_CONNECT_ERROR_CHOICES)}")
        if labels is not None and len(labels) != len(drivers):
            raise ValueError(f"{len(labels)} labels for {len(drivers)} drivers")
        _check_unique(drivers)
        self.drivers = list(drivers)
        self.on_connect_error = on_connect_error
        self._labels = list(labels) if labels is not None else [None] * len(drivers)
        self._queue = ItemQueue()
        self._active: list[Driver] = []
        self._pumps: list[asyncio.Task[None]] = []
        self._connected = False
        self._closed = False
        #: Children that failed to connect (with ``on_connect_error="continue"``).
        self.failures: list[ConnectFailure] = []

    @property
    def sensors(self) -> list[SensorInfo]:
        """Every child's sensors, in the children's order."""
        return [info for driver in self.drivers for info in driver.sensors]

    @property
    def active_drivers(self) -> list[Driver]:
        """The children that connected."""
        return list(self._active)

    def label(self, index: int) -> str:
        """How child ``index`` is named in reports: its sensors' sites and addresses (and source, when known)."""
        driver = self.drivers[index]
        sensors = ", ".join(
            f"{s.site} ({s.transport} {s.address or s.sensor_id})" if s.address else f"{s.site} ({s.sensor_id})"
            for s in driver.sensors
        )
        source = self._labels[index]
        return f"{sensors} from {source}" if source else sensors

    async def connect(self) -> None:
        """Connect every child concurrently; report failures per the policy."""
        if self._connected:
            return
        if self._closed:
            raise DeviceUnavailableError("kit driver was closed; make a new one")
        # Children that can forward their batches into the kit's queue do so (SerialDriver, BleDriver): no task hop
        # per batch. The others are pumped from their streams once connected.
        forwarded = set()
        for index, driver in enumerate(self.drivers):
            forward_to = getattr(driver, "forward_to", None)
            if forward_to is not None:
                forward_to(self._queue)
                forwarded.add(index)
        results = await asyncio.gather(*(d.connect() for d in self.drivers), return_exceptions=True)
        failures: list[ConnectFailure] = []
        for index, (driver, result) in enumerate(zip(self.drivers, results, strict=True)):
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):  # CancelledError, KeyboardInterrupt: not a device failure
                    await self._close_children([d for d, r in zip(self.drivers, results, strict=True) if r is None])
                    raise result
                failures.append(ConnectFailure(index, self.label(index), result))
            else:
                self._active.append(driver)
        if failures and (self.on_connect_error == "abort" or not self._active):
            await self._close_children(self._active)
            self._active = []
            raise KitConnectError(failures, len(self.drivers))
        self.failures = failures
        now_s = time.monotonic()
        head: list[StreamItem] = []
        for failure in failures:
            log.warning("kit: continuing without %s", failure)
            head.extend(
                LinkEvent(
                    sensor_id=info.sensor_id,
                    site=info.site,
                    state=LinkState.DISCONNECTED,
                    host_time_s=now_s,
                    reason=f"failed to connect: {failure.error}",
                )
                for info in self.drivers[failure.index].sensors
            )
        self._queue.put(head)
        self._pumps = [
            asyncio.create_task(self._pump(d), name=f"kit-pump-{i}")
            for i, d in enumerate(self.drivers)
            if d in self._active and i not in forwarded
        ]
        self._connected = True

    async def close(self) -> None:
        """Close every child, pass on what they still had queued, then end the stream."""
        if self._closed:
            return
        self._closed = True
        await self._close_children(self._active)
        # Children end their streams when closed; the pumps forward what was queued before, then finish.
        if self._pumps:
            _done, pending = await asyncio.wait(self._pumps, timeout=5.0)
            for task in pending:
                log.warning("kit: a child stream did not end after close; cancelling it")
                task.cancel()
            await asyncio.gather(*self._pumps, return_exceptions=True)
        self._queue.finish()

    def stream(self) -> AsyncIterator[StreamItem]:
        """Items of all children, each child's in its own order, interleaved as they arrive."""
        return self._queue.items()

    def stream_blocks(self) -> AsyncIterator[BlockStreamItem]:
        """The items of :meth:`stream` with samples in blocks (as the children deliver them)."""
        return self._queue.blocks()

    async def _pump(self, driver: Driver) -> None:
        index = self.drivers.index(driver)
        queue = self._queue
        try:
            async for item in driver.stream():
                queue.put([item])
        except Exception as exc:  # a broken child must not take the others down; mark its sensors as lost
            log.exception("kit: stream of %s failed", self.label(index))
            now_s = time.monotonic()
            queue.put(
                [
                    LinkEvent(
                        sensor_id=info.sensor_id,
                        site=info.site,
                        state=LinkState.DISCONNECTED,
                        host_time_s=now_s,
                        reason=f"driver failed: {exc}",
                    )
                    for info in driver.sensors
                ]
            )

    async def _close_children(self, drivers: Sequence[Driver]) -> None:
        results = await asyncio.gather(*(d.close() for d in drivers), return_exceptions=True)
        for driver, result in zip(drivers, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("kit: closing %s failed: %s", self.label(self.drivers.index(driver)), result)


def _check_unique(drivers: Sequence[Driver]) -> None:
    seen_ids: dict[str, int] = {}
    seen_sites: dict[str, int] = {}
    for index, driver in enumerate(drivers):
        for info in driver.sensors:
            if info.sensor_id in seen_ids:
                raise ValueError(f"sensor id {info.sensor_id!r} appears twice in the kit; give each sensor its own id")
            if info.site in seen_sites:
                other = next(s for s in drivers[seen_sites[info.site]].sensors if s.site == info.site)
                raise ValueError(
                    f"two sensors at site {info.site}: {other.sensor_id!r} and {info.sensor_id!r}; "
                    "give each its own site (site=…)"
                )
            seen_ids[info.sensor_id] = index
            seen_sites[info.site] = index
